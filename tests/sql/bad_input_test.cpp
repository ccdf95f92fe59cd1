// Bad input: table declarations, repl_config arguments, records given to repl_apply and
// repl_record_json. Each must be a SQL error whose message says what is wrong, and must
// leave the database exactly as it was (also a database that has no hdbrepl tables yet).
#include "tests/sql/sql_test_util.hpp"

#include "engine/txn_record.hpp"

#include <catch2/catch.hpp>

using namespace hdbrepl::test;
using namespace hdbrepl::engine;

namespace {

const char* dog_sql = "CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT NOT NULL, breed TEXT INDEXED)";

// Runs `sql`, expects an error containing every one of `parts`, and no change at all.
void expect_error(test_db& db, const std::string& sql, std::vector<std::string> parts) {
    auto before = snapshot(db.handle());
    std::string err = db.try_exec(sql);
    INFO("SQL: " << sql << "\nerror: " << err);
    CHECK_FALSE(err.empty());
    for (auto& p : parts) CHECK_THAT(err, Catch::Contains(p));
    CHECK(snapshot(db.handle()) == before);
}

std::string hex(const std::string& b) {
    static const char* h = "0123456789abcdef";
    std::string r;
    for (unsigned char c : b) { r += h[c >> 4]; r += h[c & 15]; }
    return r;
}
std::string hex(const bytes& b) { return hex(std::string(b.begin(), b.end())); }

// A database with one replicated table and a log, and a fresh one, for every check.
struct dbs {
    temp_dir dir;
    test_db used{dir.file("used.db")};
    test_db fresh{dir.file("fresh.db")};
    dbs() {
        used.exec(dog_sql);
        used.exec("INSERT INTO dog VALUES(1, 'Rex', 'collie')");
    }
    template <class F> void each(F f) {
        SECTION("database with hdbrepl tables") { f(used); }
        SECTION("fresh database") { f(fresh); }
    }
};

} // namespace

TEST_CASE("bad table declarations are refused with a message naming the problem", "[sql]") {
    dbs s;
    s.each([](test_db& db) {
        auto create = [&](const std::string& args, std::vector<std::string> parts) {
            expect_error(db, "CREATE VIRTUAL TABLE t USING hdbrepl(" + args + ")", std::move(parts));
        };
        create("id INTEGER, name TEXT", {"hdbrepl table 't'", "exactly one PRIMARY KEY", "none was declared"});
        create("a INTEGER PRIMARY KEY, b TEXT PRIMARY KEY", {"exactly one PRIMARY KEY", "2 were declared"});
        create("id INTEGER, name TEXT, replicate=false", {"none was declared"});
        create("", {"at least one column"});
        create("id INTEGER PRIMARY KEY, colour=blue", {"unknown option 'colour'"});
        create("id INTEGER PRIMARY KEY, replicate=maybe", {"replicate", "maybe"});
        create("id INTEGER PRIMARY KEY, name TEXT DEFAULT 'x'", {"column 'name'", "unsupported constraint 'DEFAULT'"});
        create("id INTEGER PRIMARY KEY, name TEXT UNIQUE", {"column 'name'", "unsupported constraint 'UNIQUE'"});
        create("id INTEGER PRIMARY KEY, age INTEGER CHECK(age > 0)", {"column 'age'", "CHECK"});
        create("id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE", {"column 'name'", "COLLATE"});
        create("id INTEGER PRIMARY KEY, owner INTEGER REFERENCES owner(id)", {"column 'owner'", "REFERENCES"});
        create("id INTEGER PRIMARY KEY AUTOINCREMENT", {"AUTOINCREMENT"});
        create("id INTEGER PRIMARY KEY, hdbrepl_v INTEGER", {"hdbrepl_v", "reserved"});
        create("id INTEGER PRIMARY KEY, HDBREPL_O", {"HDBREPL_O", "reserved"});
        create("id INTEGER PRIMARY KEY, name TEXT, name INTEGER", {"duplicate column name 'name'"});
        create("id INTEGER PRIMARY KEY, name TEXT, NAME INTEGER", {"duplicate column name"});
        create("id INTEGER PRIMARY KEY, \"unterminated", {"unterminated"});
        expect_error(db, "CREATE VIRTUAL TABLE hdbrepl_x USING hdbrepl(id INTEGER PRIMARY KEY)", {"hdbrepl_x", "reserved"});
    });
}

TEST_CASE("table-level constraints are refused with a message naming the constraint", "[sql]") {
    // docs/sql.md: anything but PRIMARY KEY / NOT NULL / INDEXED "is refused with an error that
    // names the column and the constraint, so a declaration never silently means less than
    // it says". A table constraint must not be taken for a column named PRIMARY / UNIQUE.
    dbs s;
    s.each([](test_db& db) {
        expect_error(db, "CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT, PRIMARY KEY(name))", {"PRIMARY KEY"});
        expect_error(db, "CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT, UNIQUE(name))", {"UNIQUE"});
        expect_error(db, "CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, age INTEGER, CHECK(age > 0))", {"CHECK"});
        expect_error(db, "CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, o INTEGER, FOREIGN KEY(o) REFERENCES x(id))", {"FOREIGN"});
        expect_error(db, "CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT, CONSTRAINT c UNIQUE(name))", {"CONSTRAINT"});
    });
}

TEST_CASE("names starting with hdbrepl_ are reserved whatever their case", "[sql]") {
    // SQLite names are case-insensitive: HDBREPL_LOG and hdbrepl_log are the same table.
    dbs s;
    s.each([](test_db& db) {
        expect_error(db, "CREATE VIRTUAL TABLE Hdbrepl_Things USING hdbrepl(id INTEGER PRIMARY KEY)", {"reserved"});
        // Where hdbrepl_log exists SQLite itself says "table HDBREPL_LOG already exists", which
        // is clear too; on a fresh database the module must say the name is reserved.
        auto before = snapshot(db.handle());
        std::string err = db.try_exec("CREATE VIRTUAL TABLE HDBREPL_LOG USING hdbrepl(id INTEGER PRIMARY KEY)");
        INFO("error: " << err);
        CHECK((err.find("reserved") != std::string::npos || err.find("already exists") != std::string::npos));
        CHECK(snapshot(db.handle()) == before);
    });
    expect_error(s.used, "ALTER TABLE dog RENAME TO hdbrepl_dog", {"hdbrepl_dog", "reserved"});
    expect_error(s.used, "ALTER TABLE dog RENAME TO HDBREPL_DOG", {"reserved"});
    CHECK(s.used.rows("SELECT * FROM dog") == std::vector<std::string>{"1|Rex|collie"});
}

TEST_CASE("bad arguments to repl_config are errors that change nothing", "[sql]") {
    dbs s;
    s.each([](test_db& db) {
        expect_error(db, "SELECT repl_config('nope')", {"repl_config(): unknown setting 'nope'", "tombstone_retention_ms", "max_clock_skew_ms"});
        expect_error(db, "SELECT repl_config('nope', 5)", {"unknown setting 'nope'"});
        expect_error(db, "SELECT repl_config(5)", {"1st argument must be a setting name"});
        expect_error(db, "SELECT repl_config(NULL, 5)", {"1st argument must be a setting name"});
        expect_error(db, "SELECT repl_config('tombstone_retention_ms', '1000')", {"must be an integer number of milliseconds"});
        expect_error(db, "SELECT repl_config('tombstone_retention_ms', 1.5)", {"must be an integer"});
        expect_error(db, "SELECT repl_config('tombstone_retention_ms', NULL)", {"must be an integer"});
        expect_error(db, "SELECT repl_config('tombstone_retention_ms', x'01')", {"must be an integer"});
        expect_error(db, "SELECT repl_config('tombstone_retention_ms', -1)", {"tombstone_retention_ms must be between 0 and"});
        expect_error(db, "SELECT repl_config('tombstone_retention_ms', 9223372036854775807)", {"must be between"});
        expect_error(db, "SELECT repl_config('max_clock_skew_ms', 86400001)", {"max_clock_skew_ms must be between 0 and 86400000"});
        expect_error(db, "SELECT repl_config('max_clock_skew_ms', -5)", {"must be between"});
        CHECK(db.scalar("SELECT repl_config('tombstone_retention_ms')") == "604800000");
        CHECK(db.scalar("SELECT repl_config('max_clock_skew_ms')") == "60000");
        CHECK(db.scalar("SELECT repl_config('max_clock_skew_ms', 86400000)") == "86400000");
        CHECK(db.scalar("SELECT repl_config('max_clock_skew_ms')") == "86400000");
    });
}

TEST_CASE("repl_config('test_clock_ms', ...) rejects values that are not a time", "[sql]") {
    // A negative or non-integer clock must not silently become a clock far in the future
    // (the uint64 cast of -1) or the wall clock.
    dbs s;
    s.each([](test_db& db) {
        expect_error(db, "SELECT repl_config('test_clock_ms', -1)", {"test_clock_ms"});
        expect_error(db, "SELECT repl_config('test_clock_ms', 'soon')", {"test_clock_ms"});
        expect_error(db, "SELECT repl_config('test_clock_ms', 1.5)", {"test_clock_ms"});
    });
    // The log's clock is unharmed.
    s.used.try_exec("SELECT repl_config('test_clock_ms', -1)");
    s.used.exec("SELECT repl_config('test_clock_ms', 0)");
    s.used.exec("INSERT INTO dog VALUES(2, 'Fido', 'lab')");
    auto hlc = std::stoull(s.used.scalar("SELECT max(hlc) FROM hdbrepl_log"));
    CHECK((hlc >> 16) < 4102444800000ULL); // before 2100
}

TEST_CASE("repl_apply refuses non-records and corrupt records, changing nothing", "[sql]") {
    dbs s;
    // A real record to corrupt.
    auto bodies = log_bodies(s.used.handle());
    REQUIRE(bodies.size() == 2);
    const std::string good = bodies[1];
    s.each([&](test_db& db) {
        expect_error(db, "SELECT repl_apply('not a blob')", {"repl_apply(): 1st argument must be a change record"});
        expect_error(db, "SELECT repl_apply(42)", {"1st argument must be a change record"});
        expect_error(db, "SELECT repl_apply(NULL)", {"1st argument must be a change record"});
        expect_error(db, "SELECT repl_apply(x'')", {"repl_apply(): malformed change record"});
        expect_error(db, "SELECT repl_apply(x'00')", {"malformed change record: bad magic"});
        expect_error(db, "SELECT repl_apply(x'48')", {"malformed change record"});
        expect_error(db, "SELECT repl_apply(x'4809')", {"malformed change record", "format"});
        expect_error(db, "SELECT repl_apply(x'" + hex(good.substr(0, good.size() - 1)) + "')", {"malformed change record"});
        expect_error(db, "SELECT repl_apply(x'" + hex(good + std::string(1, '\0')) + "')", {"malformed change record", "trailing"});
        expect_error(db, "SELECT repl_apply(x'" + hex(good.substr(0, 20)) + "')", {"malformed change record"});
        expect_error(db, "SELECT repl_apply(randomblob(200))", {"malformed change record"});
        std::string flipped = good;
        flipped[flipped.size() / 2] ^= 0x5a;
        std::string err = db.try_exec("SELECT repl_apply(x'" + hex(flipped) + "')");
        (void)err; // may or may not decode; it must not crash
        expect_error(db, "SELECT repl_apply(x'" + hex(good) + "', 'nosuchschema')", {"nosuchschema"});
    });
    for (int i = 0; i < (int)good.size(); ++i) { // every truncation
        std::string err;
        apply_record(s.fresh.handle(), good.substr(0, static_cast<std::size_t>(i)), err);
        INFO("truncated to " << i << " bytes");
        CHECK_THAT(err, Catch::Contains("malformed change record"));
    }
    CHECK(s.fresh.scalar("SELECT count(*) FROM sqlite_schema") == "0");
}

TEST_CASE("a malformed record given to repl_apply is an argument error, not database corruption", "[sql]") {
    // SQLITE_CORRUPT means "the database file is malformed": drivers and tools treat it as
    // damage to the database (Python raises DatabaseError instead of OperationalError). A
    // bad argument should be SQLITE_ERROR, as for SQLite's own functions (json(), ...).
    temp_dir d;
    test_db db(d.file("code.db"));
    for (const char* sql : {"SELECT repl_apply(x'00')", "SELECT repl_apply(x'4801')", "SELECT repl_record_json(x'00')"}) {
        INFO(sql);
        int rc = sqlite3_exec(db.handle(), sql, nullptr, nullptr, nullptr);
        CHECK(rc == SQLITE_ERROR);
        CHECK(sqlite3_errcode(db.handle()) != SQLITE_CORRUPT);
    }
}

TEST_CASE("repl_apply refuses well-formed records it cannot apply, changing nothing", "[sql]") {
    dbs s;
    const hlc_t h = hlc_from_ms(1'700'000'000'000ull);
    auto rec = [&](std::string table, std::string def, std::vector<change> ch) {
        return "x'" + hex(encode_record(txn_record{h, "node-evil", {{std::move(table), std::move(def)}}, std::move(ch)})) + "'";
    };
    auto put = [](std::vector<value> row) { return change{0, change_op::put, std::move(row)}; };
    s.each([&](test_db& db) {
        expect_error(db, "SELECT repl_apply(" + rec("x", "\"a\" TEXT", {put({value::of_text("v")})}) + ")", {"repl_apply()", "'x'", "definition"});
        expect_error(db, "SELECT repl_apply(" + rec("x", "\"a\" PRIMARY KEY, \"b\" DEFAULT 1", {put({value::of_int(1), value::of_int(2)})}) + ")",
                     {"repl_apply()", "DEFAULT"});
        expect_error(db, "SELECT repl_apply(" + rec("x", "\"a\" PRIMARY KEY, \"b\"", {put({value::null(), value::of_int(2)})}) + ")", {"NULL primary key"});
        expect_error(db, "SELECT repl_apply(" + rec("x", "\"a\" PRIMARY KEY, \"b\"", {put({value::of_int(1)})}) + ")", {"row has 1 values, expected 2"});
        expect_error(db, "SELECT repl_apply(" + rec("hdbrepl_log", "\"a\" PRIMARY KEY", {put({value::of_int(1)})}) + ")", {"repl_apply()"});
        expect_error(db, "SELECT repl_apply(" + rec("hdbrepl_evil", "\"a\" PRIMARY KEY", {put({value::of_int(1)})}) + ")", {"reserved"});
        expect_error(db, "SELECT repl_apply(" + rec("sqlite_evil", "\"a\" PRIMARY KEY", {put({value::of_int(1)})}) + ")", {"repl_apply()"});
    });
    // A record for an existing table whose columns differ.
    expect_error(s.used, "SELECT repl_apply(" + rec("dog", "\"id\" INTEGER PRIMARY KEY, \"weight\" REAL", {put({value::of_int(7), value::of_real(1.5)})}) + ")",
                 {"table 'dog'", "differ"});
    // A table that exists as a plain table here.
    s.used.exec("CREATE TABLE plain_t(a)");
    expect_error(s.used, "SELECT repl_apply(" + rec("plain_t", "\"a\" PRIMARY KEY", {put({value::of_int(1)})}) + ")", {"plain_t"});
    // One bad change among good ones: nothing of the record is applied.
    expect_error(s.used, "SELECT repl_apply(x'" +
                             hex(encode_record(txn_record{h, "node-evil", {{"dog", "\"id\" INTEGER PRIMARY KEY, \"name\" TEXT NOT NULL, \"breed\" TEXT INDEXED"}},
                                                           {put({value::of_int(50), value::of_text("ok"), value::null()}),
                                                            put({value::null(), value::of_text("bad"), value::null()})}})) + "')",
                 {"NULL primary key"});
}

TEST_CASE("repl_record_json refuses garbage with a clear message", "[sql]") {
    temp_dir d;
    test_db db(d.file("json.db"));
    CHECK_THAT(db.try_exec("SELECT repl_record_json('text')"), Catch::Contains("repl_record_json(): 1st argument must be a change record BLOB"));
    CHECK_THAT(db.try_exec("SELECT repl_record_json(1)"), Catch::Contains("must be a change record BLOB"));
    CHECK_THAT(db.try_exec("SELECT repl_record_json(NULL)"), Catch::Contains("must be a change record BLOB"));
    CHECK_THAT(db.try_exec("SELECT repl_record_json(x'00')"), Catch::Contains("repl_record_json(): malformed change record: bad magic"));
    CHECK_THAT(db.try_exec("SELECT repl_record_json(x'')"), Catch::Contains("malformed change record"));
    CHECK_THAT(db.try_exec("SELECT repl_record_json(randomblob(64))"), Catch::Contains("malformed change record"));
    CHECK_THAT(db.try_exec("SELECT repl_record_json(x'4801')"), Catch::Contains("truncated"));
    CHECK(db.scalar("SELECT count(*) FROM sqlite_schema") == "0");
}

TEST_CASE("functions taking a schema name reject an unknown schema", "[sql]") {
    temp_dir d;
    test_db db(d.file("schema.db"));
    db.exec(dog_sql);
    CHECK_THAT(db.try_exec("SELECT repl_node_name('nosuch')"), Catch::Contains("nosuch"));
    CHECK_THAT(db.try_exec("SELECT repl_prune_tombstones('nosuch')"), Catch::Contains("nosuch"));
}
