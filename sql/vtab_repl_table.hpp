// The hdbrepl virtual-table module.
#pragma once
#include "engine/sqlite_api.hpp"
#include "sql/connection_state.hpp"

namespace hdbrepl::sql {

// Registers the module on `db`; `state` is owned by the module from then on (freed when
// the connection closes). Thread: the connection's.
int register_repl_table_module(sqlite3* db, connection_state* state);

} // namespace hdbrepl::sql
