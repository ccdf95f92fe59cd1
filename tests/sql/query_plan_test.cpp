// Query plans of replicated tables: key lookups never scan, ranges and INDEXED columns use
// the shadow table's indexes, ORDER BY the key needs no sort; and the rows returned by
// every kind of constraint equal a plain table's (including non-BINARY collations, which
// the module must leave to SQLite).
#include "tests/sql/sql_test_util.hpp"

#include <catch2/catch.hpp>

#include <random>

using namespace hdbrepl::test;

namespace {

bool any_contains(const std::vector<std::string>& lines, const std::string& needle) {
    for (auto& l : lines)
        if (l.find(needle) != std::string::npos) return true;
    return false;
}

std::string joined(const std::vector<std::string>& v) {
    std::string r;
    for (auto& s : v) r += s + "\n";
    return r;
}

// Runs `sql` (with ?1.. bound to the given integers/texts) while tracing, and returns the
// statements the module ran on the shadow table `shadow` (e.g. "dog_data").
std::vector<std::string> inner_queries(test_db& db, const std::string& sql, const std::string& shadow) {
    sql_trace tr(db.handle());
    db.rows(sql);
    std::vector<std::string> out;
    for (auto& s : tr.statements)
        if (s.rfind("SELECT", 0) == 0 && s.find("\"" + shadow + "\"") != std::string::npos) out.push_back(s);
    return out;
}

// EXPLAIN QUERY PLAN of a statement the module runs on its shadow table.
std::vector<std::string> inner_plan(test_db& db, const std::string& inner_sql) { return db.plan(inner_sql); }

struct plan_fixture {
    temp_dir dir;
    test_db repl{dir.file("repl.db")};
    test_db plain{dir.file("plain.db")};
    plan_fixture() {
        repl.exec("CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT INDEXED, breed TEXT INDEXED, age)");
        plain.exec("CREATE TABLE dog(id INTEGER PRIMARY KEY, name TEXT, breed TEXT, age); CREATE INDEX dn ON dog(name); CREATE INDEX db ON dog(breed);");
        std::mt19937 rng(7);
        const char* names[] = {"Rex", "rex", "REX", "Fido", "fido", "Kato", "Penny", "Ärger", "ärger", "Zed", "abe", "Abe", "", "10", "9"};
        const char* breeds[] = {"lab", "collie", "pug", "Lab", "poodle", "mutt"};
        std::string ins;
        for (int i = 1; i <= 600; ++i) {
            int id = i * 3 - 700; // negative and positive keys
            std::string age;
            switch (rng() % 5) {
            case 0: age = std::to_string(rng() % 20); break;
            case 1: age = std::to_string(rng() % 200) + ".5"; break;
            case 2: age = "'" + std::to_string(rng() % 20) + "'"; break;
            case 3: age = "NULL"; break;
            default: age = "x'0" + std::to_string(rng() % 10) + "'"; break;
            }
            ins += std::string(ins.empty() ? "" : ", ") + "(" + std::to_string(id) + ", '" + names[rng() % 15] + "', " +
                   (rng() % 7 == 0 ? std::string("NULL") : "'" + std::string(breeds[rng() % 6]) + "'") + ", " + age + ")";
        }
        repl.exec("INSERT INTO dog VALUES " + ins);
        plain.exec("INSERT INTO dog VALUES " + ins);
    }
    void same(const std::string& q) {
        INFO("query: " << q);
        auto a = typed_rows(plain.handle(), q);
        auto b = typed_rows(repl.handle(), q);
        CHECK(b == a);
    }
};

} // namespace

TEST_CASE("WHERE key = ? is a key lookup, never a full scan", "[sql]") {
    plan_fixture f;
    for (const char* q : {"SELECT * FROM dog WHERE id = 5", "SELECT * FROM dog WHERE id = ?1", "SELECT name FROM dog WHERE id = 5 AND breed = 'lab'",
                          "SELECT * FROM dog WHERE id = 5 ORDER BY name", "SELECT * FROM dog WHERE 5 = id", "SELECT * FROM dog WHERE id IN (5, 8, 11)"}) {
        INFO("query: " << q);
        auto p = f.repl.plan(q);
        INFO("plan:\n" << joined(p));
        CHECK(any_contains(p, "SCAN dog VIRTUAL TABLE INDEX"));
        CHECK(any_contains(p, ":key id ="));
        CHECK_FALSE(any_contains(p, "full scan"));
    }
    // What actually runs on the shadow table is an indexed search, not a scan.
    auto inner = inner_queries(f.repl, "SELECT * FROM dog WHERE id = 5", "dog_data");
    INFO("inner statements:\n" << joined(inner));
    REQUIRE(inner.size() >= 1);
    for (auto& s : inner) {
        auto p = inner_plan(f.repl, s);
        INFO("inner: " << s << "\nplan:\n" << joined(p));
        CHECK(any_contains(p, "SEARCH"));
        CHECK(any_contains(p, "dog_data USING INTEGER PRIMARY KEY (rowid=?)"));
        CHECK_FALSE(any_contains(p, "SCAN"));
    }
    // A join probes the replicated table by key for each outer row.
    f.repl.exec("CREATE TABLE owner(email TEXT, dog_id INTEGER)");
    auto jp = f.repl.plan("SELECT owner.email, dog.name FROM owner JOIN dog ON dog.id = owner.dog_id");
    INFO("join plan:\n" << joined(jp));
    CHECK(any_contains(jp, ":key id ="));
    f.same("SELECT * FROM dog WHERE id = 5");
    f.same("SELECT * FROM dog WHERE id = -697");
    f.same("SELECT * FROM dog WHERE id = 4"); // absent
    f.same("SELECT * FROM dog WHERE id IN (5, 8, 11, 12, -100) ORDER BY id");
    f.same("SELECT * FROM dog WHERE id IN (11, 5, 8) ORDER BY id DESC");
}

TEST_CASE("a TEXT key lookup searches the shadow table's primary key", "[sql]") {
    temp_dir d;
    test_db db(d.file("t.db"));
    db.exec("CREATE VIRTUAL TABLE tk USING hdbrepl(k TEXT PRIMARY KEY, v INDEXED)");
    db.exec("INSERT INTO tk VALUES('a', 1), ('b', 2), ('c', 3)");
    auto p = db.plan("SELECT v FROM tk WHERE k = 'b'");
    INFO("plan:\n" << joined(p));
    CHECK(any_contains(p, ":key k ="));
    auto inner = inner_queries(db, "SELECT v FROM tk WHERE k = 'b'", "tk_data");
    REQUIRE(inner.size() >= 1);
    for (auto& s : inner) {
        auto ip = inner_plan(db, s);
        INFO("inner: " << s << "\nplan:\n" << joined(ip));
        CHECK(any_contains(ip, "SEARCH"));
        CHECK(any_contains(ip, "tk_data USING PRIMARY KEY (k=?)"));
    }
    CHECK(db.rows("SELECT v FROM tk WHERE k = 'b'") == std::vector<std::string>{"2"});
}

TEST_CASE("a key range uses the key plan and equals a plain table's result", "[sql]") {
    plan_fixture f;
    for (const char* q : {"SELECT * FROM dog WHERE id > 10", "SELECT * FROM dog WHERE id >= 10 AND id < 40", "SELECT * FROM dog WHERE id BETWEEN -5 AND 30",
                          "SELECT * FROM dog WHERE id <= -600"}) {
        INFO("query: " << q);
        auto p = f.repl.plan(q);
        INFO("plan:\n" << joined(p));
        CHECK(any_contains(p, ":key id range"));
        auto inner = inner_queries(f.repl, q, "dog_data");
        REQUIRE(inner.size() >= 1);
        for (auto& s : inner) {
            auto ip = inner_plan(f.repl, s);
            INFO("inner: " << s << "\nplan:\n" << joined(ip));
            CHECK(any_contains(ip, "SEARCH"));
            CHECK(any_contains(ip, "dog_data USING INTEGER PRIMARY KEY"));
        }
    }
    for (const char* w : {"id > 10", "id >= 10", "id < -3", "id <= -4", "id > 10 AND id < 40", "id >= 10 AND id <= 40", "id BETWEEN -5 AND 30",
                          "id NOT BETWEEN -600 AND 600", "id IN (1, 2, 5, 8, 1000)", "id NOT IN (2, 5)", "id > 5.5", "id < '20'", "id >= '-10' AND id < 7.5",
                          "id > 10 AND id > 20", "id < 100 AND id < 50 AND id > 20", "id > 1000", "id < -1000", "id > 40 AND id < 10",
                          "id = 5 OR id = 8", "id > NULL", "id IS 5", "id IS NOT NULL AND id < -690"}) {
        f.same(std::string("SELECT * FROM dog WHERE ") + w + " ORDER BY id");
        f.same(std::string("SELECT count(*), sum(id) FROM dog WHERE ") + w);
    }
}

TEST_CASE("an INDEXED column's equality and range use its index and equal a plain table's result", "[sql]") {
    plan_fixture f;
    {
        const char* q = "SELECT * FROM dog WHERE breed = 'lab'";
        auto p = f.repl.plan(q);
        INFO("plan:\n" << joined(p));
        CHECK(any_contains(p, ":index breed ="));
        auto inner = inner_queries(f.repl, q, "dog_data");
        REQUIRE(inner.size() >= 1);
        for (auto& s : inner) {
            auto ip = inner_plan(f.repl, s);
            INFO("inner: " << s << "\nplan:\n" << joined(ip));
            CHECK(any_contains(ip, "SEARCH"));
            CHECK(any_contains(ip, "dog_data USING INDEX"));
            CHECK(any_contains(ip, "(breed=?)"));
        }
    }
    {
        const char* q = "SELECT * FROM dog WHERE name > 'K' AND name < 'R'";
        auto p = f.repl.plan(q);
        INFO("plan:\n" << joined(p));
        CHECK(any_contains(p, ":index name range"));
        auto inner = inner_queries(f.repl, q, "dog_data");
        REQUIRE(inner.size() >= 1);
        for (auto& s : inner) {
            auto ip = inner_plan(f.repl, s);
            INFO("inner: " << s << "\nplan:\n" << joined(ip));
            CHECK(any_contains(ip, "SEARCH"));
            CHECK(any_contains(ip, "dog_data USING INDEX"));
        }
    }
    for (const char* w : {"breed = 'lab'", "breed = 'Lab'", "breed IS NULL", "breed > 'lab'", "breed >= 'lab'", "breed < 'lab'", "breed <= 'lab'",
                          "breed BETWEEN 'c' AND 'p'", "breed IN ('pug', 'mutt')", "name = 'Rex'", "name = '10'", "name = 10", "name > 9",
                          "name < 'B'", "name = ''", "breed = 'lab' AND id > 0", "breed = 'lab' AND name = 'Rex'", "name >= 'Z' AND name <= 'ä'"}) {
        f.same(std::string("SELECT * FROM dog WHERE ") + w + " ORDER BY id");
    }
}

TEST_CASE("ORDER BY the key needs no sort, ascending or descending", "[sql]") {
    plan_fixture f;
    for (const char* q : {"SELECT * FROM dog ORDER BY id", "SELECT * FROM dog ORDER BY id DESC", "SELECT * FROM dog WHERE id > 100 ORDER BY id DESC",
                          "SELECT * FROM dog WHERE id BETWEEN -50 AND 50 ORDER BY id", "SELECT id FROM dog ORDER BY id DESC LIMIT 5"}) {
        INFO("query: " << q);
        auto p = f.repl.plan(q);
        INFO("plan:\n" << joined(p));
        CHECK_FALSE(any_contains(p, "USE TEMP B-TREE FOR ORDER BY"));
        CHECK(any_contains(p, "ordered by key"));
        f.same(q);
        auto inner = inner_queries(f.repl, q, "dog_data");
        REQUIRE(inner.size() >= 1);
        for (auto& s : inner) {
            auto ip = inner_plan(f.repl, s);
            INFO("inner: " << s << "\nplan:\n" << joined(ip));
            CHECK_FALSE(any_contains(ip, "USE TEMP B-TREE"));
        }
    }
    // Ordering by something else is sorted by SQLite, correctly.
    f.same("SELECT * FROM dog ORDER BY name, id");
    f.same("SELECT * FROM dog WHERE breed = 'lab' ORDER BY id DESC");
    f.same("SELECT * FROM dog WHERE name > 'M' ORDER BY id");
    f.same("SELECT id FROM dog ORDER BY id COLLATE NOCASE DESC");
    f.same("SELECT id, age FROM dog ORDER BY age, id DESC");
}

TEST_CASE("constraints under a non-BINARY collation return the rows a plain table returns", "[sql]") {
    plan_fixture f;
    for (const char* w : {"name = 'rex' COLLATE NOCASE", "name = 'REX' COLLATE NOCASE", "name COLLATE NOCASE = 'fido'", "name > 'm' COLLATE NOCASE",
                          "name BETWEEN 'a' AND 'f' COLLATE NOCASE", "breed = 'LAB' COLLATE NOCASE", "breed >= 'L' COLLATE NOCASE AND breed < 'M' COLLATE NOCASE",
                          "name = 'rex ' COLLATE RTRIM", "name IN ('rex', 'zed') COLLATE NOCASE", "name = 'Rex' COLLATE BINARY"}) {
        f.same(std::string("SELECT * FROM dog WHERE ") + w + " ORDER BY id");
    }
    // A NOCASE constraint is not served by the BINARY index (that would miss 'Rex' / 'REX').
    auto p = f.repl.plan("SELECT * FROM dog WHERE name = 'rex' COLLATE NOCASE");
    INFO("plan:\n" << joined(p));
    CHECK_FALSE(any_contains(p, ":index name ="));
    CHECK(f.repl.count("SELECT count(*) FROM dog WHERE name = 'rex' COLLATE NOCASE") ==
          f.repl.count("SELECT count(*) FROM dog WHERE lower(name) = 'rex'"));
}

TEST_CASE("queries see writes made earlier in the same transaction and the same statement's scan stays correct", "[sql]") {
    plan_fixture f;
    for (auto* db : {&f.repl, &f.plain}) {
        db->exec("BEGIN");
        db->exec("INSERT INTO dog VALUES(10000, 'New', 'lab', 1)");
        db->exec("UPDATE dog SET breed = 'lab' WHERE breed = 'Lab'");
        db->exec("DELETE FROM dog WHERE id BETWEEN -100 AND 100");
        db->exec("UPDATE dog SET id = id + 5000 WHERE id > 1000"); // moves keys ahead of the scan
        db->exec("UPDATE dog SET id = -id WHERE id < -600");
    }
    f.same("SELECT * FROM dog ORDER BY id");
    f.same("SELECT * FROM dog WHERE breed = 'lab' ORDER BY id");
    for (auto* db : {&f.repl, &f.plain}) db->exec("COMMIT");
    f.same("SELECT * FROM dog ORDER BY id");
    check_log_matches_data(f.repl, {"dog"});
}

TEST_CASE("the shadow-table statement reads only the columns a query uses, and every reader still gets its columns", "[sql]") {
    plan_fixture f;
    // A narrow query reads the key (always) and its own columns, not the others.
    auto inner = inner_queries(f.repl, "SELECT name FROM dog WHERE id > 10", "dog_data");
    INFO("inner statements:\n" << joined(inner));
    REQUIRE(inner.size() >= 1);
    for (auto& s : inner) {
        CHECK(s.find("\"name\"") != std::string::npos);
        CHECK(s.find("\"id\"") != std::string::npos);
        CHECK(s.find("\"breed\"") == std::string::npos);
        CHECK(s.find("\"age\"") == std::string::npos);
    }
    auto counted = inner_queries(f.repl, "SELECT count(*) FROM dog WHERE breed = 'lab'", "dog_data");
    REQUIRE(counted.size() >= 1);
    for (auto& s : counted) CHECK(s.find("\"age\"") == std::string::npos);
    // Column subsets, and TEXT values kept across rows by aggregates, DISTINCT, GROUP BY,
    // sorting and subqueries, equal a plain table's.
    for (const char* q : {"SELECT name FROM dog WHERE id > 10 ORDER BY id", "SELECT age, name FROM dog WHERE id < 0 ORDER BY id",
                          "SELECT max(name), min(name), max(breed), count(DISTINCT name) FROM dog WHERE id BETWEEN -300 AND 300",
                          "SELECT DISTINCT name FROM dog WHERE id > -500 ORDER BY 1", "SELECT breed, max(name), min(age), count(*) FROM dog GROUP BY breed ORDER BY 1",
                          "SELECT name, max(id) FROM dog WHERE breed = 'lab'", "SELECT group_concat(name, '|') FROM (SELECT name FROM dog WHERE id > 0 ORDER BY id)",
                          "SELECT (SELECT name FROM dog WHERE id > 100 ORDER BY id LIMIT 1), (SELECT max(breed) FROM dog)",
                          "SELECT a.name, b.breed FROM dog a JOIN dog b ON b.id = a.id + 3 WHERE a.id BETWEEN -50 AND 50 ORDER BY a.id",
                          "SELECT name FROM dog WHERE age > 5 ORDER BY name, id", "SELECT id FROM dog WHERE name = 'Rex' ORDER BY id"}) {
        f.same(q);
    }
    // Writes that read some columns and write others.
    for (const char* w : {"UPDATE dog SET age = 7 WHERE breed = 'lab' AND id > 0", "UPDATE dog SET name = upper(name) WHERE age > 10",
                          "UPDATE dog SET breed = name WHERE id BETWEEN -100 AND -50", "DELETE FROM dog WHERE name = 'fido'",
                          "DELETE FROM dog WHERE age IS NULL AND id < 0", "INSERT INTO dog SELECT id + 100000, breed, name, age FROM dog WHERE id > 1000"}) {
        INFO("write: " << w);
        f.plain.exec(w);
        f.repl.exec(w);
        f.same("SELECT * FROM dog ORDER BY id");
    }
}
