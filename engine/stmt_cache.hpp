// Prepared-statement cache and small helpers for running SQL on a connection the caller
// owns. Statements are prepared once with SQLITE_PREPARE_PERSISTENT and reused; a statement
// taken from the cache is exclusively the taker's until released (so a self-join can hold
// two cursors over the same SQL).
// Thread: the thread that owns the connection (SQLite serialises per connection anyway).
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/sqlite_api.hpp"

namespace hdbrepl::engine {

class stmt_cache {
public:
    explicit stmt_cache(sqlite3* db) : db_(db) {}
    ~stmt_cache() { clear(); }
    stmt_cache(const stmt_cache&) = delete;
    stmt_cache& operator=(const stmt_cache&) = delete;

    // Returns a reset statement for `sql`, or nullptr with `rc` set (message in sqlite3_errmsg).
    sqlite3_stmt* acquire(const std::string& sql, int& rc);
    // Resets, clears bindings and returns the statement to the cache.
    void release(sqlite3_stmt* s);
    // Finalizes every cached statement (before DROP/RENAME of the tables they name).
    void clear();
    sqlite3* db() const { return db_; }

private:
    sqlite3* db_;
    std::unordered_map<std::string, std::vector<sqlite3_stmt*>> free_;
    std::unordered_map<sqlite3_stmt*, std::string> taken_;
};

// Holds a statement from a cache for one scope.
class cached_stmt {
public:
    cached_stmt(stmt_cache& c, const std::string& sql) : cache_(&c) { s_ = c.acquire(sql, rc_); }
    ~cached_stmt() { if (s_) cache_->release(s_); }
    cached_stmt(const cached_stmt&) = delete;
    cached_stmt& operator=(const cached_stmt&) = delete;
    sqlite3_stmt* get() const { return s_; }
    explicit operator bool() const { return s_ != nullptr; }
    int prepare_rc() const { return rc_; }
private:
    stmt_cache* cache_;
    sqlite3_stmt* s_ = nullptr;
    int rc_ = SQLITE_OK;
};

// Runs SQL text with no results (may hold several statements). On error `err` gets
// SQLite's message.
int exec_sql(sqlite3* db, const std::string& sql, std::string& err);

// sqlite3_mprintf-style quoting of a string literal ('it''s').
std::string quote_literal(std::string_view s);

} // namespace hdbrepl::engine
