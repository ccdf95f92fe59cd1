// Certificate and user SQL functions (see fn_security.cpp).
#pragma once
#include <string>

#include "extension/fn_context.hpp"
#include "sql/fn_table.hpp"

namespace hdbrepl::ext {

// The table of repl_add_certificate, repl_remove_certificate, repl_list_certificates,
// repl_add_user, repl_drop_user, repl_create_authentication_tokens, registered by
// fn_cluster.cpp with the connection's fn_context (sql/fn_table.hpp).
std::span<const sql::function_entry> security_functions();

// For repl_operation: runs the security operation `op` (e.g. "add_user") with argv[0] as
// its JSON body; false when `op` is not one of them.
bool run_security_operation(sqlite3_context* c, const std::string& op, sqlite3_value** argv);

} // namespace hdbrepl::ext
