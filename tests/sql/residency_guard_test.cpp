// residency= expressions stay within a safe subset: literals, the row's columns, operators,
// CASE, CAST, IN (list), LIKE and a short list of deterministic built-in functions. Anything
// that would read a table, run a subquery, call another function or carry more SQL is refused
// at CREATE (the same check a peer's definition meets when its table is created here), and
// the evaluating statement runs in a sandbox connection of its own.
#include "engine/residency_sandbox.hpp"
#include "tests/sql/sql_test_util.hpp"

#include <catch2/catch.hpp>

using namespace hdbrepl::test;
namespace e = hdbrepl::engine;

namespace {

std::string create(test_db& db, const std::string& expr) {
    db.try_exec("DROP TABLE IF EXISTS r");
    return db.try_exec("CREATE VIRTUAL TABLE r USING hdbrepl(id INTEGER PRIMARY KEY, region TEXT, doc TEXT, residency=" + expr + ")");
}

} // namespace

TEST_CASE("residency expressions within the subset are accepted", "[sql]") {
    temp_dir d;
    test_db db(d.file("a.db"));
    for (const char* ok : {"iif(id % 2 = 0, '[\"b\"]', '[\"d\"]')", "CASE region WHEN 'eu' THEN 1 WHEN 'us' THEN 2 ELSE NULL END",
                           "json_array(lower(region), upper(region))", "coalesce(CAST(doc AS INTEGER), 3)", "abs(id) % 4",
                           "iif(id IN (1, 2, 3), 1, 2)", "iif(region LIKE 'eu%', '[\"eu-1\"]', NULL)", "json_extract(doc, '$.where')",
                           "doc ->> '$.shard'", "iif(length(substr(region, 1, 2)) > 1 AND NOT region IS NULL, 5, 6)",
                           "ifnull(nullif(trim(region), ''), 0)", "max(id, 3) - min(id, 1)", "\"region\" || ''", "x'00' IS NULL"}) {
        INFO(ok);
        CHECK(create(db, ok) == "");
    }
}

TEST_CASE("residency expressions outside the subset are refused at CREATE", "[sql]") {
    temp_dir d;
    test_db db(d.file("a.db"));
    db.exec("CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT)");
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"(SELECT value FROM hdbrepl_meta WHERE key = 'token_secret')", "'SELECT' is not allowed"},
        {"EXISTS (SELECT 1)", "'EXISTS' is not allowed"},
        {"iif(id IN (SELECT id FROM dog), 1, 2)", "'SELECT' is not allowed"},
        {"(VALUES (1))", "'VALUES' is not allowed"},
        {"random() % 2", "function random() is not allowed"},
        {"load_extension('/tmp/x.so')", "function load_extension() is not allowed"},
        {"repl_status()", "function repl_status() is not allowed"},
        {"date('now')", "function date() is not allowed"},
        {"printf('%.*c', 1000000000, 'x')", "function printf() is not allowed"},
        {"replace(region, 'a', 'aaaaaaaa')", "function replace() is not allowed"},
        {"sqlite_version()", "function sqlite_version() is not allowed"},
        {"\"abs\"(id)", "quoted name cannot be called"},
        {"dog.id", "qualified names"},
        {"main.dog.id", "qualified names"},
        {"?2", "parameters"},
        {":secret", "parameters"},
        {"region MATCH 'x'", "'MATCH' is not allowed"},
        {"region REGEXP 'x'", "'REGEXP' is not allowed"},
        {"1 " + std::string(5000, ' ') + "+ 1", "longer than 4096"},
    };
    for (const auto& [expr, says] : cases) {
        INFO(expr);
        std::string err = create(db, expr);
        CHECK(err.find("residency= is not an expression over its columns") != std::string::npos);
        CHECK(err.find(says) != std::string::npos);
        CHECK(db.count("SELECT count(*) FROM sqlite_schema WHERE name = 'r'") == 0);
    }
    // Names inside string literals are only text.
    CHECK(create(db, "iif(region = 'SELECT x FROM y WHERE random()', 1, 2)") == "");
}

TEST_CASE("residency expressions run in a sandbox without the database's tables", "[sql]") {
    temp_dir d;
    test_db db(d.file("a.db"));
    db.exec("CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT)");
    // An unqualified name that is a table of the database is no column of the row.
    std::string err = create(db, "dog");
    CHECK(err.find("no such column: dog") != std::string::npos);
    // The evaluating statement belongs to another connection than the database's.
    std::string perr;
    e::table_def def;
    def.columns.push_back({"id", "INTEGER", e::affinity::integer, true});
    def.residency = "iif(id % 2 = 0, 1, 2)";
    sqlite3_stmt* st = nullptr;
    REQUIRE(e::prepare_residency(def, &st, perr) == SQLITE_OK);
    CHECK(sqlite3_db_handle(st) != db.handle());
    CHECK(std::string(sqlite3_db_filename(sqlite3_db_handle(st), "main")) == "");
    sqlite3_bind_int64(st, 1, 4);
    CHECK(e::step_residency(st, perr) == SQLITE_ROW);
    CHECK(sqlite3_column_int64(st, 0) == 1);
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, 5);
    CHECK(e::step_residency(st, perr) == SQLITE_ROW);
    CHECK(sqlite3_column_int64(st, 0) == 2);
    sqlite3_finalize(st);
    // A runtime error is an error (the sender then keeps the row home), never a value.
    def.residency = "json_extract(id, '$.x')";
    REQUIRE(e::prepare_residency(def, &st, perr) == SQLITE_OK);
    sqlite3_bind_text(st, 1, "{not json", -1, SQLITE_STATIC);
    CHECK(e::step_residency(st, perr) != SQLITE_ROW);
    CHECK(perr.find("malformed JSON") != std::string::npos);
    sqlite3_finalize(st);
}
