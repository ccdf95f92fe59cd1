// The values a node runs with: the `replication:` and `tls:` sections of a
// harperdb-config.yaml once loaded and validated (extension/config.hpp loads them from YAML or
// JSON and fills in every default, so nothing here needs re-deriving). docs/config.md is the
// user-facing reference. Pure: no SQLite, YAML or Boost types.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hdbrepl::ext {

// A peer to dial. load_node_config always resolves `port` and `scheme` (0 and "" only
// appear in a route built by hand), so two spellings of the same peer compare equal.
struct route {
    std::string hostname;            // DNS name or IP literal (IPv6 without brackets)
    int port = 0;                    // 0 = default (the loader never leaves it 0)
    std::string scheme;              // "", "ws" or "wss"; "" = default (wss)
    std::string start_time;          // as written (ISO 8601 or epoch ms), optional
    std::int64_t start_time_ms = -1; // start_time in epoch milliseconds; -1 = none
    int shard = -1;                  // the peer's shard; -1 = not given
    // "wss://host:port", with IPv6 hosts in brackets; for hdb_nodes.url and logs.
    std::string url() const;
};

struct database_entry {
    std::string name;     // SQLite schema name ("main", an attached name, or "system")
    bool sharded = false; // replicate only with nodes of this node's shard
};

// Paths are absolute: relative ones are resolved against the config file's directory
// (or the working directory for inline text) when loading, so a later chdir is harmless.
struct tls_config {
    std::string certificate, certificate_authority, private_key; // "" = not configured
};

struct node_config {
    std::string hostname;                  // this node's name; required
    std::vector<route> routes;             // in the order written
    std::vector<database_entry> databases; // empty = all (also for "*")
    bool all_databases = true;
    int shard = -1;        // this node's shard, 0..65535; -1 = none
    int replicate_to = -1; // copies beyond the writing node; -1 = all nodes
    int secure_port = 9933;
    bool serve_secure = true; // false when only `port` is written (plain, IP-authenticated mode)
    int port = 0;          // plain (ws, IP-authenticated) listener; 0 = none
    bool has_port = false;
    std::string bind;      // default: hostname if it is an IP literal, else "0.0.0.0"
    bool enable_root_cas = false;
    tls_config tls;

    // Tuning. Defaults favour fast failure detection on a LAN; see docs/config.md.
    int ping_interval_ms = 1000;
    int ping_timeout_ms = 3000; // default 3 x ping_interval_ms
    std::int64_t log_retention_ms = 7 * 24 * 3600 * 1000LL;
    std::int64_t tombstone_retention_ms = 7 * 24 * 3600 * 1000LL; // default = log_retention_ms
    std::int64_t max_clock_skew_ms = 60000;
    std::int64_t max_frame_bytes = 16 * 1024 * 1024;
    std::int64_t max_bytes_in_flight = 8 * 1024 * 1024;
    // The most the node's own connections let the database file grow to (0: no limit): a
    // quota. Reaching it is handled like a full disk: intake pauses until space returns.
    std::int64_t max_database_size = 0;
    // How long a forwarded read (a key lookup this node cannot answer) waits for the others.
    std::int64_t read_timeout_ms = 3000;
    int reconnect_min_ms = 100, reconnect_max_ms = 10000;

    // A stable JSON text of every field, with routes and databases sorted (their order
    // does not change what the node does). repl_start compares it to decide whether a
    // second call repeats the running config (no-op) or asks for a different one (error).
    std::string canonical() const;
};

} // namespace hdbrepl::ext
