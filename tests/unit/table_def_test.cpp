// Unit tests for engine/table_def.hpp: the declaration parser, SQLite's affinity rules,
// the canonical form and the argument splitter.
#include <catch2/catch.hpp>

#include "engine/table_def.hpp"

#include <string>
#include <vector>

using namespace hdbrepl::engine;

namespace {
using args = std::vector<std::string>;

table_def parse_ok(const args& a) {
    std::string err;
    auto d = parse_table_def(a, err);
    INFO("error: " << err);
    REQUIRE(d.has_value());
    return *d;
}

table_def parse_ok(std::string_view text) {
    std::string err;
    auto d = parse_table_def(text, err);
    INFO("text: " << text << "\nerror: " << err);
    REQUIRE(d.has_value());
    return *d;
}

// Parses and expects an error whose message contains every one of `needles`.
std::string parse_err(const args& a, std::vector<std::string> needles = {}) {
    std::string err;
    auto d = parse_table_def(a, err);
    CHECK_FALSE(d.has_value());
    CHECK_FALSE(err.empty());
    for (const auto& n : needles) {
        INFO("error: " << err);
        CHECK(err.find(n) != std::string::npos);
    }
    return err;
}

void check_same_columns(const table_def& a, const table_def& b) {
    REQUIRE(a.columns.size() == b.columns.size());
    CHECK(a.pk == b.pk);
    for (std::size_t i = 0; i < a.columns.size(); ++i) {
        INFO("column " << i);
        CHECK(a.columns[i].name == b.columns[i].name);
        CHECK(a.columns[i].decl_type == b.columns[i].decl_type);
        CHECK(a.columns[i].aff == b.columns[i].aff);
        CHECK(a.columns[i].primary_key == b.columns[i].primary_key);
        CHECK(a.columns[i].indexed == b.columns[i].indexed);
        CHECK(a.columns[i].not_null == b.columns[i].not_null);
    }
}
} // namespace

TEST_CASE("table_def: the HarperDB documentation's example", "[unit][table_def]") {
    // As SQLite hands the module arguments over (one string per argument).
    auto d = parse_ok(args{"id INTEGER PRIMARY KEY", "name TEXT", "breed TEXT INDEXED", "replicate=false"});
    REQUIRE(d.columns.size() == 3);
    CHECK(d.pk == 0);
    CHECK_FALSE(d.replicate);
    CHECK(d.integer_key());
    CHECK(d.columns[0].name == "id");
    CHECK(d.columns[0].decl_type == "INTEGER");
    CHECK(d.columns[0].primary_key);
    CHECK(d.columns[0].not_null); // a key is never NULL
    CHECK(d.columns[0].aff == affinity::integer);
    CHECK(d.columns[1].name == "name");
    CHECK(d.columns[1].aff == affinity::text);
    CHECK_FALSE(d.columns[1].indexed);
    CHECK_FALSE(d.columns[1].not_null);
    CHECK(d.columns[2].name == "breed");
    CHECK(d.columns[2].indexed);
    CHECK(d.find_column("BREED") == 2);
    CHECK(d.find_column("Name") == 1);
    CHECK(d.find_column("age") == -1);
    CHECK(d.canonical() == "\"id\" INTEGER PRIMARY KEY, \"name\" TEXT, \"breed\" TEXT INDEXED");

    // The same text through the splitter, and with whitespace as SQLite may leave it.
    auto e = parse_ok(std::string_view("id INTEGER PRIMARY KEY, name TEXT,\n  breed TEXT INDEXED,  replicate = false "));
    check_same_columns(d, e);
    CHECK_FALSE(e.replicate);
}

TEST_CASE("table_def: options", "[unit][table_def]") {
    CHECK(parse_ok(args{"id PRIMARY KEY"}).replicate);
    CHECK(parse_ok(args{"id PRIMARY KEY", "replicate=true"}).replicate);
    CHECK(parse_ok(args{"id PRIMARY KEY", "REPLICATE=On"}).replicate);
    CHECK_FALSE(parse_ok(args{"id PRIMARY KEY", "replicate='false'"}).replicate);
    CHECK_FALSE(parse_ok(args{"id PRIMARY KEY", "replicate=0"}).replicate);
    CHECK_FALSE(parse_ok(args{"id PRIMARY KEY", "replicate = no"}).replicate);
    parse_err(args{"id PRIMARY KEY", "replicate=maybe"}, {"replicate", "maybe"});
    parse_err(args{"id PRIMARY KEY", "ttl=5"}, {"unknown option", "ttl"});
    parse_err(args{"id PRIMARY KEY", "x=1"}, {"unknown option"});
}

TEST_CASE("table_def: residency= keeps its expression verbatim, in the canonical form too", "[unit][table_def]") {
    auto d = parse_ok(args{"id INTEGER PRIMARY KEY", "region TEXT", "residency=iif(region = 'eu', '[\"a\",\"b\"]', 2)"});
    CHECK(d.residency == "iif(region = 'eu', '[\"a\",\"b\"]', 2)");
    CHECK(d.columns.size() == 2);
    std::string canon = d.canonical();
    CHECK(canon == "\"id\" INTEGER PRIMARY KEY, \"region\" TEXT, residency=iif(region = 'eu', '[\"a\",\"b\"]', 2)");
    auto back = parse_ok(std::string_view(canon));
    CHECK(back.residency == d.residency);
    CHECK(back.canonical() == canon);
    CHECK(parse_ok(args{"id PRIMARY KEY"}).residency.empty());
    parse_err(args{"id PRIMARY KEY", "residency= "}, {"residency", "expression"});
    parse_err(args{"id PRIMARY KEY", "residency=1; DROP TABLE x"}, {"residency", "one expression"});
}

TEST_CASE("table_def: every declaration error", "[unit][table_def]") {
    SECTION("no primary key") { parse_err(args{"a TEXT", "b INT"}, {"PRIMARY KEY", "none"}); }
    SECTION("two primary keys") { parse_err(args{"a TEXT PRIMARY KEY", "b INT PRIMARY KEY"}, {"PRIMARY KEY", "2"}); }
    SECTION("unknown option") { parse_err(args{"a PRIMARY KEY", "colour=blue"}, {"colour"}); }
    SECTION("unsupported constraints") {
        const char* decls[] = {"b TEXT UNIQUE",       "b TEXT DEFAULT 'x'",        "b INT CHECK(b > 0)",
                               "b TEXT COLLATE NOCASE", "b INT REFERENCES other(id)", "b INT GENERATED ALWAYS AS (1)",
                               "b INT CONSTRAINT c NOT NULL", "b INT NOT",           "b INT PRIMARY",
                               "b INT NULL"};
        for (auto* d : decls) {
            INFO(d);
            parse_err(args{"a PRIMARY KEY", d}, {"'b'", "unsupported constraint"});
        }
        parse_err(args{"a INTEGER PRIMARY KEY AUTOINCREMENT"}, {"AUTOINCREMENT"});
    }
    SECTION("reserved column names") {
        parse_err(args{"a PRIMARY KEY", "hdbrepl_v INT"}, {"hdbrepl_v", "reserved"});
        parse_err(args{"a PRIMARY KEY", "HDBREPL_O"}, {"reserved"});
        parse_err(args{"\"hdbrepl_v\" PRIMARY KEY"}, {"reserved"});
    }
    SECTION("duplicate columns (case-insensitive)") {
        parse_err(args{"a PRIMARY KEY", "b TEXT", "B INT"}, {"duplicate", "B"});
        parse_err(args{"a PRIMARY KEY", "\"a\" TEXT"}, {"duplicate"});
    }
    SECTION("empty") {
        parse_err(args{}, {"at least one column"});
        parse_err(args{"a PRIMARY KEY", ""}, {"empty"});
        parse_err(args{"a PRIMARY KEY", "   "}, {"empty"});
        std::string err;
        CHECK_FALSE(parse_table_def(std::string_view(""), err).has_value());
        CHECK_FALSE(err.empty());
        CHECK_FALSE(parse_table_def(std::string_view("a PRIMARY KEY,"), err).has_value());
    }
    SECTION("malformed names and quotes") {
        parse_err(args{"1abc PRIMARY KEY"}, {"bad column name"});
        parse_err(args{"\"abc PRIMARY KEY"}, {"unterminated"});
        parse_err(args{"a DECIMAL(10,2 PRIMARY KEY"}, {"parenthes"});
    }
    // Found by fuzzing (tests/fuzz/corpus/record/regress_def_*): definitions whose canonical
    // form parsed to a different table on the receiving node.
    SECTION("quoted type names") {
        parse_err(args{"a PRIMARY KEY", "b \"PRIMARY\""}, {"'b'", "quoted type"});
        parse_err(args{"a PRIMARY KEY", "b [[]"}, {"quoted type"});
        parse_err(args{"a 'INTEGER' PRIMARY KEY"}, {"quoted type"});
    }
    SECTION("a ')' outside parentheses") {
        std::string err;
        CHECK_FALSE(parse_table_def(std::string_view("V PRIMARY KEY,r) ,"), err).has_value());
        CHECK(err.find("parenthes") != std::string::npos);
        parse_err(args{"a PRIMARY KEY", "b INT)"}, {"parenthes"});
    }
}

TEST_CASE("table_def: quoted identifiers with spaces and quotes", "[unit][table_def]") {
    auto d = parse_ok(args{"\"my key\" TEXT PRIMARY KEY", "\"say \"\"hi\"\"\" TEXT", "[odd, name] INT", "`back` REAL",
                           "'single' BLOB"});
    REQUIRE(d.columns.size() == 5);
    CHECK(d.columns[0].name == "my key");
    CHECK(d.columns[1].name == "say \"hi\"");
    CHECK(d.columns[2].name == "odd, name");
    CHECK(d.columns[3].name == "back");
    CHECK(d.columns[4].name == "single");
    CHECK(d.columns[1].decl_type == "TEXT");
    CHECK(d.columns[2].aff == affinity::integer);
    // Quoted keywords are names, not constraints.
    auto k = parse_ok(args{"\"primary\" INTEGER PRIMARY KEY", "\"not\" TEXT NOT NULL", "\"indexed\" TEXT INDEXED"});
    CHECK(k.columns[0].name == "primary");
    CHECK(k.columns[1].name == "not");
    CHECK(k.columns[1].not_null);
    CHECK(k.columns[2].indexed);

    CHECK(quote_ident("a\"b") == "\"a\"\"b\"");
    CHECK(quote_ident("") == "\"\"");
    CHECK(quote_ident("plain") == "\"plain\"");
}

TEST_CASE("table_def: declared types with parentheses and several words", "[unit][table_def]") {
    auto d = parse_ok(args{"id INTEGER PRIMARY KEY", "price DECIMAL(10,2) NOT NULL", "code VARCHAR ( 20 ) INDEXED",
                           "big UNSIGNED BIG INT", "x DOUBLE PRECISION", "plain"});
    CHECK(d.columns[1].decl_type == "DECIMAL(10,2)");
    CHECK(d.columns[1].aff == affinity::numeric);
    CHECK(d.columns[1].not_null);
    CHECK(d.columns[2].decl_type == "VARCHAR( 20 )");
    CHECK(d.columns[2].aff == affinity::text);
    CHECK(d.columns[2].indexed);
    CHECK(d.columns[3].decl_type == "UNSIGNED BIG INT");
    CHECK(d.columns[3].aff == affinity::integer);
    CHECK(d.columns[4].decl_type == "DOUBLE PRECISION");
    CHECK(d.columns[4].aff == affinity::real);
    CHECK(d.columns[5].decl_type.empty());
    CHECK(d.columns[5].aff == affinity::blob);
    // Options and columns are told apart even with '=' inside parentheses or quotes.
    auto e = parse_ok(args{"id PRIMARY KEY", "\"a=b\" TEXT"});
    CHECK(e.columns[1].name == "a=b");
    // Constraint keywords are case-insensitive, and PRIMARY KEY may carry ASC/DESC.
    auto f = parse_ok(args{"x text not null indexed", "id integer primary key desc"});
    CHECK(f.pk == 1);
    CHECK(f.columns[0].not_null);
    CHECK(f.columns[0].indexed);
    CHECK(f.integer_key());
}

TEST_CASE("table_def: affinity_of follows SQLite's rules in order", "[unit][table_def]") {
    struct { const char* type; affinity aff; } cases[] = {
        {"INT", affinity::integer},           {"INTEGER", affinity::integer},     {"TINYINT", affinity::integer},
        {"BIGINT", affinity::integer},        {"int8", affinity::integer},        {"UNSIGNED BIG INT", affinity::integer},
        {"FLOATING POINT", affinity::integer}, // rule 1 wins: contains "INT"
        {"CHARINT", affinity::integer},       {"POINT", affinity::integer},       // "POINT" contains "INT"
        {"CHARACTER(20)", affinity::text},    {"VARCHAR(255)", affinity::text},   {"NCHAR(55)", affinity::text},
        {"TEXT", affinity::text},             {"clob", affinity::text},           {"NATIVE CHARACTER(70)", affinity::text},
        {"BLOB", affinity::blob},             {"", affinity::blob},               {"blobby", affinity::blob},
        {"REAL", affinity::real},             {"DOUBLE", affinity::real},         {"DOUBLE PRECISION", affinity::real},
        {"FLOAT", affinity::real},            {"floaty", affinity::real},
        {"NUMERIC", affinity::numeric},       {"DECIMAL(10,5)", affinity::numeric}, {"BOOLEAN", affinity::numeric},
        {"DATE", affinity::numeric},          {"DATETIME", affinity::numeric},    {"STRING", affinity::numeric},
        {"CHARBLOB", affinity::text},         // rule 2 before rule 3
        {"BLOBDOUBLE", affinity::blob},       // rule 3 before rule 4
    };
    for (auto& c : cases) {
        INFO("type '" << c.type << "'");
        CHECK(affinity_of(c.type) == c.aff);
    }
}

TEST_CASE("table_def: canonical() round-trips through parse_table_def(string)", "[unit][table_def]") {
    const args inputs[] = {
        {"id INTEGER PRIMARY KEY", "name TEXT", "breed TEXT INDEXED"},
        {"\"my key\" TEXT PRIMARY KEY", "\"say \"\"hi\"\"\" TEXT NOT NULL INDEXED", "[a,b] INT", "plain"},
        {"a", "b DECIMAL(10,2) NOT NULL", "c VARCHAR(20) INDEXED", "k BLOB PRIMARY KEY ASC", "d UNSIGNED BIG INT"},
        {"x PRIMARY KEY", "replicate=false"},
        {"\"with,comma\" PRIMARY KEY", "\"(paren\" TEXT", "\"'quote\" INT"},
    };
    for (const auto& a : inputs) {
        auto d = parse_ok(a);
        std::string canon = d.canonical();
        INFO("canonical: " << canon);
        auto back = parse_ok(std::string_view(canon));
        check_same_columns(d, back);
        CHECK(back.canonical() == canon); // a fixpoint
        CHECK(back.replicate);            // replicate is not part of the replicated column list
    }
}

TEST_CASE("table_def: split_module_args respects parentheses and quotes", "[unit][table_def]") {
    CHECK(split_module_args("a, b(1,2), 'x,y'") == args{"a", " b(1,2)", " 'x,y'"});
    CHECK(split_module_args("\"c,d\" INT, [e,f] TEXT, `g,h`") == args{"\"c,d\" INT", " [e,f] TEXT", " `g,h`"});
    CHECK(split_module_args("\"a\"\",b\" INT, c") == args{"\"a\"\",b\" INT", " c"});
    CHECK(split_module_args("x DECIMAL(10,(2)), y") == args{"x DECIMAL(10,(2))", " y"});
    CHECK(split_module_args("one") == args{"one"});
    CHECK(split_module_args("").empty());
    CHECK(split_module_args("a,") == args{"a", ""});
    CHECK(split_module_args(",") == args{"", ""});
}

TEST_CASE("table_def: integer_key() only for exactly INTEGER", "[unit][table_def]") {
    auto key_type = [](const char* t) {
        return parse_ok(args{std::string("k ") + t + " PRIMARY KEY", "v"}).integer_key();
    };
    CHECK(key_type("INTEGER"));
    CHECK(key_type("integer"));
    CHECK(key_type("Integer"));
    CHECK_FALSE(key_type("INT"));
    CHECK_FALSE(key_type("BIGINT"));
    CHECK_FALSE(key_type("UNSIGNED INTEGER"));
    CHECK_FALSE(key_type("INTEGER(10)"));
    CHECK_FALSE(key_type("TEXT"));
    CHECK_FALSE(key_type(""));
    // The key need not be the first column.
    auto d = parse_ok(args{"v TEXT", "k INTEGER PRIMARY KEY"});
    CHECK(d.pk == 1);
    CHECK(d.integer_key());
    CHECK_FALSE(d.columns[1].indexed); // INDEXED on the key is dropped: the key is the storage order
    auto e = parse_ok(args{"k INTEGER PRIMARY KEY INDEXED"});
    CHECK_FALSE(e.columns[0].indexed);
}

TEST_CASE("table_def: unquoted names as SQLite accepts them, including non-ASCII", "[unit][table_def]") {
    // sqlite3 accepts CREATE TABLE t(été TEXT PRIMARY KEY, größe INT, _x, a$y): identifier
    // characters are letters, digits, '_', '$' and every byte >= 0x80.
    auto d = parse_ok(args{"\xc3\xa9t\xc3\xa9 TEXT PRIMARY KEY", "gr\xc3\xb6\xc3\x9f" "e INT", "_x", "a$y"});
    REQUIRE(d.columns.size() == 4);
    CHECK(d.columns[0].name == "\xc3\xa9t\xc3\xa9");
    CHECK(d.columns[1].name == "gr\xc3\xb6\xc3\x9f" "e");
    CHECK(d.columns[2].name == "_x");
    CHECK(d.columns[3].name == "a$y");
    auto back = parse_ok(std::string_view(d.canonical()));
    check_same_columns(d, back);
}

TEST_CASE("table_def: residency expressions outside the safe subset are named", "[unit][table_def]") {
    for (const char* ok : {"iif(id % 2 = 0, '[\"b\"]', 2)", "CASE WHEN a THEN 1 ELSE 2 END", "json_array(lower(x))", "CAST(x AS INTEGER)",
                           "x IN (1, 2)", "x LIKE 'a%' ESCAPE '\\'", "1.5e+3 + .5", "x'00ff' = b", "\"select\" + [from] + `where`",
                           "'SELECT FROM -- ; /*' || x", "NOT (a AND (b OR c))", "x BETWEEN (1) AND (2)", "doc ->> '$.a'"}) {
        INFO(ok);
        CHECK(residency_subset_error(ok) == "");
    }
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"(SELECT 1)", "'SELECT' is not allowed"}, {"exists(select 1)", "'exists' is not allowed"},
        {"x in (values(1))", "'values' is not allowed"}, {"x FROM t", "'FROM' is not allowed"},
        {"random()", "function random() is not allowed"}, {"RANDOMBLOB (4)", "function RANDOMBLOB() is not allowed"},
        {"\"abs\"(x)", "quoted name cannot be called"}, {"t.x", "qualified names"}, {"[t].x", "qualified names"},
        {"x; y", "';'"}, {"x -- c", "comments"}, {"x /* c */", "comments"}, {"?1", "parameters"}, {"$a", "parameters"},
        {"@a", "parameters"}, {":a", "parameters"}, {"'open", "unterminated string"}, {"\"open", "unterminated quoted name"},
        {"x MATCH 'y'", "'MATCH' is not allowed"}, {"raise(ignore)", "'raise' is not allowed"},
        {std::string(4097, '1'), "longer than 4096"},
    };
    for (const auto& [expr, says] : bad) {
        INFO(expr);
        CHECK(residency_subset_error(expr).find(says) != std::string::npos);
    }
    CHECK(residency_subset_error("frobnicate(x)").find("allowed: abs, coalesce") != std::string::npos);
}
