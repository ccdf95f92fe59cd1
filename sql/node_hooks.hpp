// The two places where the SQL layer needs the node, without seeing the network: the SQL
// layer knows tables, cursors and transactions, the extension knows nodes and links. The
// extension sets each hook once when it loads (fn_cluster.cpp, fn_placement.cpp); until
// then, and in a process with no node, get() returns nullptr.
//
// - Forwarded reads (docs/cluster.md, "Forwarded reads"): a key lookup that finds no row on
//   a node holding only part of the data asks the nodes that may hold it. Thread: the
//   user's; the forwarder blocks it until an answer or its timeout (it holds no SQLite lock
//   then: the lookup runs in a read, never inside a write).
// - Confirmations on commit (repl_replicate_to(..., confirm)): a connection that asked for N
//   confirmations waits in xCommit until N nodes have confirmed its transaction, or until
//   its timeout. xCommit runs after SQLite has committed and released the write lock, so the
//   wait blocks only this connection, never another writer.
#pragma once
#include <atomic>
#include <set>
#include <string>
#include <vector>

#include "engine/hlc.hpp"
#include "engine/sqlite_api.hpp"
#include "engine/value.hpp"

namespace hdbrepl::sql {

// A function pointer set once, read by any thread.
template <class F> class node_hook {
public:
    void set(F f) { f_.store(f, std::memory_order_release); }
    F get() const { return f_.load(std::memory_order_acquire); }

private:
    std::atomic<F> f_{nullptr};
};

struct forwarded_read {
    enum status_t {
        not_applicable, // every row is here (no replicateTo, residency or sharding): a miss is a miss
        found,
        absent,         // every node asked says it has no such row
        failed,         // no answer in time (error says which and why)
    } status = not_applicable;
    std::vector<engine::value> row; // found: every column in declared order
    std::string error;
};

// `path`: the database file the table lives in.
using read_forwarder = forwarded_read (*)(const std::string& path, const std::string& table, const std::string& definition,
                                          const std::string& key_column, const engine::value& key);
inline node_hook<read_forwarder> read_forward_hook;

// How many nodes confirmed the transaction at `hlc` (counting only `only` when it is not
// empty) after waiting up to `timeout_ms` for `n`; -1 when no node runs on `path`.
using confirm_waiter = int (*)(const std::string& path, engine::hlc_t hlc, int n, const std::set<std::string>& only, int timeout_ms);
inline node_hook<confirm_waiter> confirm_hook;

} // namespace hdbrepl::sql
