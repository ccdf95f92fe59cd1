// The read-only system tables hdb_nodes, hdb_certificate and hdb_user (see vtab_system_tables.cpp).
#pragma once
#include "engine/sqlite_api.hpp"

namespace hdbrepl::sql {

// Registers the three eponymous modules on `db`.
int register_system_table_modules(sqlite3* db);

} // namespace hdbrepl::sql
