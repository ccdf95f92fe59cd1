// The SQL surface of a replicated table compared with a plain SQLite table: loading the real
// library, INSERT / UPDATE / DELETE under every conflict mode, in and out of explicit
// transactions, error messages, non-integer keys and type affinity. Most checks run the same
// SQL on a plain table and on a replicated table with the same schema and compare outcome
// and typed content; they also assert the expected values themselves, and that the change
// log rebuilds exactly the table's content.
#include "extension/entry.hpp"
#include "tests/sql/sql_test_util.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <set>

using namespace hdbrepl::test;

namespace {

const char* plain_dog = "CREATE TABLE dog(id INTEGER PRIMARY KEY, name TEXT NOT NULL, breed TEXT); CREATE INDEX dog_breed ON dog(breed);";
const char* repl_dog = "CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT NOT NULL, breed TEXT INDEXED)";

// A plain database and a replicated one, with "the same" schema.
struct twin {
    temp_dir dir;
    test_db plain{dir.file("plain.db")};
    test_db repl{dir.file("repl.db")};
    twin(const std::string& plain_schema, const std::string& repl_schema) {
        plain.exec(plain_schema);
        repl.exec(repl_schema);
    }
    // Runs `sql` on both; checks that both succeed or both fail with the same message.
    std::string both(const std::string& sql) {
        std::string a = plain.try_exec(sql), b = repl.try_exec(sql);
        INFO("SQL: " << sql);
        CHECK(b == a);
        return a;
    }
    // Checks that `query` gives the same typed rows on both, and returns them.
    std::vector<std::string> same(const std::string& query) {
        auto a = typed_rows(plain.handle(), query);
        auto b = typed_rows(repl.handle(), query);
        INFO("query: " << query);
        CHECK(b == a);
        return a;
    }
};

// Opens a connection without the statically linked extension.
sqlite3* open_without_extension(const std::string& path) {
    sqlite3_initialize(); // cancel_auto_extension needs the mutexes
    sqlite3_cancel_auto_extension(reinterpret_cast<void (*)()>(hdbrepl_register));
    sqlite3* db = nullptr;
    int rc = sqlite3_open(path.c_str(), &db);
    sqlite3_auto_extension(reinterpret_cast<void (*)()>(hdbrepl_register));
    REQUIRE(rc == SQLITE_OK);
    return db;
}

std::string exec_err(sqlite3* db, const std::string& sql) {
    char* msg = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &msg);
    std::string err = rc == SQLITE_OK ? "" : (msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return err;
}

} // namespace

// ---- loading ---------------------------------------------------------------------------

TEST_CASE("the built libhdbrepl.so loads with sqlite3_load_extension and works", "[sql]") {
    temp_dir d;
    sqlite3* db = open_without_extension(d.file("so.db"));
    CHECK_THAT(exec_err(db, "SELECT repl_version()"), Catch::Contains("no such function: repl_version"));

    REQUIRE(sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, nullptr) == SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_load_extension(db, HDBREPL_SO, nullptr, &err);
    INFO("load error: " << (err ? err : ""));
    REQUIRE(rc == SQLITE_OK);
    sqlite3_free(err);

    auto rows = typed_rows(db, "SELECT repl_version()");
    CHECK(rows == std::vector<std::string>{"t:'0.1.0'"});

    // Loading a second time on the same connection is harmless (docs/sql.md).
    err = nullptr;
    rc = sqlite3_load_extension(db, HDBREPL_SO, "sqlite3_hdbrepl_init", &err);
    INFO("second load error: " << (err ? err : ""));
    CHECK(rc == SQLITE_OK);
    sqlite3_free(err);

    CHECK(exec_err(db, std::string("PRAGMA journal_mode=WAL;") + repl_dog) == "");
    CHECK(exec_err(db, "INSERT INTO dog VALUES(1, 'Rex', 'collie'), (2, 'Fido', 'lab')") == "");
    CHECK(typed_rows(db, "SELECT * FROM dog ORDER BY id") == std::vector<std::string>{"i:1|t:'Rex'|t:'collie'", "i:2|t:'Fido'|t:'lab'"});
    CHECK(typed_rows(db, "SELECT count(*) FROM hdbrepl_log") == std::vector<std::string>{"i:2"}); // create + insert
    CHECK(exec_err(db, "INSERT INTO dog VALUES(1, 'Dup', 'x')") == "UNIQUE constraint failed: dog.id");
    CHECK(typed_rows(db, "SELECT repl_version(), typeof(repl_node_name())") == std::vector<std::string>{"t:'0.1.0'|t:'text'"});

    // A nonexistent library is an error, not a crash.
    err = nullptr;
    rc = sqlite3_load_extension(db, (d.path() + "/no/such/libhdbrepl").c_str(), nullptr, &err);
    CHECK(rc != SQLITE_OK);
    CHECK(err != nullptr);
    sqlite3_free(err);
    CHECK(sqlite3_close(db) == SQLITE_OK);

    // Reopen: the table is readable again after loading on the new connection.
    sqlite3* db2 = open_without_extension(d.file("so.db"));
    CHECK_THAT(exec_err(db2, "SELECT * FROM dog"), Catch::Contains("no such module: hdbrepl"));
    sqlite3_db_config(db2, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, nullptr);
    REQUIRE(sqlite3_load_extension(db2, HDBREPL_SO, nullptr, nullptr) == SQLITE_OK);
    CHECK(typed_rows(db2, "SELECT name FROM dog WHERE id = 2") == std::vector<std::string>{"t:'Fido'"});
    CHECK(sqlite3_close(db2) == SQLITE_OK);
}

// ---- INSERT and conflict modes -----------------------------------------------------------

TEST_CASE("the extension stays registered on a new connection after another one closed", "[sql]") {
    // Connections are often allocated at the address of one closed just before; the
    // extension must register on every new connection all the same.
    temp_dir d;
    for (int i = 0; i < 6; ++i) {
        INFO("connection " << i);
        test_db db(d.file("reopen.db"));
        CHECK(db.scalar("SELECT count(*) FROM pragma_module_list WHERE name = 'hdbrepl'") == "1");
        CHECK(db.try_exec("SELECT repl_version()") == "");
        if (i == 0) db.exec(repl_dog);
        CHECK(db.try_exec("INSERT INTO dog VALUES(" + std::to_string(i) + ", 'n', 'b')") == "");
    }
    // The same through the loadable library.
    for (int i = 0; i < 4; ++i) {
        INFO("loaded connection " << i);
        sqlite3* db = open_without_extension(d.file("reopen.db"));
        sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, nullptr);
        CHECK(sqlite3_load_extension(db, HDBREPL_SO, nullptr, nullptr) == SQLITE_OK);
        CHECK(exec_err(db, "SELECT count(*) FROM dog") == "");
        CHECK(sqlite3_close(db) == SQLITE_OK);
    }
}

TEST_CASE("basic INSERT / SELECT / UPDATE / DELETE match a plain table", "[sql]") {
    twin t(plain_dog, repl_dog);
    t.both("INSERT INTO dog VALUES(1, 'Rex', 'collie')");
    t.both("INSERT INTO dog(name, id, breed) VALUES('Fido', 2, 'lab'), ('Kato', 3, 'lab'), ('Penny', 4, NULL)");
    CHECK(t.same("SELECT * FROM dog ORDER BY id").size() == 4);
    t.both("UPDATE dog SET name = name || '!' WHERE breed = 'lab'");
    t.both("UPDATE dog SET breed = 'mutt' WHERE breed IS NULL");
    t.both("DELETE FROM dog WHERE id = 1");
    auto rows = t.same("SELECT * FROM dog ORDER BY id");
    CHECK(rows == std::vector<std::string>{"i:2|t:'Fido!'|t:'lab'", "i:3|t:'Kato!'|t:'lab'", "i:4|t:'Penny'|t:'mutt'"});
    t.same("SELECT count(*), group_concat(name) FROM dog WHERE breed = 'lab'");
    t.both("DELETE FROM dog");
    CHECK(t.same("SELECT count(*) FROM dog") == std::vector<std::string>{"i:0"});
    check_log_matches_data(t.repl, {"dog"});
}

TEST_CASE("sqlite3_changes() after writes matches a plain table", "[sql]") {
    twin t(plain_dog, repl_dog);
    auto changes = [&](const std::string& sql) {
        t.both(sql);
        INFO("SQL: " << sql);
        CHECK(sqlite3_changes(t.repl.handle()) == sqlite3_changes(t.plain.handle()));
        return sqlite3_changes(t.plain.handle());
    };
    CHECK(changes("INSERT INTO dog VALUES(1,'a','x'),(2,'b','y'),(3,'c','x')") == 3);
    CHECK(changes("INSERT OR IGNORE INTO dog VALUES(3,'c','x'),(4,'d','y')") == 1);
    CHECK(changes("INSERT OR REPLACE INTO dog VALUES(3,'C','x')") == 1);
    CHECK(changes("UPDATE dog SET name = name || '+' WHERE breed = 'x'") == 2);
    CHECK(changes("UPDATE dog SET id = 10 WHERE id = 4") == 1);
    CHECK(changes("DELETE FROM dog WHERE id > 1") == 3);
}

TEST_CASE("INSERT into a replicated table leaves last_insert_rowid() alone, like a WITHOUT ROWID table", "[sql]") {
    // A replicated table has no rowid (docs/sql.md: "the table is WITHOUT ROWID"); an
    // INSERT into a WITHOUT ROWID table does not change last_insert_rowid().
    temp_dir d;
    test_db db(d.file("r.db"));
    db.exec(repl_dog);
    db.exec("CREATE TABLE p(a); CREATE TABLE w(k PRIMARY KEY, v) WITHOUT ROWID;");
    db.exec("INSERT INTO p VALUES('a'), ('b'), ('c')");
    REQUIRE(db.scalar("SELECT last_insert_rowid()") == "3");
    db.exec("INSERT INTO w VALUES(1, 2)");
    REQUIRE(db.scalar("SELECT last_insert_rowid()") == "3"); // what SQLite does for WITHOUT ROWID
    db.exec("INSERT INTO dog VALUES(42, 'Rex', 'collie')");
    CHECK(db.scalar("SELECT last_insert_rowid()") == "3");
    CHECK(sqlite3_last_insert_rowid(db.handle()) == 3);
}

TEST_CASE("conflict modes on a multi-row INSERT match a plain table, in and out of a transaction", "[sql]") {
    struct expect {
        const char* mode;
        bool error;
        std::vector<std::string> ids_auto; // ids after the statement in autocommit mode
        std::vector<std::string> ids_txn;  // ids after BEGIN; INSERT 10; <stmt>; COMMIT
    };
    // The statement: (3,'c','z'), (2,'B','Y') [duplicate key], (4,'d','w')
    const std::vector<expect> cases = {
        {"", true, {"1", "2"}, {"1", "2", "10"}},
        {"OR ABORT", true, {"1", "2"}, {"1", "2", "10"}},
        {"OR FAIL", true, {"1", "2", "3"}, {"1", "2", "3", "10"}},
        {"OR IGNORE", false, {"1", "2", "3", "4"}, {"1", "2", "3", "4", "10"}},
        {"OR REPLACE", false, {"1", "2", "3", "4"}, {"1", "2", "3", "4", "10"}},
        {"OR ROLLBACK", true, {"1", "2"}, {"1", "2"}},
    };
    for (const auto& c : cases) {
        for (bool in_txn : {false, true}) {
            DYNAMIC_SECTION("INSERT " << c.mode << (in_txn ? " inside BEGIN..COMMIT" : " in autocommit mode")) {
                twin t(plain_dog, repl_dog);
                t.both("INSERT INTO dog VALUES(1, 'a', 'x'), (2, 'b', 'y')");
                std::int64_t logs_before = log_count(t.repl);
                if (in_txn) {
                    t.both("BEGIN");
                    t.both("INSERT INTO dog VALUES(10, 'pre', 'p')");
                }
                std::string err = t.both(std::string("INSERT ") + c.mode + " INTO dog VALUES(3, 'c', 'z'), (2, 'B', 'Y'), (4, 'd', 'w')");
                CHECK(err == (c.error ? "UNIQUE constraint failed: dog.id" : ""));
                CHECK((sqlite3_get_autocommit(t.repl.handle()) != 0) == (sqlite3_get_autocommit(t.plain.handle()) != 0));
                if (in_txn) {
                    std::string commit_err = t.both("COMMIT");
                    CHECK(commit_err == (std::string(c.mode) == "OR ROLLBACK" ? "cannot commit - no transaction is active" : ""));
                }
                auto ids = t.repl.column("SELECT id FROM dog ORDER BY id");
                CHECK(ids == (in_txn ? c.ids_txn : c.ids_auto));
                t.same("SELECT * FROM dog ORDER BY id");
                // The change log: one record if something was committed, none otherwise.
                bool committed_something = ids.size() > 2;
                CHECK(log_count(t.repl) == logs_before + (committed_something ? 1 : 0));
                check_log_matches_data(t.repl, {"dog"});
            }
        }
    }
}

TEST_CASE("conflict modes with a NOT NULL violation in a multi-row INSERT match a plain table", "[sql]") {
    for (const char* mode : {"", "OR ABORT", "OR FAIL", "OR IGNORE", "OR REPLACE", "OR ROLLBACK"}) {
        for (bool in_txn : {false, true}) {
            DYNAMIC_SECTION("INSERT " << mode << (in_txn ? " in a transaction" : " autocommit")) {
                twin t(plain_dog, repl_dog);
                t.both("INSERT INTO dog VALUES(1, 'a', 'x')");
                if (in_txn) t.both("BEGIN; INSERT INTO dog VALUES(10, 'pre', 'p')");
                std::string err = t.both(std::string("INSERT ") + mode + " INTO dog VALUES(3, 'c', 'z'), (5, NULL, 'q'), (4, 'd', 'w')");
                if (std::string(mode) != "OR IGNORE") CHECK(err == "NOT NULL constraint failed: dog.name");
                else CHECK(err == "");
                if (in_txn) t.both("COMMIT");
                t.same("SELECT * FROM dog ORDER BY id");
                check_log_matches_data(t.repl, {"dog"});
            }
        }
    }
}

TEST_CASE("a failed statement inside a transaction leaves none of its rows, the rest commits", "[sql]") {
    twin t(plain_dog, repl_dog);
    t.both("INSERT INTO dog VALUES(1, 'a', 'x'), (2, 'b', 'y'), (3, 'c', 'z')");
    std::int64_t before = last_seq(t.repl);
    t.both("BEGIN");
    t.both("INSERT INTO dog VALUES(4, 'd', 'w')");
    // A multi-row UPDATE that fails on its second row: the first row's change is undone.
    CHECK(t.both("UPDATE dog SET name = CASE WHEN id = 2 THEN NULL ELSE name || '!' END WHERE id IN (1, 2, 3)") ==
          "NOT NULL constraint failed: dog.name");
    CHECK(t.both("INSERT INTO dog VALUES(5, 'e', 'v'), (1, 'dup', 'v')") == "UNIQUE constraint failed: dog.id");
    CHECK(t.both("UPDATE dog SET id = 3 WHERE id = 1") == "UNIQUE constraint failed: dog.id");
    t.both("DELETE FROM dog WHERE id = 3");
    t.both("COMMIT");
    auto rows = t.same("SELECT * FROM dog ORDER BY id");
    CHECK(rows == std::vector<std::string>{"i:1|t:'a'|t:'x'", "i:2|t:'b'|t:'y'", "i:4|t:'d'|t:'w'"});
    auto bodies = log_bodies(t.repl.handle(), before);
    REQUIRE(bodies.size() == 1);
    auto changes = record_changes(bodies[0]);
    std::multiset<std::string> got(changes.begin(), changes.end());
    CHECK(got == std::multiset<std::string>{"dog put i:4|t:'d'|t:'w'", "dog delete i:3"});
    check_log_matches_data(t.repl, {"dog"});
}

// ---- UPDATE --------------------------------------------------------------------------------

TEST_CASE("UPDATE of the key moves the row, and onto an existing key fails unless OR REPLACE or OR IGNORE", "[sql]") {
    twin t(plain_dog, repl_dog);
    t.both("INSERT INTO dog VALUES(1, 'a', 'x'), (2, 'b', 'y'), (3, 'c', 'z')");

    SECTION("to a free key") {
        CHECK(t.both("UPDATE dog SET id = 20 WHERE id = 1") == "");
        CHECK(t.same("SELECT * FROM dog ORDER BY id") ==
              std::vector<std::string>{"i:2|t:'b'|t:'y'", "i:3|t:'c'|t:'z'", "i:20|t:'a'|t:'x'"});
        CHECK(t.repl.count("SELECT count(*) FROM dog WHERE id = 1") == 0);
        CHECK(t.repl.count("SELECT count(*) FROM dog_tomb WHERE id = 1") == 1); // the old key is a tombstone
        auto last = log_bodies(t.repl.handle(), last_seq(t.repl) - 1);
        REQUIRE(last.size() == 1);
        auto ch = record_changes(last[0]);
        CHECK(std::multiset<std::string>(ch.begin(), ch.end()) == std::multiset<std::string>{"dog delete i:1", "dog put i:20|t:'a'|t:'x'"});
    }
    SECTION("to the same key with other columns") {
        CHECK(t.both("UPDATE dog SET id = 2, name = 'B' WHERE id = 2") == "");
        t.same("SELECT * FROM dog ORDER BY id");
        CHECK(t.repl.count("SELECT count(*) FROM dog_tomb") == 0);
    }
    SECTION("onto an existing key") {
        CHECK(t.both("UPDATE dog SET id = 2 WHERE id = 3") == "UNIQUE constraint failed: dog.id");
        t.same("SELECT * FROM dog ORDER BY id");
        CHECK(t.repl.count("SELECT count(*) FROM dog") == 3);
    }
    SECTION("OR REPLACE onto an existing key") {
        CHECK(t.both("UPDATE OR REPLACE dog SET id = 2 WHERE id = 3") == "");
        CHECK(t.same("SELECT * FROM dog ORDER BY id") == std::vector<std::string>{"i:1|t:'a'|t:'x'", "i:2|t:'c'|t:'z'"});
    }
    SECTION("OR IGNORE onto an existing key") {
        CHECK(t.both("UPDATE OR IGNORE dog SET id = 2 WHERE id = 3") == "");
        CHECK(t.same("SELECT * FROM dog ORDER BY id").size() == 3);
    }
    SECTION("every key shifted, no collisions") {
        CHECK(t.both("UPDATE dog SET id = id + 100") == "");
        CHECK(t.same("SELECT id FROM dog ORDER BY id") == std::vector<std::string>{"i:101", "i:102", "i:103"});
    }
    SECTION("key given as text with INTEGER affinity is the same key") {
        CHECK(t.both("UPDATE dog SET id = '2', name = 'two' WHERE id = 2") == "");
        CHECK(t.same("SELECT id, typeof(id), name FROM dog WHERE id = 2") == std::vector<std::string>{"i:2|t:'integer'|t:'two'"});
        CHECK(t.repl.count("SELECT count(*) FROM dog_tomb") == 0);
    }
    check_log_matches_data(t.repl, {"dog"});
}

TEST_CASE("error messages name the table and column", "[sql]") {
    temp_dir d;
    test_db db(d.file("r.db"));
    db.exec(repl_dog);
    db.exec("INSERT INTO dog VALUES(1, 'Rex', 'collie')");
    CHECK(db.try_exec("INSERT INTO dog VALUES(1, 'Dup', 'x')") == "UNIQUE constraint failed: dog.id");
    CHECK(db.try_exec("INSERT INTO dog VALUES(2, NULL, 'x')") == "NOT NULL constraint failed: dog.name");
    CHECK(db.try_exec("UPDATE dog SET name = NULL WHERE id = 1") == "NOT NULL constraint failed: dog.name");
    std::string null_key = db.try_exec("INSERT INTO dog VALUES(NULL, 'NoKey', 'x')");
    CHECK_THAT(null_key, Catch::StartsWith("NOT NULL constraint failed: dog.id"));
    CHECK_THAT(null_key, Catch::Contains("primary key must be given"));
    CHECK_THAT(db.try_exec("INSERT INTO dog(name, breed) VALUES('NoKey', 'x')"), Catch::StartsWith("NOT NULL constraint failed: dog.id"));
    CHECK_THAT(db.try_exec("UPDATE dog SET id = NULL WHERE id = 1"), Catch::StartsWith("NOT NULL constraint failed: dog.id"));
    // The error code is SQLITE_CONSTRAINT, as for a plain table.
    CHECK(sqlite3_exec(db.handle(), "INSERT INTO dog VALUES(1, 'Dup', 'x')", nullptr, nullptr, nullptr) == SQLITE_CONSTRAINT);
    CHECK(db.rows("SELECT * FROM dog") == std::vector<std::string>{"1|Rex|collie"});
    // SQLite itself rejects upserts on virtual tables (documented difference).
    CHECK_THAT(db.try_exec("INSERT INTO dog VALUES(1, 'x', 'y') ON CONFLICT(id) DO UPDATE SET name = 'z'"), Catch::Contains("virtual table"));
    // A non-integer into an INTEGER PRIMARY KEY: SQLite's "datatype mismatch", as for a plain table.
    twin t(plain_dog, repl_dog);
    CHECK(t.both("INSERT INTO dog VALUES('abc', 'x', 'y')") == "datatype mismatch");
    CHECK(t.both("INSERT INTO dog VALUES(1.5, 'x', 'y')") == "datatype mismatch");
    CHECK(t.both("INSERT INTO dog VALUES('7', 'x', 'y'), (8.0, 'z', 'w')") == "");
    CHECK(t.same("SELECT id, typeof(id) FROM dog ORDER BY id") == std::vector<std::string>{"i:7|t:'integer'", "i:8|t:'integer'"});
}

// ---- non-integer keys --------------------------------------------------------------------

TEST_CASE("TEXT primary key behaves like a plain table's", "[sql]") {
    twin t("CREATE TABLE tk(k TEXT PRIMARY KEY, v)", "CREATE VIRTUAL TABLE tk USING hdbrepl(k TEXT PRIMARY KEY, v)");
    t.both("INSERT INTO tk VALUES('a', 1), ('B', 2), ('b', 3), (10, 'int ten'), ('2', 4), ('', 'empty'), ('é', 'utf8')");
    CHECK(t.both("INSERT INTO tk VALUES('10', 'dup')") == "UNIQUE constraint failed: tk.k");
    CHECK(t.both("INSERT INTO tk VALUES(2, 'dup')") == "UNIQUE constraint failed: tk.k");
    CHECK(t.same("SELECT k, typeof(k), v FROM tk ORDER BY k").size() == 7);
    t.same("SELECT k FROM tk ORDER BY k DESC");
    CHECK(t.same("SELECT v FROM tk WHERE k = 10") == std::vector<std::string>{"t:'int ten'"});
    t.same("SELECT v FROM tk WHERE k = 'b'");
    t.same("SELECT k FROM tk WHERE k > 'B' ORDER BY k");
    t.same("SELECT k FROM tk WHERE k BETWEEN '1' AND 'a' ORDER BY k");
    t.same("SELECT k FROM tk WHERE k = 'A' COLLATE NOCASE ORDER BY k");
    t.both("UPDATE tk SET k = 'z' WHERE k = 'a'");
    CHECK(t.both("UPDATE tk SET k = 'B' WHERE k = 'b'") == "UNIQUE constraint failed: tk.k");
    t.both("INSERT OR REPLACE INTO tk VALUES('B', 'replaced')");
    t.both("DELETE FROM tk WHERE k < 'a'");
    t.same("SELECT k, typeof(k), v, typeof(v) FROM tk ORDER BY k");
    check_log_matches_data(t.repl, {"tk"});
}

TEST_CASE("REAL primary key behaves like a plain table's", "[sql]") {
    twin t("CREATE TABLE rk(k REAL PRIMARY KEY, v)", "CREATE VIRTUAL TABLE rk USING hdbrepl(k REAL PRIMARY KEY, v)");
    t.both("INSERT INTO rk VALUES(1.5, 'a'), (2, 'int two'), ('3', 'text three'), (-0.25, 'neg'), (1e100, 'big')");
    CHECK(t.both("INSERT INTO rk VALUES(2.0, 'dup')") == "UNIQUE constraint failed: rk.k");
    CHECK(t.both("INSERT INTO rk VALUES('1.5', 'dup')") == "UNIQUE constraint failed: rk.k");
    CHECK(t.same("SELECT k, typeof(k) FROM rk WHERE v = 'int two'") == std::vector<std::string>{"r:2|t:'real'"});
    t.same("SELECT k, typeof(k), v FROM rk ORDER BY k");
    t.same("SELECT v FROM rk WHERE k = 3");
    t.same("SELECT v FROM rk WHERE k >= 1.5 AND k < 3 ORDER BY k DESC");
    t.both("UPDATE rk SET k = 4 WHERE k = 3");
    t.both("DELETE FROM rk WHERE k < 0");
    t.same("SELECT k, typeof(k), v FROM rk ORDER BY k");
    check_log_matches_data(t.repl, {"rk"});
}

TEST_CASE("BLOB primary key behaves like a plain table's", "[sql]") {
    twin t("CREATE TABLE bk(k BLOB PRIMARY KEY, v)", "CREATE VIRTUAL TABLE bk USING hdbrepl(k BLOB PRIMARY KEY, v)");
    t.both("INSERT INTO bk VALUES(x'00', 'zero'), (x'0001', 'two bytes'), (x'', 'empty'), (x'ff', 'ff'), ('text', 'a text key'), (7, 'int')");
    CHECK(t.both("INSERT INTO bk VALUES(x'00', 'dup')") == "UNIQUE constraint failed: bk.k");
    t.same("SELECT quote(k), typeof(k), v FROM bk ORDER BY k");
    t.same("SELECT v FROM bk WHERE k = x'0001'");
    t.same("SELECT v FROM bk WHERE k > x'00' ORDER BY k DESC");
    t.both("UPDATE bk SET k = x'abcd' WHERE k = x'ff'");
    t.both("DELETE FROM bk WHERE k = x''");
    t.same("SELECT quote(k), typeof(k), v FROM bk ORDER BY k");
    check_log_matches_data(t.repl, {"bk"});
}

TEST_CASE("untyped key: values that SQLite compares equal (1 and 1.0) are one key", "[sql]") {
    // With BLOB (no) affinity, 1 and 1.0 are equal primary keys in SQLite: a second insert
    // is a UNIQUE violation, UPDATE SET k = 1.0 WHERE k = 1 keeps the row, and INSERT OR
    // REPLACE of 1.0 replaces the row of 1.
    for (const char* decl : {"k PRIMARY KEY, v", "k BLOB PRIMARY KEY, v"}) {
        DYNAMIC_SECTION("declared as (" << decl << ")") {
            twin t(std::string("CREATE TABLE u(") + decl + ")", std::string("CREATE VIRTUAL TABLE u USING hdbrepl(") + decl + ")");
            t.both("INSERT INTO u VALUES(1, 'int one'), (2, 'int two')");
            CHECK(t.both("INSERT INTO u VALUES(1.0, 'real one')") == "UNIQUE constraint failed: u.k");
            CHECK(t.both("UPDATE u SET k = 1.0 WHERE k = 1") == "");
            t.same("SELECT k, typeof(k), v FROM u ORDER BY k");
            CHECK(t.both("BEGIN; INSERT OR REPLACE INTO u VALUES(2.0, 'real two'); COMMIT") == "");
            CHECK(t.both("BEGIN; INSERT INTO u VALUES(3, 'int three'); INSERT OR REPLACE INTO u VALUES(3.0, 'real three'); COMMIT") == "");
            t.same("SELECT k, typeof(k), v FROM u ORDER BY k");
            check_log_matches_data(t.repl, {"u"});
        }
    }
}

// ---- type affinity -------------------------------------------------------------------------

TEST_CASE("stored types follow each column's affinity exactly as in a plain table", "[sql]") {
    const std::string cols = "i INTEGER, t TEXT, r REAL, n NUMERIC, u, vc VARCHAR(5), f FLOAT, dc DECIMAL(10,2), bo BOOLEAN, bl BLOB, ch CHARACTER(3), dbl DOUBLE PRECISION";
    twin t("CREATE TABLE a(k INTEGER PRIMARY KEY, " + cols + ")", "CREATE VIRTUAL TABLE a USING hdbrepl(k INTEGER PRIMARY KEY, " + cols + ")");
    const std::vector<std::string> values = {
        "1", "1.0", "1.5", "-0.0", "0.1", "1e20", "1e-5", "9223372036854775807", "-9223372036854775808", "9.3e18",
        "'1'", "'1.0'", "'1.5'", "' 1 '", "' 12'", "'12 '", "'1e3'", "'abc'", "''", "'  '", "'+5'", "'-0'", "'.5'", "'1.'",
        "'0x10'", "'9223372036854775807'", "'9223372036854775808'", "'-9223372036854775809'", "'12345678901234567890'",
        "'1e400'", "'Inf'", "'3.0e0'", "'0.30000000000000004'", "0.30000000000000004", "x'01'", "x''", "NULL", "'١٢'", "'1,5'",
    };
    int k = 0;
    for (const auto& v : values) {
        ++k;
        std::string row = std::to_string(k);
        for (int c = 0; c < 12; ++c) row += ", " + v;
        CHECK(t.both("INSERT INTO a VALUES(" + row + ")") == "");
    }
    t.same("SELECT * FROM a ORDER BY k");
    // UPDATE applies the same affinity.
    int j = 0;
    for (auto it = values.rbegin(); it != values.rend(); ++it) {
        ++j;
        std::string set;
        for (const char* c : {"i", "t", "r", "n", "u", "vc", "f", "dc", "bo", "bl", "ch", "dbl"}) set += std::string(set.empty() ? "" : ", ") + c + " = " + *it;
        t.both("UPDATE a SET " + set + " WHERE k = " + std::to_string(j));
    }
    t.same("SELECT * FROM a ORDER BY k");
    // The log carries the values with the same types as the table (not just "equal after
    // re-applying affinity"): compare the decoded record images with the rows.
    auto bodies = log_bodies(t.repl.handle());
    std::map<std::string, std::string> latest; // key token -> row image
    for (auto& b : bodies)
        for (auto& c : record_changes(b))
            if (c.rfind("a put ", 0) == 0) {
                std::string img = c.substr(6);
                latest[img.substr(0, img.find('|'))] = img;
            }
    // (SQLite stores a REAL -0.0 as integer 0 and reads it back as 0.0, so the sign of a
    // zero is not compared.)
    auto no_neg_zero = [](const std::string& s) {
        std::string out, tok;
        for (std::size_t i = 0; i <= s.size(); ++i) {
            if (i < s.size() && s[i] != '|') { tok += s[i]; continue; }
            out += "|" + (tok == "r:-0" ? std::string("r:0") : tok);
            tok.clear();
        }
        return out.substr(1);
    };
    for (auto& r : typed_rows(t.repl.handle(), "SELECT * FROM a ORDER BY k")) {
        INFO("row " << r);
        CHECK(no_neg_zero(latest[r.substr(0, r.find('|'))]) == no_neg_zero(r));
    }
    check_log_matches_data(t.repl, {"a"});
}

TEST_CASE("comparisons in WHERE apply affinity like a plain table", "[sql]") {
    twin t("CREATE TABLE c(id INTEGER PRIMARY KEY, t TEXT, n NUMERIC, u); CREATE INDEX c_t ON c(t); CREATE INDEX c_n ON c(n); CREATE INDEX c_u ON c(u);",
           "CREATE VIRTUAL TABLE c USING hdbrepl(id INTEGER PRIMARY KEY, t TEXT INDEXED, n NUMERIC INDEXED, u INDEXED)");
    t.both("INSERT INTO c VALUES(1, 1, 1, 1), (2, '2', '2', '2'), (3, 'x', 'x', 'x'), (4, 4.5, '4.5', 4.5), (5, x'35', x'35', x'35'), (6, NULL, NULL, NULL), (10, '10', 10, '10')");
    for (const char* w : {"id = '2'", "id > '3'", "id < 2.5", "id IN ('1', 2, 10.0)", "t = 1", "t = '1'", "t > 2", "t < 'x'",
                          "n = '2'", "n = 2", "n > '3'", "n < 100", "u = 1", "u = '1'", "u = '2'", "u > 3", "u >= 'x'", "u = x'35'",
                          "t IS NULL", "n BETWEEN 1 AND 5", "u IN (1, '2', 4.5)"}) {
        t.same(std::string("SELECT id FROM c WHERE ") + w + " ORDER BY id");
    }
}

TEST_CASE("quoted table and column names (spaces, quotes, keywords) work everywhere", "[sql]") {
    twin t("CREATE TABLE \"odd table\"(\"we\"\"ird id\" INTEGER PRIMARY KEY, [my col] TEXT, `back tick` REAL, \"select\"); CREATE INDEX oi ON \"odd table\"([my col]);",
           "CREATE VIRTUAL TABLE \"odd table\" USING hdbrepl(\"we\"\"ird id\" INTEGER PRIMARY KEY, [my col] TEXT INDEXED, `back tick` REAL, \"select\" INDEXED)");
    t.both("INSERT INTO \"odd table\" VALUES(1, 'a', 1.5, 'kw'), (2, 'b', 2, 'kw2'), (3, 'c', NULL, NULL)");
    t.same("SELECT * FROM \"odd table\" WHERE \"my col\" = 'b'");
    t.same("SELECT * FROM \"odd table\" WHERE \"we\"\"ird id\" > 1 ORDER BY \"we\"\"ird id\" DESC");
    t.same("SELECT * FROM \"odd table\" WHERE \"select\" = 'kw'");
    CHECK(t.both("UPDATE \"odd table\" SET \"we\"\"ird id\" = 10 WHERE \"we\"\"ird id\" = 1") == "");
    CHECK(t.both("INSERT INTO \"odd table\" VALUES(2, 'dup', 0, 0)") == "UNIQUE constraint failed: odd table.we\"ird id");
    t.both("DELETE FROM \"odd table\" WHERE \"my col\" = 'b'");
    t.same("SELECT * FROM \"odd table\" ORDER BY 1");
    t.repl.exec("ALTER TABLE \"odd table\" RENAME TO \"odd \"\"renamed\"\"\"");
    CHECK(t.repl.rows("SELECT * FROM \"odd \"\"renamed\"\"\" ORDER BY 1") == t.plain.rows("SELECT * FROM \"odd table\" ORDER BY 1"));
    check_log_matches_data(t.repl, {"odd \"renamed\""});
}
