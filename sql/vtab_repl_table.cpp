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
#include "sql/sql_error.hpp"
#include "sql/vtab_module.hpp"
#include "sql/vtab_repl_table_impl.hpp"

#include <cstring>
#include <memory>
#include <vector>

namespace hdbrepl::sql::repl_table {
namespace {

using namespace hdbrepl::engine;

std::string declaration(const table_def& def) {
    std::string sql = "CREATE TABLE x(";
    for (const auto& c : def.columns) {
        sql += quote_ident(c.name);
        if (!c.decl_type.empty()) sql += " " + c.decl_type;
        sql += ", ";
    }
    return sql + "PRIMARY KEY(" + quote_ident(def.columns[def.pk].name) + ")) WITHOUT ROWID";
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

int xShadowName(const char* suffix) { return row_store::is_shadow_suffix(suffix) ? 1 : 0; }

// Every slot, guarded (sql/vtab_module.hpp).
struct repl_methods {
    static constexpr auto xCreate = &repl_table::xCreate;
    static constexpr auto xConnect = &repl_table::xConnect;
    static constexpr auto xBestIndex = &repl_table::xBestIndex;
    static constexpr auto xDisconnect = &repl_table::xDisconnect;
    static constexpr auto xDestroy = &repl_table::xDestroy;
    static constexpr auto xOpen = &repl_table::xOpen;
    static constexpr auto xClose = &repl_table::xClose;
    static constexpr auto xFilter = &repl_table::xFilter;
    static constexpr auto xNext = &repl_table::xNext;
    static constexpr auto xEof = &repl_table::xEof;
    static constexpr auto xColumn = &repl_table::xColumn;
    static constexpr auto xRowid = &repl_table::xRowid;
    static constexpr auto xUpdate = &repl_table::xUpdate;
    static constexpr auto xBegin = &repl_table::xBegin;
    static constexpr auto xSync = &repl_table::xSync;
    static constexpr auto xCommit = &repl_table::xCommit;
    static constexpr auto xRollback = &repl_table::xRollback;
    static constexpr auto xRename = &repl_table::xRename;
    static constexpr auto xSavepoint = &repl_table::xSavepoint;
    static constexpr auto xRelease = &repl_table::xRelease;
    static constexpr auto xRollbackTo = &repl_table::xRollbackTo;
    static constexpr auto xShadowName = &repl_table::xShadowName;
};

const sqlite3_module repl_module = guarded_module<repl_methods>(3);

void destroy_state(void* p) { delete static_cast<connection_state*>(p); }

} // namespace

} // namespace hdbrepl::sql::repl_table

namespace hdbrepl::sql {

int register_repl_table_module(sqlite3* db, connection_state* state) {
    return sqlite3_create_module_v2(db, "hdbrepl", &repl_table::repl_module, state, repl_table::destroy_state);
}

} // namespace hdbrepl::sql
