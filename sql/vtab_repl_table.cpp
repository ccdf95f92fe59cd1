/*
** The hdbrepl virtual-table module: replicated tables.
**
** Usage:
**   CREATE VIRTUAL TABLE dog USING hdbrepl(
**     id INTEGER PRIMARY KEY,   -- exactly one primary key, any type
**     name TEXT NOT NULL,
**     breed TEXT INDEXED,       -- a secondary index the planner uses
**     replicate=false           -- optional: keep the table local
**   );
**   INSERT INTO dog VALUES(1, 'Rex', 'collie');
**   SELECT * FROM dog WHERE id = 1;            -- key lookup, never a full scan
**   SELECT * FROM dog WHERE breed = 'collie';  -- served by the breed index
**
** How it works: rows live in shadow tables (engine/row_store.hpp) in the same database,
** each stamped with the version of the transaction that wrote it. Every write is also
** encoded into the connection's pending transaction (engine/pending_txn.hpp); at xSync,
** inside the same SQLite transaction, the pending changes become one change-log record,
** so the data and the log commit or roll back together. Savepoints (including SQLite's
** statement savepoints) truncate the pending list. The table is declared WITHOUT ROWID, so
** xUpdate identifies rows by their primary key. Queries run prepared statements on the
** shadow table chosen by xBestIndex: key equality or range, INDEXED-column equality or
** range, or a full scan, with ORDER BY on the key pushed down.
**
** Thread: every callback runs on the thread using the connection.
*/
#include "sql/vtab_repl_table.hpp"

#include "engine/system_tables.hpp"
#include "engine/apply.hpp"
#include "engine/residency_sandbox.hpp"
#include "engine/row_store.hpp"
#include "engine/table_def.hpp"
#include "sql/node_hooks.hpp"
#include "sql/sql_error.hpp"
#include "sql/value_encode.hpp"
#include "sql/vtab_module.hpp"

#include <cstring>
#include <memory>
#include <vector>

namespace hdbrepl::sql {
namespace {

using namespace hdbrepl::engine;

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

struct repl_vtab {
    sqlite3_vtab base; // base class, must be first
    connection_state* conn = nullptr;
    std::unique_ptr<row_store> store;
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
    const table_def& def() const { return store->def(); }
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

repl_vtab* vt(sqlite3_vtab* v) { return reinterpret_cast<repl_vtab*>(v); }
repl_cursor* cur(sqlite3_vtab_cursor* c) { return reinterpret_cast<repl_cursor*>(c); }

std::string declaration(const table_def& def) {
    std::string sql = "CREATE TABLE x(";
    for (const auto& c : def.columns) {
        sql += quote_ident(c.name);
        if (!c.decl_type.empty()) sql += " " + c.decl_type;
        sql += ", ";
    }
    return sql + "PRIMARY KEY(" + quote_ident(def.columns[def.pk].name) + ")) WITHOUT ROWID";
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

// ---- create / connect -------------------------------------------------------------

int create_or_connect(sqlite3* db, void* aux, int argc, const char* const* argv, sqlite3_vtab** out, char** pz_err, bool create) {
    auto* conn = static_cast<connection_state*>(aux);
    std::string schema = argv[1], name = argv[2];
    std::vector<std::string> args(argv + 3, argv + argc);
    std::string err;
    auto def = parse_table_def(args, err);
    if (!def) { *pz_err = error_string("hdbrepl table '" + name + "': " + err); return SQLITE_ERROR; }
    if (create && !def->residency.empty()) {
        // Check the expression now, against the declared columns, rather than when rows leave
        // (the same sandboxed query the sender evaluates, engine/residency_sandbox.hpp). A
        // peer's definition passes here too: the apply path creates its tables with CREATE.
        sqlite3_stmt* probe = nullptr;
        std::string why;
        int prc = prepare_residency(*def, &probe, why);
        sqlite3_finalize(probe);
        if (prc != SQLITE_OK) {
            *pz_err = error_string("hdbrepl table '" + name + "': residency= is not an expression over its columns: " + why);
            return SQLITE_ERROR;
        }
    }
    // hdbrepl's own replicated tables (engine/system_tables.hpp) are the one exception, and
    // only while the node itself creates them: a user's CREATE, or a peer's record, never
    // makes one (a dropped hdbrepl_users recreated empty by a peer would lose every user).
    if (create && engine::is_reserved_table_name(name) &&
        !(engine::creating_system_tables() && engine::is_system_table_definition(name, def->canonical()))) {
        *pz_err = error_string("hdbrepl table '" + name + "': names starting with 'hdbrepl_' are reserved for hdbrepl's own tables, "
                               "which only the node creates");
        return SQLITE_ERROR;
    }
    int rc = sqlite3_declare_vtab(db, declaration(*def).c_str());
    if (rc != SQLITE_OK) { *pz_err = error_string("hdbrepl table '" + name + "': " + sqlite3_errmsg(db)); return rc; }
    sqlite3_vtab_config(db, SQLITE_VTAB_CONSTRAINT_SUPPORT, 1);

    auto t = std::make_unique<repl_vtab>();
    std::memset(&t->base, 0, sizeof t->base);
    t->conn = conn;
    t->schema = schema;
    t->name = name;
    t->definition = def->canonical();
    t->replicate = def->replicate;

    if (create) {
        const remote_ddl* remote = current_remote_ddl();
        schema_txn v;
        bool joins = false;
        if (remote) {
            if ((rc = ensure_system_tables(db, schema, err)) != SQLITE_OK) { *pz_err = error_string(err); return rc; }
            v.hlc = remote->hlc;
        } else if ((rc = conn->ddl_version(schema, v, joins, err)) != SQLITE_OK) {
            *pz_err = error_string("hdbrepl table '" + name + "': " + err);
            return rc;
        }
        if ((rc = row_store::create_shadows(db, schema, name, *def, err)) != SQLITE_OK) {
            *pz_err = error_string("hdbrepl table '" + name + "': creating storage: " + err);
            return rc;
        }
        auto& sys = conn->system(schema);
        system_store::table_entry e = sys.get_table(name).value_or(system_store::table_entry{});
        e.name = name;
        e.definition = t->definition;
        e.replicate = def->replicate;
        e.created_hlc = v.hlc;
        e.renamed_to.clear();
        e.live = true;
        if ((rc = sys.put_table(e)) != SQLITE_OK) { *pz_err = error_string(sqlite3_errmsg(db)); return rc; }
        if (def->replicate && !remote &&
            (rc = conn->log_ddl(schema, name, t->definition, change_op::create_table, "", v, joins, err)) != SQLITE_OK) {
            *pz_err = error_string(err);
            return rc;
        }
    }
    t->store = std::make_unique<row_store>(db, schema, name, std::move(*def));
    conn->table_opened();
    *out = &t.release()->base;
    return SQLITE_OK;
}

int xCreate(sqlite3* db, void* aux, int argc, const char* const* argv, sqlite3_vtab** out, char** err) {
    return create_or_connect(db, aux, argc, argv, out, err, true);
}
int xConnect(sqlite3* db, void* aux, int argc, const char* const* argv, sqlite3_vtab** out, char** err) {
    return create_or_connect(db, aux, argc, argv, out, err, false);
}

void free_vtab(repl_vtab* t) {
    auto* conn = t->conn;
    sqlite3_free(t->base.zErrMsg);
    delete t;
    conn->table_closed();
}

int xDisconnect(sqlite3_vtab* v) {
    free_vtab(vt(v));
    return SQLITE_OK;
}

// The vtab is freed only when the drop succeeded.
int destroy(sqlite3_vtab* v) {
    auto* t = vt(v);
    // Refused before anything is touched: SQLite then rolls the DROP back whole. SQLite
    // does not pass xDestroy's message on, so the code is what the user sees:
    // SQLITE_AUTH, "authorization denied".
    if (engine::is_reserved_table_name(t->name)) {
        set_vtab_error(v, "cannot drop table '" + t->name + "': it is one of hdbrepl's own tables (users, membership, removals), "
                          "which every node keeps");
        return SQLITE_AUTH;
    }
    std::string err;
    const remote_ddl* remote = current_remote_ddl();
    schema_txn ver;
    bool joins = false;
    int rc = SQLITE_OK;
    if (remote) ver.hlc = remote->hlc;
    else if ((rc = t->conn->ddl_version(t->schema, ver, joins, err)) != SQLITE_OK) { set_vtab_error(v, err); return rc; }
    t->drop_statements();
    t->store->release_statements();
    if ((rc = row_store::drop_shadows(t->conn->db(), t->schema, t->name, err)) != SQLITE_OK) { set_vtab_error(v, err); return rc; }
    auto& sys = t->conn->system(t->schema);
    system_store::table_entry e = sys.get_table(t->name).value_or(system_store::table_entry{});
    e.name = t->name;
    if (e.definition.empty()) e.definition = t->definition;
    e.live = false;
    e.dropped_hlc = ver.hlc;
    if ((rc = sys.put_table(e)) != SQLITE_OK) { set_vtab_error(v, sqlite3_errmsg(t->conn->db())); return rc; }
    if (remote || !t->replicate) return SQLITE_OK;
    rc = t->conn->log_ddl(t->schema, t->name, t->definition, change_op::drop_table, "", ver, joins, err);
    if (rc != SQLITE_OK) set_vtab_error(v, err);
    return rc;
}

int xDestroy(sqlite3_vtab* v) {
    int rc = destroy(v);
    if (rc == SQLITE_OK) free_vtab(vt(v));
    return rc;
}

int xRename(sqlite3_vtab* v, const char* new_name) {
    auto* t = vt(v);
    std::string err, to = new_name;
    if (engine::is_reserved_table_name(t->name)) {
        set_vtab_error(v, "cannot rename table '" + t->name + "': it is one of hdbrepl's own tables, whose names the node relies on");
        return SQLITE_ERROR;
    }
    if (engine::is_reserved_table_name(to)) {
        set_vtab_error(v, "cannot rename to '" + to + "': names starting with 'hdbrepl_' are reserved");
        return SQLITE_ERROR;
    }
    const remote_ddl* remote = current_remote_ddl();
    schema_txn ver;
    bool joins = false;
    int rc = SQLITE_OK;
    if (remote) ver.hlc = remote->hlc;
    else if ((rc = t->conn->ddl_version(t->schema, ver, joins, err)) != SQLITE_OK) { set_vtab_error(v, err); return rc; }
    t->drop_statements();
    t->store->release_statements();
    if ((rc = row_store::rename_shadows(t->conn->db(), t->schema, t->name, to, err)) != SQLITE_OK) { set_vtab_error(v, err); return rc; }
    auto& sys = t->conn->system(t->schema);
    system_store::table_entry old = sys.get_table(t->name).value_or(system_store::table_entry{});
    old.name = t->name;
    old.definition = t->definition;
    old.live = false;
    old.renamed_to = to;
    old.renamed_hlc = ver.hlc;
    system_store::table_entry fresh = sys.get_table(to).value_or(system_store::table_entry{});
    fresh.name = to;
    fresh.definition = t->definition;
    fresh.replicate = t->replicate;
    fresh.created_hlc = ver.hlc;
    fresh.renamed_to.clear();
    fresh.live = true;
    if ((rc = sys.put_table(old)) != SQLITE_OK || (rc = sys.put_table(fresh)) != SQLITE_OK) {
        set_vtab_error(v, sqlite3_errmsg(t->conn->db()));
        return rc;
    }
    std::string from = t->name;
    t->name = to;
    t->store->renamed(to);
    if (remote || !t->replicate) return SQLITE_OK;
    rc = t->conn->log_ddl(t->schema, from, t->definition, change_op::rename_table, to, ver, joins, err);
    if (rc != SQLITE_OK) set_vtab_error(v, err);
    return rc;
}

// ---- queries ------------------------------------------------------------------------

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

void release_stmt(repl_cursor* c) {
    if (!c->stmt) return;
    auto* t = vt(c->base.pVtab);
    sqlite3_reset(c->stmt);
    sqlite3_clear_bindings(c->stmt);
    if (c->plan >= 0 && static_cast<std::size_t>(c->plan) < t->plan_stmts.size()) t->plan_stmts[static_cast<std::size_t>(c->plan)].push_back(c->stmt);
    else sqlite3_finalize(c->stmt);
    c->stmt = nullptr;
}

int xClose(sqlite3_vtab_cursor* cc) {
    auto* c = cur(cc);
    release_stmt(c);
    delete c;
    return SQLITE_OK;
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

// ---- writes -------------------------------------------------------------------------

std::uint32_t pending_slot(repl_vtab* t) {
    auto& p = t->conn->pending();
    if (t->slot_generation != t->conn->generation() || p.empty()) {
        t->slot = p.table_slot(t->schema, t->name, t->definition);
        t->slot_generation = t->conn->generation();
    }
    return t->slot;
}

// Appends a put of the row `cols` to the pending transaction.
void log_put(repl_vtab* t, sqlite3_value** cols) {
    const auto& def = t->def();
    auto& p = t->conn->pending();
    std::uint32_t slot = pending_slot(t);
    auto& buf = p.buffer();
    std::size_t start = buf.size(), key_start = 0, key_end = 0;
    byte_writer w(buf);
    w.put_varint(def.columns.size());
    for (std::size_t i = 0; i < def.columns.size(); ++i) {
        if (i == def.pk) key_start = buf.size();
        encode_with_affinity(w, cols[i], def.columns[i].aff);
        if (i == def.pk) key_end = buf.size();
    }
    p.add(slot, change_op::put, start, key_start, key_end);
}

void log_delete(repl_vtab* t, sqlite3_value* key) {
    auto& p = t->conn->pending();
    std::uint32_t slot = pending_slot(t);
    auto& buf = p.buffer();
    std::size_t start = buf.size();
    byte_writer w(buf);
    encode_with_affinity(w, key, t->def().columns[t->def().pk].aff);
    p.add(slot, change_op::del, start, start, buf.size());
    p.note_overwrite();
}

int constraint_error(repl_vtab* t, const char* kind, const std::string& column) {
    set_vtab_error(&t->base, std::string(kind) + " constraint failed: " + t->name + "." + column);
    return SQLITE_CONSTRAINT;
}

int check_not_null(repl_vtab* t, sqlite3_value** cols) {
    const auto& def = t->def();
    for (std::size_t i = 0; i < def.columns.size(); ++i) {
        if (!def.columns[i].not_null || sqlite3_value_type(cols[i]) != SQLITE_NULL) continue;
        if (i == def.pk) {
            set_vtab_error(&t->base, "NOT NULL constraint failed: " + t->name + "." + def.columns[i].name +
                                         " (a replicated table's primary key must be given: keys are never assigned automatically)");
            return SQLITE_CONSTRAINT;
        }
        return constraint_error(t, "NOT NULL", def.columns[i].name);
    }
    return SQLITE_OK;
}

int write_error(repl_vtab* t, int rc) {
    if ((rc & 0xff) == SQLITE_CONSTRAINT) return constraint_error(t, "UNIQUE", t->def().columns[t->def().pk].name);
    set_vtab_error(&t->base, sqlite3_errmsg(t->conn->db()));
    return rc;
}

bool same_key(sqlite3_value* a, sqlite3_value* b, affinity aff) {
    bytes x, y;
    byte_writer wx(x), wy(y);
    encode_with_affinity(wx, a, aff);
    encode_with_affinity(wy, b, aff);
    // As SQLite compares keys: 1.0 and 1 are the same key.
    return normalized_key({reinterpret_cast<const char*>(x.data()), x.size()}) ==
           normalized_key({reinterpret_cast<const char*>(y.data()), y.size()});
}

int do_update(repl_vtab* t, int argc, sqlite3_value** argv) {
    sqlite3* db = t->conn->db();
    const auto& def = t->def();
    if (argc > 1 && static_cast<std::size_t>(argc - 2) != def.columns.size()) return SQLITE_INTERNAL;
    std::string err;
    schema_txn* v = nullptr;
    int rc = t->conn->begin_write(t->schema, v, err);
    if (rc != SQLITE_OK) { set_vtab_error(&t->base, err); return rc; }
    sqlite3_int64 last_rowid = sqlite3_last_insert_rowid(db);
    auto& p = t->conn->pending();
    int on_conflict = sqlite3_vtab_on_conflict(db);
    bool replace = on_conflict == SQLITE_REPLACE;

    if (argc == 1) { // DELETE
        if ((rc = t->store->delete_row(argv[0], v->hlc, v->origin_id)) != SQLITE_OK) return write_error(t, rc);
        if (t->replicate) log_delete(t, argv[0]);
    } else {
        sqlite3_value** cols = argv + 2;
        if ((rc = check_not_null(t, cols)) != SQLITE_OK) return rc;
        sqlite3_value* new_key = cols[def.pk];
        if (sqlite3_value_type(argv[0]) == SQLITE_NULL) { // INSERT
            if ((rc = t->store->insert_row(cols, v->hlc, v->origin_id, replace)) != SQLITE_OK) return write_error(t, rc);
            if (t->replicate) {
                log_put(t, cols);
                if (replace) p.note_overwrite();
            }
        } else if (same_key(argv[0], new_key, def.columns[def.pk].aff)) { // UPDATE, same key
            if ((rc = t->store->update_row(argv[0], cols, v->hlc, v->origin_id)) != SQLITE_OK) return write_error(t, rc);
            if (t->replicate) {
                log_put(t, cols);
                p.note_overwrite();
            }
        } else { // UPDATE of the key: the old key is deleted, the new one written
            if ((rc = t->store->insert_row(cols, v->hlc, v->origin_id, replace)) != SQLITE_OK) return write_error(t, rc);
            if ((rc = t->store->delete_row(argv[0], v->hlc, v->origin_id)) != SQLITE_OK) return write_error(t, rc);
            if (t->replicate) {
                log_delete(t, argv[0]);
                log_put(t, cols);
            }
        }
    }
    sqlite3_set_last_insert_rowid(db, last_rowid);
    return SQLITE_OK;
}

int xUpdate(sqlite3_vtab* v, int argc, sqlite3_value** argv, sqlite3_int64* rowid) {
    // SQLite stores *rowid as last_insert_rowid() after an INSERT; a WITHOUT ROWID table
    // leaves it alone, so hand back the current value.
    *rowid = sqlite3_last_insert_rowid(vt(v)->conn->db());
    return do_update(vt(v), argc, argv);
}

// ---- transactions -------------------------------------------------------------------

int xBegin(sqlite3_vtab*) { return SQLITE_OK; }

int xSync(sqlite3_vtab* v) {
    std::string err;
    int rc = vt(v)->conn->flush(err);
    if (rc != SQLITE_OK) set_vtab_error(v, err);
    return rc;
}

int xCommit(sqlite3_vtab* v) {
    vt(v)->conn->end(true);
    return SQLITE_OK;
}

int xRollback(sqlite3_vtab* v) {
    vt(v)->conn->end(false);
    return SQLITE_OK;
}

int xSavepoint(sqlite3_vtab* v, int n) {
    vt(v)->conn->pending().savepoint(n);
    return SQLITE_OK;
}
int xRelease(sqlite3_vtab* v, int n) {
    vt(v)->conn->pending().release(n);
    return SQLITE_OK;
}
int xRollbackTo(sqlite3_vtab* v, int n) {
    vt(v)->conn->pending().rollback_to(n);
    return SQLITE_OK;
}

int xShadowName(const char* suffix) { return row_store::is_shadow_suffix(suffix) ? 1 : 0; }

// Every slot, guarded (sql/vtab_module.hpp).
struct repl_methods {
    static constexpr auto xCreate = &sql::xCreate;
    static constexpr auto xConnect = &sql::xConnect;
    static constexpr auto xBestIndex = &sql::xBestIndex;
    static constexpr auto xDisconnect = &sql::xDisconnect;
    static constexpr auto xDestroy = &sql::xDestroy;
    static constexpr auto xOpen = &sql::xOpen;
    static constexpr auto xClose = &sql::xClose;
    static constexpr auto xFilter = &sql::xFilter;
    static constexpr auto xNext = &sql::xNext;
    static constexpr auto xEof = &sql::xEof;
    static constexpr auto xColumn = &sql::xColumn;
    static constexpr auto xRowid = &sql::xRowid;
    static constexpr auto xUpdate = &sql::xUpdate;
    static constexpr auto xBegin = &sql::xBegin;
    static constexpr auto xSync = &sql::xSync;
    static constexpr auto xCommit = &sql::xCommit;
    static constexpr auto xRollback = &sql::xRollback;
    static constexpr auto xRename = &sql::xRename;
    static constexpr auto xSavepoint = &sql::xSavepoint;
    static constexpr auto xRelease = &sql::xRelease;
    static constexpr auto xRollbackTo = &sql::xRollbackTo;
    static constexpr auto xShadowName = &sql::xShadowName;
};

const sqlite3_module repl_module = guarded_module<repl_methods>(3);

void destroy_state(void* p) { delete static_cast<connection_state*>(p); }

} // namespace

int register_repl_table_module(sqlite3* db, connection_state* state) {
    return sqlite3_create_module_v2(db, "hdbrepl", &repl_module, state, destroy_state);
}

} // namespace hdbrepl::sql
