// Stored row placements (see placement_store.hpp).
#include "engine/placement_store.hpp"

#include "engine/placement.hpp"
#include "engine/row_store.hpp"
#include "engine/stmt_cache.hpp"

#include <map>

namespace hdbrepl::engine {

std::string encode_node_list(const std::vector<std::string>& nodes) {
    static const char* hex = "0123456789abcdef";
    std::string out = "[";
    for (const auto& n : nodes) {
        if (out.size() > 1) out += ',';
        out += '"';
        for (unsigned char c : n) {
            if (c == '"' || c == '\\') {
                out += '\\';
                out += static_cast<char>(c);
            } else if (c < 0x20) {
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 15];
            } else {
                out += static_cast<char>(c);
            }
        }
        out += '"';
    }
    return out + "]";
}

std::optional<std::vector<std::string>> decode_node_list(std::string_view json) {
    auto r = parse_residency(json, false, 0);
    auto* nodes = std::get_if<residency_nodes>(&r);
    if (!nodes) return std::nullopt;
    for (const auto& n : *nodes)
        if (n.empty()) return std::nullopt;
    return std::move(*nodes);
}

namespace {
bool have_table(sqlite3* db, const std::string& schema) {
    sqlite3_stmt* s = nullptr;
    const std::string sql = "SELECT 1 FROM " + quote_ident(schema) + ".sqlite_schema WHERE type='table' AND name='hdbrepl_placement'";
    bool found = sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return found;
}
} // namespace

int forget_placements(sqlite3* db, const std::string& schema, const std::string& table, std::string& err) {
    if (!have_table(db, schema)) return SQLITE_OK;
    return exec_sql(db, "DELETE FROM " + quote_ident(schema) + ".hdbrepl_placement WHERE tbl = " + quote_literal(table), err);
}

int rename_placements(sqlite3* db, const std::string& schema, const std::string& from, const std::string& to, std::string& err) {
    if (!have_table(db, schema)) return SQLITE_OK;
    return exec_sql(db, "UPDATE " + quote_ident(schema) + ".hdbrepl_placement SET tbl = " + quote_literal(to) + " WHERE tbl = " + quote_literal(from),
                    err);
}

int placement_store::in_use(bool& out) {
    if (known_ < 0) known_ = sys_.get_meta("placement").has_value() ? 1 : 0;
    out = known_ == 1;
    return SQLITE_OK;
}

int placement_store::ensure() {
    // A look at sqlite_schema first: connections call this at the first write of every
    // transaction that asked for placement, and the table nearly always exists.
    if (table_known_ || have_table(db_, sys_.schema())) {
        table_known_ = true;
        return SQLITE_OK;
    }
    std::string err;
    int rc = exec_sql(db_, "CREATE TABLE IF NOT EXISTS " + sys_.table("hdbrepl_placement") +
                               "(tbl TEXT NOT NULL, key NOT NULL, nodes TEXT NOT NULL, PRIMARY KEY(tbl, key)) WITHOUT ROWID", err);
    if (rc == SQLITE_OK) table_known_ = true;
    return rc;
}

int placement_store::clear_stale_flag() {
    // The flag says placements exist, not that the table does: a fully replicated database
    // (the table made at node start, never used) must not pay a lookup per written row.
    // Databases whose flag was set with the table (before this distinction) lose it here
    // while the table is empty.
    std::string err;
    int rc = exec_sql(db_, "DELETE FROM " + sys_.table("hdbrepl_meta") + " WHERE key = 'placement' AND NOT EXISTS (SELECT 1 FROM " +
                               sys_.table("hdbrepl_placement") + ")", err);
    known_ = -1; // read the flag again
    return rc;
}

namespace {
// The statements on hdbrepl_placement, their text built once per schema name and thread
// (each row of a placed transaction runs one: string building was ~1,200 instructions).
struct placement_sql {
    std::string get, put, erase;
};

const placement_sql& sql_for(const system_store& sys) {
    static thread_local std::map<std::string, placement_sql> by_schema;
    auto [it, fresh] = by_schema.try_emplace(sys.schema());
    if (fresh) {
        const std::string t = sys.table("hdbrepl_placement");
        it->second = {"SELECT nodes FROM " + t + " WHERE tbl=?1 AND key=?2", "INSERT OR REPLACE INTO " + t + " VALUES(?1, ?2, ?3)",
                      "DELETE FROM " + t + " WHERE tbl=?1 AND key=?2"};
    }
    return it->second;
}

// Binds a row's identity, (table, key), as ?1 and ?2 of every statement above.
void bind_row(sqlite3_stmt* s, const std::string& table, const value& key) {
    sqlite3_bind_text(s, 1, table.data(), static_cast<int>(table.size()), SQLITE_STATIC);
    bind_arg(s, 2, key);
}

int step_write(sqlite3_stmt* s) {
    int rc = sqlite3_step(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}
} // namespace

int placement_store::get(const std::string& table, const value& key, std::optional<std::vector<std::string>>& out) {
    out.reset();
    bool have = false;
    in_use(have);
    if (!have) return SQLITE_OK;
    cached_stmt s(sys_.cache(), sql_for(sys_).get);
    if (!s) return s.prepare_rc();
    bind_row(s.get(), table, key);
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) {
        const auto* t = sqlite3_column_text(s.get(), 0);
        out = decode_node_list(std::string_view(reinterpret_cast<const char*>(t), static_cast<std::size_t>(sqlite3_column_bytes(s.get(), 0))));
        return SQLITE_OK;
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int placement_store::put(const std::string& table, const value& key, const std::vector<std::string>& nodes) {
    bool have = false;
    in_use(have);
    if (!have) { // the first placement of this schema: the flag (and the table, normally made already)
        if (int rc = ensure(); rc != SQLITE_OK) return rc;
        if (int rc = sys_.set_meta("placement", "1"); rc != SQLITE_OK) return rc;
        known_ = 1;
    }
    cached_stmt s(sys_.cache(), sql_for(sys_).put);
    if (!s) return s.prepare_rc();
    const std::string list = encode_node_list(nodes);
    bind_row(s.get(), table, key);
    sqlite3_bind_text(s.get(), 3, list.data(), static_cast<int>(list.size()), SQLITE_STATIC);
    return step_write(s.get());
}

int placement_store::erase(const std::string& table, const value& key) {
    bool have = false;
    in_use(have);
    if (!have) return SQLITE_OK;
    cached_stmt s(sys_.cache(), sql_for(sys_).erase);
    if (!s) return s.prepare_rc();
    bind_row(s.get(), table, key);
    return step_write(s.get());
}

} // namespace hdbrepl::engine
