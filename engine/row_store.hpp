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

// Binds an argument of the calling statement (xUpdate's argv) without copying its text or
// blob: every caller steps and resets the statement while argv is alive, and rebinds every
// parameter before the next step, so SQLITE_STATIC is safe (sqlite3_bind_value would copy
// each string: two mallocs a row on the write path).
inline int bind_arg(sqlite3_stmt* s, int i, sqlite3_value* v) {
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER: return sqlite3_bind_int64(s, i, sqlite3_value_int64(v));
    case SQLITE_FLOAT: return sqlite3_bind_double(s, i, sqlite3_value_double(v));
    case SQLITE_TEXT: {
        const unsigned char* t = sqlite3_value_text(v); // before _bytes: the text is UTF-8 then
        return sqlite3_bind_text64(s, i, reinterpret_cast<const char*>(t), static_cast<sqlite3_uint64>(sqlite3_value_bytes(v)), SQLITE_STATIC,
                                   SQLITE_UTF8);
    }
    case SQLITE_BLOB: {
        const void* b = sqlite3_value_blob(v);
        int n = sqlite3_value_bytes(v);
        return n == 0 ? sqlite3_bind_zeroblob(s, i, 0) : sqlite3_bind_blob64(s, i, b, static_cast<sqlite3_uint64>(n), SQLITE_STATIC);
    }
    default: return sqlite3_bind_null(s, i);
    }
}
int bind_arg(sqlite3_stmt* s, int i, const value& v);
// Reads a result column into a value.
value column_value(sqlite3_stmt* s, int i);
// The same for a function or xFilter argument, and the way back for a result.
value sql_value(sqlite3_value* v);
void result_value(sqlite3_context* ctx, const value& v);

// A statement prepared on first use and kept for the life of its owner. Used for the
// single-step statements of the write path, which are never held across calls, so one
// instance suffices and no cache lookup is paid per row.
class own_stmt {
public:
    own_stmt() = default;
    ~own_stmt() { reset_sql({}); }
    own_stmt(const own_stmt&) = delete;
    own_stmt& operator=(const own_stmt&) = delete;
    void reset_sql(std::string sql) { sqlite3_finalize(s_); s_ = nullptr; sql_ = std::move(sql); }
    // Returns the statement, ready to bind, or nullptr with rc set.
    sqlite3_stmt* get(sqlite3* db, int& rc) {
        rc = SQLITE_OK;
        if (!s_) rc = sqlite3_prepare_v3(db, sql_.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &s_, nullptr);
        return rc == SQLITE_OK ? s_ : nullptr;
    }
    const std::string& sql() const { return sql_; }
private:
    std::string sql_;
    sqlite3_stmt* s_ = nullptr;
};

// Resets a statement (keeping its bindings' memory free) when the scope ends.
struct stmt_reset {
    sqlite3_stmt* s;
    ~stmt_reset() { if (s) sqlite3_reset(s); }
};

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
    // Finalizes every statement (before DROP TABLE of the shadows).
    void release_statements();

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
    // The tombstone version of a key, if it has one.
    template <class V> int find_tombstone(const V& key, std::optional<stored_version>& out);
    // Writes the row unless the live row of its key is as new or newer (by version, ties by
    // origin name): one statement, one b-tree seek. `applied` says whether it was written.
    template <class V> int put_if_newer(const V* values, hlc_t hlc, std::int64_t origin, bool& applied);
    // Rewrites the row with key `key` (values include the same key).
    template <class K, class V> int update_row(const K& key, const V* values, hlc_t hlc, std::int64_t origin);
    // Deletes the live row (if any) and records a tombstone at (hlc, origin).
    template <class K> int delete_row(const K& key, hlc_t hlc, std::int64_t origin);
    // Deletes tombstones older than `before`.
    int prune_tombstones(hlc_t before, std::int64_t& removed);
    // Whether the table has any tombstone (one step into an index): an apply that finds none
    // skips the per-row tombstone look-ups of a record.
    int has_tombstones(bool& out);

private:
    // Steps a write statement once and resets it; returns SQLITE_OK or the extended code.
    int step_done(sqlite3_stmt* s);
    std::string sql_insert(bool replace) const;
    std::string sql_update() const;

    std::string schema_, name_;
    table_def def_;
    stmt_cache cache_;
    own_stmt find_live_, find_tomb_, insert_, replace_, update_, delete_, tomb_, put_newer_;
    void build_sql();
};

template <class V> int row_store::find(const V& key, std::optional<stored_version>& out) {
    out.reset();
    for (int pass = 0; pass < 2; ++pass) {
        int rc;
        sqlite3_stmt* s = (pass == 0 ? find_live_ : find_tomb_).get(db(), rc);
        if (!s) return rc;
        stmt_reset guard{s};
        bind_arg(s, 1, key);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            out = stored_version{static_cast<hlc_t>(sqlite3_column_int64(s, 0)), sqlite3_column_int64(s, 1), pass == 0};
            return SQLITE_OK;
        }
        if (rc != SQLITE_DONE) return rc;
    }
    return SQLITE_OK;
}

template <class V> int row_store::find_tombstone(const V& key, std::optional<stored_version>& out) {
    out.reset();
    int rc;
    sqlite3_stmt* s = find_tomb_.get(db(), rc);
    if (!s) return rc;
    stmt_reset guard{s};
    bind_arg(s, 1, key);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out = stored_version{static_cast<hlc_t>(sqlite3_column_int64(s, 0)), sqlite3_column_int64(s, 1), false};
        return SQLITE_OK;
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

template <class V> int row_store::put_if_newer(const V* values, hlc_t hlc, std::int64_t origin, bool& applied) {
    int rc;
    sqlite3_stmt* s = put_newer_.get(db(), rc);
    if (!s) return rc;
    int n = static_cast<int>(def_.columns.size());
    for (int i = 0; i < n; ++i) bind_arg(s, i + 1, values[i]);
    sqlite3_bind_int64(s, n + 1, static_cast<sqlite3_int64>(hlc));
    sqlite3_bind_int64(s, n + 2, origin);
    rc = step_done(s);
    applied = rc == SQLITE_OK && sqlite3_changes(db()) > 0;
    return rc;
}

template <class V> int row_store::insert_row(const V* values, hlc_t hlc, std::int64_t origin, bool replace) {
    int rc;
    sqlite3_stmt* s = (replace ? replace_ : insert_).get(db(), rc);
    if (!s) return rc;
    int n = static_cast<int>(def_.columns.size());
    for (int i = 0; i < n; ++i) bind_arg(s, i + 1, values[i]);
    sqlite3_bind_int64(s, n + 1, static_cast<sqlite3_int64>(hlc));
    sqlite3_bind_int64(s, n + 2, origin);
    return step_done(s);
}

template <class K, class V> int row_store::update_row(const K& key, const V* values, hlc_t hlc, std::int64_t origin) {
    int rc;
    sqlite3_stmt* s = update_.get(db(), rc);
    if (!s) return rc;
    int n = static_cast<int>(def_.columns.size());
    for (int i = 0; i < n; ++i) bind_arg(s, i + 1, values[i]);
    sqlite3_bind_int64(s, n + 1, static_cast<sqlite3_int64>(hlc));
    sqlite3_bind_int64(s, n + 2, origin);
    bind_arg(s, n + 3, key);
    return step_done(s);
}

template <class K> int row_store::delete_row(const K& key, hlc_t hlc, std::int64_t origin) {
    int rc;
    sqlite3_stmt* s = delete_.get(db(), rc);
    if (!s) return rc;
    bind_arg(s, 1, key);
    if ((rc = step_done(s)) != SQLITE_OK) return rc;
    sqlite3_stmt* t = tomb_.get(db(), rc);
    if (!t) return rc;
    bind_arg(t, 1, key);
    sqlite3_bind_int64(t, 2, static_cast<sqlite3_int64>(hlc));
    sqlite3_bind_int64(t, 3, origin);
    return step_done(t);
}

} // namespace hdbrepl::engine
