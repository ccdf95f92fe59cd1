// Confirmations on commit (repl_replicate_to(..., confirm)): a connection that asked for N
// confirmations waits in xCommit until N nodes have confirmed its transaction, or until its
// timeout. xCommit runs after SQLite has committed and released the write lock, so the wait
// blocks only this connection, never another writer. The SQL layer knows the transaction,
// the extension knows the node; this hook joins the two. Set once when the extension loads.
#pragma once
#include <set>
#include <string>

#include "engine/hlc.hpp"

namespace hdbrepl::sql {

// How many nodes confirmed the transaction at `hlc` (counting only `only` when it is not
// empty) after waiting up to `timeout_ms` for `n`; -1 when no node runs on `path`.
using confirm_waiter = int (*)(const std::string& path, engine::hlc_t hlc, int n, const std::set<std::string>& only, int timeout_ms);

void set_confirm_waiter(confirm_waiter f);
confirm_waiter get_confirm_waiter();

} // namespace hdbrepl::sql
