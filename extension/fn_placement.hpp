// Per-transaction placement and confirmations: repl_replicate_to() and
// repl_last_commit(), and the hook that makes a COMMIT wait for confirmations.
#pragma once
#include "engine/sqlite_api.hpp"
#include "sql/connection_state.hpp"

namespace hdbrepl::ext {

int register_placement_functions(sqlite3* db, sql::connection_state* state);

} // namespace hdbrepl::ext
