// The read-only hdb_nodes system table (see vtab_hdb_nodes.cpp).
#pragma once
#include "engine/sqlite_api.hpp"

namespace hdbrepl::sql {

int register_hdb_nodes_module(sqlite3* db);

} // namespace hdbrepl::sql
