// Stored row placements (see placement_store.hpp).
#include "engine/placement_store.hpp"

#include "engine/bytes.hpp"
#include "engine/stmt_cache.hpp"

namespace hdbrepl::engine {

std::string encode_node_list(const std::vector<std::string>& nodes) {
    bytes b;
    byte_writer w(b);
    w.put_varint(nodes.size());
    for (const auto& n : nodes) w.put_str(n);
    return std::string(b.begin(), b.end());
}

std::optional<std::vector<std::string>> decode_node_list(std::string_view blob) {
    byte_reader r(reinterpret_cast<const std::uint8_t*>(blob.data()), blob.size());
    auto n = r.get_varint();
    if (!r.ok() || n == 0 || n > blob.size()) return std::nullopt;
    std::vector<std::string> out;
    for (std::uint64_t i = 0; i < n; ++i) {
        auto s = r.get_str(1024);
        if (!r.ok() || s.empty()) return std::nullopt;
        out.emplace_back(s);
    }
    if (!r.at_end()) return std::nullopt;
    return out;
}

int placement_store::in_use(bool& out) {
    if (known_ < 0) known_ = sys_.get_meta("placement").has_value() ? 1 : 0;
    out = known_ == 1;
    return SQLITE_OK;
}

int placement_store::ensure() {
    bool have = false;
    in_use(have);
    if (have) return SQLITE_OK;
    std::string err;
    int rc = exec_sql(db_, "CREATE TABLE IF NOT EXISTS " + sys_.table("hdbrepl_placement") +
                               "(tbl TEXT NOT NULL, key BLOB NOT NULL, nodes BLOB NOT NULL, PRIMARY KEY(tbl, key)) WITHOUT ROWID", err);
    if (rc == SQLITE_OK) rc = sys_.set_meta("placement", "1");
    if (rc == SQLITE_OK) known_ = 1;
    return rc;
}

int placement_store::get(const std::string& table, std::string_view key, std::optional<std::vector<std::string>>& out) {
    out.reset();
    bool have = false;
    in_use(have);
    if (!have) return SQLITE_OK;
    cached_stmt s(sys_.cache(), "SELECT nodes FROM " + sys_.table("hdbrepl_placement") + " WHERE tbl=?1 AND key=?2");
    if (!s) return s.prepare_rc();
    sqlite3_bind_text(s.get(), 1, table.data(), static_cast<int>(table.size()), SQLITE_STATIC);
    sqlite3_bind_blob(s.get(), 2, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) {
        const void* b = sqlite3_column_blob(s.get(), 0);
        out = decode_node_list(std::string_view(static_cast<const char*>(b), static_cast<std::size_t>(sqlite3_column_bytes(s.get(), 0))));
        return SQLITE_OK;
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int placement_store::put(const std::string& table, std::string_view key, const std::vector<std::string>& nodes) {
    if (int rc = ensure(); rc != SQLITE_OK) return rc;
    cached_stmt s(sys_.cache(), "INSERT OR REPLACE INTO " + sys_.table("hdbrepl_placement") + " VALUES(?1, ?2, ?3)");
    if (!s) return s.prepare_rc();
    std::string blob = encode_node_list(nodes);
    sqlite3_bind_text(s.get(), 1, table.data(), static_cast<int>(table.size()), SQLITE_STATIC);
    sqlite3_bind_blob(s.get(), 2, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    sqlite3_bind_blob(s.get(), 3, blob.data(), static_cast<int>(blob.size()), SQLITE_STATIC);
    int rc = sqlite3_step(s.get());
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int placement_store::erase(const std::string& table, std::string_view key) {
    bool have = false;
    in_use(have);
    if (!have) return SQLITE_OK;
    cached_stmt s(sys_.cache(), "DELETE FROM " + sys_.table("hdbrepl_placement") + " WHERE tbl=?1 AND key=?2");
    if (!s) return s.prepare_rc();
    sqlite3_bind_text(s.get(), 1, table.data(), static_cast<int>(table.size()), SQLITE_STATIC);
    sqlite3_bind_blob(s.get(), 2, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    int rc = sqlite3_step(s.get());
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

} // namespace hdbrepl::engine
