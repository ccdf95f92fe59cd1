/*
** SQL functions of the storage layer.
**
**   repl_version()                    -> '0.1.0'
**   repl_node_name([schema])          -> this database's node name
**   repl_config(key [, value])        -> the setting's value (after setting it)
**        keys: tombstone_retention_ms (default 604800000 = 7 days),
**              max_clock_skew_ms (default 60000)
**   repl_prune_tombstones([schema])   -> number of tombstones removed (older than retention)
**   repl_apply(record [, schema])     -> JSON {"applied":n,"skipped":n,"logged":bool}:
**                                        applies a change record from another node
**   repl_record_json(record)          -> the record decoded as JSON (for inspection)
**
** Functions that change state are SQLITE_DIRECTONLY: a view or trigger in a database from
** an untrusted source cannot call them. Pure ones are DETERMINISTIC | INNOCUOUS. The flags
** come from each entry's kind (sql/fn_table.hpp), which also guards every callback.
*/
#include "sql/functions.hpp"

#include "engine/apply.hpp"
#include "engine/json.hpp"
#include "engine/row_store.hpp"
#include "engine/txn_record.hpp"
#include "sql/fn_table.hpp"
#include "sql/sql_error.hpp"

#include <charconv>
#include <cstdio>

namespace hdbrepl::sql {
namespace {

using namespace hdbrepl::engine;

connection_state* state_of(sqlite3_context* ctx) { return static_cast<connection_state*>(sqlite3_user_data(ctx)); }

// Runs a function body that uses the connection's cached statements, then (also when it
// throws) lets the state drop them if no table holds the connection open (see
// connection_state).
template <class F> auto with_state(sqlite3_context* ctx, F&& body) {
    struct release {
        connection_state* st;
        ~release() { st->release_statements_if_idle(); }
    } r{state_of(ctx)};
    return body();
}

std::string text_arg(sqlite3_value* v) {
    auto* t = sqlite3_value_text(v);
    return t ? std::string(reinterpret_cast<const char*>(t), static_cast<std::size_t>(sqlite3_value_bytes(v))) : std::string();
}

std::string schema_arg(int argc, sqlite3_value** argv, int i) {
    return argc > i && sqlite3_value_type(argv[i]) != SQLITE_NULL ? text_arg(argv[i]) : std::string("main");
}

// Whether `schema` is a database of this connection (main, temp or an attached one).
bool schema_exists(sqlite3* db, const std::string& schema) {
    sqlite3_stmt* s = nullptr;
    bool found = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_database_list WHERE name = ?1", -1, &s, nullptr) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, schema.c_str(), -1, SQLITE_STATIC);
        found = sqlite3_step(s) == SQLITE_ROW;
    }
    sqlite3_finalize(s);
    return found;
}

struct setting {
    const char* key;
    std::int64_t default_value;
    std::int64_t min, max;
};
constexpr setting settings[] = {
    {"tombstone_retention_ms", 7LL * 24 * 3600 * 1000, 0, INT64_MAX / 2},
    {"max_clock_skew_ms", 60'000, 0, 24LL * 3600 * 1000},
};

const setting* find_setting(const std::string& key) {
    for (const auto& s : settings)
        if (key == s.key) return &s;
    return nullptr;
}

std::string known_settings() {
    std::string r;
    for (const auto& s : settings) r += (r.empty() ? "" : ", ") + std::string(s.key);
    return r;
}

void json_escape(std::string& out, std::string_view s) { out += json::quoted(s); }

void json_value(std::string& out, const value& v) {
    switch (v.type) {
    case value_type::null: out += "null"; break;
    case value_type::integer: out += std::to_string(v.i); break;
    case value_type::real: { char b[32]; std::snprintf(b, sizeof b, "%.17g", v.r); out += b; break; }
    case value_type::text: json_escape(out, v.s); break;
    case value_type::blob: {
        static const char* hex = "0123456789abcdef";
        std::string h = "x'";
        for (unsigned char c : v.s) { h += hex[c >> 4]; h += hex[c & 15]; }
        json_escape(out, h + "'");
        break;
    }
    }
}

// repl_version()
void fn_version(sqlite3_context* ctx, int, sqlite3_value**) { sqlite3_result_text(ctx, "0.1.0", -1, SQLITE_STATIC); }

// repl_node_name([schema])
void fn_node_name(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
    with_state(ctx, [&] {
        std::string schema = schema_arg(argc, argv, 0);
        auto* st = state_of(ctx);
        if (!schema_exists(st->db(), schema)) return result_error(ctx, "repl_node_name(): no database named '" + schema + "'");
        if (!system_tables_exist(st->db(), schema)) {
            std::string err;
            if (int rc = ensure_system_tables(st->db(), schema, err); rc != SQLITE_OK)
                return result_error(ctx, "repl_node_name(): " + err, rc);
        }
        std::string name = st->system(schema).node_name();
        sqlite3_result_text(ctx, name.c_str(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
    });
}

// repl_config(key [, value])
void fn_config(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
    with_state(ctx, [&] {
        if (sqlite3_value_type(argv[0]) != SQLITE_TEXT) return result_error(ctx, "repl_config(): 1st argument must be a setting name (" + known_settings() + ")");
        std::string key = text_arg(argv[0]);
        auto* st = state_of(ctx);
        if (key == "test_clock_ms" && argc == 2) { // virtual time for tests: 0 returns to the wall clock
            if (sqlite3_value_type(argv[1]) != SQLITE_INTEGER || sqlite3_value_int64(argv[1]) < 0 ||
                sqlite3_value_int64(argv[1]) >= (1LL << 47))
                return result_error(ctx, "repl_config(): test_clock_ms takes milliseconds since 1970 as an integer (0 = the wall clock)");
            st->set_test_clock(static_cast<std::uint64_t>(sqlite3_value_int64(argv[1])));
            sqlite3_result_int64(ctx, sqlite3_value_int64(argv[1]));
            return;
        }
        const setting* s = find_setting(key);
        if (!s) return result_error(ctx, "repl_config(): unknown setting '" + key + "' (known: " + known_settings() + ")");
        std::string err;
        auto& sys = st->system("main");
        if (argc == 2) {
            if (sqlite3_value_type(argv[1]) != SQLITE_INTEGER)
                return result_error(ctx, "repl_config(): 2nd argument must be an integer number of milliseconds for '" + key + "'");
            auto v = sqlite3_value_int64(argv[1]);
            if (v < s->min || v > s->max)
                return result_error(ctx, "repl_config(): " + key + " must be between " + std::to_string(s->min) + " and " + std::to_string(s->max));
            if (int rc = ensure_system_tables(st->db(), "main", err); rc != SQLITE_OK) return result_error(ctx, "repl_config(): " + err, rc);
            if (int rc = sys.set_meta(key, std::to_string(v)); rc != SQLITE_OK)
                return result_error(ctx, std::string("repl_config(): ") + sqlite3_errmsg(st->db()), rc);
            sqlite3_result_int64(ctx, v);
            return;
        }
        std::int64_t v = s->default_value;
        if (system_tables_exist(st->db(), "main"))
            if (auto stored = sys.get_meta(key)) v = std::stoll(*stored);
        sqlite3_result_int64(ctx, v);
    });
}

// repl_prune_tombstones([schema])
void fn_prune(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
    with_state(ctx, [&] {
        std::string schema = schema_arg(argc, argv, 0);
        auto* st = state_of(ctx);
        if (!schema_exists(st->db(), schema)) return result_error(ctx, "repl_prune_tombstones(): no database named '" + schema + "'");
        std::int64_t removed = 0;
        std::string err;
        int rc = st->prune_tombstones(schema, removed, err);
        if (rc != SQLITE_OK) return result_error(ctx, "repl_prune_tombstones(): " + err, rc);
        sqlite3_result_int64(ctx, removed);
    });
}

// repl_apply(record [, schema])
void fn_apply(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
    with_state(ctx, [&] {
        if (sqlite3_value_type(argv[0]) != SQLITE_BLOB)
            return result_error(ctx, "repl_apply(): 1st argument must be a change record (a BLOB from hdbrepl_log.body)");
        auto* st = state_of(ctx);
        std::string schema = schema_arg(argc, argv, 1);
        if (!schema_exists(st->db(), schema)) return result_error(ctx, "repl_apply(): no database named '" + schema + "'");
        applier a(st->db(), schema);
        apply_options opt;
        opt.now_ms = st->now_ms();
        if (auto skew = a.system().get_meta("max_clock_skew_ms")) opt.max_clock_skew_ms = std::stoull(*skew);
        auto* body = static_cast<const std::uint8_t*>(sqlite3_value_blob(argv[0]));
        auto res = a.apply(body, static_cast<std::size_t>(sqlite3_value_bytes(argv[0])), opt);
        // A bad record is a bad argument: SQLITE_CORRUPT would make SQLite treat the
        // caller's own database as damaged and roll back the caller's transaction.
        if (res.rc != SQLITE_OK) return result_error(ctx, "repl_apply(): " + res.error, res.rc == SQLITE_CORRUPT ? SQLITE_ERROR : res.rc);
        std::string json = "{\"applied\":" + std::to_string(res.rows_applied) + ",\"skipped\":" + std::to_string(res.rows_skipped) +
                           ",\"logged\":" + (res.logged ? "true" : "false") + "}";
        sqlite3_result_text(ctx, json.c_str(), static_cast<int>(json.size()), SQLITE_TRANSIENT);
    });
}

// repl_record_json(record)
void fn_record_json(sqlite3_context* ctx, int, sqlite3_value** argv) {
    [&] {
        if (sqlite3_value_type(argv[0]) != SQLITE_BLOB) return result_error(ctx, "repl_record_json(): 1st argument must be a change record BLOB");
        std::string err;
        auto rec = decode_record(static_cast<const std::uint8_t*>(sqlite3_value_blob(argv[0])),
                                 static_cast<std::size_t>(sqlite3_value_bytes(argv[0])), err);
        if (!rec) return result_error(ctx, "repl_record_json(): " + err);
        static const char* ops[] = {"?", "put", "delete", "create", "drop", "rename"};
        std::string j = "{\"hlc\":" + std::to_string(rec->hlc) + ",\"time\":";
        json_escape(j, hlc_to_string(rec->hlc));
        j += ",\"origin\":";
        json_escape(j, rec->origin);
        j += ",\"changes\":[";
        for (std::size_t i = 0; i < rec->changes.size(); ++i) {
            const auto& c = rec->changes[i];
            j += i ? ",{\"table\":" : "{\"table\":";
            json_escape(j, rec->tables[c.table].name);
            j += ",\"op\":";
            json_escape(j, ops[static_cast<int>(c.op)]);
            if (c.op == change_op::create_table) { j += ",\"definition\":"; json_escape(j, rec->tables[c.table].definition); }
            if (!c.values.empty()) {
                j += c.op == change_op::put ? ",\"row\":[" : c.op == change_op::del ? ",\"key\":[" : ",\"to\":[";
                for (std::size_t k = 0; k < c.values.size(); ++k) {
                    if (k) j += ",";
                    json_value(j, c.values[k]);
                }
                j += "]";
            }
            if (c.placement >= 0) { // the nodes this row lives on (placed records)
                j += ",\"nodes\":[";
                const auto& nodes = rec->placements[static_cast<std::size_t>(c.placement)];
                for (std::size_t k = 0; k < nodes.size(); ++k) {
                    if (k) j += ",";
                    json_escape(j, nodes[k]);
                }
                j += "]";
            }
            j += "}";
        }
        j += "]}";
        sqlite3_result_text(ctx, j.c_str(), static_cast<int>(j.size()), SQLITE_TRANSIENT);
    }();
}

// Everything that writes (repl_config's setter shares the name with its reader, so both
// forms are direct-only) changes state. repl_node_name creates hdbrepl's tables (and the
// node's name) on a database without them, so it is a reader that is not innocuous.
using enum fn_kind;
constexpr function_entry functions[] = {
    sql_function<fn_version>("repl_version", 0, pure),
    sql_function<fn_node_name>("repl_node_name", 0, reads),
    sql_function<fn_node_name>("repl_node_name", 1, reads),
    sql_function<fn_config>("repl_config", 1, changes_state),
    sql_function<fn_config>("repl_config", 2, changes_state),
    sql_function<fn_prune>("repl_prune_tombstones", 0, changes_state),
    sql_function<fn_prune>("repl_prune_tombstones", 1, changes_state),
    sql_function<fn_apply>("repl_apply", 1, changes_state),
    sql_function<fn_apply>("repl_apply", 2, changes_state),
    sql_function<fn_record_json>("repl_record_json", 1, pure),
};

// Every repl_* function of the extension, including the cluster functions registered by
// extension/fn_cluster.cpp and extension/fn_security.cpp (the [sql] tests compare this with pragma_function_list).
const char* const function_names[] = {
    "repl_add_certificate",
    "repl_add_node",
    "repl_add_user",
    "repl_apply",
    "repl_cluster_status",
    "repl_config",
    "repl_confirm",
    "repl_forward_reads",
    "repl_last_commit",
    "repl_create_authentication_tokens",
    "repl_drop_user",
    "repl_list_certificates",
    "repl_node_name",
    "repl_operation",
    "repl_prune_tombstones",
    "repl_record_json",
    "repl_remove_certificate",
    "repl_remove_node",
    "repl_replicate_to",
    "repl_set_node",
    "repl_start",
    "repl_stop",
    "repl_update_node",
    "repl_version",
    nullptr};

} // namespace

int register_basic_functions(sqlite3* db, connection_state* state) { return register_functions(db, functions, state); }

const char* const* registered_function_names() { return function_names; }

} // namespace hdbrepl::sql
