/*
** hdb_nodes: the read-only system table of known nodes (contract section 5), as HarperDB's
** system.hdb_nodes. An eponymous virtual table: it exists on every connection that loaded
** the extension, without CREATE.
**
** Usage:
**   SELECT name, url, subscriptions, replicates, shard, start_time FROM hdb_nodes;
**
** How it works: the first row is this node (name and url from hdbrepl_meta, written by
** repl_start); the others come from hdbrepl_nodes (nodes added with add_node or met over a
** link). Writes are refused: nodes change through repl_add_node / repl_remove_node.
** Thread: the connection's.
*/
#include "sql/vtab_hdb_nodes.hpp"

#include "engine/schema.hpp"
#include "sql/sql_error.hpp"

#include <memory>
#include <string>

namespace hdbrepl::sql {
namespace {

struct nodes_vtab {
    sqlite3_vtab base; // base class, must be first
    sqlite3* db;
};

struct nodes_cursor {
    sqlite3_vtab_cursor base; // base class, must be first
    sqlite3_stmt* stmt = nullptr;
    bool eof = true;
    sqlite3_int64 row = 0;
};

int xConnect(sqlite3* db, void*, int, const char* const*, sqlite3_vtab** out, char** err) {
    int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(name TEXT, url TEXT, subscriptions TEXT, replicates INTEGER, shard INTEGER, start_time INTEGER)");
    if (rc != SQLITE_OK) { *err = error_string(sqlite3_errmsg(db)); return rc; }
    auto* t = new (std::nothrow) nodes_vtab{};
    if (!t) return SQLITE_NOMEM;
    t->db = db;
    *out = &t->base;
    return SQLITE_OK;
}

int xDisconnect(sqlite3_vtab* v) {
    sqlite3_free(v->zErrMsg);
    delete reinterpret_cast<nodes_vtab*>(v);
    return SQLITE_OK;
}

int xBestIndex(sqlite3_vtab*, sqlite3_index_info* info) {
    info->estimatedCost = 10;
    info->estimatedRows = 10;
    return SQLITE_OK;
}

int xOpen(sqlite3_vtab*, sqlite3_vtab_cursor** out) {
    auto* c = new (std::nothrow) nodes_cursor();
    if (!c) return SQLITE_NOMEM;
    *out = &c->base;
    return SQLITE_OK;
}

int xClose(sqlite3_vtab_cursor* cc) {
    auto* c = reinterpret_cast<nodes_cursor*>(cc);
    sqlite3_finalize(c->stmt);
    delete c;
    return SQLITE_OK;
}

int step(nodes_cursor* c) {
    int rc = sqlite3_step(c->stmt);
    c->eof = rc != SQLITE_ROW;
    ++c->row;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int xFilter(sqlite3_vtab_cursor* cc, int, const char*, int, sqlite3_value**) {
    auto* c = reinterpret_cast<nodes_cursor*>(cc);
    auto* t = reinterpret_cast<nodes_vtab*>(cc->pVtab);
    sqlite3_finalize(c->stmt);
    c->stmt = nullptr;
    c->row = 0;
    c->eof = true;
    if (!engine::system_tables_exist(t->db, "main")) return SQLITE_OK; // no node yet: no rows
    bool have_nodes = false;
    {
        sqlite3_stmt* s = nullptr;
        if (sqlite3_prepare_v2(t->db, "SELECT 1 FROM main.sqlite_schema WHERE name='hdbrepl_nodes'", -1, &s, nullptr) == SQLITE_OK)
            have_nodes = sqlite3_step(s) == SQLITE_ROW;
        sqlite3_finalize(s);
    }
    std::string sql =
        "SELECT (SELECT value FROM main.hdbrepl_meta WHERE key='node_name'), (SELECT value FROM main.hdbrepl_meta WHERE key='node_url'), "
        "NULL, 1, (SELECT value FROM main.hdbrepl_meta WHERE key='node_shard'), NULL";
    if (have_nodes)
        sql += " UNION ALL SELECT name, url, subscriptions, 1, shard, start_time FROM main.hdbrepl_nodes"
               " WHERE name IS NOT (SELECT value FROM main.hdbrepl_meta WHERE key='node_name')";
    int rc = sqlite3_prepare_v2(t->db, sql.c_str(), -1, &c->stmt, nullptr);
    if (rc != SQLITE_OK) { set_vtab_error(cc->pVtab, sqlite3_errmsg(t->db)); return rc; }
    return step(c);
}

int xNext(sqlite3_vtab_cursor* cc) { return step(reinterpret_cast<nodes_cursor*>(cc)); }
int xEof(sqlite3_vtab_cursor* cc) { return reinterpret_cast<nodes_cursor*>(cc)->eof ? 1 : 0; }

int xColumn(sqlite3_vtab_cursor* cc, sqlite3_context* ctx, int i) {
    sqlite3_result_value(ctx, sqlite3_column_value(reinterpret_cast<nodes_cursor*>(cc)->stmt, i));
    return SQLITE_OK;
}

int xRowid(sqlite3_vtab_cursor* cc, sqlite3_int64* out) {
    *out = reinterpret_cast<nodes_cursor*>(cc)->row;
    return SQLITE_OK;
}

sqlite3_module make_module() {
    sqlite3_module m{};
    m.iVersion = 1;
    m.xCreate = nullptr; // eponymous only: no CREATE VIRTUAL TABLE ... USING hdb_nodes
    m.xConnect = xConnect;
    m.xBestIndex = xBestIndex;
    m.xDisconnect = xDisconnect;
    m.xDestroy = xDisconnect;
    m.xOpen = xOpen;
    m.xClose = xClose;
    m.xFilter = xFilter;
    m.xNext = xNext;
    m.xEof = xEof;
    m.xColumn = xColumn;
    m.xRowid = xRowid;
    return m; // no xUpdate: read-only
}

const sqlite3_module nodes_module = make_module();

} // namespace

int register_hdb_nodes_module(sqlite3* db) { return sqlite3_create_module_v2(db, "hdb_nodes", &nodes_module, nullptr, nullptr); }

} // namespace hdbrepl::sql
