// Certificate and user SQL functions (see fn_security.cpp).
#pragma once
#include <string>

#include "extension/fn_context.hpp"

namespace hdbrepl::ext {

// Registers repl_add_certificate, repl_remove_certificate, repl_list_certificates,
// repl_add_user, repl_drop_user, repl_create_authentication_tokens. `x` is owned by the
// caller (fn_cluster.cpp frees it with repl_operation).
int register_security_functions(sqlite3* db, fn_context* x);

// For repl_operation: runs the security operation `op` (e.g. "add_user") with argv[0] as
// its JSON body; false when `op` is not one of them.
bool run_security_operation(sqlite3_context* c, const std::string& op, sqlite3_value** argv);

} // namespace hdbrepl::ext
