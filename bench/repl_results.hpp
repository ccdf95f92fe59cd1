// repl_results.hpp: what one run of the replication bench (repl_bench.cpp) is asked to do and
// what it measured: its options, the sizes of its phases, and the results the phases fill in
// (repl_phases.hpp) and the report prints (repl_report.hpp). Header-only: the bench is one
// translation unit. Thread: the bench's main thread.
#pragma once

#include "bench_common.hpp"
#include "bench_procs.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace hdbrepl::bench::repl {

struct options : common_options {
    bool keep = false;
};

struct sizes {
    std::int64_t sync_rows, latency_samples, warmup, tp_rows, stall_rows;
    int stall_hold_ms;
    int tp_rounds;      // throughput rounds on each pair, and as many local rounds on C: medians are reported
};

inline sizes sizes_for(const options& o) {
    if (o.quick) return {100'000, 300, 50, 20'000, 50'000, 2000, 5};
    return {1'000'000, 1000, 50, 200'000, 500'000, 2000, 5};
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
        // The upper middle round by the reader's rate, as median() picks: a round that happened.
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

} // namespace hdbrepl::bench::repl
