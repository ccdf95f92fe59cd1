// Storage of one replicated table in its shadow tables:
//
//   <table>_data   the live rows: the declared columns plus hdbrepl_v (the HLC of the
//                  transaction that wrote the row) and hdbrepl_o (its origin's interned id).
//                  An INTEGER key is the rowid (as in a plain SQLite table); any other key
//                  type makes it a WITHOUT ROWID table on that key. INDEXED columns get
//                  ordinary indexes, named <table>_i<column>_<random> so renames keep them.
//   <table>_tomb   tombstones: key, hdbrepl_v, hdbrepl_o of deleted rows, kept for the
//                  retention period so a stale change cannot bring a row back.
//
// Invariant: when a live row exists, its version is newer than any tombstone of its key
// (local writes always take a fresh HLC, and applied changes win only when newer), so a
// key's current version is its live row's, else its tombstone's.
// Thread: the thread that owns the connection.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "engine/hlc.hpp"
#include "engine/stmt_cache.hpp"
#include "engine/table_def.hpp"
#include "engine/value.hpp"

namespace hdbrepl::engine {

inline int bind_arg(sqlite3_stmt* s, int i, sqlite3_value* v) { return sqlite3_bind_value(s, i, v); }
int bind_arg(sqlite3_stmt* s, int i, const value& v);
// Reads a result column into a value.
value column_value(sqlite3_stmt* s, int i);

class row_store {
public:
    row_store(sqlite3* db, std::string schema, std::string name, table_def def);

    static int create_shadows(sqlite3* db, const std::string& schema, const std::string& name, const table_def& def, std::string& err);
    static int drop_shadows(sqlite3* db, const std::string& schema, const std::string& name, std::string& err);
    static int rename_shadows(sqlite3* db, const std::string& schema, const std::string& from, const std::string& to, std::string& err);
    // Shadow-table suffixes, for xShadowName.
    static bool is_shadow_suffix(const char* suffix);

    // After a rename: drops cached statements and uses the new shadow names.
    void renamed(std::string new_name);

    const table_def& def() const { return def_; }
    const std::string& name() const { return name_; }
    const std::string& schema() const { return schema_; }
    std::string data_table() const;  // "schema"."name_data"
    std::string tomb_table() const;
    stmt_cache& cache() { return cache_; }
    sqlite3* db() const { return cache_.db(); }

    struct stored_version {
        hlc_t hlc = 0;
        std::int64_t origin = 0;
        bool live = false;
    };

    // The current version of a key: its live row's, else its tombstone's.
    template <class V> int find(const V& key, std::optional<stored_version>& out);
    // Inserts a row (values in declared column order). Without `replace`, an existing key
    // gives SQLITE_CONSTRAINT and changes nothing.
    template <class V> int insert_row(const V* values, hlc_t hlc, std::int64_t origin, bool replace);
    // Rewrites the row with key `key` (values include the same key).
    template <class K, class V> int update_row(const K& key, const V* values, hlc_t hlc, std::int64_t origin);
    // Deletes the live row (if any) and records a tombstone at (hlc, origin).
    template <class K> int delete_row(const K& key, hlc_t hlc, std::int64_t origin);
    // Deletes tombstones older than `before`.
    int prune_tombstones(hlc_t before, std::int64_t& removed);

private:
    int step_done(sqlite3_stmt* s);
    std::string sql_insert(bool replace) const;
    std::string sql_update() const;

    std::string schema_, name_;
    table_def def_;
    stmt_cache cache_;
    std::string find_live_sql_, find_tomb_sql_, insert_sql_, replace_sql_, update_sql_, delete_sql_, tomb_sql_;
    void build_sql();
};

template <class V> int row_store::find(const V& key, std::optional<stored_version>& out) {
    out.reset();
    for (int pass = 0; pass < 2; ++pass) {
        cached_stmt s(cache_, pass == 0 ? find_live_sql_ : find_tomb_sql_);
        if (!s) return s.prepare_rc();
        bind_arg(s.get(), 1, key);
        int rc = sqlite3_step(s.get());
        if (rc == SQLITE_ROW) {
            out = stored_version{static_cast<hlc_t>(sqlite3_column_int64(s.get(), 0)), sqlite3_column_int64(s.get(), 1), pass == 0};
            return SQLITE_OK;
        }
        if (rc != SQLITE_DONE) return rc;
    }
    return SQLITE_OK;
}

template <class V> int row_store::insert_row(const V* values, hlc_t hlc, std::int64_t origin, bool replace) {
    cached_stmt s(cache_, replace ? replace_sql_ : insert_sql_);
    if (!s) return s.prepare_rc();
    int n = static_cast<int>(def_.columns.size());
    for (int i = 0; i < n; ++i) bind_arg(s.get(), i + 1, values[i]);
    sqlite3_bind_int64(s.get(), n + 1, static_cast<sqlite3_int64>(hlc));
    sqlite3_bind_int64(s.get(), n + 2, origin);
    return step_done(s.get());
}

template <class K, class V> int row_store::update_row(const K& key, const V* values, hlc_t hlc, std::int64_t origin) {
    cached_stmt s(cache_, update_sql_);
    if (!s) return s.prepare_rc();
    int n = static_cast<int>(def_.columns.size());
    for (int i = 0; i < n; ++i) bind_arg(s.get(), i + 1, values[i]);
    sqlite3_bind_int64(s.get(), n + 1, static_cast<sqlite3_int64>(hlc));
    sqlite3_bind_int64(s.get(), n + 2, origin);
    bind_arg(s.get(), n + 3, key);
    return step_done(s.get());
}

template <class K> int row_store::delete_row(const K& key, hlc_t hlc, std::int64_t origin) {
    {
        cached_stmt s(cache_, delete_sql_);
        if (!s) return s.prepare_rc();
        bind_arg(s.get(), 1, key);
        if (int rc = step_done(s.get()); rc != SQLITE_OK) return rc;
    }
    cached_stmt t(cache_, tomb_sql_);
    if (!t) return t.prepare_rc();
    bind_arg(t.get(), 1, key);
    sqlite3_bind_int64(t.get(), 2, static_cast<sqlite3_int64>(hlc));
    sqlite3_bind_int64(t.get(), 3, origin);
    return step_done(t.get());
}

} // namespace hdbrepl::engine
