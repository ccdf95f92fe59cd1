// A running replication node: one per database file per process.
//
// Threads (every member function says which thread may call it):
//   io thread   (net::io_runtime, shared by all nodes of the process): links, timers,
//               peer state, the protocol state machines;
//   db thread   (one per node): every SQLite call of the node, on the node's own
//               connections (never a user's): applying received transactions in
//               batches, reading the log for senders, snapshots for initial copies;
//   user threads (SQL functions): start/stop, operations and status. They post to the
//               other threads and wait for the reply with a timeout; status reads take a
//               copy under a mutex and never wait for the network.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engine/hlc.hpp"
#include "engine/result.hpp"
#include "engine/sqlite_api.hpp"
#include "replication/fault_hooks.hpp"
#include "replication/node_config.hpp"
#include "sql/node_hooks.hpp"

namespace hdbrepl::net {
class io_runtime;
}

namespace hdbrepl::ext {

// A node as the SQL functions see it.
class node {
public:
    virtual ~node() = default;
    // user thread
    virtual const node_config& config() const = 0;
    virtual const std::string& path() const = 0;
    virtual std::string cluster_status_json() = 0;
    // Adds or updates a node (add_node / set_node / update_node), or removes one; the reply
    // document ({"message": ...}) or why not.
    virtual result<std::string> set_node(const std::string& operation_json) = 0;
    virtual result<std::string> remove_node(const std::string& operation_json) = 0;
    virtual std::string search_nodes_json() = 0;
    // Waits until `n` peers (of `only`, when it is not empty) confirmed our transaction `hlc`
    // or the timeout passes; returns how many confirmed.
    virtual int wait_confirmed(engine::hlc_t hlc, int n, std::chrono::milliseconds timeout, const std::set<std::string>& only = {}) = 0;
    // Re-reads certificates and users (after repl_add_certificate, repl_add_user, ...): the
    // next connections use them. An error says why the new identity was not taken.
    virtual result<void> reload_security() = 0;
    // A key lookup that found nothing here, asked of the other nodes when this node holds
    // only part of the data (replicateTo, residency, a sharded database): blocks the caller
    // until one has the row, all say they have none, or `readTimeout` passes.
    virtual sql::forwarded_read forward_read(const std::string& table, const std::string& definition, const std::string& key_column,
                                             const engine::value& key) = 0;
    // Stops everything and joins the node's thread. Not from the io thread.
    virtual void stop() = 0;
};

// Registers the hdbrepl module and SQL functions on a connection. The node's own connections
// need them as a user's do (its apply path creates replicated tables); the extension that
// starts the node hands its registration in, so the node never reaches back into it.
using module_registrar = int (*)(sqlite3* db, char** pz_err, const sqlite3_api_routines* api);

// Starts a node on `path` with its own connections, or says why it cannot start (bad
// database, port in use, ...): nothing is left running then.
// `faults` is for tests (replication/fault_hooks.hpp); the extension passes none.
result<std::shared_ptr<node>> start_node(const std::shared_ptr<net::io_runtime>& io, const std::string& path, const node_config& cfg,
                                         const sqlite3_api_routines* api, module_registrar register_module, const fault_hooks& faults = {});

} // namespace hdbrepl::ext
