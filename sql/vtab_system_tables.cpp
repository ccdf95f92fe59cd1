/*
** The read-only system tables, as HarperDB's system database shows
** them. Each is an eponymous virtual table: it exists on every connection that loaded the
** extension, without CREATE.
**
** Usage:
**   SELECT name, url, subscriptions, replicates, shard, start_time FROM hdb_nodes;
**   SELECT name, uses, certificate, is_authority, details FROM hdb_certificate;
**   SELECT username, role FROM hdb_user;
**   SELECT table_name, key, nodes FROM hdb_placement;   where each placed row lives
**
** How it works: one module serves all three; its client data (a table_spec) gives the
** declared columns and the SELECT over hdbrepl's own tables that produces the rows.
** hdb_nodes' first row is this node (name and url from hdbrepl_meta, written by
** repl_start); the others come from hdbrepl_nodes. hdb_certificate never shows a private
** key (only whether this node holds one, `has_private_key`) and hdb_user never shows a
** password or its hash. Writes are refused: these change through the repl_* operations.
** Before a node ever ran on the file the tables are empty.
** Thread: the connection's.
*/
#include "sql/vtab_system_tables.hpp"

#include "engine/schema.hpp"
#include "sql/sql_error.hpp"
#include "sql/vtab_module.hpp"

#include <memory>
#include <string>

namespace hdbrepl::sql {
namespace {

struct table_spec {
    const char* name;
    const char* declaration;
    std::string (*select)(sqlite3* db); // the SELECT producing the rows (none while hdbrepl's tables are missing)
};

bool table_exists(sqlite3* db, const char* name);

// This node, the nodes added here (with their subscriptions), then the members the cluster
// told us about (gossip, hdbrepl_members) that are not removed.
std::string nodes_select(sqlite3* db) {
    std::string sql =
        "SELECT (SELECT value FROM main.hdbrepl_meta WHERE key='node_name'), (SELECT value FROM main.hdbrepl_meta WHERE key='node_url'), "
        "NULL, 1, CAST((SELECT value FROM main.hdbrepl_meta WHERE key='node_shard') AS INTEGER), NULL";
    const std::string self = "(SELECT value FROM main.hdbrepl_meta WHERE key='node_name')";
    const bool have_nodes = table_exists(db, "hdbrepl_nodes"), have_members = table_exists(db, "hdbrepl_members");
    // A node's own membership row knows its shard best; add_node's `shard` is the fallback.
    const std::string shard = have_members ? "coalesce((SELECT m.shard FROM main.hdbrepl_members m WHERE m.name = n.name), n.shard)" : "n.shard";
    if (have_nodes)
        sql += " UNION ALL SELECT n.name, n.url, n.subscriptions, 1, " + shard + ", n.start_time FROM main.hdbrepl_nodes n WHERE n.name IS NOT " + self;
    if (have_members) {
        sql += " UNION ALL SELECT name, url, NULL, 1, shard, NULL FROM main.hdbrepl_members WHERE name IS NOT " + self;
        if (have_nodes) sql += " AND name NOT IN (SELECT name FROM main.hdbrepl_nodes)";
        if (table_exists(db, "hdbrepl_removals")) sql += " AND name NOT IN (SELECT name FROM main.hdbrepl_removals)";
    }
    return sql;
}

std::string certificates_select(sqlite3* db) {
    if (!table_exists(db, "hdbrepl_certificates")) return "SELECT NULL, NULL, NULL, NULL, NULL, NULL WHERE 0";
    return "SELECT name, uses, certificate, is_authority, details, key_file IS NOT NULL FROM main.hdbrepl_certificates ORDER BY added_at, name";
}

std::string users_select(sqlite3* db) {
    if (!table_exists(db, "hdbrepl_users")) return "SELECT NULL, NULL WHERE 0";
    return "SELECT username, role FROM main.hdbrepl_users ORDER BY username";
}

// Rows with a placement (engine/placement_store.hpp): the table, the row's key as stored,
// and the JSON array of the nodes it lives on.
std::string placement_select(sqlite3* db) {
    if (!table_exists(db, "hdbrepl_placement")) return "SELECT NULL, NULL, NULL WHERE 0";
    return "SELECT tbl, key, nodes FROM main.hdbrepl_placement ORDER BY tbl, key";
}

const table_spec specs[] = {
    {"hdb_nodes", "CREATE TABLE x(name TEXT, url TEXT, subscriptions TEXT, replicates INTEGER, shard INTEGER, start_time INTEGER)",
     nodes_select},
    {"hdb_certificate", "CREATE TABLE x(name TEXT, uses TEXT, certificate TEXT, is_authority INTEGER, details TEXT, has_private_key INTEGER)",
     certificates_select},
    {"hdb_user", "CREATE TABLE x(username TEXT, role TEXT)", users_select},
    {"hdb_placement", "CREATE TABLE x(table_name TEXT, key, nodes TEXT)", placement_select},
};

struct system_vtab {
    sqlite3_vtab base; // base class, must be first
    sqlite3* db;
    const table_spec* spec;
};

struct system_cursor {
    sqlite3_vtab_cursor base; // base class, must be first
    sqlite3_stmt* stmt = nullptr;
    bool eof = true;
    sqlite3_int64 row = 0;
};

int xConnect(sqlite3* db, void* aux, int, const char* const*, sqlite3_vtab** out, char** err) {
    const auto* spec = static_cast<const table_spec*>(aux);
    int rc = sqlite3_declare_vtab(db, spec->declaration);
    if (rc != SQLITE_OK) { *err = error_string(sqlite3_errmsg(db)); return rc; }
    auto* t = new (std::nothrow) system_vtab{};
    if (!t) return SQLITE_NOMEM;
    t->db = db;
    t->spec = spec;
    *out = &t->base;
    return SQLITE_OK;
}

int xDisconnect(sqlite3_vtab* v) {
    sqlite3_free(v->zErrMsg);
    delete reinterpret_cast<system_vtab*>(v);
    return SQLITE_OK;
}

int xBestIndex(sqlite3_vtab*, sqlite3_index_info* info) {
    info->estimatedCost = 10;
    info->estimatedRows = 10;
    return SQLITE_OK;
}

int xOpen(sqlite3_vtab*, sqlite3_vtab_cursor** out) {
    auto* c = new (std::nothrow) system_cursor();
    if (!c) return SQLITE_NOMEM;
    *out = &c->base;
    return SQLITE_OK;
}

int xClose(sqlite3_vtab_cursor* cc) {
    auto* c = reinterpret_cast<system_cursor*>(cc);
    sqlite3_finalize(c->stmt);
    delete c;
    return SQLITE_OK;
}

int step(system_cursor* c) {
    int rc = sqlite3_step(c->stmt);
    c->eof = rc != SQLITE_ROW;
    ++c->row;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

bool table_exists(sqlite3* db, const char* name) {
    sqlite3_stmt* s = nullptr;
    bool found = false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM main.sqlite_schema WHERE type='table' AND name=?1", -1, &s, nullptr) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        found = sqlite3_step(s) == SQLITE_ROW;
    }
    sqlite3_finalize(s);
    return found;
}

int xFilter(sqlite3_vtab_cursor* cc, int, const char*, int, sqlite3_value**) {
    auto* c = reinterpret_cast<system_cursor*>(cc);
    auto* t = reinterpret_cast<system_vtab*>(cc->pVtab);
    sqlite3_finalize(c->stmt);
    c->stmt = nullptr;
    c->row = 0;
    c->eof = true;
    if (!engine::system_tables_exist(t->db, "main")) return SQLITE_OK; // no node yet: no rows
    std::string sql = t->spec->select(t->db);
    int rc = sqlite3_prepare_v2(t->db, sql.c_str(), -1, &c->stmt, nullptr);
    if (rc != SQLITE_OK) { set_vtab_error(cc->pVtab, sqlite3_errmsg(t->db)); return rc; }
    return step(c);
}

int xNext(sqlite3_vtab_cursor* cc) { return step(reinterpret_cast<system_cursor*>(cc)); }
int xEof(sqlite3_vtab_cursor* cc) { return reinterpret_cast<system_cursor*>(cc)->eof ? 1 : 0; }

int xColumn(sqlite3_vtab_cursor* cc, sqlite3_context* ctx, int i) {
    sqlite3_result_value(ctx, sqlite3_column_value(reinterpret_cast<system_cursor*>(cc)->stmt, i));
    return SQLITE_OK;
}

int xRowid(sqlite3_vtab_cursor* cc, sqlite3_int64* out) {
    *out = reinterpret_cast<system_cursor*>(cc)->row;
    return SQLITE_OK;
}

// Every slot, guarded (sql/vtab_module.hpp). Eponymous only: no xCreate, so no CREATE
// VIRTUAL TABLE ... USING hdb_nodes; no xUpdate: read-only.
struct system_methods {
    static constexpr auto xConnect = &sql::xConnect;
    static constexpr auto xBestIndex = &sql::xBestIndex;
    static constexpr auto xDisconnect = &sql::xDisconnect;
    static constexpr auto xDestroy = &sql::xDisconnect;
    static constexpr auto xOpen = &sql::xOpen;
    static constexpr auto xClose = &sql::xClose;
    static constexpr auto xFilter = &sql::xFilter;
    static constexpr auto xNext = &sql::xNext;
    static constexpr auto xEof = &sql::xEof;
    static constexpr auto xColumn = &sql::xColumn;
    static constexpr auto xRowid = &sql::xRowid;
};

const sqlite3_module system_module = guarded_module<system_methods>(1);

} // namespace

int register_system_table_modules(sqlite3* db) {
    for (const auto& spec : specs) {
        // The spec is static: nothing to free.
        int rc = sqlite3_create_module_v2(db, spec.name, &system_module, const_cast<table_spec*>(&spec), nullptr);
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

} // namespace hdbrepl::sql
