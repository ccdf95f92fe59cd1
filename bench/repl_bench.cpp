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
#include "bench_common.hpp"
#include "bench_procs.hpp"
#include "node_role.hpp"

#include <sqlite3.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace hdbrepl::bench;

// ---- options --------------------------------------------------------------------------------

struct options : common_options {
    bool keep = false;
};

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

// The SQLite wrappers, the clock and the deterministic rows (make_row: bench.cpp's rows, which
// the node writes with ts added) are in bench_common.hpp.

// The node role is in node_role.hpp; node processes, free ports and /proc readings in
// bench_procs.hpp.

// ---- figures and output -----------------------------------------------------------------------

// A figure against its target: at least (`min`) or at most / under.
struct figure {
    std::string name, unit;
    double value = 0, target = 0;
    enum kind { at_least, at_most, under } cmp = at_least;
    int decimals = 0;
    bool ok() const { return cmp == at_least ? value >= target : cmp == at_most ? value <= target : value < target; }
    std::string text(double v) const {
        if (decimals == 0) return grouped(v);
        char buf[48];
        std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
        return buf;
    }
    const char* op() const { return cmp == at_least ? ">=" : cmp == at_most ? "<=" : "<"; }
};

struct sizes {
    std::int64_t sync_rows, latency_samples, warmup, tp_rows, stall_rows;
    int stall_hold_ms;
    int tp_rounds;      // throughput rounds on each pair, and as many local rounds on C: medians are reported
};

sizes sizes_for(const options& o) {
    if (o.quick) return {100'000, 300, 50, 20'000, 50'000, 2000, 5};
    return {1'000'000, 1000, 50, 200'000, 500'000, 2000, 5};
}

// The upper middle value for an even count, 0 for none: a figure some round really had, as
// tp_median() picks. Not shared: bench.cpp's median averages the two middle values.
double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

struct results {
    std::string load_start, load_end;
    // 1-2: preparing the data, initial sync
    double prep_rate = 0;
    std::int64_t sync_rows = 0;
    double sync_seconds = 0, sync_rate = 0;
    std::int64_t sync_hwm_a_kb = -1, sync_hwm_b_kb = -1;
    // 3-4: latency and throughput, over the plain port (A, B) and over the secure port (the
    // TLS pair A', B'), interleaved. Throughput rounds: the median one by B's rate is reported.
    struct tp_round {
        std::int64_t at_first = 0;
        double a_rate = 0, b_rate = 0, e2e_seconds = 0, e2e_rate = 0, first_visible_ms = 0, lag_ms = 0;
    };
    struct link_figures {
        std::vector<std::int64_t> lat_ns, commit_ns, confirm_ns; // confirm: COMMIT returned -> repl_confirm(1) returned
        std::vector<tp_round> tp;
        thread_cpu cpu_w, cpu_rd; // summed over the throughput rounds: writer's and reader's processes
        tp_round tp_median() const {
            auto v = tp;
            std::sort(v.begin(), v.end(), [](const tp_round& x, const tp_round& y) { return x.b_rate < y.b_rate; });
            return v.empty() ? tp_round{} : v[v.size() / 2];
        }
        double b_rate() const { return tp_median().b_rate; }
        double p50_ms() const { return millis(percentile(lat_ns, 0.5)); }
        double p99_ms() const { return millis(percentile(lat_ns, 0.99)); }
    };
    link_figures plain, tls;
    std::int64_t tp_rows = 0;
    std::vector<double> base_rates; // the same workload on the local process C, median
    double base_cpu_s = 0;          // C's CPU time over all its rounds
    double base_rate() const { return median(base_rates); }
    // the TLS pair's join: add_node with credentials on B' (certificate exchange), then the
    // initial sync over TLS (from add_node's return)
    double tls_add_node_ms = 0, tls_sync_seconds = 0;
    // 5: stalled peer
    std::int64_t stall_rows = 0;
    int stall_hold_ms = 0;
    double stall_a_rate = 0, catch_up_first_seconds = 0, catch_up_seconds = 0;
    std::int64_t rss_before_kb = -1, rss_sampled_max_kb = -1, hwm_kb = -1;
    bool hwm_reset = false;
    std::string stall_link; // A's view of the link at the end of the stall
    // 6: final check
    std::int64_t rows_t = 0, rows_lat = 0;
};

// "state ..., backlog ..." of the first connection in a repl_cluster_status() answer.
std::string link_summary(const std::string& status) {
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

void print_table(const std::vector<figure>& all) {
    std::printf("\n%-42s %-7s %12s %12s  %s\n", "figure", "unit", "value", "target", "status");
    for (const auto& f : all) {
        std::string target = std::string(f.op()) + " " + f.text(f.target);
        std::printf("%-42s %-7s %12s %12s  %s\n", f.name.c_str(), f.unit.c_str(), f.text(f.value).c_str(), target.c_str(),
                    f.ok() ? "ok" : "BELOW TARGET");
    }
}

// Plain port against secure port, side by side: the absolute figures of both pairs and the
// ratios TLS / plain, with the secure port's targets on the ratios.
void print_tls_comparison(const results& r, const sizes& sz) {
    std::printf("\nplain port vs secure port (mutual TLS), same run: %s latency samples each, taken alternately;\n"
                "%d throughput rounds each, in alternating order; medians; ratios are TLS / plain\n",
                grouped(static_cast<double>(sz.latency_samples)).c_str(), sz.tp_rounds);
    std::printf("%-40s %12s %12s %10s %9s  %s\n", "figure", "plain", "TLS", "TLS/plain", "target", "status");
    auto line = [](const char* name, const std::string& p, const std::string& t, double ratio, const char* target, int verdict) {
        std::printf("%-40s %12s %12s %10.2f %9s  %s\n", name, p.c_str(), t.c_str(), ratio, target,
                    verdict < 0 ? "" : verdict ? "ok" : "BELOW TARGET");
    };
    auto f3 = [](double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3f", v);
        return std::string(buf);
    };
    const double p99_ratio = r.tls.p99_ms() / r.plain.p99_ms(), tp_ratio = r.tls.b_rate() / r.plain.b_rate();
    line("latency p50 (ms)", f3(r.plain.p50_ms()), f3(r.tls.p50_ms()), r.tls.p50_ms() / r.plain.p50_ms(), "", -1);
    line("latency p99 (ms)", f3(r.plain.p99_ms()), f3(r.tls.p99_ms()), p99_ratio, "<= 1.50", p99_ratio <= 1.5);
    line("throughput visible on reader (rows/s)", grouped(r.plain.b_rate()), grouped(r.tls.b_rate()), tp_ratio, ">= 0.80", tp_ratio >= 0.8);
    line("  writer's insert rate meanwhile", grouped(r.plain.tp_median().a_rate), grouped(r.tls.tp_median().a_rate),
         r.tls.tp_median().a_rate / r.plain.tp_median().a_rate, "", -1);
    const double sync_plain = static_cast<double>(r.sync_rows) / r.sync_seconds, sync_tls = static_cast<double>(r.sync_rows) / r.tls_sync_seconds;
    line("initial sync (rows/s; one run each)", grouped(sync_plain), grouped(sync_tls), sync_tls / sync_plain, "", -1);
}

void print_details(const results& r, const sizes& sz) {
    auto ms = [](std::int64_t ns) { return millis(ns); };
    auto n = [](std::int64_t v) { return grouped(static_cast<double>(v)); };
    std::printf("\ndetails:\n");
    for (const auto* lf : {&r.plain, &r.tls}) {
        const auto& f = *lf;
        const char* port = lf == &r.plain ? "plain port (A, B)" : "secure port (A', B', mutual TLS)";
        std::printf("  %s:\n", port);
        std::printf("    latency, %s samples after %s warm-up: min %.3f  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f ms\n",
                    n(std::ssize(f.lat_ns)).c_str(), n(sz.warmup).c_str(), ms(percentile(f.lat_ns, 0)), ms(percentile(f.lat_ns, 0.5)),
                    ms(percentile(f.lat_ns, 0.9)), ms(percentile(f.lat_ns, 0.99)), ms(percentile(f.lat_ns, 1.0)));
        std::printf("      of which the writer's own autocommit INSERT: p50 %.3f  p99 %.3f  max %.3f ms\n", ms(percentile(f.commit_ns, 0.5)),
                    ms(percentile(f.commit_ns, 0.99)), ms(percentile(f.commit_ns, 1.0)));
        std::printf("    confirmation, %s samples (COMMIT returned -> repl_confirm(1) returned): p50 %.3f  p99 %.3f  max %.3f ms\n",
                    n(std::ssize(f.confirm_ns)).c_str(), ms(percentile(f.confirm_ns, 0.5)), ms(percentile(f.confirm_ns, 0.99)),
                    ms(percentile(f.confirm_ns, 1.0)));
        const auto m = f.tp_median();
        auto rates = [&](auto get) {
            std::string out;
            for (const auto& t : f.tp) out += (out.empty() ? "" : ", ") + grouped(get(t));
            return out;
        };
        std::printf("    throughput, %zu rounds of %s rows into a fresh table: reader %s rows/s; writer meanwhile %s rows/s.\n"
                    "      Median round: the reader saw the first row %.1f ms after the first BEGIN (%s rows by then), the last\n"
                    "      %.1f ms after the last COMMIT; end to end %.3f s = %s rows/s\n",
                    f.tp.size(), n(r.tp_rows).c_str(), rates([](const auto& t) { return t.b_rate; }).c_str(),
                    rates([](const auto& t) { return t.a_rate; }).c_str(), m.first_visible_ms, n(m.at_first).c_str(), m.lag_ms, m.e2e_seconds,
                    grouped(m.e2e_rate).c_str());
        // Where the CPU goes, per replicated row (all rounds; clock-tick resolution).
        const double rows = static_cast<double>(r.tp_rows) * static_cast<double>(f.tp.size());
        auto per_row = [&](const thread_cpu& cpu) {
            std::string out;
            double total = 0;
            for (const auto& [name, sec] : cpu) {
                char buf[64];
                std::snprintf(buf, sizeof buf, "%s%s %.2f", out.empty() ? "" : ", ", name.c_str(), sec * 1e6 / rows);
                out += buf;
                total += sec;
            }
            char buf[32];
            std::snprintf(buf, sizeof buf, " (total %.2f)", total * 1e6 / rows);
            return out + buf;
        };
        if (rows > 0)
            std::printf("      CPU us per row: writer's process %s; reader's process %s\n", per_row(f.cpu_w).c_str(),
                        per_row(f.cpu_rd).c_str());
    }
    std::string base, paired;
    for (double b : r.base_rates) base += (base.empty() ? "" : ", ") + grouped(b);
    for (std::size_t i = 0; i < std::min(r.plain.tp.size(), r.tls.tp.size()); ++i) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "%.2f", r.tls.tp[i].b_rate / r.plain.tp[i].b_rate);
        paired += (paired.empty() ? "" : ", ") + std::string(buf);
    }
    std::printf("  local insert rate (C, no node, same workload, between the rounds): %s rows/s; CPU %.2f us per row\n", base.c_str(),
                r.base_rates.empty() ? 0.0 : r.base_cpu_s * 1e6 / (static_cast<double>(r.tp_rows) * static_cast<double>(r.base_rates.size())));
    std::vector<double> ratios;
    for (std::size_t i = 0; i < std::min(r.plain.tp.size(), r.tls.tp.size()); ++i) ratios.push_back(r.tls.tp[i].b_rate / r.plain.tp[i].b_rate);
    std::printf("  TLS / plain throughput per round (adjacent rounds): %s; median %.2f\n", paired.c_str(), median(ratios));
    std::printf("  TLS join: add_node with credentials (certificate exchange) %.1f ms; then the initial sync over TLS %.2f s\n",
                r.tls_add_node_ms, r.tls_sync_seconds);
    std::printf("  initial sync: %s rows (table t, written by A at %s rows/s, A' writing the same meanwhile) copied in %.2f s;\n"
                "    peak RSS meanwhile A %.1f MB, B %.1f MB\n",
                n(r.sync_rows).c_str(), grouped(r.prep_rate).c_str(), r.sync_seconds, mb(r.sync_hwm_a_kb), mb(r.sync_hwm_b_kb));
    std::printf("  stalled peer: A inserted %s rows into t at %s rows/s with B stopped, then idled %.1f s\n", n(r.stall_rows).c_str(),
                grouped(r.stall_a_rate).c_str(), r.stall_hold_ms / 1000.0);
    std::printf("    A's RSS %.1f MB before, sampled max %.1f MB, VmHWM %.1f MB%s; A's link to B at the end: %s\n", mb(r.rss_before_kb),
                mb(r.rss_sampled_max_kb), mb(r.hwm_kb), r.hwm_reset ? " (reset at the stall)" : " (since A started)", r.stall_link.c_str());
    std::printf("    after SIGCONT: first stalled row visible on B in %.2f s, all %s in %.2f s\n", r.catch_up_first_seconds, n(r.stall_rows).c_str(),
                r.catch_up_seconds);
    std::printf("  both nodes of each pair hold the same rows: t %s, lat %s, tp1.. %s each (count and sums over every column)\n",
                n(r.rows_t).c_str(), n(r.rows_lat).c_str(), n(r.tp_rows).c_str());
    std::printf("  load average at start %s, at end %s (on %ld CPUs)\n", r.load_start.c_str(), r.load_end.c_str(), sysconf(_SC_NPROCESSORS_ONLN));
}

void write_json(const std::string& path, const options& o, const std::vector<figure>& all, const results& r) {
    std::ofstream out(path);
    if (!out) fail("cannot write " + path);
    out << "{\n  \"sqlite_version\": " << json_string(sqlite3_libversion()) << ",\n  \"quick\": " << (o.quick ? "true" : "false")
        << ",\n  \"load_average_start\": " << json_string(r.load_start) << ", \"load_average_end\": " << json_string(r.load_end)
        << ",\n  \"figures\": [\n";
    for (std::size_t i = 0; i < all.size(); ++i) {
        const auto& f = all[i];
        out << "    {\"name\": " << json_string(f.name) << ", \"unit\": " << json_string(f.unit) << ", \"value\": " << json_number(f.value, 3)
            << ", \"target\": " << json_number(f.target, 3) << ", \"comparison\": " << json_string(f.op())
            << ", \"ok\": " << (f.ok() ? "true" : "false") << "}" << (i + 1 < all.size() ? "," : "") << "\n";
    }
    auto ms = [](std::int64_t ns) { return json_number(millis(ns), 3); };
    out << "  ],\n  \"details\": {\n";
    for (const auto* lf : {&r.plain, &r.tls}) {
        const auto& f = *lf;
        out << "    \"" << (lf == &r.plain ? "plain" : "tls") << "\": {\"latency_samples\": " << f.lat_ns.size()
            << ", \"latency_ms\": {\"min\": " << ms(percentile(f.lat_ns, 0)) << ", \"p50\": " << ms(percentile(f.lat_ns, 0.5))
            << ", \"p90\": " << ms(percentile(f.lat_ns, 0.9)) << ", \"p99\": " << ms(percentile(f.lat_ns, 0.99))
            << ", \"max\": " << ms(percentile(f.lat_ns, 1.0)) << "}, \"a_commit_ms\": {\"p50\": " << ms(percentile(f.commit_ns, 0.5))
            << ", \"p99\": " << ms(percentile(f.commit_ns, 0.99)) << "}, \"confirm_ms\": {\"p50\": " << ms(percentile(f.confirm_ns, 0.5))
            << ", \"p99\": " << ms(percentile(f.confirm_ns, 0.99)) << "}, \"throughput_rounds\": [";
        for (std::size_t i = 0; i < f.tp.size(); ++i) {
            const auto& t = f.tp[i];
            out << (i ? ", " : "") << "{\"b_rows_per_s\": " << json_number(t.b_rate, 0) << ", \"a_rows_per_s\": " << json_number(t.a_rate, 0)
                << ", \"end_to_end_seconds\": " << json_number(t.e2e_seconds, 3) << ", \"end_to_end_rows_per_s\": " << json_number(t.e2e_rate, 0)
                << ", \"b_lag_after_last_commit_ms\": " << json_number(t.lag_ms, 1) << "}";
        }
        out << "]},\n";
    }
    out << "    \"tls_add_node_ms\": " << json_number(r.tls_add_node_ms, 1) << ", \"tls_sync_seconds\": " << json_number(r.tls_sync_seconds, 3)
        << ",\n    \"throughput_rows\": " << r.tp_rows;
    out << ", \"local_rows_per_s\": [";
    for (std::size_t i = 0; i < r.base_rates.size(); ++i) out << (i ? ", " : "") << json_number(r.base_rates[i], 0);
    out << "],\n"
        << "    \"sync_rows\": " << r.sync_rows << ", \"sync_seconds\": " << json_number(r.sync_seconds, 3) << ", \"prepare_rows_per_s\": " << json_number(r.prep_rate, 0)
        << ", \"sync_peak_rss_a_mb\": " << json_number(mb(r.sync_hwm_a_kb), 1) << ", \"sync_peak_rss_b_mb\": " << json_number(mb(r.sync_hwm_b_kb), 1) << ",\n"
        << "    \"stall_rows\": " << r.stall_rows << ", \"stall_a_rows_per_s\": " << json_number(r.stall_a_rate, 0)
        << ", \"stall_rss_before_mb\": " << json_number(mb(r.rss_before_kb), 1) << ", \"stall_rss_sampled_max_mb\": " << json_number(mb(r.rss_sampled_max_kb), 1)
        << ", \"stall_vmhwm_mb\": " << json_number(mb(r.hwm_kb), 1) << ", \"vmhwm_reset\": " << (r.hwm_reset ? "true" : "false")
        << ", \"stall_link\": " << json_string(r.stall_link) << ", \"catch_up_first_row_seconds\": " << json_number(r.catch_up_first_seconds, 3)
        << ", \"catch_up_seconds\": " << json_number(r.catch_up_seconds, 3) << ",\n"
        << "    \"rows_t\": " << r.rows_t << ", \"rows_lat\": " << r.rows_lat << "\n  }\n}\n";
    if (!out.flush()) fail("writing " + path);
}

// ---- the run --------------------------------------------------------------------------------

// B, the node that joins and copies, sorts first: when both nodes dial at once, the link
// dialed by the smaller name is kept, so the link B asked for the copy on survives (see the
// header).
constexpr const char* ip_a = "127.0.0.3";
constexpr const char* ip_b = "127.0.0.2";
// The TLS pair: A' writes, B' reads (the same roles as A and B).
constexpr const char* ip_ta = "127.0.0.5";
constexpr const char* ip_tb = "127.0.0.4";
constexpr const char* tls_password = "bench-Pa55word-not-secret";
int tls_port_a = 0, tls_port_b = 0; // chosen in run()

void write_config(const std::string& path, const char* me, int my_port, const char* peer, int peer_port) {
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
void write_secure_config(const std::string& path, const char* me, int secure_port) {
    std::ofstream out(path);
    out << "replication:\n"
        << "  hostname: " << me << "\n"
        << "  securePort: " << secure_port << "\n"
        << "  bind: " << me << "\n";
    if (!out.flush()) fail("writing " + path);
}

// Generous bounds: a slow machine gives bad figures, not a failed run (and the waits on B
// also fail after 30 s without progress).
std::int64_t rows_timeout_ms(std::int64_t rows) { return 60'000 + rows / 5; } // 60 s + 5,000 rows/s

std::string num(std::int64_t v) { return std::to_string(v); }

std::int64_t check_same(node_proc& a, node_proc& b, const std::string& table, std::int64_t expected) {
    auto da = a.call("digest " + table, 120'000), db = b.call("digest " + table, 120'000);
    if (da.empty() || da[0] != expected)
        fail("at the end, A's table " + table + " holds " + (da.empty() ? "?" : num(da[0])) + " rows, expected " + num(expected));
    if (db != da)
        fail("at the end, B's table " + table + " holds " + (db.empty() ? "?" : num(db[0])) + " rows, A's " + num(da[0]) +
             (!db.empty() && db[0] == da[0] ? " (same count, different contents)" : ""));
    return da[0];
}

// The two nodes (b is started in phase 2) and the local process of phase 4.
struct cluster {
    std::unique_ptr<node_proc> a, b, c, ta, tb; // ta, tb: the TLS pair A', B'
};

// The TLS pair joins the way an operator does without a common CA: A' (the writer) holds a
// cluster user; B' (the reader, empty) runs add_node with verify_tls false and the
// credentials, which has A' sign B''s certificate (the certificate exchange); from then on
// both verify each other (mutual TLS). B' dials, as B's dial is the link the plain pair keeps
// (see the header): on both pairs the writer is the WebSocket server, the reader the client.
void start_tls_writer(node_proc& ta, const temp_dir& dir) {
    ta.call("start " + dir.file("ta.yaml"), 30'000); // generates its CA and certificate
    ta.call(std::string("sql SELECT repl_add_user('{\"username\": \"bench\", \"password\": \"") + tls_password +
                "\", \"role\": \"cluster_user\"}')",
            20'000);
}

// B' joins A': returns the time add_node returned (the copy starts from there).
std::int64_t join_tls_reader(node_proc& tb, const temp_dir& dir, results& r) {
    tb.call("start " + dir.file("tb.yaml"), 30'000);
    auto t = tb.call(std::string("sql SELECT repl_add_node('{\"hostname\": \"") + ip_ta + "\", \"port\": " + num(tls_port_a) +
                         ", \"verify_tls\": false, \"authorization\": {\"username\": \"bench\", \"password\": \"" + tls_password + "\"}}')",
                     30'000);
    r.tls_add_node_ms = millis(t.at(1) - t.at(0));
    return t.at(1);
}

void measure(const options& o, const sizes& sz, const temp_dir& dir, const std::string& exe, cluster& c, results& r) {
    std::int64_t next_t = 1; // next key of table t

    // 1. A alone writes the rows B will copy; at the same time A' (the writer of the TLS
    // pair, its reader B' not started yet) writes the same rows.
    c.a = std::make_unique<node_proc>("node A", exe, dir.file("a.db"), o.lib, dir.file("a.log"));
    c.ta = std::make_unique<node_proc>("node A' (TLS)", exe, dir.file("ta.db"), o.lib, dir.file("ta.log"));
    node_proc &a = *c.a, &ta = *c.ta;
    a.call("start " + dir.file("a.yaml"), 20'000);
    a.call("create t", 20'000);
    start_tls_writer(ta, dir);
    ta.call("create t", 20'000);
    {
        const std::string insert = "insert t 1 " + num(sz.sync_rows);
        a.send(insert);
        ta.send(insert);
        auto t = a.expect_ok(insert, rows_timeout_ms(sz.sync_rows));
        ta.expect_ok(insert, rows_timeout_ms(sz.sync_rows));
        r.prep_rate = static_cast<double>(sz.sync_rows) / seconds(t.at(1) - t.at(0));
        next_t += sz.sync_rows;
        r.sync_rows = sz.sync_rows;
    }
    std::printf("  1. A (and A', at the same time) wrote %s rows alone\n", grouped(static_cast<double>(sz.sync_rows)).c_str());
    std::fflush(stdout);

    // 2. B starts empty: initial sync, from B's repl_start to every row visible on B.
    const bool a_reset = reset_peak(a.pid());
    c.b = std::make_unique<node_proc>("node B", exe, dir.file("b.db"), o.lib, dir.file("b.log"));
    node_proc& b = *c.b;
    {
        auto t = b.call("start " + dir.file("b.yaml"), 20'000);
        auto done = b.call("waitall t " + num(sz.sync_rows) + " " + num(next_t - 1) + " " + num(rows_timeout_ms(sz.sync_rows)),
                           rows_timeout_ms(sz.sync_rows) + 10'000);
        if (done.at(1) != sz.sync_rows) fail("initial sync: B holds " + num(done.at(1)) + " rows, A " + num(sz.sync_rows));
        r.sync_seconds = seconds(done.at(0) - t.at(0));
        r.sync_rate = static_cast<double>(sz.sync_rows) / r.sync_seconds;
        r.sync_hwm_a_kb = a_reset ? read_memory(a.pid()).hwm_kb : -1;
        r.sync_hwm_b_kb = read_memory(b.pid()).hwm_kb;
    }
    std::printf("  2. initial sync done\n");
    std::fflush(stdout);

    // 2b. The TLS pair: B' starts empty and joins A' with add_node and credentials; the same
    // initial sync over TLS, from add_node's return to every row visible on B'.
    c.tb = std::make_unique<node_proc>("node B' (TLS)", exe, dir.file("tb.db"), o.lib, dir.file("tb.log"));
    node_proc& tb = *c.tb;
    {
        const std::int64_t t0 = join_tls_reader(tb, dir, r);
        auto done = tb.call("waitall t " + num(sz.sync_rows) + " " + num(next_t - 1) + " " + num(rows_timeout_ms(sz.sync_rows)),
                            rows_timeout_ms(sz.sync_rows) + 10'000);
        if (done.at(1) != sz.sync_rows) fail("initial sync over TLS: B' holds " + num(done.at(1)) + " rows, A' " + num(sz.sync_rows));
        r.tls_sync_seconds = seconds(done.at(0) - t0);
        ta.call("waitlink 20000", 25'000);
        tb.call("waitlink 20000", 25'000);
    }
    std::printf("  2b. TLS pair joined (add_node with credentials %.0f ms), initial sync over TLS done\n", r.tls_add_node_ms);
    std::fflush(stdout);

    // 3. Latency: one row at a time, the reader polling before the writer commits; on each
    // pair into a fresh table `lat` (the same keys on both), the samples of the two pairs
    // interleaved one by one, so that the machine's noise hits both alike.
    std::int64_t next_lat = 1;
    auto latency_sample = [&](node_proc& w, node_proc& rd, std::int64_t id, results::link_figures* out) {
        const std::string wait = "waitrow lat " + num(id) + " 10000";
        rd.send(wait);
        rd.expect_polling(wait);
        auto c1 = w.call("commit1 lat " + num(id), 20'000);
        auto seen = rd.expect_ok(wait, 20'000);
        if (seen.at(1) != c1.at(0))
            fail("latency: " + rd.name() + " read ts " + num(seen.at(1)) + " in row " + num(id) + ", " + w.name() + " wrote " + num(c1.at(0)));
        if (out) {
            out->lat_ns.push_back(seen.at(0) - c1.at(0));
            out->commit_ns.push_back(c1.at(1) - c1.at(0));
        }
    };
    struct pair_ref {
        node_proc *w, *rd;
        results::link_figures* f;
    };
    const pair_ref plain{&a, &b, &r.plain}, secure{&ta, &tb, &r.tls};
    {
        const std::int64_t id0 = next_lat++; // the table reaches the reader with its first row
        for (const auto& p : {plain, secure}) {
            p.w->call("create lat", 20'000);
            p.w->call("commit1 lat " + num(id0), 20'000);
            p.rd->call("waitall lat 1 " + num(id0) + " 30000", 40'000);
        }
        for (std::int64_t i = 0; i < sz.warmup; ++i, ++next_lat)
            for (const auto& p : {plain, secure}) latency_sample(*p.w, *p.rd, next_lat, nullptr);
        // One sample of each pair in turn, the order alternating (P T, T P, T P, P T, ...):
        // a burst of noise from the rest of the machine hits both pairs alike.
        for (std::int64_t i = 0; i < sz.latency_samples; ++i, ++next_lat) {
            const bool plain_first = (i % 4 == 0 || i % 4 == 3);
            for (const auto& p : plain_first ? std::array{plain, secure} : std::array{secure, plain})
                latency_sample(*p.w, *p.rd, next_lat, p.f);
        }
    }
    std::printf("  3. latency done (plain and TLS, %s samples each)\n", grouped(static_cast<double>(sz.latency_samples)).c_str());
    std::fflush(stdout);
    // 3b. Confirmation: after each autocommit INSERT the writer calls repl_confirm(1); the time
    // from COMMIT returning to the confirmation (the peer applied it, its WAL synced).
    for (std::int64_t i = 0; i < sz.latency_samples / 2; ++i, ++next_lat)
        for (const auto& p : (i % 2 == 0) ? std::array{plain, secure} : std::array{secure, plain}) {
            auto v = p.w->call("confirm1 lat " + num(next_lat), 20'000);
            if (v.at(3) < 1) fail("confirm: " + p.w->name() + " got no confirmation of row " + num(next_lat));
            p.f->confirm_ns.push_back(v.at(2) - v.at(1));
        }
    std::printf("  3b. confirmation latency done (plain and TLS, %s samples each)\n", grouped(static_cast<double>(sz.latency_samples / 2)).c_str());
    std::fflush(stdout);

    // 4. Throughput, in rounds, each into a fresh table: the writer inserts as fast as it can,
    // the reader watches max(id); each round runs on the plain pair and on the TLS pair, in
    // alternating order. Each round also runs the same workload on C, a process with the
    // extension loaded and no node: the local insert rate, taken alternately before and after
    // the replicated rounds so that all see the same machine.
    c.c = std::make_unique<node_proc>("local C", exe, dir.file("c.db"), o.lib, dir.file("c.log"));
    node_proc& local = *c.c;
    auto local_round = [&](int round) {
        const std::string table = "base" + num(round);
        local.call("create " + table, 20'000);
        const thread_cpu c0 = read_thread_cpu(local.pid());
        auto t = local.call("insert " + table + " 1 " + num(sz.tp_rows), rows_timeout_ms(sz.tp_rows));
        for (const auto& [name, sec] : cpu_spent(c0, read_thread_cpu(local.pid()))) r.base_cpu_s += sec;
        r.base_rates.push_back(static_cast<double>(sz.tp_rows) / seconds(t.at(1) - t.at(0)));
    };
    auto tp_round = [&](const pair_ref& p, const std::string& table) {
        const std::int64_t last = sz.tp_rows;
        p.w->call("create " + table, 20'000);
        const std::string watch = "watch " + table + " 1 " + num(last) + " " + num(rows_timeout_ms(sz.tp_rows));
        p.rd->send(watch); // answers @polling once the table has arrived
        p.rd->expect_polling(watch);
        const thread_cpu w0 = read_thread_cpu(p.w->pid()), rd0 = read_thread_cpu(p.rd->pid());
        auto t = p.w->call("insert " + table + " 1 " + num(sz.tp_rows), rows_timeout_ms(sz.tp_rows));
        auto w = p.rd->expect_ok(watch, rows_timeout_ms(sz.tp_rows) + 10'000);
        for (const auto& [name, sec] : cpu_spent(w0, read_thread_cpu(p.w->pid()))) p.f->cpu_w[name] += sec;
        for (const auto& [name, sec] : cpu_spent(rd0, read_thread_cpu(p.rd->pid()))) p.f->cpu_rd[name] += sec;
        results::tp_round x;
        x.a_rate = static_cast<double>(sz.tp_rows) / seconds(t.at(1) - t.at(0));
        x.e2e_seconds = seconds(w.at(2) - t.at(0));
        x.e2e_rate = static_cast<double>(sz.tp_rows) / x.e2e_seconds;
        x.first_visible_ms = millis(w.at(0) - t.at(0));
        x.lag_ms = millis(w.at(2) - t.at(1));
        x.at_first = w.at(1);
        // The reader's rate from its first visible row to its last (the rows visible at the
        // first sighting do not count); the end-to-end rate if everything became visible at once.
        x.b_rate = w.at(2) > w.at(0) && last > w.at(1) ? static_cast<double>(last - w.at(1)) / seconds(w.at(2) - w.at(0)) : x.e2e_rate;
        p.f->tp.push_back(x);
    };
    r.tp_rows = sz.tp_rows;
    for (int round = 1; round <= sz.tp_rounds; ++round) {
        if (round % 2) local_round(round);
        const std::string table = "tp" + num(round);
        if (round % 2) tp_round(plain, table), tp_round(secure, table);
        else tp_round(secure, table), tp_round(plain, table);
        if (round % 2 == 0) local_round(round);
    }
    local.quit();
    std::printf("  4. throughput done (plain and TLS, %d rounds each)\n", sz.tp_rounds);
    std::fflush(stdout);

    // The TLS pair is done: its rows must match, then it stops (phases 5-6 run on A and B).
    check_same(ta, tb, "t", sz.sync_rows);
    r.rows_lat = check_same(ta, tb, "lat", next_lat - 1);
    for (int round = 1; round <= sz.tp_rounds; ++round) check_same(ta, tb, "tp" + num(round), sz.tp_rows);
    tb.quit();
    ta.quit();

    // 5. Stalled peer: B stopped, A writes, A's memory sampled.
    {
        r.stall_rows = sz.stall_rows;
        r.stall_hold_ms = sz.stall_hold_ms;
        r.hwm_reset = reset_peak(a.pid());
        r.rss_before_kb = read_memory(a.pid()).rss_kb;
        std::int64_t sampled = r.rss_before_kb;
        auto sample = [&] { sampled = std::max(sampled, read_memory(a.pid()).rss_kb); };
        const std::int64_t first = next_t, last = next_t + sz.stall_rows - 1;
        b.signal(SIGSTOP);
        auto t = a.call("insert t " + num(first) + " " + num(sz.stall_rows), rows_timeout_ms(sz.stall_rows), sample);
        next_t = last + 1;
        r.stall_a_rate = static_cast<double>(sz.stall_rows) / seconds(t.at(1) - t.at(0));
        for (std::int64_t until = mono_ns() + sz.stall_hold_ms * 1'000'000LL; mono_ns() < until;) {
            if (g_interrupted) fail("interrupted");
            sample();
            sleep_us(10'000);
        }
        memory m = read_memory(a.pid());
        r.rss_sampled_max_kb = std::max(sampled, m.rss_kb);
        r.hwm_kb = r.hwm_reset ? m.hwm_kb : std::max(m.hwm_kb, r.rss_sampled_max_kb);
        r.stall_link = link_summary(a.status());
        const std::int64_t t_cont = mono_ns();
        b.signal(SIGCONT);
        const std::string watch = "watch t " + num(first) + " " + num(last) + " " + num(rows_timeout_ms(sz.stall_rows));
        b.send(watch);
        b.expect_polling(watch);
        auto w = b.expect_ok(watch, rows_timeout_ms(sz.stall_rows) + 10'000);
        r.catch_up_first_seconds = seconds(w.at(0) - t_cont);
        r.catch_up_seconds = seconds(w.at(2) - t_cont);
    }
    std::printf("  5. stalled peer done\n");
    std::fflush(stdout);

    // 6. Both nodes hold the same rows.
    r.rows_t = check_same(a, b, "t", next_t - 1);
    check_same(a, b, "lat", r.rows_lat);
    for (int round = 1; round <= sz.tp_rounds; ++round) check_same(a, b, "tp" + num(round), sz.tp_rows);
    b.quit();
    a.quit();
    std::printf("  6. checks done\n");
    std::fflush(stdout);
}

int run(const options& o) {
    const sizes sz = sizes_for(o);
    temp_dir dir("hdbrepl_repl_bench");
    dir.keep = o.keep;
    const std::string exe = self_exe();
    const int port_a = free_port(ip_a), port_b = free_port(ip_b);
    write_config(dir.file("a.yaml"), ip_a, port_a, ip_b, port_b);
    write_config(dir.file("b.yaml"), ip_b, port_b, ip_a, port_a);
    tls_port_a = free_port(ip_ta), tls_port_b = free_port(ip_tb);
    write_secure_config(dir.file("ta.yaml"), ip_ta, tls_port_a);
    write_secure_config(dir.file("tb.yaml"), ip_tb, tls_port_b);

    results r;
    r.load_start = load_average();
    std::printf("hdbrepl replication benchmark: two nodes in separate processes, WebSockets on loopback\n");
    std::printf("A = %s:%d, B = %s:%d (plain port, a route each way, default tuning); SQLite %s; extension %s\n", ip_a, port_a, ip_b,
                port_b, sqlite3_libversion(), o.lib.c_str());
    std::printf("A' = %s:%d, B' = %s:%d (securePort only, mutual TLS: B' joined A' with add_node and credentials)\n", ip_ta, tls_port_a,
                ip_tb, tls_port_b);
    std::printf("%s rows for the initial sync, %s latency samples, %d x %s rows for throughput (each on both pairs), %s rows written while\n"
                "B is stopped%s; bulk writes in 1,000-row transactions. Load average %s. Working directory %s on %s%s\n",
                grouped(static_cast<double>(sz.sync_rows)).c_str(), grouped(static_cast<double>(sz.latency_samples)).c_str(), sz.tp_rounds,
                grouped(static_cast<double>(sz.tp_rows)).c_str(), grouped(static_cast<double>(sz.stall_rows)).c_str(),
                o.quick ? " (--quick)" : "", r.load_start.c_str(), dir.str().c_str(), dir.storage().c_str(), o.keep ? " (kept)" : "");
    std::fflush(stdout);

    cluster c;
    try {
        measure(o, sz, dir, exe, c, r);
    } catch (const bench_error& e) {
        // What each node thinks of its link, while they still run.
        std::string msg = e.what();
        for (auto* n : {c.a.get(), c.b.get(), c.ta.get(), c.tb.get()}) // (C runs no node)
            if (n)
                if (auto st = n->status(); !st.empty()) msg += "\n  " + n->name() + " repl_cluster_status(): " + st;
        fail(msg);
    }
    r.load_end = load_average();

    std::vector<figure> all;
    all.push_back({"commit-to-visible latency p50", "ms", r.plain.p50_ms(), 2.0, figure::at_most, 3});
    all.push_back({"commit-to-visible latency p99", "ms", r.plain.p99_ms(), 10.0, figure::at_most, 3});
    all.push_back({"throughput visible on B (1,000-row txns)", "rows/s", r.plain.b_rate(), 100'000, figure::at_least, 0});
    all.push_back({"  the same / local insert rate", "ratio", r.plain.b_rate() / r.base_rate(), 0.5, figure::at_least, 2});
    all.push_back({"TLS throughput / plain throughput", "ratio", r.tls.b_rate() / r.plain.b_rate(), 0.8, figure::at_least, 2});
    all.push_back({"TLS latency p99 / plain latency p99", "ratio", r.tls.p99_ms() / r.plain.p99_ms(), 1.5, figure::at_most, 2});
    all.push_back({"initial sync", "rows/s", r.sync_rate, 200'000, figure::at_least, 0});
    all.push_back({"peak RSS of A while B is stalled", "MB", mb(r.hwm_kb), 100.0, figure::under, 1});
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
    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
    return report_failure("hdbrepl_repl_bench", [&] { return run(parse_options(argc, argv)); });
}
