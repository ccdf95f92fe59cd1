// An in-process cluster: several replication nodes in one test process, each on its own
// database file in a temporary directory, with its own user connection (hdbrepl registered),
// its own net::io_runtime and the fault hooks of its spec (replication/fault_hooks.hpp).
// Nodes are in the plain, IP-authenticated mode, one port for all (as the process tests'
// harness has them); every byte between two nodes goes through a relay the fixture controls
// (relay.hpp: latency per direction, cut, blackhole, heal).
//
// Threads:
//   the test thread  runs the test, the user connections (exec, rows, ...), the fixture's
//                    controls (start, stop, kill, restart, faults) and its waits;
//   per node         the product's io thread (its own io_runtime, so that kill() can stop it
//                    alone) and db thread (started by start_node);
//   the relay thread runs the relay's sockets and timers;
//   the log thread   reads the process's stderr (the nodes' log lines) through a pipe, passes
//                    it on to the real stderr and keeps it for log_lines().
// Other threads a test starts (readers) use connections of their own: open_connection().
#pragma once
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "replication/fault_hooks.hpp"
#include "replication/node.hpp"
#include "tests/inproc/relay.hpp"

namespace hdbrepl::net {
class io_runtime;
}

namespace hdbrepl::test::inproc {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

// How a node is configured; read at every start (so a test may change it between a kill and
// a restart).
struct node_spec {
    // The peers this node has routes to (indices); nullopt: every other node.
    std::optional<std::vector<int>> routes;
    // More route items, as YAML flow text (e.g. "{hostname: 127.0.0.31, port: 20001}").
    std::vector<std::string> extra_routes;
    // More `replication:` keys (e.g. {"maxFrameBytes", "1MiB"}); they override the defaults.
    std::map<std::string, std::string> extra;
    ext::fault_hooks faults;
    bool start = true; // started by the cluster's constructor
};

// Waits until pred() is true: polls every `interval`, at most timeout / interval + 10 times
// and no longer than `timeout`. On timeout the test fails with `what`, the last exception
// pred threw (if any) and describe()'s view of the state.
void wait_until(const std::function<bool()>& pred, ms timeout, const std::string& what,
                const std::function<std::string()>& describe = {}, ms interval = 20ms);

// Rows as "a|b|c" (NULL as "NULL"); fails the test on an SQL error.
std::vector<std::string> query_rows(sqlite3* db, const std::string& sql);
std::string join_rows(const std::vector<std::string>& rows, std::size_t max_chars = 1500);

class cluster {
public:
    explicit cluster(std::vector<node_spec> specs);
    explicit cluster(int n) : cluster(std::vector<node_spec>(static_cast<std::size_t>(n))) {}
    ~cluster();
    cluster(const cluster&) = delete;
    cluster& operator=(const cluster&) = delete;

    int size() const { return static_cast<int>(slots_.size()); }
    const std::string& name(int i) const; // the node's name: its public address
    int port() const { return port_; }
    std::string path(int i) const; // its database file
    node_spec& spec(int i);
    // A free port on node i's public address where nothing listens (a dead route).
    int dead_port(int i) const;
    // An address of the cluster's range that no node uses (nothing answers there).
    std::string unused_address() const;

    // Lifecycle (test thread).
    void start(int i);   // opens the user connection, starts the node; fails the test if it cannot
    void stop(int i);    // graceful: the node stops (closing its links), then its io runtime
    void kill(int i);    // abrupt: the relay drops every TCP connection of the node at once (no
                         // WebSocket close reaches anyone) and refuses new ones, then the node is
                         // stopped (its db thread finishes the job it is in and what is queued
                         // before the stop, as a process killed right after would have) and its
                         // user connection closed
    void restart(int i); // start() again on the same file, after stop() or kill()
    bool running(int i) const;

    ext::node& node(int i);
    // One of node i's db threads is asleep (Linux: nanosleep in /proc): held by a fault hook,
    // as nothing else those threads do sleeps for long.
    bool db_thread_sleeping(int i);
    sqlite3* db(int i); // node i's user connection

    // SQL on node i's user connection (test thread). exec and rows fail the test on error.
    void exec(int i, const std::string& sql);
    std::string try_exec(int i, const std::string& sql);
    std::vector<std::string> rows(int i, const std::string& sql);
    // As rows(), returning the error ("" on success) instead of failing.
    std::string try_rows(int i, const std::string& sql, std::vector<std::string>& out);
    std::string scalar(int i, const std::string& sql);
    std::int64_t count(int i, const std::string& sql);
    // Another user connection to node i's file, for another thread (close with sqlite3_close).
    sqlite3* open_connection(int i);

    // Status, from the node's snapshot (never waits for the network).
    std::string status(int i);
    bool connected(int i, int j); // i holds a link to j
    // A field of i's status entry for `peer` (a node name or address), or of its database
    // socket (connected, latency, ...), as text ("true", "12.5", "ping timeout"); "" when
    // absent or null.
    std::string peer_field(int i, const std::string& peer, const std::string& field);
    bool listed(int i, const std::string& peer); // i's status has an entry for `peer`

    // Faults between nodes (relay.hpp); heal() also removes the pair's latency.
    void set_latency(int from, int to, ms delay);
    void cut(int a, int b);
    void blackhole(int a, int b);
    void heal(int a, int b);
    void heal_all();
    relay_counters traffic(int from, int to) { return relay_->counters(from, to); }

    // Log lines of node i ("hdbrepl[<name>]: ..."), since the cluster started.
    std::vector<std::string> log_lines(int i);
    bool logged(int i, const std::string& text);
    std::string log_tail(int i, std::size_t n = 15);

    // Waits (bounded; failures show the state).
    void wait_connected(int i, int j, ms timeout = 15s);
    void wait_mesh(ms timeout = 15s); // every running node linked to every other running node
    void wait_rows(int i, const std::string& sql, const std::vector<std::string>& want, ms timeout = 15s);
    void wait_logged(int i, const std::string& text, ms timeout = 15s);
    // The same rows from `sql` on every running node; returns them.
    std::vector<std::string> wait_converged(const std::string& sql, ms timeout = 20s);

private:
    struct slot {
        node_spec spec;
        std::string public_ip, private_ip, path;
        std::shared_ptr<net::io_runtime> io;
        std::shared_ptr<ext::node> node;
        sqlite3* db = nullptr;
        std::vector<std::string> db_tids; // its db threads, in /proc/self/task
    };
    std::string config_text(int i) const;
    void shut_down(int i, bool graceful);
    slot& at(int i);
    const slot& at(int i) const;

    std::string dir_;
    int port_ = 0;
    std::size_t log_mark_ = 0; // log lines before this cluster are not its own
    std::vector<slot> slots_;
    std::unique_ptr<relay> relay_;
};

} // namespace hdbrepl::test::inproc
