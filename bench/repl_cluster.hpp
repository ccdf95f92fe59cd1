// repl_cluster.hpp: the nodes of the replication bench (repl_bench.cpp) and how they are set
// up: their loopback addresses and ports, their config files, the node processes (A, B, the
// TLS pair A', B', and the local process C), the TLS pair's join, and the end-of-run check
// that two nodes hold the same rows. Header-only: the bench is one translation unit.
// Thread: the bench's main thread.
#pragma once

#include "bench_common.hpp"
#include "bench_procs.hpp"
#include "repl_results.hpp"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

namespace hdbrepl::bench::repl {

// B, the node that joins and copies, sorts first: when both nodes dial at once, the link
// dialed by the smaller name is kept, so the link B asked for the copy on survives (see
// repl_bench.cpp's header).
constexpr const char* ip_a = "127.0.0.3";
constexpr const char* ip_b = "127.0.0.2";
// The TLS pair: A' writes, B' reads (the same roles as A and B).
constexpr const char* ip_ta = "127.0.0.5";
constexpr const char* ip_tb = "127.0.0.4";
constexpr const char* tls_password = "bench-Pa55word-not-secret";

// Generous bounds: a slow machine gives bad figures, not a failed run (and the waits on B
// also fail after 30 s without progress).
inline std::int64_t rows_timeout_ms(std::int64_t rows) { return 60'000 + rows / 5; } // 60 s + 5,000 rows/s

inline void write_config(const std::string& path, const char* me, int my_port, const char* peer, int peer_port) {
    std::ofstream out(path);
    out << "replication:\n"
        << "  hostname: " << me << "\n"
        << "  port: " << my_port << "\n"
        << "  bind: " << me << "\n"
        << "  routes:\n"
        << "    - ws://" << peer << ":" << peer_port << "\n";
    if (!out.flush()) fail("writing " + path);
}

// The TLS pair: the secure port alone (no `port`, so no plain listener), no routes: B' joins
// A' with add_node (see start_tls_writer). Default tuning, as the plain pair.
inline void write_secure_config(const std::string& path, const char* me, int secure_port) {
    std::ofstream out(path);
    out << "replication:\n"
        << "  hostname: " << me << "\n"
        << "  securePort: " << secure_port << "\n"
        << "  bind: " << me << "\n";
    if (!out.flush()) fail("writing " + path);
}

// The nodes' ports: the plain pair's `port`s and the TLS pair's `securePort`s.
struct ports {
    int a = 0, b = 0, ta = 0, tb = 0;
};

// Picks a free port for each node and writes its config (a.yaml, b.yaml, ta.yaml, tb.yaml).
inline ports write_configs(const temp_dir& dir) {
    ports p;
    p.a = free_port(ip_a), p.b = free_port(ip_b);
    write_config(dir.file("a.yaml"), ip_a, p.a, ip_b, p.b);
    write_config(dir.file("b.yaml"), ip_b, p.b, ip_a, p.a);
    p.ta = free_port(ip_ta), p.tb = free_port(ip_tb);
    write_secure_config(dir.file("ta.yaml"), ip_ta, p.ta);
    write_secure_config(dir.file("tb.yaml"), ip_tb, p.tb);
    return p;
}

// The node processes, each started by the phase that first needs it (b in phase 2, tb in
// 2b, c in 4), and where they keep their files.
struct cluster {
    cluster(const temp_dir& dir, std::string exe, std::string lib, ports p)
        : dir(dir), exe(std::move(exe)), lib(std::move(lib)), port(p) {}

    // A node process `name` on `base`.db, logging to `base`.log.
    std::unique_ptr<node_proc> spawn(const std::string& name, const std::string& base) const {
        return std::make_unique<node_proc>(name, exe, dir.file((base + ".db").c_str()), lib, dir.file((base + ".log").c_str()));
    }
    std::string config(const char* node) const { return dir.file((std::string(node) + ".yaml").c_str()); }

    // Every node process, for the failure message (C runs no node: it has no status).
    std::vector<node_proc*> nodes() const { return {a.get(), b.get(), ta.get(), tb.get()}; }

    const temp_dir& dir;
    const std::string exe, lib;
    const ports port;
    std::unique_ptr<node_proc> a, b, c, ta, tb; // ta, tb: the TLS pair A', B'
};

// The TLS pair joins the way an operator does without a common CA: A' (the writer) holds a
// cluster user; B' (the reader, empty) runs add_node with verify_tls false and the
// credentials, which has A' sign B''s certificate (the certificate exchange); from then on
// both verify each other (mutual TLS). B' dials, as B's dial is the link the plain pair keeps
// (see repl_bench.cpp's header): on both pairs the writer is the WebSocket server, the reader
// the client.
inline void start_tls_writer(const cluster& c) {
    c.ta->call("start " + c.config("ta"), 30'000); // generates its CA and certificate
    c.ta->call(std::string("sql SELECT repl_add_user('{\"username\": \"bench\", \"password\": \"") + tls_password +
                   "\", \"role\": \"cluster_user\"}')",
               20'000);
}

// B' joins A': returns the time add_node returned (the copy starts from there).
inline std::int64_t join_tls_reader(const cluster& c, results& r) {
    c.tb->call("start " + c.config("tb"), 30'000);
    auto t = c.tb->call(std::string("sql SELECT repl_add_node('{\"hostname\": \"") + ip_ta + "\", \"port\": " + num(c.port.ta) +
                            ", \"verify_tls\": false, \"authorization\": {\"username\": \"bench\", \"password\": \"" + tls_password + "\"}}')",
                        30'000);
    r.tls_add_node_ms = millis(t.at(1) - t.at(0));
    return t.at(1);
}

// Both nodes hold `expected` rows in `table`, the same ones (count and sums over every
// column); returns the count.
inline std::int64_t check_same(node_proc& a, node_proc& b, const std::string& table, std::int64_t expected) {
    auto da = a.call("digest " + table, 120'000), db = b.call("digest " + table, 120'000);
    if (da.empty() || da[0] != expected)
        fail("at the end, A's table " + table + " holds " + (da.empty() ? "?" : num(da[0])) + " rows, expected " + num(expected));
    if (db != da)
        fail("at the end, B's table " + table + " holds " + (db.empty() ? "?" : num(db[0])) + " rows, A's " + num(da[0]) +
             (!db.empty() && db[0] == da[0] ? " (same count, different contents)" : ""));
    return da[0];
}

// "state ..., backlog ..." of the first connection in a repl_cluster_status() answer.
inline std::string link_summary(const std::string& status) {
    auto field = [&](const std::string& key) -> std::string {
        auto pos = status.find("\"" + key + "\":");
        if (pos == std::string::npos) return "?";
        pos += key.size() + 3;
        auto stop = status.find_first_of(",}", pos);
        std::string v = status.substr(pos, stop - pos);
        v.erase(std::remove(v.begin(), v.end(), '"'), v.end());
        return v;
    };
    if (status.empty()) return "no status";
    return "state " + field("state") + ", backlog " + field("backlog") + ", lastError " + field("lastError");
}

} // namespace hdbrepl::bench::repl
