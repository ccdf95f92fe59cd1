// Prepared-statement cache (see stmt_cache.hpp).
#include "engine/stmt_cache.hpp"

namespace hdbrepl::engine {

sqlite3_stmt* stmt_cache::acquire(const std::string& sql, int& rc) {
    rc = SQLITE_OK;
    auto it = free_.find(sql);
    sqlite3_stmt* s = nullptr;
    if (it != free_.end() && !it->second.empty()) {
        s = it->second.back();
        it->second.pop_back();
    } else {
        rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()) + 1, SQLITE_PREPARE_PERSISTENT, &s, nullptr);
        if (rc != SQLITE_OK) {
            sqlite3_finalize(s);
            return nullptr;
        }
    }
    taken_.emplace(s, sql);
    return s;
}

void stmt_cache::release(sqlite3_stmt* s) {
    auto it = taken_.find(s);
    if (it == taken_.end()) { sqlite3_finalize(s); return; }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    free_[it->second].push_back(s);
    taken_.erase(it);
}

void stmt_cache::clear() {
    for (auto& [sql, v] : free_)
        for (auto* s : v) sqlite3_finalize(s);
    free_.clear();
    // Statements still taken are finalized by their holders' release (they are no longer
    // in taken_, so release finalizes instead of caching).
    taken_.clear();
}

int exec_sql(sqlite3* db, const std::string& sql, std::string& err) {
    char* msg = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &msg);
    if (rc != SQLITE_OK) {
        err = msg ? msg : sqlite3_errstr(rc);
    }
    sqlite3_free(msg);
    return rc;
}

std::string quote_literal(std::string_view s) {
    std::string r = "'";
    for (char c : s) {
        if (c == '\'') r += '\'';
        r += c;
    }
    return r + "'";
}

} // namespace hdbrepl::engine
