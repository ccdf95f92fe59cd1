/*
** Cluster functions.
**
**   repl_start(config)          -> {"node_name": ..., ...}   config: YAML/JSON text or a file path
**   repl_stop()                 -> 'stopped'
**   repl_add_node(json) / repl_set_node(json) / repl_update_node(json) / repl_remove_node(json)
**   repl_cluster_status()       -> HarperDB's cluster_status JSON
**   repl_confirm(n, timeout_ms) -> how many nodes confirmed this connection's last commit
**   repl_forward_reads(0|1)     -> the previous setting: key lookups that find nothing here
**                                  ask the nodes that may hold the row (default 1)
**   repl_operation(json)        -> any of the above by its "operation" key, plus
**                                  search_by_value on system.hdb_nodes
**
** Everything that changes the cluster is SQLITE_DIRECTONLY. These functions run on the
** calling user's thread and reach the node through its thread-safe interface.
*/
#include "extension/fn_cluster.hpp"

#include "extension/config.hpp"
#include "extension/fn_context.hpp"
#include "extension/fn_security.hpp"
#include "engine/json.hpp"
#include "extension/runtime.hpp"
#include "sql/fn_table.hpp"
#include "sql/sql_error.hpp"

#include <chrono>

namespace hdbrepl::ext {
namespace {

std::string text_arg(sqlite3_value* v) {
    auto* t = sqlite3_value_text(v);
    return t ? std::string(reinterpret_cast<const char*>(t), static_cast<std::size_t>(sqlite3_value_bytes(v))) : std::string();
}

// The running node of the caller's database, or an error result.
std::shared_ptr<node> node_or_error(sqlite3_context* c, const char* fn) {
    auto* x = ctx_of(c);
    const std::string& path = x->state->main_path();
    auto n = path.empty() ? nullptr : find_node(path);
    if (!n) sql::result_error(c, std::string(fn) + ": no node is running on this database; call repl_start(config) first");
    return n;
}

// repl_start(config)
void fn_start(sqlite3_context* c, int, sqlite3_value** argv) {
    auto* x = ctx_of(c);
    if (sqlite3_value_type(argv[0]) != SQLITE_TEXT)
        return sql::result_error(c, "repl_start(): 1st argument must be a YAML/JSON config or the path of a YAML file");
    const std::string& path = x->state->main_path();
    if (path.empty())
        return sql::result_error(c, "repl_start(): the database must be a file (a :memory: or temporary database cannot be shared with the node)");
    auto loaded = load_node_config(text_arg(argv[0]));
    if (auto* e = std::get_if<config_error>(&loaded)) return sql::result_error(c, "repl_start(): " + e->message);
    auto& cfg = std::get<node_config>(loaded);
    if (!cfg.all_databases) {
        bool main_listed = false;
        for (const auto& d : cfg.databases) main_listed = main_listed || d.name == "main";
        if (!main_listed)
            return sql::result_error(c, "repl_start(): replication.databases does not list 'main': this version replicates "
                                        "the main database of the file only, so there would be nothing to replicate");
    }
    char* err = nullptr;
    int rc = sqlite3_exec(x->state->db(), "PRAGMA journal_mode=WAL", nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string m = err ? err : sqlite3_errstr(rc);
        sqlite3_free(err);
        return sql::result_error(c, "repl_start(): cannot switch the database to WAL mode: " + m, rc);
    }
    std::string error;
    auto n = start_node_for(path, cfg, x->api, error);
    if (!n) return sql::result_error(c, "repl_start(): " + error);
    json::object o;
    o["node_name"] = cfg.hostname;
    if (cfg.has_port) o["port"] = cfg.port;
    if (cfg.serve_secure) o["securePort"] = cfg.secure_port;
    o["bind"] = cfg.bind;
    o["database"] = path;
    result_json(c, json::serialize(o));
}

// repl_stop()
void fn_stop(sqlite3_context* c, int, sqlite3_value**) {
    stop_node(ctx_of(c)->state->main_path());
    sqlite3_result_text(c, "stopped", -1, SQLITE_STATIC);
}

std::string operation_arg(sqlite3_context* c, sqlite3_value* v, const char* fn, bool allow_bare) {
    if (sqlite3_value_type(v) != SQLITE_TEXT) {
        sql::result_error(c, std::string(fn) + ": 1st argument must be JSON text");
        return {};
    }
    std::string text = text_arg(v);
    json::value parsed;
    if (std::string e = json::parse_object(text, parsed); !e.empty() && !allow_bare) {
        sql::result_error(c, std::string(fn) + ": " + e);
        return {};
    }
    return text;
}

void run_set_node(sqlite3_context* c, const std::string& body, const char* fn) {
    auto n = node_or_error(c, fn);
    if (!n) return;
    auto reply = n->set_node(body);
    if (!reply) return sql::result_error(c, std::string(fn) + ": " + reply.error().message);
    result_json(c, *reply);
}

void run_remove_node(sqlite3_context* c, const std::string& body, const char* fn) {
    auto n = node_or_error(c, fn);
    if (!n) return;
    auto reply = n->remove_node(body);
    if (!reply) return sql::result_error(c, std::string(fn) + ": " + reply.error().message);
    result_json(c, *reply);
}

// Adds the operation name when the caller left it out, so replies can say "updated".
std::string with_operation(const std::string& body, const char* op) {
    json::value v;
    if (!json::parse_object(body, v).empty()) return body;
    auto& o = v.as_object();
    if (!o.contains("operation")) o["operation"] = op;
    return json::serialize(o);
}

void fn_add_node(sqlite3_context* c, int, sqlite3_value** argv) {
    auto body = operation_arg(c, argv[0], "repl_add_node()", false);
    if (!body.empty()) run_set_node(c, with_operation(body, "add_node"), "repl_add_node()");
}
void fn_set_node(sqlite3_context* c, int, sqlite3_value** argv) {
    auto body = operation_arg(c, argv[0], "repl_set_node()", false);
    if (!body.empty()) run_set_node(c, with_operation(body, "set_node"), "repl_set_node()");
}
void fn_update_node(sqlite3_context* c, int, sqlite3_value** argv) {
    auto body = operation_arg(c, argv[0], "repl_update_node()", false);
    if (!body.empty()) run_set_node(c, with_operation(body, "update_node"), "repl_update_node()");
}
void fn_remove_node(sqlite3_context* c, int, sqlite3_value** argv) {
    auto body = operation_arg(c, argv[0], "repl_remove_node()", true);
    if (!body.empty()) run_remove_node(c, body, "repl_remove_node()");
}

// repl_cluster_status()
void fn_cluster_status(sqlite3_context* c, int, sqlite3_value**) {
    auto* x = ctx_of(c);
    auto n = find_node(x->state->main_path());
    if (!n) {
        // Not running is a state, not an error: report it the way HarperDB does.
        json::object o;
        o["type"] = "cluster-status";
        o["node_name"] = nullptr;
        o["is_enabled"] = false;
        o["connections"] = json::array{};
        return result_json(c, json::serialize(o));
    }
    result_json(c, n->cluster_status_json());
}

// repl_confirm(n, timeout_ms)
void fn_confirm(sqlite3_context* c, int, sqlite3_value** argv) {
    if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER || sqlite3_value_int64(argv[0]) < 0)
        return sql::result_error(c, "repl_confirm(): 1st argument must be the number of nodes to wait for (an integer >= 0)");
    if (sqlite3_value_type(argv[1]) != SQLITE_INTEGER || sqlite3_value_int64(argv[1]) < 0 || sqlite3_value_int64(argv[1]) > 3'600'000)
        return sql::result_error(c, "repl_confirm(): 2nd argument must be a timeout in milliseconds (0 to 3600000)");
    auto n = node_or_error(c, "repl_confirm()");
    if (!n) return;
    auto hlc = ctx_of(c)->state->last_commit_hlc();
    if (hlc == 0) return sql::result_error(c, "repl_confirm(): this connection has not committed a replicated transaction yet");
    int got = n->wait_confirmed(hlc, static_cast<int>(sqlite3_value_int64(argv[0])), std::chrono::milliseconds(sqlite3_value_int64(argv[1])));
    sqlite3_result_int(c, got);
}

// repl_operation(json)
void fn_operation(sqlite3_context* c, int, sqlite3_value** argv) {
    auto body = operation_arg(c, argv[0], "repl_operation()", false);
    if (body.empty()) return;
    json::value v;
    json::parse_object(body, v);
    auto& o = v.as_object();
    std::string op = json::get_string(o, "operation");
    if (op == "add_node" || op == "set_node" || op == "update_node") return run_set_node(c, body, "repl_operation()");
    if (op == "remove_node") return run_remove_node(c, body, "repl_operation()");
    if (op == "cluster_status") return fn_cluster_status(c, 0, nullptr);
    if (op == "search_by_value") {
        std::string db = json::get_string(o, "database"), table = json::get_string(o, "table");
        if (db.empty()) db = json::get_string(o, "schema");
        if (db != "system" || table != "hdb_nodes")
            return sql::result_error(c, "repl_operation(): search_by_value is supported on system.hdb_nodes only, not " + db + "." + table);
        std::string attr = json::get_string(o, "search_attribute");
        auto* sv = o.if_contains("search_value");
        if (attr.empty() || !sv) return sql::result_error(c, "repl_operation(): search_by_value needs search_attribute and search_value");
        auto n = node_or_error(c, "repl_operation()");
        if (!n) return;
        auto all = json::parse_or_null(n->search_nodes_json());
        json::array out;
        if (all.is_array())
            for (auto& row : all.as_array()) {
                auto* field = row.as_object().if_contains(attr);
                bool match = sv->is_string() && sv->as_string() == "*" ? field != nullptr : field && *field == *sv;
                if (match) out.push_back(row);
            }
        return result_json(c, json::serialize(out));
    }
    if (run_security_operation(c, op, argv)) return;
    if (op.empty()) return sql::result_error(c, "repl_operation(): the JSON needs an \"operation\" key");
    sql::result_error(c, "repl_operation(): unknown operation '" + op +
                             "' (supported: add_node, set_node, update_node, remove_node, cluster_status, search_by_value, "
                             "add_certificate, remove_certificate, list_certificates, add_user, drop_user, create_authentication_tokens)");
}

// repl_forward_reads(on): whether this connection's key lookups that find nothing here ask
// the other nodes (sql/node_hooks.hpp); returns the previous setting.
void fn_forward_reads(sqlite3_context* c, int, sqlite3_value** argv) {
    if (sqlite3_value_type(argv[0]) != SQLITE_INTEGER || (sqlite3_value_int64(argv[0]) != 0 && sqlite3_value_int64(argv[0]) != 1))
        return sql::result_error(c, "repl_forward_reads(): the argument must be 1 (forward) or 0 (local reads only)");
    auto* state = ctx_of(c)->state;
    sqlite3_result_int(c, state->forward_reads ? 1 : 0);
    state->forward_reads = sqlite3_value_int64(argv[0]) == 1;
}

// The forwarded-read hook: the node of the table's file answers, if one runs.
sql::forwarded_read forward_through_node(const std::string& path, const std::string& table, const std::string& definition,
                                         const std::string& key_column, const engine::value& key) {
    auto n = find_node(path);
    if (!n) return {};
    return n->forward_read(table, definition, key_column, key);
}

// Starting, stopping and changing the node set change the cluster; repl_confirm waits on
// it (up to an hour); repl_operation can do any of these. repl_cluster_status reads a
// snapshot; repl_forward_reads is this connection's own read setting.
using enum sql::fn_kind;
constexpr sql::function_entry functions[] = {
    sql::sql_function<fn_start>("repl_start", 1, changes_state),
    sql::sql_function<fn_stop>("repl_stop", 0, changes_state),
    sql::sql_function<fn_add_node>("repl_add_node", 1, changes_state),
    sql::sql_function<fn_set_node>("repl_set_node", 1, changes_state),
    sql::sql_function<fn_update_node>("repl_update_node", 1, changes_state),
    sql::sql_function<fn_remove_node>("repl_remove_node", 1, changes_state),
    sql::sql_function<fn_cluster_status>("repl_cluster_status", 0, reads),
    sql::sql_function<fn_confirm>("repl_confirm", 2, changes_state),
    sql::sql_function<fn_forward_reads>("repl_forward_reads", 1, reads),
    sql::sql_function<fn_operation>("repl_operation", 1, changes_state),
};

void free_context(void* p) { delete static_cast<fn_context*>(p); }

} // namespace

int register_cluster_functions(sqlite3* db, sql::connection_state* state, const sqlite3_api_routines* api) {
    sql::read_forward_hook.set(&forward_through_node);
    auto* x = new fn_context{state, api};
    // Shares x; freed with repl_operation below, the last function of this connection's set.
    if (int rc = sql::register_functions(db, security_functions(), x); rc != SQLITE_OK) {
        delete x;
        return rc;
    }
    // From here on the registration owns x: freed with repl_operation at connection close.
    return sql::register_functions(db, functions, x, free_context);
}

} // namespace hdbrepl::ext
