// SQL function tables (sql/fn_table.hpp): a callback registered through the table is
// guarded (an exception or a result<void> error comes back as the function's SQLite error),
// the kind of each entry gives its flags, and every function that changes the cluster,
// security or placement state is refused in a view and in a trigger.
#include "tests/sql/sql_test_util.hpp"

#include "sql/fn_table.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>

using namespace hdbrepl::test;
namespace sql = hdbrepl::sql;

namespace {

void fn_throws(sqlite3_context*, int, sqlite3_value**) { throw std::runtime_error("boom"); }
void fn_no_memory(sqlite3_context*, int, sqlite3_value**) { throw std::bad_alloc(); }
hdbrepl::result<void> fn_refuses(sqlite3_context*, int, sqlite3_value**) { return hdbrepl::error{SQLITE_CONSTRAINT, "t_refuses(): no"}; }
hdbrepl::result<void> fn_answers(sqlite3_context* c, int, sqlite3_value**) {
    sqlite3_result_int(c, 7);
    return hdbrepl::ok();
}

constexpr sql::function_entry test_functions[] = {
    sql::sql_function<fn_throws>("t_throws", 0, sql::fn_kind::reads),
    sql::sql_function<fn_no_memory>("t_no_memory", 0, sql::fn_kind::reads),
    sql::sql_function<fn_refuses>("t_refuses", 0, sql::fn_kind::changes_state),
    sql::sql_function<fn_answers>("t_answers", 0, sql::fn_kind::pure),
};

int destroyed = 0;
void count_destroy(void*) { ++destroyed; }

// The code and message of a one-value query.
std::string failure_of(sqlite3* db, const char* sql_text) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql_text, -1, &s, nullptr) != SQLITE_OK) return std::string("prepare: ") + sqlite3_errmsg(db);
    int rc = sqlite3_step(s);
    std::string out = std::to_string(rc) + ":" + sqlite3_errmsg(db);
    sqlite3_finalize(s);
    return out;
}

} // namespace

TEST_CASE("a function registered from a table is guarded: exceptions and result errors become SQLite errors", "[sql]") {
    temp_dir d;
    test_db db(d.file("fn.db"));
    destroyed = 0;
    REQUIRE(sql::register_functions(db.handle(), test_functions, nullptr, count_destroy) == SQLITE_OK);
    CHECK(failure_of(db.handle(), "SELECT t_throws()") == std::to_string(SQLITE_ERROR) + ":hdbrepl internal error: boom");
    CHECK(failure_of(db.handle(), "SELECT t_no_memory()") == std::to_string(SQLITE_NOMEM) + ":out of memory");
    CHECK(failure_of(db.handle(), "SELECT t_refuses()") == std::to_string(SQLITE_CONSTRAINT) + ":t_refuses(): no");
    CHECK(db.scalar("SELECT t_answers()") == "7");
    // The kinds' flags, as SQLite has them.
    CHECK(db.count("SELECT flags & " + std::to_string(SQLITE_DIRECTONLY) + " != 0 FROM pragma_function_list WHERE name = 't_refuses'") == 1);
    CHECK(db.count("SELECT flags & " + std::to_string(SQLITE_DIRECTONLY | SQLITE_INNOCUOUS | SQLITE_DETERMINISTIC) +
                   " FROM pragma_function_list WHERE name = 't_throws'") == 0);
    CHECK(db.count("SELECT flags & " + std::to_string(SQLITE_INNOCUOUS | SQLITE_DETERMINISTIC) + " = " +
                   std::to_string(SQLITE_INNOCUOUS | SQLITE_DETERMINISTIC) + " FROM pragma_function_list WHERE name = 't_answers'") == 1);
    // The user data is freed once, with the table's last function.
    CHECK(destroyed == 0);
    db.exec("SELECT 1"); // still registered
    sqlite3_create_function_v2(db.handle(), "t_answers", 0, SQLITE_UTF8, nullptr, nullptr, nullptr, nullptr, nullptr);
    CHECK(destroyed == 1);
}

TEST_CASE("functions that change the cluster, security or placement cannot be called from a view or a trigger", "[sql]") {
    temp_dir d;
    test_db db(d.file("unsafe.db"));
    db.exec("CREATE TABLE t(a)");
    const std::vector<std::pair<std::string, std::string>> calls = {
        {"repl_start", "repl_start('replication: {hostname: x}')"},
        {"repl_stop", "repl_stop()"},
        {"repl_add_node", R"(repl_add_node('{"hostname":"127.0.0.7"}'))"},
        {"repl_set_node", R"(repl_set_node('{"hostname":"127.0.0.7"}'))"},
        {"repl_update_node", R"(repl_update_node('{"hostname":"127.0.0.7"}'))"},
        {"repl_remove_node", R"(repl_remove_node('{"hostname":"127.0.0.7"}'))"},
        {"repl_confirm", "repl_confirm(1, 0)"},
        {"repl_operation", R"(repl_operation('{"operation":"cluster_status"}'))"},
        {"repl_replicate_to", "repl_replicate_to(2)"},
        {"repl_replicate_to", "repl_replicate_to(2, 1)"},
        {"repl_add_certificate", R"(repl_add_certificate('{"name":"x"}'))"},
        {"repl_remove_certificate", R"(repl_remove_certificate('{"name":"x"}'))"},
        {"repl_list_certificates", "repl_list_certificates()"},
        {"repl_add_user", R"(repl_add_user('{"username":"u","password":"p","role":"super_user"}'))"},
        {"repl_drop_user", R"(repl_drop_user('{"username":"u"}'))"},
        {"repl_create_authentication_tokens", R"(repl_create_authentication_tokens('{"username":"u","password":"p"}'))"},
        {"repl_config", "repl_config('max_clock_skew_ms', 0)"},
        {"repl_apply", "repl_apply(x'00')"},
        {"repl_prune_tombstones", "repl_prune_tombstones()"},
    };
    const auto before = snapshot(db.handle());
    int i = 0;
    for (const auto& [name, call] : calls) {
        INFO(call);
        const std::string view = "v" + std::to_string(i), trigger = "tr" + std::to_string(i);
        ++i;
        db.exec("CREATE VIEW " + view + " AS SELECT " + call + " AS x");
        CHECK_THAT(db.try_exec("SELECT * FROM " + view), Catch::Contains("unsafe use of " + name + "()"));
        db.exec("CREATE TRIGGER " + trigger + " AFTER INSERT ON t BEGIN SELECT " + call + "; END");
        CHECK_THAT(db.try_exec("INSERT INTO t VALUES (1)"), Catch::Contains("unsafe use of " + name + "()"));
        db.exec("DROP TRIGGER " + trigger);
        db.exec("DROP VIEW " + view);
    }
    CHECK(db.count("SELECT count(*) FROM t") == 0);
    CHECK(snapshot(db.handle()) == before);
    // The readers stay callable from a view.
    db.exec("CREATE VIEW readers AS SELECT repl_cluster_status() IS NOT NULL, repl_last_commit() IS NULL, repl_version()");
    CHECK(db.rows("SELECT * FROM readers") == std::vector<std::string>{"1|1|0.1.0"});
}
