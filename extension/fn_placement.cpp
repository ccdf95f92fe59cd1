/*
** Per-transaction placement and confirmations, in the spirit of HarperDB's
** `X-Replicate-To: 2;confirm=1` header and its replicateTo / replicatedConfirmation fields.
**
**   repl_replicate_to(spec [, confirm])  -> the connection's setting as JSON
**       spec: NULL (back to the node's defaults), a count (the writer plus N nodes), or text:
**             '2;confirm=1', 'node-b,node-c;confirm=2;timeout=5000', '["node-b"]',
**             '{"replicateTo": 2, "replicatedConfirmation": 1}'
**   repl_last_commit()                   -> what became of this connection's last commit that
**       replicated: its version, the nodes its placed rows went to, the confirmations asked
**       for and received, and a status ("confirmed", "timed out", ...); NULL before any
**
** The setting holds for every later transaction of the connection until changed. Rows of a
** transaction with a node list go to exactly those nodes (plus this one); with a count, each
** new row goes to this node plus N chosen by rendezvous hashing, and a row that already has
** a placement keeps it (engine/row_placer.hpp). With confirm = N, COMMIT returns only once N
** of the nodes that got the rows confirmed them, or after the timeout (default 10 s). The
** wait happens after SQLite has committed and released the write lock (xCommit), so other
** writers never wait; a COMMIT cannot fail at that point (the transaction is durable here),
** so the outcome is read with repl_last_commit(), or checked with repl_confirm().
*/
#include "extension/fn_placement.hpp"

#include "engine/json.hpp"
#include "extension/runtime.hpp"
#include "sql/node_hooks.hpp"
#include "sql/fn_table.hpp"
#include "sql/sql_error.hpp"

#include <algorithm>
#include <chrono>
#include <optional>

namespace hdbrepl::ext {
namespace {

constexpr int max_count = 1000;
constexpr int max_timeout_ms = 3'600'000;

struct setting {
    engine::placement_request placement;
    int confirm = 0;
    int timeout_ms = 10'000;
};

std::string trim(std::string s) {
    auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (!s.empty() && ws(s.back())) s.pop_back();
    std::size_t i = 0;
    while (i < s.size() && ws(s[i])) ++i;
    return s.substr(i);
}

// A whole non-negative decimal in [0, max], or nullopt.
std::optional<int> small_int(const std::string& s, int max) {
    if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
    int v = std::stoi(s);
    return v <= max ? std::optional<int>(v) : std::nullopt;
}

std::string set_nodes(setting& out, std::vector<std::string> nodes) {
    for (auto& n : nodes) {
        n = trim(n);
        if (n.empty()) return "a node name is empty";
        if (n.size() > 1024) return "a node name is longer than 1024 bytes";
    }
    if (nodes.empty()) return "the node list is empty";
    std::sort(nodes.begin(), nodes.end());
    nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
    out.placement.nodes = std::move(nodes);
    return "";
}

std::string from_json_value(const json::value& v, setting& out) {
    if (v.is_int64() || v.is_uint64()) {
        auto n = v.is_int64() ? v.as_int64() : static_cast<std::int64_t>(std::min<std::uint64_t>(v.as_uint64(), max_count + 1));
        if (n < 0 || n > max_count) return "replicateTo must be a count from 0 to " + std::to_string(max_count) + " or a list of node names";
        out.placement.count = static_cast<int>(n);
        return "";
    }
    if (v.is_array()) {
        std::vector<std::string> nodes;
        for (const auto& e : v.as_array()) {
            if (!e.is_string()) return "the node list must hold node names (strings)";
            nodes.emplace_back(e.as_string());
        }
        return set_nodes(out, std::move(nodes));
    }
    return "replicateTo must be a count from 0 to " + std::to_string(max_count) + " or a list of node names";
}

std::string confirm_from(const json::value& v, setting& out) {
    if (!v.is_int64() || v.as_int64() < 0 || v.as_int64() > max_count) return "the confirmation count must be an integer from 0 to " + std::to_string(max_count);
    out.confirm = static_cast<int>(v.as_int64());
    return "";
}

// Parses the text forms; returns "" or what is wrong.
std::string parse_spec(const std::string& raw, setting& out) {
    const std::string s = trim(raw);
    if (s.empty()) return "the setting is empty (NULL resets it)";
    if (s[0] == '[' || s[0] == '{') {
        json::value v;
        if (std::string e = json::parse(s, v); !e.empty()) return "not valid JSON: " + e;
        if (v.is_array()) return from_json_value(v, out);
        for (const auto& [k, val] : v.as_object()) {
            std::string e;
            if (k == "replicateTo") e = from_json_value(val, out);
            else if (k == "replicatedConfirmation" || k == "confirm") e = confirm_from(val, out);
            else if (k == "timeout_ms") {
                if (!val.is_int64() || val.as_int64() < 0 || val.as_int64() > max_timeout_ms)
                    e = "timeout_ms must be from 0 to " + std::to_string(max_timeout_ms);
                else out.timeout_ms = static_cast<int>(val.as_int64());
            } else e = "unknown key '" + std::string(k) + "' (known: replicateTo, replicatedConfirmation, confirm, timeout_ms)";
            if (!e.empty()) return e;
        }
        return "";
    }
    // Header form: <count | node,node,...>[;confirm=N][;timeout=MS]
    std::vector<std::string> parts;
    for (std::size_t start = 0;;) {
        auto semi = s.find(';', start);
        parts.push_back(trim(s.substr(start, semi == std::string::npos ? std::string::npos : semi - start)));
        if (semi == std::string::npos) break;
        start = semi + 1;
    }
    if (parts[0].empty()) return "the setting starts with a count or node names";
    if (auto n = small_int(parts[0], max_count)) out.placement.count = *n;
    else if (std::all_of(parts[0].begin(), parts[0].end(), [](char c) { return (c >= '0' && c <= '9') || c == '-'; }))
        return "the count must be from 0 to " + std::to_string(max_count);
    else {
        std::vector<std::string> nodes;
        for (std::size_t start = 0;;) {
            auto comma = parts[0].find(',', start);
            nodes.push_back(parts[0].substr(start, comma == std::string::npos ? std::string::npos : comma - start));
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
        if (auto e = set_nodes(out, std::move(nodes)); !e.empty()) return e;
    }
    for (std::size_t i = 1; i < parts.size(); ++i) {
        auto eq = parts[i].find('=');
        std::string k = trim(parts[i].substr(0, eq)), v = eq == std::string::npos ? "" : trim(parts[i].substr(eq + 1));
        if (k == "confirm") {
            auto n = small_int(v, max_count);
            if (!n) return "confirm= needs a count from 0 to " + std::to_string(max_count);
            out.confirm = *n;
        } else if (k == "timeout") {
            auto n = small_int(v, max_timeout_ms);
            if (!n) return "timeout= needs milliseconds from 0 to " + std::to_string(max_timeout_ms);
            out.timeout_ms = *n;
        } else {
            return "unknown part '" + parts[i] + "' (known: confirm=N, timeout=MS)";
        }
    }
    return "";
}

std::string setting_json(const sql::connection_state& st) {
    json::object o;
    if (!st.placement.nodes.empty()) {
        json::array a;
        for (const auto& n : st.placement.nodes) a.emplace_back(n);
        o["replicateTo"] = std::move(a);
    } else if (st.placement.count >= 0) {
        o["replicateTo"] = st.placement.count;
    } else {
        o["replicateTo"] = nullptr; // the node's replicateTo, or every node
    }
    o["confirm"] = st.confirm;
    o["timeout_ms"] = st.confirm_timeout_ms;
    return json::serialize(o);
}

void result_json(sqlite3_context* c, const std::string& j) {
    sqlite3_result_text(c, j.c_str(), static_cast<int>(j.size()), SQLITE_TRANSIENT);
    sqlite3_result_subtype(c, 'J');
}

sql::connection_state* state_of(sqlite3_context* c) { return static_cast<sql::connection_state*>(sqlite3_user_data(c)); }

void fn_replicate_to(sqlite3_context* c, int argc, sqlite3_value** argv) {
    auto* st = state_of(c);
    setting s;
    const int type = sqlite3_value_type(argv[0]);
    if (type == SQLITE_INTEGER) {
        auto n = sqlite3_value_int64(argv[0]);
        if (n < 0 || n > max_count)
            return sql::result_error(c, "repl_replicate_to(): the count must be from 0 to " + std::to_string(max_count));
        s.placement.count = static_cast<int>(n);
    } else if (type == SQLITE_TEXT) {
        auto* t = sqlite3_value_text(argv[0]);
        std::string text(reinterpret_cast<const char*>(t), static_cast<std::size_t>(sqlite3_value_bytes(argv[0])));
        if (auto e = parse_spec(text, s); !e.empty()) return sql::result_error(c, "repl_replicate_to(): " + e);
    } else if (type != SQLITE_NULL) {
        return sql::result_error(c, "repl_replicate_to(): the 1st argument must be a count, a text setting such as '2;confirm=1' "
                                    "or 'node-b,node-c', a JSON list of node names, or NULL to reset");
    }
    if (argc > 1) {
        if (sqlite3_value_type(argv[1]) != SQLITE_INTEGER || sqlite3_value_int64(argv[1]) < 0 || sqlite3_value_int64(argv[1]) > max_count)
            return sql::result_error(c, "repl_replicate_to(): the 2nd argument must be the number of confirmations (0 to " +
                                            std::to_string(max_count) + ")");
        s.confirm = static_cast<int>(sqlite3_value_int64(argv[1]));
    }
    if (sqlite3_get_autocommit(sqlite3_context_db_handle(c)) == 0 && !st->pending().empty())
        return sql::result_error(c, "repl_replicate_to(): this transaction has already written rows; change the setting "
                                    "between transactions");
    st->placement = std::move(s.placement);
    st->confirm = s.confirm;
    st->confirm_timeout_ms = s.timeout_ms;
    result_json(c, setting_json(*st));
}

void fn_last_commit(sqlite3_context* c, int, sqlite3_value**) {
    const auto& lc = state_of(c)->last_commit();
    if (lc.hlc == 0) return sqlite3_result_null(c);
    json::object o;
    o["version"] = static_cast<std::int64_t>(lc.hlc);
    if (lc.placed) {
        json::array a;
        for (const auto& n : lc.placed_on) a.emplace_back(n);
        o["placedOn"] = std::move(a);
    } else {
        o["placedOn"] = nullptr; // wherever its tables replicate
    }
    o["confirmationsWanted"] = lc.wanted;
    if (lc.confirmed >= 0) o["confirmed"] = lc.confirmed;
    else o["confirmed"] = nullptr;
    o["status"] = lc.status;
    result_json(c, json::serialize(o));
}

// The hook a COMMIT with confirmations waits through: the node of the file, if one runs.
int confirm_through_node(const std::string& path, engine::hlc_t hlc, int n, const std::set<std::string>& only, int timeout_ms) {
    auto node = find_node(path);
    if (!node) return -1;
    return node->wait_confirmed(hlc, n, std::chrono::milliseconds(timeout_ms), only);
}

// repl_replicate_to sets where this connection's rows go and how long each COMMIT waits
// for the cluster: a view or trigger must not redirect rows to other nodes or make commits
// block, so it is direct-only. repl_last_commit reads this connection's last outcome.
using enum sql::fn_kind;
constexpr sql::function_entry functions[] = {
    sql::sql_function<fn_replicate_to>("repl_replicate_to", 1, changes_state),
    sql::sql_function<fn_replicate_to>("repl_replicate_to", 2, changes_state),
    sql::sql_function<fn_last_commit>("repl_last_commit", 0, reads),
};

} // namespace

int register_placement_functions(sqlite3* db, sql::connection_state* state) {
    sql::confirm_hook.set(&confirm_through_node);
    return sql::register_functions(db, functions, state);
}

} // namespace hdbrepl::ext
