// The repl_* SQL functions available in this scope (see fn_basic.cpp).
#pragma once
#include "engine/sqlite_api.hpp"
#include "sql/connection_state.hpp"

namespace hdbrepl::sql {

// Registers every function in the table of fn_basic.cpp; returns the first failure.
int register_basic_functions(sqlite3* db, connection_state* state);

// The functions this build registers, by name (the [sql] tests compare it with the docs).
const char* const* registered_function_names();

} // namespace hdbrepl::sql
