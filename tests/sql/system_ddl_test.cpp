// hdbrepl's own tables keep their shape: no SQL and no replicated record may drop, rename or
// create a table named hdbrepl_* (users, membership, removals and any other), and every such
// attempt fails with a clear error and changes nothing. The node itself still creates its
// tables (ensure_security_tables), and replicated changes to their rows still apply.
#include "engine/security_store.hpp"
#include "engine/table_def.hpp"
#include "engine/txn_record.hpp"
#include "tests/sql/sql_test_util.hpp"

#include <catch2/catch.hpp>

using namespace hdbrepl::test;
namespace e = hdbrepl::engine;

namespace {

const char* users_columns = "username TEXT PRIMARY KEY, role TEXT, password_hash TEXT";

std::string canonical(const std::string& columns) {
    std::string err;
    auto def = e::parse_table_def(std::string_view(columns), err);
    REQUIRE(def);
    return def->canonical();
}

void make_system_tables(test_db& db) {
    std::string err;
    REQUIRE(e::ensure_security_tables(db.handle(), "main", err) == SQLITE_OK);
}

// One DDL change (or put) of `table`, as a peer named `origin` would send it.
std::string record(const std::string& table, const std::string& definition, e::change_op op, std::vector<e::value> values = {},
                   const std::string& origin = "peer-x") {
    e::txn_record r;
    r.hlc = e::hlc_from_ms(e::wall_clock_ms() - 1000);
    r.origin = origin;
    r.tables.push_back({table, definition});
    e::change c;
    c.table = 0;
    c.op = op;
    c.values = std::move(values);
    r.changes.push_back(std::move(c));
    auto body = e::encode_record(r);
    return std::string(body.begin(), body.end());
}

} // namespace

TEST_CASE("DROP, RENAME and CREATE of hdbrepl's own tables fail and change nothing", "[sql]") {
    temp_dir d;
    test_db db(d.file("a.db"));
    make_system_tables(db);
    db.exec("INSERT INTO hdbrepl_users VALUES('admin', 'super_user', 'pbkdf2-sha256$1$x$y')");
    db.exec("INSERT INTO hdbrepl_members VALUES('node-b', 'ws://b:9925', NULL, NULL)");
    const auto before = snapshot(db.handle());
    for (const char* t : {"hdbrepl_users", "hdbrepl_members", "hdbrepl_removals", "HDBREPL_USERS"}) {
        INFO(t);
        // SQLite reports a refusing xDestroy by its code only: SQLITE_AUTH.
        std::string err = db.try_exec(std::string("DROP TABLE ") + t);
        CHECK(err == "authorization denied");
        err = db.try_exec(std::string("DROP TABLE IF EXISTS ") + t);
        CHECK(err == "authorization denied");
        err = db.try_exec(std::string("ALTER TABLE ") + t + " RENAME TO stolen");
        CHECK(err.find("cannot rename table") != std::string::npos);
        // Inside a transaction too: the refusal leaves the transaction's other work alone.
        db.exec("BEGIN");
        CHECK(db.try_exec(std::string("DROP TABLE ") + t) == "authorization denied");
        db.exec("ROLLBACK");
    }
    CHECK(db.try_exec("CREATE VIRTUAL TABLE hdbrepl_evil USING hdbrepl(id INTEGER PRIMARY KEY)").find("reserved") != std::string::npos);
    CHECK(db.try_exec("CREATE VIRTUAL TABLE Hdbrepl_Evil USING hdbrepl(id INTEGER PRIMARY KEY)").find("reserved") != std::string::npos);
    CHECK(snapshot(db.handle()) == before);
    db.exec("CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT)");
    CHECK(db.try_exec("ALTER TABLE dog RENAME TO hdbrepl_dog").find("reserved") != std::string::npos);
    CHECK(db.count("SELECT count(*) FROM dog") == 0);
    CHECK(db.column("SELECT username FROM hdbrepl_users") == std::vector<std::string>{"admin"});
    CHECK(db.column("SELECT username FROM hdb_user") == std::vector<std::string>{"admin"});
    // The read-only system views are not droppable either.
    for (const char* t : {"hdb_user", "hdb_nodes", "hdb_certificate", "hdb_placement"}) {
        INFO(t);
        CHECK(db.try_exec(std::string("DROP TABLE ") + t) != "");
    }
    CHECK(db.column("SELECT username FROM hdb_user") == std::vector<std::string>{"admin"});
}

TEST_CASE("only the node creates hdbrepl's own tables", "[sql]") {
    temp_dir d;
    test_db db(d.file("a.db"));
    // The exact definition, before the node made it: still refused (a user or a peer's
    // record must not plant a users table of its own choosing).
    std::string err = db.try_exec(std::string("CREATE VIRTUAL TABLE hdbrepl_users USING hdbrepl(") + users_columns + ")");
    CHECK(err.find("reserved") != std::string::npos);
    CHECK(db.count("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'hdbrepl_users%'") == 0);
    make_system_tables(db);
    CHECK(db.count("SELECT count(*) FROM sqlite_schema WHERE name IN ('hdbrepl_users', 'hdbrepl_members', 'hdbrepl_removals')") == 3);
    make_system_tables(db); // idempotent, as at every start
    db.exec("INSERT INTO hdbrepl_users VALUES('u', 'read_only', 'h')");
    CHECK(db.count("SELECT count(*) FROM hdbrepl_users") == 1);
}

TEST_CASE("replicated DDL naming hdbrepl's own tables is refused by the apply path", "[sql]") {
    temp_dir d;
    test_db db(d.file("a.db"));
    make_system_tables(db);
    db.exec("INSERT INTO hdbrepl_users VALUES('admin', 'super_user', 'hash')");
    db.exec("CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT)");
    const std::string users_def = canonical(users_columns);
    const std::string dog_def = canonical("id INTEGER PRIMARY KEY, name TEXT");
    const auto before = snapshot(db.handle());
    struct bad {
        const char* what;
        std::string body;
        const char* says;
    };
    const std::vector<bad> cases = {
        {"drop of hdbrepl_users", record("hdbrepl_users", users_def, e::change_op::drop_table), "refused a replicated drop of table 'hdbrepl_users'"},
        {"drop of hdbrepl_members", record("hdbrepl_members", canonical("name TEXT PRIMARY KEY, url TEXT, shard INTEGER, ca TEXT"), e::change_op::drop_table),
         "refused a replicated drop"},
        {"drop of a missing hdbrepl_ table", record("hdbrepl_other", dog_def, e::change_op::drop_table), "refused a replicated drop"},
        {"rename of hdbrepl_users", record("hdbrepl_users", users_def, e::change_op::rename_table, {e::value::of_text("stolen")}),
         "refused a replicated rename of table 'hdbrepl_users'"},
        {"rename of a user table to an hdbrepl_ name", record("dog", dog_def, e::change_op::rename_table, {e::value::of_text("hdbrepl_dog")}),
         "to 'hdbrepl_dog'"},
        {"create of hdbrepl_evil", record("hdbrepl_evil", dog_def, e::change_op::create_table), "refused a replicated create"},
        {"create of hdbrepl_users", record("hdbrepl_users", users_def, e::change_op::create_table), "refused a replicated create"},
        {"rows for a made-up hdbrepl_ table", record("hdbrepl_evil", dog_def, e::change_op::put, {e::value::of_int(1), e::value::of_text("x")}),
         "reserved"},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        std::string err;
        apply_record(db.handle(), c.body, err);
        CHECK(err.find(c.says) != std::string::npos);
        CHECK((err.find("peer-x") != std::string::npos || std::string(c.what).rfind("rows", 0) == 0));
    }
    CHECK(snapshot(db.handle()) == before);
    CHECK(db.column("SELECT username FROM hdbrepl_users") == std::vector<std::string>{"admin"});
    // Rows of hdbrepl's own tables still replicate.
    std::string err;
    apply_record(db.handle(), record("hdbrepl_users", users_def, e::change_op::put,
                                     {e::value::of_text("bob"), e::value::of_text("cluster_user"), e::value::of_text("h2")}),
                 err);
    CHECK(err == "");
    CHECK(db.column("SELECT username FROM hdbrepl_users ORDER BY 1") == std::vector<std::string>{"admin", "bob"});
}

TEST_CASE("rows for hdbrepl_users on a database without it make the node's own table", "[sql]") {
    temp_dir d;
    test_db db(d.file("a.db"));
    db.exec("CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY)"); // hdbrepl_tables exist, users do not
    std::string err;
    apply_record(db.handle(), record("hdbrepl_users", canonical(users_columns), e::change_op::put,
                                     {e::value::of_text("bob"), e::value::of_text("cluster_user"), e::value::of_text("h")}),
                 err);
    CHECK(err == "");
    CHECK(db.column("SELECT username FROM hdbrepl_users") == std::vector<std::string>{"bob"});
    CHECK(db.scalar("SELECT created_hlc FROM hdbrepl_tables WHERE name = 'hdbrepl_users'") == "1");
}
