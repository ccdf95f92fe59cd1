// The query side of the hdbrepl virtual-table module: xBestIndex picks a plan (key or
// INDEXED-column equality or range, or a full scan, with ORDER BY on the key pushed down),
// xFilter runs that plan's prepared statement on the shadow table (idle statements are kept
// per plan), and xColumn reads the result. A key lookup that finds nothing here may be
// forwarded to the nodes that hold the row (sql/node_hooks.hpp).
// Thread: the connection's.
#include "sql/vtab_repl_table_impl.hpp"

#include "engine/row_store.hpp"
#include "engine/table_def.hpp"
#include "sql/node_hooks.hpp"
#include "sql/sql_error.hpp"

#include <cstring>
#include <new>

namespace hdbrepl::sql::repl_table {

using namespace hdbrepl::engine;

namespace {

constexpr bool reads_column(std::uint64_t mask, std::size_t i) { return (mask >> (i < 63 ? i : 63)) & 1; }

// Result-column position of each declared column in a plan's inner statement, -1 for one it
// does not read.
std::vector<int> result_positions(std::size_t n_columns, std::uint64_t mask) {
    std::vector<int> pos(n_columns, -1);
    int next = 0;
    for (std::size_t i = 0; i < n_columns; ++i)
        if (reads_column(mask, i)) pos[i] = next++;
    return pos;
}

std::string plan_sql(const repl_vtab* t, const scan_plan& p) {
    const auto& def = t->def();
    std::string cols;
    for (std::size_t i = 0; i < def.columns.size(); ++i)
        if (reads_column(p.cols, i)) cols += (cols.empty() ? "" : ", ") + quote_ident(def.columns[i].name);
    std::string sql = "SELECT " + cols + " FROM " + t->store->data_table();
    int arg = 0;
    if (p.column >= 0) {
        std::string c = quote_ident(def.columns[static_cast<std::size_t>(p.column)].name);
        if (p.eq) {
            sql += " WHERE " + c + " = ?" + std::to_string(++arg);
        } else {
            std::string where;
            if (p.lo) where += c + (p.lo == SQLITE_INDEX_CONSTRAINT_GT ? " > ?" : " >= ?") + std::to_string(++arg);
            if (p.hi) where += (where.empty() ? "" : " AND ") + c + (p.hi == SQLITE_INDEX_CONSTRAINT_LT ? " < ?" : " <= ?") + std::to_string(++arg);
            sql += " WHERE " + where;
        }
    }
    if (p.order) sql += " ORDER BY " + quote_ident(def.columns[def.pk].name) + (p.order < 0 ? " DESC" : "");
    return sql;
}

int plan_id(repl_vtab* t, const scan_plan& p) {
    for (std::size_t i = 0; i < t->plans.size(); ++i)
        if (t->plans[i] == p) return static_cast<int>(i);
    t->plans.push_back(p);
    t->plan_columns.push_back(result_positions(t->def().columns.size(), p.cols));
    t->plan_stmts.emplace_back();
    return static_cast<int>(t->plans.size() - 1);
}

void release_stmt(repl_cursor* c) {
    if (!c->stmt) return;
    auto* t = vt(c->base.pVtab);
    sqlite3_reset(c->stmt);
    sqlite3_clear_bindings(c->stmt);
    if (c->plan >= 0 && static_cast<std::size_t>(c->plan) < t->plan_stmts.size()) t->plan_stmts[static_cast<std::size_t>(c->plan)].push_back(c->stmt);
    else sqlite3_finalize(c->stmt);
    c->stmt = nullptr;
}

int step(repl_cursor* c) {
    int rc = sqlite3_step(c->stmt);
    if (rc == SQLITE_ROW) { c->eof = false; return SQLITE_OK; }
    c->eof = true;
    if (rc == SQLITE_DONE) return SQLITE_OK;
    set_vtab_error(c->base.pVtab, sqlite3_errmsg(vt(c->base.pVtab)->conn->db()));
    return rc;
}

// WHERE key = ? found nothing here: the row may live on other nodes only (replicateTo,
// residency, shards). The forwarder says whether that can be, and asks them if so.
[[gnu::noinline]] int forward_lookup(repl_cursor* c, repl_vtab* t, sqlite3_value* key_arg) {
    auto forward = read_forward_hook.get();
    if (!forward || t->schema != "main" || !t->replicate) return SQLITE_OK;
    const char* path = sqlite3_db_filename(t->conn->db(), "main");
    if (!path || !*path) return SQLITE_OK;
    const auto& def = t->def();
    engine::value key = engine::sql_value(key_arg);
    auto res = forward(path, t->name, t->definition, def.columns[def.pk].name, key);
    switch (res.status) {
    case forwarded_read::not_applicable:
    case forwarded_read::absent: return SQLITE_OK;
    case forwarded_read::failed:
        set_vtab_error(c->base.pVtab, "hdbrepl: " + t->name + ": " + res.error);
        return SQLITE_ERROR;
    case forwarded_read::found: break;
    }
    if (res.row.size() != def.columns.size()) {
        set_vtab_error(c->base.pVtab, "hdbrepl: " + t->name + ": a forwarded read returned " + std::to_string(res.row.size()) +
                                          " columns, this table has " + std::to_string(def.columns.size()));
        return SQLITE_ERROR;
    }
    release_stmt(c);
    c->remote_row = std::move(res.row);
    c->remote_positions.assign(def.columns.size(), -1);
    c->columns = c->remote_positions.data();
    c->eof = false;
    return SQLITE_OK;
}

// A column the plan's statement does not read (SQLite asked for a column outside colUsed):
// read it from the current row by key. Never on the paths SQLite documents; kept so that a
// colUsed that misses a column costs a lookup, not a wrong NULL.
[[gnu::noinline]] int column_by_key(repl_cursor* c, sqlite3_context* ctx, int i) {
    if (!c->remote_row.empty()) {
        if (static_cast<std::size_t>(i) < c->remote_row.size()) engine::result_value(ctx, c->remote_row[static_cast<std::size_t>(i)]);
        else sqlite3_result_null(ctx);
        return SQLITE_OK;
    }
    auto* t = vt(c->base.pVtab);
    const auto& def = t->def();
    int key_pos = c->columns[def.pk];
    if (key_pos < 0) return SQLITE_INTERNAL; // every plan reads the key
    std::string sql = "SELECT " + quote_ident(def.columns[static_cast<std::size_t>(i)].name) + " FROM " + t->store->data_table() +
                      " WHERE " + quote_ident(def.columns[def.pk].name) + " = ?1";
    cached_stmt s(t->store->cache(), sql);
    if (!s) { set_vtab_error(c->base.pVtab, sqlite3_errmsg(t->conn->db())); return s.prepare_rc(); }
    sqlite3_bind_value(s.get(), 1, sqlite3_column_value(c->stmt, key_pos));
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) sqlite3_result_value(ctx, sqlite3_column_value(s.get(), 0));
    else if (rc == SQLITE_DONE) sqlite3_result_null(ctx);
    else { set_vtab_error(c->base.pVtab, sqlite3_errmsg(t->conn->db())); return rc; }
    return SQLITE_OK;
}

} // namespace

int xBestIndex(sqlite3_vtab* v, sqlite3_index_info* info) {
    auto* t = vt(v);
    const auto& def = t->def();
    const double n_rows = 1e6; // assumed table size; only the ratios between plans matter
    struct cand { int eq = -1, lo = -1, hi = -1; };
    std::vector<cand> cands(def.columns.size());
    for (int i = 0; i < info->nConstraint; ++i) {
        const auto& c = info->aConstraint[i];
        if (!c.usable || c.iColumn < 0) continue;
        auto col = static_cast<std::size_t>(c.iColumn);
        if (col != def.pk && !def.columns[col].indexed) continue;
        // The shadow table compares with BINARY; other collations stay with SQLite.
        const char* coll = sqlite3_vtab_collation(info, i);
        if (coll && sqlite3_stricmp(coll, "BINARY") != 0) continue;
        auto& k = cands[col];
        switch (c.op) {
        case SQLITE_INDEX_CONSTRAINT_EQ: if (k.eq < 0) k.eq = i; break;
        case SQLITE_INDEX_CONSTRAINT_GT:
        case SQLITE_INDEX_CONSTRAINT_GE: if (k.lo < 0) k.lo = i; break;
        case SQLITE_INDEX_CONSTRAINT_LT:
        case SQLITE_INDEX_CONSTRAINT_LE: if (k.hi < 0) k.hi = i; break;
        default: break;
        }
    }
    // Pick the cheapest access path.
    scan_plan best;
    double cost = n_rows, rows = n_rows;
    std::vector<int> used;
    bool unique = false;
    auto consider = [&](std::size_t col) {
        const auto& k = cands[col];
        bool is_key = col == def.pk;
        double c, r;
        scan_plan p;
        p.column = static_cast<int>(col);
        std::vector<int> u;
        if (k.eq >= 0) {
            p.eq = true;
            u = {k.eq};
            r = is_key ? 1 : 10;
            c = is_key ? 1 : 10 + r;
        } else if (k.lo >= 0 || k.hi >= 0) {
            if (k.lo >= 0) { p.lo = info->aConstraint[k.lo].op; u.push_back(k.lo); }
            if (k.hi >= 0) { p.hi = info->aConstraint[k.hi].op; u.push_back(k.hi); }
            r = (k.lo >= 0 && k.hi >= 0) ? n_rows / 64 : n_rows / 4;
            c = is_key ? r : 2 * r;
        } else {
            return;
        }
        if (c < cost) { best = p; cost = c; rows = r; used = u; unique = is_key && p.eq; }
    };
    consider(def.pk);
    for (std::size_t i = 0; i < def.columns.size(); ++i)
        if (def.columns[i].indexed) consider(i);
    // ORDER BY the key comes for free on key plans and full scans.
    if (info->nOrderBy == 1 && info->aOrderBy[0].iColumn == static_cast<int>(def.pk) &&
        (best.column < 0 || best.column == static_cast<int>(def.pk))) {
        best.order = info->aOrderBy[0].desc ? -1 : 1;
        info->orderByConsumed = 1;
    }
    int argv_index = 0;
    for (int i : used) {
        info->aConstraintUsage[i].argvIndex = ++argv_index;
        info->aConstraintUsage[i].omit = 1;
    }
    // Only the columns the statement uses, and always the key: xColumn falls back to a
    // lookup by key if SQLite ever asks for another (SQLite before 3.47 could leave a
    // WITHOUT ROWID table's key out of colUsed when it reads it).
    best.cols = info->colUsed | (std::uint64_t{1} << (def.pk < 63 ? def.pk : 63));
    info->idxNum = plan_id(t, best);
    // Shown by EXPLAIN QUERY PLAN after "INDEX n:".
    std::string desc = best.column < 0 ? "full scan"
                     : (best.column == static_cast<int>(def.pk) ? "key " : "index ") + def.columns[static_cast<std::size_t>(best.column)].name +
                           (best.eq ? " =" : " range");
    if (best.order) desc += best.order > 0 ? ", ordered by key" : ", ordered by key desc";
    info->idxStr = sqlite3_mprintf("%s", desc.c_str());
    info->needToFreeIdxStr = 1;
    info->estimatedCost = cost;
    info->estimatedRows = static_cast<sqlite3_int64>(rows);
    if (unique) info->idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
    return SQLITE_OK;
}

int xOpen(sqlite3_vtab*, sqlite3_vtab_cursor** out) {
    auto* c = new (std::nothrow) repl_cursor();
    if (!c) return SQLITE_NOMEM;
    *out = &c->base;
    return SQLITE_OK;
}

int xClose(sqlite3_vtab_cursor* cc) {
    auto* c = cur(cc);
    release_stmt(c);
    delete c;
    return SQLITE_OK;
}

int xFilter(sqlite3_vtab_cursor* cc, int idx_num, const char*, int argc, sqlite3_value** argv) {
    auto* c = cur(cc);
    auto* t = vt(cc->pVtab);
    release_stmt(c);
    if (idx_num < 0 || static_cast<std::size_t>(idx_num) >= t->plans.size()) return SQLITE_INTERNAL;
    auto& idle = t->plan_stmts[static_cast<std::size_t>(idx_num)];
    c->plan = idx_num;
    c->columns = t->plan_columns[static_cast<std::size_t>(idx_num)].data();
    if (!idle.empty()) {
        c->stmt = idle.back();
        idle.pop_back();
    } else {
        std::string sql = plan_sql(t, t->plans[static_cast<std::size_t>(idx_num)]);
        int rc = sqlite3_prepare_v3(t->conn->db(), sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &c->stmt, nullptr);
        if (rc != SQLITE_OK) { set_vtab_error(cc->pVtab, sqlite3_errmsg(t->conn->db())); return rc; }
    }
    for (int i = 0; i < argc; ++i) sqlite3_bind_value(c->stmt, i + 1, argv[i]);
    c->remote_row.clear();
    int rc = step(c);
    const auto& plan = t->plans[static_cast<std::size_t>(idx_num)];
    if (rc != SQLITE_OK || !c->eof || !plan.eq || plan.column != static_cast<int>(t->def().pk) || argc < 1 || !t->conn->forward_reads)
        return rc;
    return forward_lookup(c, t, argv[0]);
}

int xNext(sqlite3_vtab_cursor* cc) {
    auto* c = cur(cc);
    if (!c->remote_row.empty()) { // the one forwarded row
        c->remote_row.clear();
        c->eof = true;
        return SQLITE_OK;
    }
    return step(c);
}
int xEof(sqlite3_vtab_cursor* cc) { return cur(cc)->eof ? 1 : 0; }

int xColumn(sqlite3_vtab_cursor* cc, sqlite3_context* ctx, int i) {
    auto* c = cur(cc);
    int pos = c->columns[i];
    if (pos < 0) [[unlikely]] return column_by_key(c, ctx, i);
    // One locked call to reach the value, then per-type results: sqlite3_result_value
    // would free and reallocate the result's buffer for every TEXT value, while
    // sqlite3_result_text with a NUL-terminated string reuses it from row to row.
    sqlite3_value* v = sqlite3_column_value(c->stmt, pos);
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER: sqlite3_result_int64(ctx, sqlite3_value_int64(v)); break;
    case SQLITE_FLOAT: sqlite3_result_double(ctx, sqlite3_value_double(v)); break;
    case SQLITE_NULL: sqlite3_result_null(ctx); break;
    case SQLITE_TEXT: {
        auto* t = reinterpret_cast<const char*>(sqlite3_value_text(v));
        int n = sqlite3_value_bytes(v);
        // -1 lets SQLite keep the terminator; only text with an embedded NUL needs a length.
        sqlite3_result_text(ctx, t, std::memchr(t, 0, static_cast<std::size_t>(n)) ? n : -1, SQLITE_TRANSIENT);
        break;
    }
    default: sqlite3_result_value(ctx, v); break;
    }
    return SQLITE_OK;
}

int xRowid(sqlite3_vtab_cursor*, sqlite3_int64* out) {
    *out = 0; // WITHOUT ROWID: SQLite never asks
    return SQLITE_OK;
}

} // namespace hdbrepl::sql::repl_table
