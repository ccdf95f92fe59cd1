// Evaluating residency expressions (table_def.hpp residency=) safely. A definition may come
// from any member of the cluster, and the sender evaluates its expression for every row it
// sends, so the expression runs confined:
//  * on a private in-memory connection of the calling thread (no tables, no attached files,
//    no user functions, defensive, small limits), never on a connection to the database;
//  * prepared only within the subset of residency_subset_error() (table_def.hpp), checked
//    again by an authorizer while preparing: no SELECT beyond the query's own wrapper, no
//    read of any table, no function outside residency_functions(), nothing else at all;
//  * stepped under a progress handler that stops it after a bounded number of VM steps.
// Whoever cannot prepare or evaluate an expression must treat its row as resident nowhere
// else (fail closed): node_sending.cpp does. Thread: the caller's; each thread has its own
// sandbox connection, closed when the thread ends.
#pragma once
#include <string>

#include "engine/sqlite_api.hpp"
#include "engine/table_def.hpp"

namespace hdbrepl::engine {

// Prepares residency_query(def) on this thread's sandbox. SQLITE_OK and *out set, or an
// error code with `err` saying why (the subset, the authorizer, or SQLite's own message).
int prepare_residency(const table_def& def, sqlite3_stmt** out, std::string& err);

// Steps a statement from prepare_residency (its row bound as ?1..?n) under the progress
// limit: SQLITE_ROW with the result in column 0, or an error with `err` set. The caller
// resets the statement.
int step_residency(sqlite3_stmt* st, std::string& err);

// VM steps a residency evaluation may take before it is stopped.
inline constexpr int residency_max_vm_steps = 100000;

} // namespace hdbrepl::engine
