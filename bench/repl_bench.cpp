// hdbrepl_repl_bench: the replication half of the `make bench` report. Two hdbrepl nodes,
// each a separate process with its own database file, replicate over WebSockets on loopback
// (A = 127.0.0.3 writes, B = 127.0.0.2 joins; plain `port` listeners on free ports, a route
// each way, default tuning), and this program measures, in one run, against the targets:
//
//   commit-to-visible latency  p50 <= 2 ms, p99 <= 10 ms
//   throughput visible on B    >= 100,000 rows/s, and >= 0.5 of the local insert rate
//   initial sync               >= 200,000 rows/s
//   peak RSS of A while B is stalled (SIGSTOP) < 100 MB
//
// and the same latency and throughput over the secure port (mutual TLS), as ratios to the plain
// port in the same run:
//
//   TLS throughput >= 0.8 x plain,  TLS latency p99 <= 1.5 x plain p99
//
// The secure port is measured on a second pair of nodes, A' = 127.0.0.5 (writes) and
// B' = 127.0.0.4, that serve `securePort` only (no plain listener) with default tuning and
// join the way an operator does without a common CA: A' holds a cluster user (repl_add_user),
// B' runs repl_add_node with verify_tls false and the credentials (the certificate exchange:
// A' signs B''s certificate), and from then on both verify each other (mutual TLS, TLS 1.3).
// On both pairs the reader dialed the link, so the writer is the WebSocket server (unmasked
// frames) on both: the same code path but for TLS. Both pairs run at the same time and do the
// same work on the same keys, interleaved, so that the noise of a shared machine hits both.
//
// Usage: hdbrepl_repl_bench --lib PATH [--quick] [--json FILE] [--keep]
//
// Every table has the schema of bench.cpp plus a timestamp: (id INTEGER PRIMARY KEY, name
// TEXT, breed TEXT INDEXED, ts INTEGER), and the same deterministic rows. Phases (default
// sizes; --quick: a tenth, except the 300 latency samples):
//   1. A starts alone (its dials to B fail) and writes 1,000,000 rows into table t in
//      1,000-row transactions; A' writes the same rows at the same time (B' not started).
//   2. Initial sync: B starts with an empty database and a route to A; timed from B's
//      repl_start until every row of t is visible on B's own connection. Then (2b) B' starts
//      empty and joins A' with add_node and credentials; the same initial sync over TLS, timed
//      from add_node's return (one run each, not interleaved: a detail, no target).
//   3. Latency: 1,000 single-row autocommit INSERTs into a fresh table lat on A and on A',
//      one at a time after 50 warm-up rows each, each with a fresh key and, in column ts, the
//      CLOCK_MONOTONIC time taken just before the INSERT. The reader polls
//      `SELECT ts FROM lat WHERE id=?` in a tight loop on its own connection; latency = the
//      reader's clock when it sees the row - ts (one system-wide clock, so the two processes
//      compare directly). The reader polls before the writer commits, and the next row is
//      written only once the reader has seen this one. The samples alternate between the
//      pairs one by one (P T, T P, T P, P T, ...).
//   3b. Confirmation: half as many single-row INSERTs, each followed by repl_confirm(1) on
//      the writer; the time from COMMIT returning to the confirmation (the reader applied the
//      row and its WAL is synced). Reported in the details and the JSON, no target.
//   4. Throughput, 5 rounds on each pair: the writer creates a fresh table tpN and inserts
//      200,000 rows in 1,000-row transactions as fast as it can, while the reader polls
//      max(id) every 1 ms: the reader's rate from its first visible row to its last (rows
//      already visible at the first sighting do not count), and the end-to-end time from the
//      first BEGIN to the last row on the reader. Each round runs on both pairs, in
//      alternating order. Alternately before and after each round, a third process C (the
//      extension loaded, no node started) runs the same workload into a fresh table of its
//      own: the local insert rate the rate visible on B is compared with. (Fresh tables,
//      because SQLite's insert rate with the random-order INDEXED column falls as the table
//      outgrows the default 2 MB page cache, plain SQLite too, so the 1,000,000-row table t
//      is no baseline.) Figures are medians (the machine is usually shared and noisy). The
//      CPU time of every thread of the writer's and the reader's processes over the rounds
//      (/proc/<pid>/task/*/stat, by thread name: hdbrepl-io, hdbrepl-db, and "main", the
//      process's own connection) is printed per row, and C's likewise. Then
//      the TLS pair's tables are checked as in 6 and the TLS pair stops.
//   5. Stalled peer: B is stopped with SIGSTOP, A inserts 500,000 more rows into t and then
//      idles 2 s while this program samples A's VmRSS every 10 ms; the figure is A's VmHWM
//      (peak RSS, reset through /proc/<pid>/clear_refs when the stall starts; the sampled
//      maximum when that reset is not allowed). Then SIGCONT, and B must catch up.
//   6. Both nodes must hold the same rows in every table (count and sums over every column).
//
// With 200,000-row rounds the throughput is usually bounded by the writer's own SQLite
// inserts (the table outgrows the page cache), on both ports; TLS costs little CPU here:
// measured with perf on this workload, libcrypto + libssl are ~1% of both nodes' CPU
// (AES-GCM over ~50 bytes a row), and per row both nodes spend the same CPU time on either
// port (within noise). A TLS message of ~50 KB goes out as ~4 records of 16 KiB, ~4 sendmsg
// calls against 1 on the plain port.
//
// Why B = 127.0.0.2: when both nodes dial each other at once, the link dialed by the name
// that sorts first is kept. B asks for the initial copy on the first link it has, normally
// its own dial, which then survives. With the names the other way round, A's periodic redial
// of B (backed off up to 10 s while B was down) usually lands during the copy, the copy's
// link is closed as a duplicate and the copy starts over on the kept link, so the figure
// would depend on when that redial happens. (Before commit f6c07bd the copy was not
// resumed at all and the run failed.)
//
// Each node runs this same binary with `--node` (fork + exec), opens its database, loads the
// extension with sqlite3_load_extension and takes one-line commands on stdin, answering on
// stdout with lines starting with '@'; its stderr (hdbrepl's log) goes to a file that is
// shown when something fails, with every node's repl_cluster_status(). Only loopback
// addresses are used; every wait is bounded (and waits for replication fail after 30 s
// without progress); the nodes (killed by PID if they do not stop), their databases and the
// temporary directory are removed on every exit path (PR_SET_PDEATHSIG covers this program
// being killed).
//
// A figure below target is reported, not treated as an error: this program is a report. It
// exits non-zero when something fails (a node does not start, rows are missing on B, a wait
// times out). The machine running it is usually shared: the load average is printed.
//
// Where the parts are: the node role in node_role.hpp; node processes, free ports and /proc
// readings in bench_procs.hpp; the options, sizes and results in repl_results.hpp; the nodes'
// addresses, configs and the TLS join in repl_cluster.hpp; the phases in repl_phases.hpp; the
// report in repl_report.hpp. The SQLite wrappers, the clock and the deterministic rows are in
// bench_common.hpp.
#include "bench_common.hpp"
#include "bench_procs.hpp"
#include "node_role.hpp"
#include "repl_cluster.hpp"
#include "repl_phases.hpp"
#include "repl_report.hpp"
#include "repl_results.hpp"

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace hdbrepl::bench;
using namespace hdbrepl::bench::repl;

void usage(FILE* out) {
    std::fprintf(out,
                 "usage: hdbrepl_repl_bench --lib PATH [--quick] [--json FILE] [--keep]\n"
                 "  --lib PATH    the hdbrepl extension to load (e.g. ./build-bench/libhdbrepl)\n"
                 "  --quick       about 10x less work, for a smoke test (latency keeps 300 samples)\n"
                 "  --json FILE   also write the figures as JSON\n"
                 "  --keep        keep the temporary directory (databases, configs, node logs)\n");
}

options parse_options(int argc, char** argv) {
    options o;
    parse_common_options(argc, argv, o, usage, [&o](std::string_view a, auto&) {
        if (a != "--keep") return false;
        o.keep = true;
        return true;
    });
    return o;
}

int run(const options& o) {
    const sizes sz = sizes_for(o);
    temp_dir dir("hdbrepl_repl_bench");
    dir.keep = o.keep;
    const std::string exe = self_exe();
    const ports p = write_configs(dir);

    results r;
    r.load_start = load_average();
    print_header(o, sz, p, dir, r);

    cluster c(dir, exe, o.lib, p);
    try {
        measure(sz, c, r);
    } catch (const bench_error& e) {
        fail_with_status(e, c.nodes()); // while the nodes still run
    }
    r.load_end = load_average();

    const std::vector<figure> all = target_figures(r);
    print_table(all);
    print_tls_comparison(r, sz);
    print_details(r, sz);
    if (!o.json.empty()) {
        write_json(o.json, o, all, r);
        std::printf("\nfigures written to %s\n", o.json.c_str());
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::string_view(argv[1]) == "--node") return node_main(argc, argv);
    install_signal_handlers();
    return report_failure("hdbrepl_repl_bench", [&] { return run(parse_options(argc, argv)); });
}
