// Internal to the hdbrepl virtual-table module: the vtab and cursor structs and the slot
// functions that sql/vtab_repl_table.cpp (create/connect, the module table),
// sql/vtab_repl_scan.cpp (queries) and sql/vtab_repl_write.cpp (writes, transactions)
// share. Every slot reaches SQLite only through the guarded module table
// (sql/vtab_module.hpp). Thread: the connection's.
#pragma once
#include "engine/row_store.hpp"
#include "engine/sqlite_api.hpp"
#include "engine/table_def.hpp"
#include "sql/connection_state.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hdbrepl::sql::repl_table {

// One way of reading the shadow table, chosen by xBestIndex and identified by idxNum.
struct scan_plan {
    int column = -1;     // constrained column (key or INDEXED), -1 for a full scan
    bool eq = false;     // column = ?
    int lo = 0, hi = 0;  // SQLITE_INDEX_CONSTRAINT_GT/GE and LT/LE, or 0
    int order = 0;       // 1: ORDER BY key, -1: ORDER BY key DESC
    // Declared columns the inner statement reads (bit i: column i; bit 63: every column from
    // 63 on), from xBestIndex's colUsed plus the key. A query that reads one column of a
    // wide table does not pay for decoding and copying the others.
    std::uint64_t cols = ~std::uint64_t{0};
    bool operator==(const scan_plan&) const = default;
};

struct repl_vtab {
    sqlite3_vtab base; // base class, must be first
    connection_state* conn = nullptr;
    std::unique_ptr<engine::row_store> store;
    std::string schema, name, definition;
    bool replicate = true;
    std::vector<scan_plan> plans;
    std::vector<std::vector<int>> plan_columns;          // per plan: result_positions()
    std::vector<std::vector<sqlite3_stmt*>> plan_stmts; // idle statements per plan
    std::uint64_t slot_generation = 0;
    std::uint32_t slot = 0;

    ~repl_vtab() { drop_statements(); }
    void drop_statements() {
        for (auto& v : plan_stmts) {
            for (auto* s : v) sqlite3_finalize(s);
            v.clear();
        }
    }
    const engine::table_def& def() const { return store->def(); }
    std::string table_label() const { return name; }
};

struct repl_cursor {
    sqlite3_vtab_cursor base; // base class, must be first
    sqlite3_stmt* stmt = nullptr;
    const int* columns = nullptr; // the plan's result positions, per declared column
    int plan = -1;
    bool eof = true;
    // A row fetched from another node (forwarded read): `columns` then points at
    // remote_positions (all -1), so xColumn's rare path serves it and its common path
    // stays as it was.
    std::vector<engine::value> remote_row;
    std::vector<int> remote_positions;
};

inline repl_vtab* vt(sqlite3_vtab* v) { return reinterpret_cast<repl_vtab*>(v); }
inline repl_cursor* cur(sqlite3_vtab_cursor* c) { return reinterpret_cast<repl_cursor*>(c); }

// Queries (sql/vtab_repl_scan.cpp).
int xBestIndex(sqlite3_vtab* v, sqlite3_index_info* info);
int xOpen(sqlite3_vtab*, sqlite3_vtab_cursor** out);
int xClose(sqlite3_vtab_cursor* cc);
int xFilter(sqlite3_vtab_cursor* cc, int idx_num, const char*, int argc, sqlite3_value** argv);
int xNext(sqlite3_vtab_cursor* cc);
int xEof(sqlite3_vtab_cursor* cc);
int xColumn(sqlite3_vtab_cursor* cc, sqlite3_context* ctx, int i);
int xRowid(sqlite3_vtab_cursor*, sqlite3_int64* out);

// Writes and transactions (sql/vtab_repl_write.cpp).
int xUpdate(sqlite3_vtab* v, int argc, sqlite3_value** argv, sqlite3_int64* rowid);
int xBegin(sqlite3_vtab*);
int xSync(sqlite3_vtab* v);
int xCommit(sqlite3_vtab* v);
int xRollback(sqlite3_vtab* v);
int xSavepoint(sqlite3_vtab* v, int n);
int xRelease(sqlite3_vtab* v, int n);
int xRollbackTo(sqlite3_vtab* v, int n);

} // namespace hdbrepl::sql::repl_table
