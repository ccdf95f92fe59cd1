// Copying change records between two database files with plain SQL: read
// `SELECT body FROM hdbrepl_log` on A, run `SELECT repl_apply(?)` on B. B ends with A's
// content (tables created from the replicated definitions), a second application changes
// nothing, and later updates, deletes, renames and drops propagate. Also the ways a user
// would naturally call repl_apply: over an ATTACHed log in one SELECT, inside an explicit
// transaction, and chained A -> B -> C (B's log forwards what it applied).
#include "tests/sql/sql_test_util.hpp"

#include <catch2/catch.hpp>

using namespace hdbrepl::test;

namespace {

const char* dog_sql = "CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT NOT NULL, breed TEXT INDEXED)";
const char* owner_sql = "CREATE VIRTUAL TABLE owner USING hdbrepl(email TEXT PRIMARY KEY, dog_id INTEGER INDEXED, score REAL, extra)";

// Applies A's records after `seq` to B one by one; returns the JSON results.
std::vector<std::string> copy_records(test_db& a, test_db& b, std::int64_t after = 0) {
    std::vector<std::string> out;
    for (auto& body : log_bodies(a.handle(), after)) {
        std::string err;
        std::string r = apply_record(b.handle(), body, err);
        INFO("record: " << record_json(a.handle(), body));
        REQUIRE(err == "");
        out.push_back(r);
    }
    return out;
}

void same_tables(test_db& a, test_db& b, const std::vector<std::string>& tables) {
    for (auto& t : tables) {
        INFO("table " << t);
        CHECK(typed_rows(b.handle(), "SELECT * FROM \"" + t + "\" ORDER BY 1") == typed_rows(a.handle(), "SELECT * FROM \"" + t + "\" ORDER BY 1"));
    }
}

void fill(test_db& a) {
    a.exec(dog_sql);
    a.exec(owner_sql);
    a.exec("INSERT INTO dog VALUES(1, 'Harper', 'Labrador'), (2, 'Penny', 'Poodle'), (3, 'Kato', 'Labrador')");
    a.exec("BEGIN; INSERT INTO owner VALUES('kyle@example.com', 1, 9.5, x'00ff'), ('ann@example.com', 2, 7, 'seven'); UPDATE dog SET breed = 'Lab' WHERE breed = 'Labrador'; COMMIT;");
    a.exec("UPDATE dog SET name = 'Penny Lane' WHERE id = 2");
    a.exec("DELETE FROM dog WHERE id = 3");
    a.exec("INSERT OR REPLACE INTO dog VALUES(4, 'Billy', 'Pug')");
    a.exec("UPDATE dog SET id = 40 WHERE id = 4");
    a.exec("INSERT INTO owner VALUES('zed@example.com', NULL, NULL, NULL)");
}

} // namespace

TEST_CASE("records copied with SELECT repl_apply(?) rebuild the other database", "[sql]") {
    temp_dir d;
    test_db a(d.file("a.db"));
    test_db b(d.file("b.db"));
    fill(a);
    auto results = copy_records(a, b);
    REQUIRE(results.size() == 9);
    CHECK(results[0] == "{\"applied\":0,\"skipped\":0,\"logged\":true}"); // create dog
    CHECK(results[2] == "{\"applied\":3,\"skipped\":0,\"logged\":true}"); // three dogs
    same_tables(a, b, {"dog", "owner"});
    CHECK(b.rows("SELECT typeof(score), typeof(extra) FROM owner WHERE email = 'ann@example.com'") == std::vector<std::string>{"real|text"});
    // The tables were created from the replicated definitions.
    CHECK(b.scalar("SELECT definition FROM hdbrepl_tables WHERE name = 'dog'") == a.scalar("SELECT definition FROM hdbrepl_tables WHERE name = 'dog'"));
    CHECK(b.scalar("SELECT definition FROM hdbrepl_tables WHERE name = 'owner'") == a.scalar("SELECT definition FROM hdbrepl_tables WHERE name = 'owner'"));
    CHECK(b.count("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'dog' AND sql LIKE 'CREATE VIRTUAL TABLE%hdbrepl%'") == 1);
    CHECK(b.count("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'dog_data'") == 1); // breed INDEXED
    // Versions and tombstones are the same, so the two databases are interchangeable replicas.
    CHECK(b.rows("SELECT id, hdbrepl_v FROM dog_data ORDER BY id") == a.rows("SELECT id, hdbrepl_v FROM dog_data ORDER BY id"));
    CHECK(b.rows("SELECT id, hdbrepl_v FROM dog_tomb ORDER BY id") == a.rows("SELECT id, hdbrepl_v FROM dog_tomb ORDER BY id"));
    CHECK(b.column("SELECT id FROM dog_tomb ORDER BY id") == std::vector<std::string>{"3", "4"});
    // B's log holds the same records (for forwarding), byte for byte.
    CHECK(log_bodies(b.handle()) == log_bodies(a.handle()));
    // The plan on B is the key plan too (the table is a normal replicated table there).
    auto p = b.plan("SELECT * FROM dog WHERE id = 1");
    REQUIRE(p.size() == 1);
    CHECK_THAT(p[0], Catch::Contains(":key id ="));

    SECTION("applying everything again changes nothing") {
        auto before = snapshot(b.handle());
        auto again = copy_records(a, b);
        for (auto& r : again) {
            INFO(r);
            CHECK_THAT(r, Catch::Contains("\"applied\":0") && Catch::Contains("\"logged\":false"));
        }
        CHECK(snapshot(b.handle()) == before);
    }
    SECTION("later updates, deletes, renames and drops propagate") {
        std::int64_t seq = last_seq(a);
        a.exec("UPDATE dog SET breed = 'Labrador' WHERE id = 1");
        a.exec("DELETE FROM dog WHERE id = 2");
        a.exec("BEGIN; DELETE FROM owner WHERE email = 'ann@example.com'; UPDATE owner SET score = score + 1; INSERT INTO dog VALUES(2, 'Penny II', NULL); COMMIT;");
        a.exec("UPDATE owner SET email = 'kyle@harper.example' WHERE email = 'kyle@example.com'");
        copy_records(a, b, seq);
        same_tables(a, b, {"dog", "owner"});
        CHECK(b.rows("SELECT name FROM dog WHERE id = 2") == std::vector<std::string>{"Penny II"});

        seq = last_seq(a);
        a.exec("ALTER TABLE dog RENAME TO hound");
        a.exec("INSERT INTO hound VALUES(5, 'Rex', 'Collie')");
        copy_records(a, b, seq);
        CHECK(b.count("SELECT count(*) FROM sqlite_schema WHERE name = 'dog'") == 0);
        same_tables(a, b, {"hound", "owner"});

        seq = last_seq(a);
        a.exec("DROP TABLE owner");
        copy_records(a, b, seq);
        CHECK(b.count("SELECT count(*) FROM sqlite_schema WHERE tbl_name LIKE 'owner%'") == 0);
        same_tables(a, b, {"hound"});
        CHECK(snapshot(b.handle()).size() > 0);
        // B writes on top of what it received: its own record's HLC is later than A's.
        b.exec("UPDATE hound SET name = 'Rex (B)' WHERE id = 5");
        CHECK(b.scalar("SELECT (SELECT hlc FROM hdbrepl_log ORDER BY seq DESC LIMIT 1) > (SELECT max(hlc) FROM hdbrepl_log WHERE seq < (SELECT max(seq) FROM hdbrepl_log))") == "1");
        // ... and A accepts it back.
        copy_records(b, a, last_seq(b) - 1);
        CHECK(a.rows("SELECT name FROM hound WHERE id = 5") == std::vector<std::string>{"Rex (B)"});
    }
    SECTION("a chain A -> B -> C converges too") {
        test_db c(d.file("c.db"));
        copy_records(b, c);
        same_tables(a, c, {"dog", "owner"});
    }
}

TEST_CASE("repl_apply over an attached database's log in a single SELECT", "[sql]") {
    temp_dir d;
    {
        test_db a(d.file("a.db"));
        fill(a);
        a.exec("ALTER TABLE dog RENAME TO hound");
        a.exec("DROP TABLE owner");
        a.exec("INSERT INTO hound VALUES(7, 'Seven', 'x')");
    }
    test_db a(d.file("a.db"));
    test_db b(d.file("b.db"));
    b.exec("ATTACH '" + d.file("a.db") + "' AS a");
    std::vector<std::string> out;
    // SQLite cannot DROP a table while the SELECT reads: the DROP record is refused with a
    // clear message, and nothing of it is applied.
    std::string err = try_typed_rows(b.handle(), "SELECT repl_apply(body) FROM a.hdbrepl_log ORDER BY seq", out);
    CHECK_THAT(err, Catch::Contains("cannot drop table 'owner'") && Catch::Contains("apply this record in a statement of its own"));
    CHECK(b.count("SELECT count(*) FROM main.owner") > 0);
    // One statement per record (what the message asks for) applies everything.
    for (auto& body : log_bodies(a.handle())) {
        std::string e;
        apply_record(b.handle(), body, e);
        REQUIRE(e == "");
    }
    same_tables(a, b, {"hound"});
    CHECK(b.count("SELECT count(*) FROM main.sqlite_schema WHERE tbl_name LIKE 'owner%' OR tbl_name LIKE 'dog%'") == 0);
}

TEST_CASE("repl_apply from a SELECT over a table of records in the same database", "[sql]") {
    temp_dir d;
    test_db a(d.file("a.db"));
    fill(a);
    a.exec("DROP TABLE owner"); // a DROP record applied while the SELECT reads `inbox`
    a.exec("INSERT INTO dog VALUES(8, 'after drop', 'x')");
    test_db b(d.file("b.db"));
    b.exec("CREATE TABLE inbox(seq INTEGER PRIMARY KEY, body BLOB)");
    {
        sqlite3_stmt* s = nullptr;
        sqlite3_prepare_v2(b.handle(), "INSERT INTO inbox(body) VALUES(?1)", -1, &s, nullptr);
        for (auto& body : log_bodies(a.handle())) {
            sqlite3_bind_blob(s, 1, body.data(), static_cast<int>(body.size()), SQLITE_TRANSIENT);
            REQUIRE(sqlite3_step(s) == SQLITE_DONE);
            sqlite3_reset(s);
        }
        sqlite3_finalize(s);
    }
    std::vector<std::string> out;
    std::string err = try_typed_rows(b.handle(), "SELECT repl_apply(body) FROM inbox ORDER BY seq", out);
    CHECK_THAT(err, Catch::Contains("cannot drop table 'owner'") && Catch::Contains("apply this record in a statement of its own"));
    for (auto& body : log_bodies(a.handle())) {
        std::string e;
        apply_record(b.handle(), body, e);
        REQUIRE(e == "");
    }
    same_tables(a, b, {"dog"});
    CHECK(b.count("SELECT count(*) FROM sqlite_schema WHERE tbl_name LIKE 'owner%'") == 0);
}

TEST_CASE("repl_apply inside an explicit transaction commits or rolls back with it", "[sql]") {
    temp_dir d;
    test_db a(d.file("a.db"));
    fill(a);
    test_db b(d.file("b.db"));
    auto bodies = log_bodies(a.handle());

    b.exec("BEGIN");
    for (auto& body : bodies) {
        std::string err;
        apply_record(b.handle(), body, err);
        REQUIRE(err == "");
    }
    CHECK(b.count("SELECT count(*) FROM dog") == 3);
    b.exec("ROLLBACK");
    CHECK(b.scalar("SELECT count(*) FROM sqlite_schema") == "0");

    b.exec("BEGIN");
    for (auto& body : bodies) {
        std::string err;
        apply_record(b.handle(), body, err);
        REQUIRE(err == "");
    }
    b.exec("INSERT INTO dog VALUES(100, 'local', 'x')"); // a local write in the same transaction
    b.exec("COMMIT");
    CHECK(b.count("SELECT count(*) FROM dog") == 4);
    CHECK(b.count("SELECT count(*) FROM hdbrepl_log") == static_cast<std::int64_t>(bodies.size()) + 1);
    check_log_matches_data(b, {"dog", "owner"});
    // The local record is later than everything applied.
    CHECK(b.scalar("SELECT hlc = (SELECT max(hlc) FROM hdbrepl_log) FROM hdbrepl_log ORDER BY seq DESC LIMIT 1") == "1");

    SECTION("a failing record inside a transaction leaves the transaction's other work") {
        b.exec("BEGIN");
        b.exec("INSERT INTO dog VALUES(101, 'kept', 'x')");
        std::string err;
        apply_record(b.handle(), "garbage", err);
        CHECK_THAT(err, Catch::Contains("malformed change record"));
        CHECK(sqlite3_get_autocommit(b.handle()) == 0);
        CHECK(b.try_exec("COMMIT") == "");
        CHECK(b.count("SELECT count(*) FROM dog WHERE id = 101") == 1);
    }
    SECTION("a well-formed record that cannot be applied, inside a transaction, leaves the transaction's other work") {
        hdbrepl::engine::txn_record bad{hdbrepl::engine::hlc_from_ms(1'700'000'000'000ull), "node-x",
                                        {{"dog", "\"id\" INTEGER PRIMARY KEY, \"name\" TEXT NOT NULL, \"breed\" TEXT INDEXED"}},
                                        {{0, hdbrepl::engine::change_op::put, {hdbrepl::engine::value::null(), hdbrepl::engine::value::of_text("x"), hdbrepl::engine::value::null()}}}};
        auto body = hdbrepl::engine::encode_record(bad);
        b.exec("BEGIN");
        b.exec("INSERT INTO dog VALUES(102, 'kept', 'x')");
        std::string err;
        apply_record(b.handle(), std::string(body.begin(), body.end()), err);
        CHECK_THAT(err, Catch::Contains("NULL primary key"));
        CHECK(b.try_exec("COMMIT") == "");
        CHECK(b.count("SELECT count(*) FROM dog WHERE id = 102") == 1);
    }
    SECTION("a record refused for clock skew, inside a transaction, leaves the transaction's other work") {
        temp_dir d2;
        test_db future(d2.file("future.db"));
        future.exec("SELECT repl_config('test_clock_ms', (strftime('%s', 'now') + 7200) * 1000)");
        future.exec("CREATE VIRTUAL TABLE later USING hdbrepl(k PRIMARY KEY)");
        b.exec("BEGIN");
        b.exec("INSERT INTO dog VALUES(103, 'kept', 'x')");
        std::string err;
        apply_record(b.handle(), log_bodies(future.handle()).at(0), err);
        CHECK_THAT(err, Catch::Contains("ahead of this node's clock"));
        CHECK(b.try_exec("COMMIT") == "");
        CHECK(b.count("SELECT count(*) FROM dog WHERE id = 103") == 1);
        CHECK(b.count("SELECT count(*) FROM sqlite_schema WHERE name = 'later'") == 0);
    }
}

TEST_CASE("repl_apply into an attached schema", "[sql]") {
    temp_dir d;
    test_db a(d.file("a.db"));
    fill(a);
    test_db b(d.file("b.db"));
    b.exec("ATTACH '" + d.file("aux.db") + "' AS aux");
    for (auto& body : log_bodies(a.handle())) {
        std::string err;
        apply_record(b.handle(), body, err, "SELECT repl_apply(?1, 'aux')");
        REQUIRE(err == "");
    }
    CHECK(b.count("SELECT count(*) FROM main.sqlite_schema") == 0);
    CHECK(b.rows("SELECT * FROM aux.dog ORDER BY id") == a.rows("SELECT * FROM dog ORDER BY id"));
    CHECK(b.rows("SELECT * FROM aux.owner ORDER BY email") == a.rows("SELECT * FROM owner ORDER BY email"));
    CHECK(b.count("SELECT count(*) FROM aux.hdbrepl_log") == a.count("SELECT count(*) FROM hdbrepl_log"));
}
