// hdbrepl's own replicated tables (see system_tables.hpp).
#include "engine/system_tables.hpp"

#include "engine/apply.hpp"
#include "engine/stmt_cache.hpp"
#include "engine/table_def.hpp"

#include <cctype>
#include <functional>

namespace hdbrepl::engine {

namespace {
struct system_table {
    const char* name;
    const char* columns;
};
constexpr system_table tables[] = {
    {"hdbrepl_users", "username TEXT PRIMARY KEY, role TEXT, password_hash TEXT"},
    {"hdbrepl_members", "name TEXT PRIMARY KEY, url TEXT, shard INTEGER, ca TEXT"},
    {"hdbrepl_removals", "name TEXT PRIMARY KEY, removed_by TEXT"},
};
thread_local bool tl_creating = false;
} // namespace

bool is_reserved_table_name(std::string_view name) {
    static constexpr std::string_view prefix = "hdbrepl_";
    if (name.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(name[i])) != prefix[i]) return false;
    return true;
}

bool creating_system_tables() { return tl_creating; }

bool is_system_table(std::string_view name) {
    for (const auto& t : tables)
        if (name == t.name) return true;
    return false;
}

bool is_system_table_definition(std::string_view name, const std::string& canonical_columns) {
    for (const auto& t : tables) {
        if (name != t.name) continue;
        std::string err;
        std::vector<std::string> args;
        std::string_view rest = t.columns;
        while (!rest.empty()) {
            auto comma = rest.find(", ");
            args.emplace_back(rest.substr(0, comma));
            rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 2);
        }
        auto def = parse_table_def(args, err);
        return def && def->canonical() == canonical_columns;
    }
    return false;
}

int ensure_system_replicated_tables(sqlite3* db, const std::string& schema, std::string& err) {
    remote_ddl_scope unlogged({1, ""}); // created everywhere alike: not a change to replicate
    struct creating {
        bool prev = tl_creating;
        creating() { tl_creating = true; }
        ~creating() { tl_creating = prev; }
    } scope;
    for (const auto& t : tables) {
        int rc = exec_sql(db, "CREATE VIRTUAL TABLE IF NOT EXISTS " + quote_ident(schema) + "." + t.name + " USING hdbrepl(" + t.columns + ")", err);
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

namespace {
struct stmt_guard {
    sqlite3_stmt* s = nullptr;
    ~stmt_guard() { sqlite3_finalize(s); }
};
std::string text(sqlite3_stmt* s, int i) {
    auto* t = sqlite3_column_text(s, i);
    return t ? std::string(reinterpret_cast<const char*>(t), static_cast<std::size_t>(sqlite3_column_bytes(s, i))) : std::string();
}
int run(sqlite3* db, const std::string& sql, const std::vector<std::string>& args, const std::function<void(sqlite3_stmt*)>& row = {}) {
    stmt_guard g;
    int rc = sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &g.s, nullptr);
    if (rc != SQLITE_OK) return rc;
    for (std::size_t i = 0; i < args.size(); ++i)
        sqlite3_bind_text(g.s, static_cast<int>(i + 1), args[i].data(), static_cast<int>(args[i].size()), SQLITE_STATIC);
    while ((rc = sqlite3_step(g.s)) == SQLITE_ROW)
        if (row) row(g.s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}
} // namespace

int load_members(sqlite3* db, const std::string& schema, std::vector<member_row>& out) {
    return run(db, "SELECT name, url, coalesce(shard, -1), coalesce(ca, '') FROM " + quote_ident(schema) + ".hdbrepl_members ORDER BY name", {},
               [&](sqlite3_stmt* s) { out.push_back({text(s, 0), text(s, 1), text(s, 3), sqlite3_column_int(s, 2)}); });
}

int put_member(sqlite3* db, const std::string& schema, const member_row& m) {
    return run(db, "INSERT OR REPLACE INTO " + quote_ident(schema) + ".hdbrepl_members(name, url, shard, ca) VALUES(?1, ?2, nullif(?3, '-1'), nullif(?4, ''))",
               {m.name, m.url, std::to_string(m.shard), m.ca});
}

int load_removals(sqlite3* db, const std::string& schema, std::set<std::string>& out) {
    return run(db, "SELECT name FROM " + quote_ident(schema) + ".hdbrepl_removals", {}, [&](sqlite3_stmt* s) { out.insert(text(s, 0)); });
}

int put_removal(sqlite3* db, const std::string& schema, const std::string& name, const std::string& removed_by) {
    return run(db, "INSERT OR REPLACE INTO " + quote_ident(schema) + ".hdbrepl_removals(name, removed_by) VALUES(?1, ?2)", {name, removed_by});
}

int clear_removal(sqlite3* db, const std::string& schema, const std::string& name) {
    bool present = false;
    int rc = run(db, "SELECT 1 FROM " + quote_ident(schema) + ".hdbrepl_removals WHERE name = ?1", {name}, [&](sqlite3_stmt*) { present = true; });
    if (rc != SQLITE_OK || !present) return rc;
    return run(db, "DELETE FROM " + quote_ident(schema) + ".hdbrepl_removals WHERE name = ?1", {name});
}

} // namespace hdbrepl::engine
