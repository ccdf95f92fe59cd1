// The change log (hdbrepl_log) as seen from SQL: one record per committed transaction,
// nothing for rolled-back work (transactions, savepoints, failed statements), nothing for
// replicate=false tables, DDL records, the net-effect rule, and tombstones with their
// retention and pruning.
#include "tests/sql/sql_test_util.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <set>

using namespace hdbrepl::test;

namespace {

const char* dog_sql = "CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT NOT NULL, breed TEXT INDEXED)";
const char* cat_sql = "CREATE VIRTUAL TABLE cat USING hdbrepl(name TEXT PRIMARY KEY, lives INTEGER)";

std::multiset<std::string> changes_of(const std::string& body) {
    auto v = record_changes(body);
    return {v.begin(), v.end()};
}

// The records appended after `seq`.
std::vector<std::string> new_records(test_db& db, std::int64_t seq) { return log_bodies(db.handle(), seq); }

std::int64_t wall_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

struct log_fixture {
    temp_dir dir;
    test_db db{dir.file("log.db")};
    log_fixture() {
        db.exec(dog_sql);
        db.exec(cat_sql);
    }
};

} // namespace

TEST_CASE("a committed transaction is exactly one log record, even across tables and statements", "[sql]") {
    log_fixture f;
    std::int64_t seq = last_seq(f.db);
    f.db.exec("BEGIN");
    for (int i = 1; i <= 20; ++i) f.db.exec("INSERT INTO dog VALUES(" + std::to_string(i) + ", 'd" + std::to_string(i) + "', 'lab')");
    f.db.exec("INSERT INTO cat VALUES('Tom', 9), ('Felix', 7)");
    f.db.exec("UPDATE dog SET breed = 'pug' WHERE id > 15");
    f.db.exec("UPDATE cat SET lives = lives - 1 WHERE name = 'Tom'");
    f.db.exec("DELETE FROM dog WHERE id = 20");
    f.db.exec("COMMIT");
    auto recs = new_records(f.db, seq);
    REQUIRE(recs.size() == 1);
    auto ch = changes_of(recs[0]);
    CHECK(ch.size() == 22); // dog 1..19 put, dog 20 delete, 2 cats
    CHECK(ch.count("dog delete i:20") == 1);
    CHECK(ch.count("dog put i:16|t:'d16'|t:'pug'") == 1);
    CHECK(ch.count("dog put i:1|t:'d1'|t:'lab'") == 1);
    CHECK(ch.count("cat put t:'Tom'|i:8") == 1);
    CHECK(ch.count("cat put t:'Felix'|i:7") == 1);
    std::string json = record_json(f.db.handle(), recs[0]);
    CHECK_THAT(json, Catch::Contains("\"table\":\"dog\"") && Catch::Contains("\"table\":\"cat\""));
    // The record's HLC is the version of every row it wrote.
    std::string hlc = std::to_string(record_hlc(recs[0]));
    CHECK(f.db.scalar("SELECT count(*) FROM dog_data WHERE hdbrepl_v = " + hlc) == "19");
    CHECK(f.db.scalar("SELECT count(*) FROM cat_data WHERE hdbrepl_v = " + hlc) == "2");
    CHECK(f.db.scalar("SELECT count(*) FROM dog_tomb WHERE hdbrepl_v = " + hlc) == "1");
    CHECK(f.db.scalar("SELECT hlc = " + hlc + " FROM hdbrepl_log ORDER BY seq DESC LIMIT 1") == "1");
    // Autocommit statements are one record each.
    seq = last_seq(f.db);
    f.db.exec("INSERT INTO dog VALUES(100, 'a', 'b')");
    f.db.exec("UPDATE dog SET name = 'z' WHERE id = 100");
    f.db.exec("UPDATE dog SET name = 'z' WHERE id = 12345"); // touches nothing: no record
    f.db.exec("DELETE FROM cat WHERE name = 'nobody'");
    CHECK(new_records(f.db, seq).size() == 2);
    // A read-only transaction writes nothing.
    seq = last_seq(f.db);
    f.db.exec("BEGIN; SELECT * FROM dog; SELECT * FROM cat; COMMIT;");
    CHECK(new_records(f.db, seq).empty());
    check_log_matches_data(f.db, {"dog", "cat"});
}

TEST_CASE("ROLLBACK leaves neither data nor log", "[sql]") {
    log_fixture f;
    f.db.exec("INSERT INTO dog VALUES(1, 'Rex', 'collie')");
    auto before = snapshot(f.db.handle());
    f.db.exec("BEGIN");
    f.db.exec("INSERT INTO dog VALUES(2, 'Fido', 'lab')");
    f.db.exec("INSERT INTO cat VALUES('Tom', 9)");
    f.db.exec("UPDATE dog SET name = 'X' WHERE id = 1");
    f.db.exec("DELETE FROM dog WHERE id = 1");
    f.db.exec("ROLLBACK");
    CHECK(snapshot(f.db.handle()) == before);
    // The connection keeps working normally afterwards.
    std::int64_t seq = last_seq(f.db);
    f.db.exec("INSERT INTO cat VALUES('Felix', 7)");
    auto recs = new_records(f.db, seq);
    REQUIRE(recs.size() == 1);
    CHECK(changes_of(recs[0]) == std::multiset<std::string>{"cat put t:'Felix'|i:7"});
}

TEST_CASE("a rolled-back first transaction on a new database leaves it usable", "[sql]") {
    // The system tables are created by the first write; a rollback takes them away again.
    temp_dir d;
    test_db db(d.file("fresh.db"));
    db.exec("BEGIN");
    db.exec(dog_sql);
    db.exec("INSERT INTO dog VALUES(1, 'a', 'b')");
    db.exec("ROLLBACK");
    CHECK(db.scalar("SELECT count(*) FROM sqlite_schema") == "0");
    db.exec(dog_sql);
    db.exec("INSERT INTO dog VALUES(1, 'a', 'b')");
    CHECK(log_count(db) == 2);
    db.exec("BEGIN; INSERT INTO dog VALUES(2, 'c', 'd'); ROLLBACK;");
    db.exec("INSERT INTO dog VALUES(3, 'e', 'f')");
    CHECK(log_count(db) == 3);
    check_log_matches_data(db, {"dog"});
}

TEST_CASE("savepoints: only the surviving changes are in the record", "[sql]") {
    log_fixture f;
    std::int64_t seq = last_seq(f.db);

    SECTION("nested savepoints inside BEGIN") {
        f.db.exec("BEGIN");
        f.db.exec("INSERT INTO dog VALUES(1, 'one', 'x')");
        f.db.exec("SAVEPOINT a");
        f.db.exec("INSERT INTO dog VALUES(2, 'two', 'x')");
        f.db.exec("SAVEPOINT b");
        f.db.exec("INSERT INTO dog VALUES(3, 'three', 'x')");
        f.db.exec("ROLLBACK TO b");
        f.db.exec("INSERT INTO dog VALUES(4, 'four', 'x')");
        f.db.exec("RELEASE b");
        f.db.exec("ROLLBACK TO a");
        f.db.exec("INSERT INTO dog VALUES(5, 'five', 'x')");
        f.db.exec("RELEASE a");
        f.db.exec("COMMIT");
        CHECK(f.db.column("SELECT id FROM dog ORDER BY id") == std::vector<std::string>{"1", "5"});
        auto recs = new_records(f.db, seq);
        REQUIRE(recs.size() == 1);
        CHECK(changes_of(recs[0]) == std::multiset<std::string>{"dog put i:1|t:'one'|t:'x'", "dog put i:5|t:'five'|t:'x'"});
    }
    SECTION("a savepoint as the outermost transaction") {
        f.db.exec("SAVEPOINT outer_sp");
        f.db.exec("INSERT INTO dog VALUES(1, 'one', 'x')");
        f.db.exec("SAVEPOINT inner_sp");
        f.db.exec("INSERT INTO dog VALUES(2, 'two', 'x')");
        f.db.exec("RELEASE inner_sp");
        f.db.exec("ROLLBACK TO outer_sp");
        f.db.exec("INSERT INTO dog VALUES(3, 'three', 'x')");
        f.db.exec("RELEASE outer_sp");
        CHECK(f.db.column("SELECT id FROM dog ORDER BY id") == std::vector<std::string>{"3"});
        auto recs = new_records(f.db, seq);
        REQUIRE(recs.size() == 1);
        CHECK(changes_of(recs[0]) == std::multiset<std::string>{"dog put i:3|t:'three'|t:'x'"});
    }
    SECTION("a savepoint opened before any table joined the transaction") {
        f.db.exec("BEGIN");
        f.db.exec("SAVEPOINT a");
        f.db.exec("INSERT INTO dog VALUES(1, 'one', 'x')");
        f.db.exec("INSERT INTO cat VALUES('Tom', 9)");
        f.db.exec("ROLLBACK TO a");
        f.db.exec("INSERT INTO cat VALUES('Felix', 7)");
        f.db.exec("COMMIT");
        auto recs = new_records(f.db, seq);
        REQUIRE(recs.size() == 1);
        CHECK(changes_of(recs[0]) == std::multiset<std::string>{"cat put t:'Felix'|i:7"});
        CHECK(record_json(f.db.handle(), recs[0]).find("\"dog\"") == std::string::npos);
    }
    SECTION("a second table joins inside a savepoint that is rolled back") {
        f.db.exec("BEGIN");
        f.db.exec("INSERT INTO dog VALUES(1, 'one', 'x')");
        f.db.exec("SAVEPOINT a");
        f.db.exec("INSERT INTO dog VALUES(2, 'two', 'x')");
        f.db.exec("SAVEPOINT b");
        f.db.exec("INSERT INTO cat VALUES('Tom', 9)");
        f.db.exec("UPDATE dog SET name = 'ONE' WHERE id = 1");
        f.db.exec("ROLLBACK TO b");
        f.db.exec("RELEASE a");
        f.db.exec("INSERT INTO dog VALUES(3, 'three', 'x')");
        f.db.exec("COMMIT");
        auto recs = new_records(f.db, seq);
        REQUIRE(recs.size() == 1);
        CHECK(changes_of(recs[0]) == std::multiset<std::string>{"dog put i:1|t:'one'|t:'x'", "dog put i:2|t:'two'|t:'x'", "dog put i:3|t:'three'|t:'x'"});
    }
    SECTION("everything rolled back to a savepoint: no record") {
        f.db.exec("SAVEPOINT a");
        f.db.exec("INSERT INTO dog VALUES(1, 'one', 'x')");
        f.db.exec("INSERT INTO cat VALUES('Tom', 9)");
        f.db.exec("ROLLBACK TO a");
        f.db.exec("RELEASE a");
        CHECK(new_records(f.db, seq).empty());
        CHECK(f.db.count("SELECT count(*) FROM dog") == 0);
    }
    SECTION("the same savepoint rolled back twice") {
        f.db.exec("BEGIN");
        f.db.exec("INSERT INTO dog VALUES(1, 'one', 'x')");
        f.db.exec("SAVEPOINT a");
        f.db.exec("INSERT INTO dog VALUES(2, 'two', 'x')");
        f.db.exec("ROLLBACK TO a");
        f.db.exec("INSERT INTO dog VALUES(3, 'three', 'x')");
        f.db.exec("ROLLBACK TO a");
        f.db.exec("INSERT INTO dog VALUES(4, 'four', 'x')");
        f.db.exec("COMMIT");
        auto recs = new_records(f.db, seq);
        REQUIRE(recs.size() == 1);
        CHECK(changes_of(recs[0]) == std::multiset<std::string>{"dog put i:1|t:'one'|t:'x'", "dog put i:4|t:'four'|t:'x'"});
    }
    check_log_matches_data(f.db, {"dog", "cat"});
}

TEST_CASE("a statement that fails with ABORT inside a transaction leaves none of its changes in the record", "[sql]") {
    log_fixture f;
    f.db.exec("INSERT INTO dog VALUES(1, 'a', 'x'), (2, 'b', 'y')");
    f.db.exec("CREATE TABLE p(k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    // One statement that writes both replicated tables (through a trigger) and then fails.
    f.db.exec("CREATE TRIGGER p_ins AFTER INSERT ON p BEGIN INSERT INTO cat VALUES(new.v, new.k); UPDATE dog SET name = new.v WHERE id = 1; END");
    std::int64_t seq = last_seq(f.db);
    f.db.exec("BEGIN");
    f.db.exec("INSERT INTO dog VALUES(3, 'c', 'z')");
    CHECK(f.db.try_exec("INSERT INTO dog VALUES(4, 'd', 'w'), (5, 'e', 'v'), (2, 'dup', 'u')") == "UNIQUE constraint failed: dog.id");
    CHECK(f.db.try_exec("UPDATE dog SET name = CASE id WHEN 3 THEN NULL ELSE 'renamed' END") == "NOT NULL constraint failed: dog.name");
    CHECK(f.db.try_exec("INSERT INTO p VALUES(1, 'Tom'), (2, 'Felix'), (3, NULL)") == "NOT NULL constraint failed: p.v");
    CHECK(f.db.try_exec("INSERT INTO p VALUES(10, 'Tom'), (11, 'Tom')") == "UNIQUE constraint failed: cat.name");
    f.db.exec("INSERT INTO p VALUES(20, 'Garfield')");
    f.db.exec("COMMIT");
    CHECK(f.db.column("SELECT id || name FROM dog ORDER BY id") == std::vector<std::string>{"1Garfield", "2b", "3c"});
    CHECK(f.db.column("SELECT name FROM cat") == std::vector<std::string>{"Garfield"});
    auto recs = new_records(f.db, seq);
    REQUIRE(recs.size() == 1);
    CHECK(changes_of(recs[0]) == std::multiset<std::string>{"dog put i:3|t:'c'|t:'z'", "dog put i:1|t:'Garfield'|t:'x'", "cat put t:'Garfield'|i:20"});
    check_log_matches_data(f.db, {"dog", "cat"});
}

TEST_CASE("replicate=false tables never produce log records", "[sql]") {
    temp_dir d;
    test_db db(d.file("local.db"));
    db.exec(dog_sql);
    std::int64_t seq = last_seq(db);
    REQUIRE(seq == 1);
    db.exec("CREATE VIRTUAL TABLE loc USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT INDEXED, replicate=false)");
    db.exec("INSERT INTO loc VALUES(1, 'a'), (2, 'b')");
    db.exec("UPDATE loc SET v = 'c' WHERE id = 1");
    db.exec("UPDATE loc SET id = 3 WHERE id = 2");
    db.exec("DELETE FROM loc WHERE id = 1");
    db.exec("BEGIN; INSERT INTO loc VALUES(10, 'x'); COMMIT;");
    db.exec("ALTER TABLE loc RENAME TO loc2");
    db.exec("INSERT INTO loc2 VALUES(11, 'y')");
    CHECK(last_seq(db) == seq);
    CHECK(db.column("SELECT id FROM loc2 ORDER BY id") == std::vector<std::string>{"3", "10", "11"});
    // In a transaction with a replicated table, only the replicated table is recorded.
    db.exec("BEGIN; INSERT INTO loc2 VALUES(12, 'z'); INSERT INTO dog VALUES(1, 'Rex', 'collie'); UPDATE loc2 SET v = 'q'; COMMIT;");
    auto recs = new_records(db, seq);
    REQUIRE(recs.size() == 1);
    CHECK(changes_of(recs[0]) == std::multiset<std::string>{"dog put i:1|t:'Rex'|t:'collie'"});
    CHECK(record_json(db.handle(), recs[0]).find("loc") == std::string::npos);
    seq = last_seq(db);
    db.exec("DROP TABLE loc2");
    CHECK(last_seq(db) == seq);
    // Also when the local table is the first table of the database (no log yet).
    temp_dir d2;
    test_db db2(d2.file("local2.db"));
    db2.exec("CREATE VIRTUAL TABLE loc USING hdbrepl(id INTEGER PRIMARY KEY, v, replicate=false)");
    db2.exec("INSERT INTO loc VALUES(1, 'a')");
    db2.exec("DELETE FROM loc");
    CHECK(log_count(db2) == 0);
}

TEST_CASE("CREATE, DROP and ALTER TABLE RENAME are log records", "[sql]") {
    temp_dir d;
    test_db db(d.file("ddl.db"));
    db.exec(dog_sql);
    auto recs = new_records(db, 0);
    REQUIRE(recs.size() == 1);
    CHECK(changes_of(recs[0]) == std::multiset<std::string>{"dog create"});
    std::string json = record_json(db.handle(), recs[0]);
    CHECK_THAT(json, Catch::Contains("\"op\":\"create\"") && Catch::Contains("\\\"id\\\" INTEGER PRIMARY KEY") &&
                         Catch::Contains("\\\"name\\\" TEXT NOT NULL") && Catch::Contains("\\\"breed\\\" TEXT INDEXED"));
    db.exec("INSERT INTO dog VALUES(1, 'Rex', 'collie')");

    std::int64_t seq = last_seq(db);
    db.exec("ALTER TABLE dog RENAME TO hound");
    recs = new_records(db, seq);
    REQUIRE(recs.size() == 1);
    CHECK(changes_of(recs[0]) == std::multiset<std::string>{"dog rename t:'hound'"});
    CHECK_THAT(record_json(db.handle(), recs[0]), Catch::Contains("\"op\":\"rename\""));
    CHECK(db.rows("SELECT * FROM hound") == std::vector<std::string>{"1|Rex|collie"});
    CHECK(db.count("SELECT count(*) FROM sqlite_schema WHERE name IN ('hound_data', 'hound_tomb')") == 2);
    CHECK(db.count("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name LIKE 'dog%'") == 0);

    seq = last_seq(db);
    db.exec("INSERT INTO hound VALUES(2, 'Fido', 'lab')");
    db.exec("DELETE FROM hound WHERE id = 1");
    recs = new_records(db, seq);
    REQUIRE(recs.size() == 2);
    CHECK(changes_of(recs[0]) == std::multiset<std::string>{"hound put i:2|t:'Fido'|t:'lab'"});
    CHECK(changes_of(recs[1]) == std::multiset<std::string>{"hound delete i:1"});
    check_log_matches_data(db, {"hound", "dog"});

    seq = last_seq(db);
    db.exec("DROP TABLE hound");
    recs = new_records(db, seq);
    REQUIRE(recs.size() == 1);
    CHECK(changes_of(recs[0]) == std::multiset<std::string>{"hound drop"});
    CHECK(db.count("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name LIKE 'hound%'") == 0);
    CHECK(db.count("SELECT count(*) FROM sqlite_schema WHERE tbl_name LIKE 'hound%'") == 0); // no index left behind
    check_log_matches_data(db, {"hound", "dog"});

    // DDL that fails or is rolled back leaves no record.
    seq = last_seq(db);
    db.exec("BEGIN; CREATE VIRTUAL TABLE t1 USING hdbrepl(k PRIMARY KEY); ROLLBACK;");
    CHECK_FALSE(db.try_exec("CREATE VIRTUAL TABLE t2 USING hdbrepl(k)").empty());
    CHECK(last_seq(db) == seq);
}

TEST_CASE("a record holds each key's net effect", "[sql]") {
    log_fixture f;
    f.db.exec("INSERT INTO dog VALUES(50, 'old', 'x')");
    std::int64_t seq = last_seq(f.db);
    f.db.exec("BEGIN");
    f.db.exec("INSERT INTO dog VALUES(1, 'a', 'x')");
    f.db.exec("UPDATE dog SET name = 'b' WHERE id = 1");
    f.db.exec("DELETE FROM dog WHERE id = 1"); // inserted, updated, deleted: one delete
    f.db.exec("INSERT INTO dog VALUES(2, 'a', 'x')");
    f.db.exec("UPDATE dog SET name = 'b' WHERE id = 2");
    f.db.exec("UPDATE dog SET breed = 'y' WHERE id = 2"); // one put with the final row
    f.db.exec("INSERT INTO dog VALUES(3, 'a', 'x')");
    f.db.exec("UPDATE dog SET id = 4 WHERE id = 3");
    f.db.exec("UPDATE dog SET id = 5 WHERE id = 4"); // 3 and 4 deleted, 5 put
    f.db.exec("DELETE FROM dog WHERE id = 50");
    f.db.exec("INSERT INTO dog VALUES(50, 'new', 'z')"); // deleted then re-inserted: one put
    f.db.exec("INSERT OR REPLACE INTO dog VALUES(6, 'a', 'x')");
    f.db.exec("INSERT OR REPLACE INTO dog VALUES(6, 'b', 'x')");
    f.db.exec("COMMIT");
    auto recs = new_records(f.db, seq);
    REQUIRE(recs.size() == 1);
    CHECK(changes_of(recs[0]) == std::multiset<std::string>{"dog delete i:1", "dog put i:2|t:'b'|t:'y'", "dog delete i:3", "dog delete i:4",
                                                             "dog put i:5|t:'a'|t:'x'", "dog put i:50|t:'new'|t:'z'", "dog put i:6|t:'b'|t:'x'"});
    check_log_matches_data(f.db, {"dog"});
}

TEST_CASE("DELETE leaves a tombstone and only expired tombstones are pruned", "[sql]") {
    temp_dir d;
    test_db db(d.file("tomb.db"));
    const std::int64_t t0 = wall_ms() + 10LL * 24 * 3600 * 1000; // ahead of the wall clock: HLCs follow the test clock
    auto at = [&](std::int64_t ms) { db.exec("SELECT repl_config('test_clock_ms', " + std::to_string(t0 + ms) + ")"); };
    at(0);
    db.exec(dog_sql);
    db.exec("INSERT INTO dog VALUES(1, 'a', 'x'), (2, 'b', 'x'), (3, 'c', 'x'), (4, 'd', 'x')");
    at(1000);
    db.exec("DELETE FROM dog WHERE id = 1");
    CHECK(db.count("SELECT count(*) FROM dog_tomb WHERE id = 1") == 1);
    CHECK(db.count("SELECT count(*) FROM dog_data WHERE id = 1") == 0);
    CHECK(db.scalar("SELECT (hdbrepl_v >> 16) - " + std::to_string(t0) + " FROM dog_tomb WHERE id = 1") == "1000");
    CHECK(db.scalar("SELECT hdbrepl_o = (SELECT id FROM hdbrepl_origins WHERE name = repl_node_name()) FROM dog_tomb WHERE id = 1") == "1");
    at(5000);
    db.exec("DELETE FROM dog WHERE id = 2");
    at(6000);
    db.exec("UPDATE dog SET id = 30 WHERE id = 3"); // the old key of a moved row is a tombstone too
    CHECK(db.column("SELECT id FROM dog_tomb ORDER BY id") == std::vector<std::string>{"1", "2", "3"});

    CHECK(db.scalar("SELECT repl_config('tombstone_retention_ms')") == "604800000");
    CHECK(db.scalar("SELECT repl_config('tombstone_retention_ms', 3000)") == "3000");
    CHECK(db.scalar("SELECT repl_config('tombstone_retention_ms')") == "3000");
    at(7000); // cutoff 4000: only the tombstone of 1 has expired
    CHECK(db.scalar("SELECT repl_prune_tombstones()") == "1");
    CHECK(db.column("SELECT id FROM dog_tomb ORDER BY id") == std::vector<std::string>{"2", "3"});
    CHECK(db.scalar("SELECT repl_prune_tombstones()") == "0");
    at(8500); // cutoff 5500: 2 expires, 3 (6000) stays
    CHECK(db.scalar("SELECT repl_prune_tombstones('main')") == "1");
    CHECK(db.column("SELECT id FROM dog_tomb ORDER BY id") == std::vector<std::string>{"3"});
    CHECK(db.column("SELECT id FROM dog ORDER BY id") == std::vector<std::string>{"4", "30"});
    // Pruning writes no log record and touches no live row.
    CHECK(log_count(db) == 5);
    // The setting persists in the database (another connection sees it).
    test_db other(d.file("tomb.db"));
    CHECK(other.scalar("SELECT repl_config('tombstone_retention_ms')") == "3000");
}

TEST_CASE("writes to a table prune its expired tombstones automatically (at most once a minute)", "[sql]") {
    temp_dir d;
    test_db db(d.file("auto.db"));
    const std::int64_t t0 = wall_ms() + 10LL * 24 * 3600 * 1000;
    auto at = [&](std::int64_t ms) { db.exec("SELECT repl_config('test_clock_ms', " + std::to_string(t0 + ms) + ")"); };
    at(0);
    db.exec(dog_sql);
    db.exec("SELECT repl_config('tombstone_retention_ms', 1000)");
    db.exec("INSERT INTO dog VALUES(1, 'a', 'x'), (2, 'b', 'x')");
    db.exec("DELETE FROM dog WHERE id = 1");
    at(120'000); // two minutes later: the tombstone is expired and a minute has passed
    db.exec("INSERT INTO dog VALUES(3, 'c', 'x')");
    CHECK(db.count("SELECT count(*) FROM dog_tomb") == 0);
    db.exec("DELETE FROM dog WHERE id = 2");
    at(125'000); // expired, but less than a minute since the last automatic prune
    db.exec("INSERT INTO dog VALUES(4, 'd', 'x')");
    CHECK(db.count("SELECT count(*) FROM dog_tomb") == 1);
    CHECK(db.scalar("SELECT repl_prune_tombstones()") == "1");
}

TEST_CASE("a transaction that writes a table and then renames, drops or un-creates one commits", "[sql]") {
    // Each case runs on a fresh connection, whose first commit also prunes tombstones.
    temp_dir d;
    const std::string path = d.file("ddl_txn.db");
    {
        test_db setup(path);
        setup.exec(dog_sql);
        setup.exec(cat_sql);
        setup.exec("INSERT INTO dog VALUES(1, 'Rex', 'collie')");
        setup.exec("CREATE TABLE p(a)");
    }
    test_db db(path);
    SECTION("rename after a write") {
        db.exec("BEGIN");
        db.exec("INSERT INTO dog VALUES(2, 'Fido', 'lab')");
        db.exec("ALTER TABLE dog RENAME TO hound");
        db.exec("INSERT INTO hound VALUES(3, 'Kato', 'pug')");
        db.exec("INSERT INTO p VALUES('user data')");
        CHECK(db.try_exec("COMMIT") == "");
        CHECK(db.column("SELECT id FROM hound ORDER BY id") == std::vector<std::string>{"1", "2", "3"});
        CHECK(db.count("SELECT count(*) FROM p") == 1);
        check_log_matches_data(db, {"hound", "dog"});
    }
    SECTION("drop after a write, with another table written too") {
        db.exec("BEGIN");
        db.exec("INSERT INTO dog VALUES(2, 'Fido', 'lab')");
        db.exec("INSERT INTO cat VALUES('Tom', 9)");
        db.exec("DROP TABLE dog");
        db.exec("INSERT INTO p VALUES('user data')");
        CHECK(db.try_exec("COMMIT") == "");
        CHECK(db.count("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name LIKE 'dog%'") == 0);
        CHECK(db.rows("SELECT * FROM cat") == std::vector<std::string>{"Tom|9"});
        CHECK(db.count("SELECT count(*) FROM p") == 1);
        check_log_matches_data(db, {"dog", "cat"});
    }
    SECTION("a CREATE and its writes rolled back to a savepoint") {
        db.exec("BEGIN");
        db.exec("SAVEPOINT a");
        db.exec("CREATE VIRTUAL TABLE bird USING hdbrepl(id INTEGER PRIMARY KEY, v)");
        db.exec("INSERT INTO bird VALUES(1, 'x')");
        db.exec("ROLLBACK TO a");
        db.exec("RELEASE a");
        db.exec("INSERT INTO cat VALUES('Felix', 7)");
        db.exec("INSERT INTO p VALUES('user data')");
        CHECK(db.try_exec("COMMIT") == "");
        CHECK(db.rows("SELECT * FROM cat") == std::vector<std::string>{"Felix|7"});
        CHECK(db.count("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'bird%'") == 0);
        CHECK(db.count("SELECT count(*) FROM p") == 1);
        check_log_matches_data(db, {"dog", "cat", "bird"});
    }
}

TEST_CASE("writes to a table whose CREATE is rolled back to a savepoint are not in the record", "[sql]") {
    log_fixture f;
    f.db.exec("INSERT INTO cat VALUES('first', 1)"); // this connection's first commit (and tombstone prune) is done
    std::int64_t seq = last_seq(f.db);
    f.db.exec("BEGIN");
    f.db.exec("SAVEPOINT a");
    f.db.exec("CREATE VIRTUAL TABLE bird USING hdbrepl(id INTEGER PRIMARY KEY, v)");
    f.db.exec("INSERT INTO bird VALUES(1, 'rolled back')");
    f.db.exec("ROLLBACK TO a");
    f.db.exec("RELEASE a");
    f.db.exec("INSERT INTO cat VALUES('Felix', 7)");
    f.db.exec("COMMIT");
    CHECK(f.db.count("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'bird%'") == 0);
    auto recs = new_records(f.db, seq);
    REQUIRE(recs.size() == 1);
    CHECK(changes_of(recs[0]) == std::multiset<std::string>{"cat put t:'Felix'|i:7"});
    check_log_matches_data(f.db, {"cat", "bird"}); // a replica must not get a table "bird"
}

TEST_CASE("DDL rolled back with its transaction leaves the table usable under its old name", "[sql]") {
    log_fixture f;
    f.db.exec("INSERT INTO dog VALUES(1, 'a', 'x')");
    std::int64_t seq = last_seq(f.db);
    f.db.exec("BEGIN; ALTER TABLE dog RENAME TO hound; INSERT INTO hound VALUES(2, 'b', 'y'); ROLLBACK;");
    f.db.exec("INSERT INTO dog VALUES(3, 'c', 'z')");
    f.db.exec("BEGIN; DROP TABLE dog; ROLLBACK;");
    f.db.exec("INSERT INTO dog VALUES(4, 'd', 'w')");
    CHECK(f.db.column("SELECT id FROM dog ORDER BY id") == std::vector<std::string>{"1", "3", "4"});
    auto recs = new_records(f.db, seq);
    REQUIRE(recs.size() == 2);
    CHECK(changes_of(recs[0]) == std::multiset<std::string>{"dog put i:3|t:'c'|t:'z'"});
    CHECK(changes_of(recs[1]) == std::multiset<std::string>{"dog put i:4|t:'d'|t:'w'"});
    CHECK(f.db.rows("SELECT name, live, coalesce(renamed_to, '') FROM hdbrepl_tables WHERE name = 'dog'") == std::vector<std::string>{"dog|1|"});
    check_log_matches_data(f.db, {"dog", "hound"});
}
