// Two connections on one database file: isolation of uncommitted writes, one log record per
// transaction, and the hybrid logical clock, whose timestamps must increase strictly across
// connections, across reopening the file and when a connection's clock goes backwards.
#include "tests/sql/sql_test_util.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <set>

using namespace hdbrepl::test;

namespace {

const char* dog_sql = "CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT NOT NULL, breed TEXT INDEXED)";

std::int64_t wall_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Every record's HLC in log order, and the `clock` column.
struct log_clocks {
    std::vector<std::uint64_t> hlc, clock, record_hlc;
};
log_clocks clocks(test_db& db) {
    log_clocks c;
    for (auto& r : db.rows("SELECT hlc, clock FROM hdbrepl_log ORDER BY seq")) {
        c.hlc.push_back(std::stoull(r.substr(0, r.find('|'))));
        c.clock.push_back(std::stoull(r.substr(r.find('|') + 1)));
    }
    for (auto& b : log_bodies(db.handle())) c.record_hlc.push_back(record_hlc(b));
    return c;
}

void check_strictly_increasing(test_db& db) {
    auto c = clocks(db);
    REQUIRE(c.hlc.size() == c.record_hlc.size());
    for (std::size_t i = 0; i < c.hlc.size(); ++i) {
        INFO("log row " << i + 1 << " of " << c.hlc.size());
        CHECK(c.hlc[i] == c.record_hlc[i]); // the column and the record agree
        CHECK(c.clock[i] >= c.hlc[i]);
        if (i > 0) {
            CHECK(c.hlc[i] > c.hlc[i - 1]);
            CHECK(c.clock[i] >= c.clock[i - 1]);
        }
    }
}

} // namespace

TEST_CASE("uncommitted writes of one connection are invisible to another and committed ones visible", "[sql]") {
    temp_dir d;
    test_db a(d.file("shared.db"));
    test_db b(d.file("shared.db"));
    a.exec(dog_sql);
    a.exec("INSERT INTO dog VALUES(1, 'Rex', 'collie')");
    CHECK(b.rows("SELECT * FROM dog") == std::vector<std::string>{"1|Rex|collie"});

    a.exec("BEGIN");
    a.exec("INSERT INTO dog VALUES(2, 'Fido', 'lab')");
    a.exec("UPDATE dog SET name = 'Rex II' WHERE id = 1");
    CHECK(a.count("SELECT count(*) FROM dog") == 2);
    CHECK(b.rows("SELECT * FROM dog ORDER BY id") == std::vector<std::string>{"1|Rex|collie"});
    CHECK(b.rows("SELECT * FROM dog WHERE id = 2").empty());
    CHECK(b.rows("SELECT * FROM dog WHERE breed = 'lab'").empty());
    CHECK(b.count("SELECT count(*) FROM hdbrepl_log") == 2);
    a.exec("COMMIT");
    CHECK(b.rows("SELECT * FROM dog ORDER BY id") == std::vector<std::string>{"1|Rex II|collie", "2|Fido|lab"});
    CHECK(b.count("SELECT count(*) FROM hdbrepl_log") == 3);

    a.exec("BEGIN; DELETE FROM dog; ");
    CHECK(b.count("SELECT count(*) FROM dog") == 2);
    a.exec("ROLLBACK");
    CHECK(b.count("SELECT count(*) FROM dog") == 2);
    CHECK(a.count("SELECT count(*) FROM dog") == 2);

    // B writes, A reads; each commit is one record.
    b.exec("INSERT INTO dog VALUES(3, 'Kato', 'pug')");
    b.exec("BEGIN; UPDATE dog SET breed = 'pug' WHERE id = 1; DELETE FROM dog WHERE id = 2; COMMIT;");
    CHECK(a.rows("SELECT * FROM dog ORDER BY id") == std::vector<std::string>{"1|Rex II|pug", "3|Kato|pug"});
    CHECK(a.count("SELECT count(*) FROM hdbrepl_log") == 5);
    // Both connections are the same node.
    CHECK(a.scalar("SELECT repl_node_name()") == b.scalar("SELECT repl_node_name()"));
    CHECK(a.scalar("SELECT count(DISTINCT origin) FROM hdbrepl_log") == "1");
    check_strictly_increasing(a);
    check_log_matches_data(a, {"dog"});
}

TEST_CASE("a table created, dropped or recreated by one connection is seen correctly by another", "[sql]") {
    temp_dir d;
    test_db a(d.file("ddl.db"));
    test_db b(d.file("ddl.db"));
    a.exec(dog_sql);
    b.exec("INSERT INTO dog VALUES(1, 'Rex', 'collie')");
    CHECK(a.rows("SELECT * FROM dog") == std::vector<std::string>{"1|Rex|collie"});
    a.exec("DROP TABLE dog");
    CHECK_THAT(b.try_exec("INSERT INTO dog VALUES(2, 'Fido', 'lab')"), Catch::Contains("no such table: dog"));
    a.exec("CREATE VIRTUAL TABLE dog USING hdbrepl(id TEXT PRIMARY KEY, weight REAL)");
    CHECK(b.try_exec("INSERT INTO dog VALUES('x', 10)") == "");
    CHECK(a.rows("SELECT id, weight, typeof(weight) FROM dog") == std::vector<std::string>{"x|10.0|real"});
    a.exec("ALTER TABLE dog RENAME TO hound");
    CHECK(b.rows("SELECT id FROM hound") == std::vector<std::string>{"x"});
    CHECK(b.try_exec("INSERT INTO hound VALUES('y', 1)") == "");
    CHECK(a.count("SELECT count(*) FROM hound") == 2);
    check_strictly_increasing(a);
    check_log_matches_data(a, {"dog", "hound"});
}

TEST_CASE("HLCs increase strictly across connections, clock steps back and reopening", "[sql]") {
    temp_dir d;
    const std::string path = d.file("clock.db");
    {
        test_db a(path);
        test_db b(path);
        a.exec(dog_sql);
        // A's clock is an hour behind the wall clock, B's is the wall clock.
        a.exec("SELECT repl_config('test_clock_ms', " + std::to_string(wall_ms() - 3'600'000) + ")");
        for (int i = 0; i < 10; ++i) {
            (i % 2 ? a : b).exec("INSERT INTO dog VALUES(" + std::to_string(i) + ", 'n', 'b')");
            (i % 3 ? b : a).exec("UPDATE dog SET name = 'm" + std::to_string(i) + "' WHERE id = " + std::to_string(i));
        }
        // A jumps an hour ahead; B (wall clock) must still write after A.
        a.exec("SELECT repl_config('test_clock_ms', " + std::to_string(wall_ms() + 3'600'000) + ")");
        a.exec("INSERT INTO dog VALUES(100, 'future', 'x')");
        b.exec("INSERT INTO dog VALUES(101, 'present', 'x')");
        a.exec("SELECT repl_config('test_clock_ms', 1)"); // 1970
        a.exec("INSERT INTO dog VALUES(102, 'past', 'x')");
        b.exec("BEGIN; INSERT INTO dog VALUES(103, 'x', 'x'); COMMIT;");
        // Every row's version is the HLC of the record that wrote it, and the last write wins.
        CHECK(a.scalar("SELECT count(*) FROM dog_data WHERE hdbrepl_v NOT IN (SELECT hlc FROM hdbrepl_log)") == "0");
        CHECK(a.scalar("SELECT (SELECT hdbrepl_v FROM dog_data WHERE id = 103) = (SELECT max(hlc) FROM hdbrepl_log)") == "1");
        check_strictly_increasing(a);
    }
    std::uint64_t before = std::stoull(test_db(path).scalar("SELECT max(hlc) FROM hdbrepl_log"));
    {
        // Reopened, with the clock far in the past: still after everything logged.
        test_db c(path);
        c.exec("SELECT repl_config('test_clock_ms', 1000)");
        c.exec("INSERT INTO dog VALUES(200, 'after reopen', 'x')");
        c.exec("DELETE FROM dog WHERE id = 0");
        c.exec("ALTER TABLE dog RENAME TO hound");
        c.exec("INSERT INTO hound VALUES(201, 'renamed', 'x')");
        auto cl = clocks(c);
        REQUIRE(cl.hlc.size() >= 4);
        CHECK(cl.hlc[cl.hlc.size() - 4] > before);
        check_strictly_increasing(c);
    }
}

TEST_CASE("DDL inside a write transaction keeps the log's HLCs strictly increasing", "[sql]") {
    // With the clock standing still, every new HLC is the last one + 1. A CREATE (or DROP)
    // inside a transaction that already wrote rows is logged at once, the data record at
    // COMMIT: their HLCs must still be unique and in log order, and the clock must not step
    // back for the next transaction.
    temp_dir d;
    test_db db(d.file("ddl_txn.db"));
    db.exec(dog_sql);
    db.exec("SELECT repl_config('test_clock_ms', 1000)"); // far behind: HLCs advance by the logical counter only
    db.exec("INSERT INTO dog VALUES(1, 'a', 'b')");
    db.exec("BEGIN");
    db.exec("INSERT INTO dog VALUES(2, 'c', 'd')");
    db.exec("CREATE VIRTUAL TABLE cat USING hdbrepl(name TEXT PRIMARY KEY, lives INTEGER)");
    db.exec("INSERT INTO cat VALUES('Tom', 9)");
    db.exec("COMMIT");
    db.exec("INSERT INTO dog VALUES(3, 'e', 'f')");
    db.exec("BEGIN; INSERT INTO cat VALUES('Felix', 7); DROP TABLE dog; COMMIT;");
    db.exec("INSERT INTO cat VALUES('Garfield', 1)");
    auto c = clocks(db);
    std::set<std::uint64_t> distinct(c.hlc.begin(), c.hlc.end());
    CHECK(distinct.size() == c.hlc.size()); // no two transactions share an HLC
    check_strictly_increasing(db);
    check_log_matches_data(db, {"dog", "cat"});
}

TEST_CASE("a busy writer: the second connection waits (busy timeout) and both commits are logged", "[sql]") {
    temp_dir d;
    test_db a(d.file("busy.db"));
    test_db b(d.file("busy.db"));
    a.exec(dog_sql);
    sqlite3_busy_timeout(b.handle(), 100);
    a.exec("BEGIN IMMEDIATE; INSERT INTO dog VALUES(1, 'a', 'x');");
    std::string err = b.try_exec("INSERT INTO dog VALUES(2, 'b', 'y')");
    CHECK_THAT(err, Catch::Contains("locked")); // SQLITE_BUSY: "database is locked"
    a.exec("COMMIT");
    CHECK(b.try_exec("INSERT INTO dog VALUES(2, 'b', 'y')") == "");
    CHECK(a.count("SELECT count(*) FROM hdbrepl_log") == 3);
    CHECK(a.count("SELECT count(*) FROM dog") == 2);
    check_strictly_increasing(a);
}
