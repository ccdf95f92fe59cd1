// The cluster functions: repl_start, repl_stop, the node
// operations, cluster status, confirmations and repl_operation.
#pragma once
#include "engine/sqlite_api.hpp"
#include "sql/connection_state.hpp"

namespace hdbrepl::ext {

int register_cluster_functions(sqlite3* db, sql::connection_state* state, const sqlite3_api_routines* api);

} // namespace hdbrepl::ext
