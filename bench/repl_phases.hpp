// repl_phases.hpp: the workloads and measurements of the replication bench (repl_bench.cpp),
// one function per phase of its header (1 preparing the data, 2 initial sync, 2b the TLS
// pair's join and sync, 3 latency, 3b confirmation, 4 throughput, 5 stalled peer, 6 checks),
// run in that order by measure(). Header-only: the bench is one translation unit.
// Thread: the bench's main thread.
#pragma once

#include "bench_common.hpp"
#include "bench_procs.hpp"
#include "repl_cluster.hpp"
#include "repl_results.hpp"

#include <signal.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <string>

namespace hdbrepl::bench::repl {

// What the phases share: the nodes, the figures so far and the next free keys.
struct run_state {
    const sizes& sz;
    cluster& c;
    results& r;
    std::int64_t next_t = 1;   // next key of table t
    std::int64_t next_lat = 1; // next key of table lat
};

// A writer, its reader and where their figures go: the plain pair or the TLS pair.
struct pair_ref {
    node_proc *w, *rd;
    results::link_figures* f;
};

inline pair_ref plain_pair(run_state& s) { return {s.c.a.get(), s.c.b.get(), &s.r.plain}; }
inline pair_ref tls_pair(run_state& s) { return {s.c.ta.get(), s.c.tb.get(), &s.r.tls}; }

inline void report_progress(const char* line) {
    std::printf("%s\n", line);
    std::fflush(stdout);
}

// 1. A alone writes the rows B will copy; at the same time A' (the writer of the TLS pair,
// its reader B' not started yet) writes the same rows.
inline void prepare(run_state& s) {
    cluster& c = s.c;
    c.a = c.spawn("node A", "a");
    c.ta = c.spawn("node A' (TLS)", "ta");
    c.a->call("start " + c.config("a"), 20'000);
    c.a->call("create t", 20'000);
    start_tls_writer(c);
    c.ta->call("create t", 20'000);
    const std::string insert = "insert t 1 " + num(s.sz.sync_rows);
    c.a->send(insert);
    c.ta->send(insert);
    auto t = c.a->expect_ok(insert, rows_timeout_ms(s.sz.sync_rows));
    c.ta->expect_ok(insert, rows_timeout_ms(s.sz.sync_rows));
    s.r.prep_rate = static_cast<double>(s.sz.sync_rows) / seconds(t.at(1) - t.at(0));
    s.next_t += s.sz.sync_rows;
    s.r.sync_rows = s.sz.sync_rows;
    std::printf("  1. A (and A', at the same time) wrote %s rows alone\n", grouped(static_cast<double>(s.sz.sync_rows)).c_str());
    std::fflush(stdout);
}

// Waits until every row of t is on `reader`; returns the time it saw them all.
inline std::int64_t wait_for_t(run_state& s, node_proc& reader, const char* what, const char* holder) {
    auto done = reader.call("waitall t " + num(s.sz.sync_rows) + " " + num(s.next_t - 1) + " " + num(rows_timeout_ms(s.sz.sync_rows)),
                            rows_timeout_ms(s.sz.sync_rows) + 10'000);
    if (done.at(1) != s.sz.sync_rows) fail(std::string(what) + num(done.at(1)) + " rows, " + holder + " " + num(s.sz.sync_rows));
    return done.at(0);
}

// 2. B starts empty: initial sync, from B's repl_start to every row visible on B.
inline void initial_sync(run_state& s) {
    cluster& c = s.c;
    const bool a_reset = reset_peak(c.a->pid());
    c.b = c.spawn("node B", "b");
    auto t = c.b->call("start " + c.config("b"), 20'000);
    const std::int64_t t_done = wait_for_t(s, *c.b, "initial sync: B holds ", "A");
    s.r.sync_seconds = seconds(t_done - t.at(0));
    s.r.sync_rate = static_cast<double>(s.sz.sync_rows) / s.r.sync_seconds;
    s.r.sync_hwm_a_kb = a_reset ? read_memory(c.a->pid()).hwm_kb : -1;
    s.r.sync_hwm_b_kb = read_memory(c.b->pid()).hwm_kb;
    report_progress("  2. initial sync done");
}

// 2b. The TLS pair: B' starts empty and joins A' with add_node and credentials; the same
// initial sync over TLS, from add_node's return to every row visible on B'.
inline void tls_join(run_state& s) {
    cluster& c = s.c;
    c.tb = c.spawn("node B' (TLS)", "tb");
    const std::int64_t t0 = join_tls_reader(c, s.r);
    s.r.tls_sync_seconds = seconds(wait_for_t(s, *c.tb, "initial sync over TLS: B' holds ", "A'") - t0);
    c.ta->call("waitlink 20000", 25'000);
    c.tb->call("waitlink 20000", 25'000);
    std::printf("  2b. TLS pair joined (add_node with credentials %.0f ms), initial sync over TLS done\n", s.r.tls_add_node_ms);
    std::fflush(stdout);
}

// One commit-to-visible sample: the reader polls before the writer commits. Kept in `out`
// unless it is a warm-up row (null).
inline void latency_sample(node_proc& w, node_proc& rd, std::int64_t id, results::link_figures* out) {
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
}

// 3. Latency: one row at a time, the reader polling before the writer commits; on each pair
// into a fresh table `lat` (the same keys on both), the samples of the two pairs interleaved
// one by one, so that the machine's noise hits both alike.
inline void latency(run_state& s) {
    const pair_ref plain = plain_pair(s), secure = tls_pair(s);
    const std::int64_t id0 = s.next_lat++; // the table reaches the reader with its first row
    for (const auto& p : {plain, secure}) {
        p.w->call("create lat", 20'000);
        p.w->call("commit1 lat " + num(id0), 20'000);
        p.rd->call("waitall lat 1 " + num(id0) + " 30000", 40'000);
    }
    for (std::int64_t i = 0; i < s.sz.warmup; ++i, ++s.next_lat)
        for (const auto& p : {plain, secure}) latency_sample(*p.w, *p.rd, s.next_lat, nullptr);
    // One sample of each pair in turn, the order alternating (P T, T P, T P, P T, ...):
    // a burst of noise from the rest of the machine hits both pairs alike.
    for (std::int64_t i = 0; i < s.sz.latency_samples; ++i, ++s.next_lat) {
        const bool plain_first = (i % 4 == 0 || i % 4 == 3);
        for (const auto& p : plain_first ? std::array{plain, secure} : std::array{secure, plain})
            latency_sample(*p.w, *p.rd, s.next_lat, p.f);
    }
    std::printf("  3. latency done (plain and TLS, %s samples each)\n", grouped(static_cast<double>(s.sz.latency_samples)).c_str());
    std::fflush(stdout);
}

// 3b. Confirmation: after each autocommit INSERT the writer calls repl_confirm(1); the time
// from COMMIT returning to the confirmation (the peer applied it, its WAL synced).
inline void confirmation(run_state& s) {
    const pair_ref plain = plain_pair(s), secure = tls_pair(s);
    for (std::int64_t i = 0; i < s.sz.latency_samples / 2; ++i, ++s.next_lat)
        for (const auto& p : (i % 2 == 0) ? std::array{plain, secure} : std::array{secure, plain}) {
            auto v = p.w->call("confirm1 lat " + num(s.next_lat), 20'000);
            if (v.at(3) < 1) fail("confirm: " + p.w->name() + " got no confirmation of row " + num(s.next_lat));
            p.f->confirm_ns.push_back(v.at(2) - v.at(1));
        }
    std::printf("  3b. confirmation latency done (plain and TLS, %s samples each)\n",
                grouped(static_cast<double>(s.sz.latency_samples / 2)).c_str());
    std::fflush(stdout);
}

// The workload of a throughput round on C, the process with the extension loaded and no
// node: the local insert rate the replicated rate is compared with.
inline void local_round(run_state& s, int round) {
    node_proc& local = *s.c.c;
    const std::string table = "base" + num(round);
    local.call("create " + table, 20'000);
    const thread_cpu c0 = read_thread_cpu(local.pid());
    auto t = local.call("insert " + table + " 1 " + num(s.sz.tp_rows), rows_timeout_ms(s.sz.tp_rows));
    for (const auto& [name, sec] : cpu_spent(c0, read_thread_cpu(local.pid()))) s.r.base_cpu_s += sec;
    s.r.base_rates.push_back(static_cast<double>(s.sz.tp_rows) / seconds(t.at(1) - t.at(0)));
}

// One throughput round on a pair: the writer inserts into a fresh `table` as fast as it
// can while the reader watches max(id); the CPU of both processes is added up meanwhile.
inline void tp_round(run_state& s, const pair_ref& p, const std::string& table) {
    const std::int64_t rows = s.sz.tp_rows, last = rows;
    p.w->call("create " + table, 20'000);
    const std::string watch = "watch " + table + " 1 " + num(last) + " " + num(rows_timeout_ms(rows));
    p.rd->send(watch); // answers @polling once the table has arrived
    p.rd->expect_polling(watch);
    const thread_cpu w0 = read_thread_cpu(p.w->pid()), rd0 = read_thread_cpu(p.rd->pid());
    auto t = p.w->call("insert " + table + " 1 " + num(rows), rows_timeout_ms(rows));
    auto w = p.rd->expect_ok(watch, rows_timeout_ms(rows) + 10'000);
    for (const auto& [name, sec] : cpu_spent(w0, read_thread_cpu(p.w->pid()))) p.f->cpu_w[name] += sec;
    for (const auto& [name, sec] : cpu_spent(rd0, read_thread_cpu(p.rd->pid()))) p.f->cpu_rd[name] += sec;
    results::tp_round x;
    x.a_rate = static_cast<double>(rows) / seconds(t.at(1) - t.at(0));
    x.e2e_seconds = seconds(w.at(2) - t.at(0));
    x.e2e_rate = static_cast<double>(rows) / x.e2e_seconds;
    x.first_visible_ms = millis(w.at(0) - t.at(0));
    x.lag_ms = millis(w.at(2) - t.at(1));
    x.at_first = w.at(1);
    x.b_rate = arrival_rate(w, last, x.e2e_rate);
    p.f->tp.push_back(x);
}

// 4. Throughput, in rounds, each into a fresh table, on the plain pair and on the TLS pair in
// alternating order; C's local round alternately before and after them, so that all see the
// same machine.
inline void throughput(run_state& s) {
    s.c.c = s.c.spawn("local C", "c");
    const pair_ref plain = plain_pair(s), secure = tls_pair(s);
    s.r.tp_rows = s.sz.tp_rows;
    for (int round = 1; round <= s.sz.tp_rounds; ++round) {
        if (round % 2) local_round(s, round);
        const std::string table = "tp" + num(round);
        if (round % 2) tp_round(s, plain, table), tp_round(s, secure, table);
        else tp_round(s, secure, table), tp_round(s, plain, table);
        if (round % 2 == 0) local_round(s, round);
    }
    s.c.c->quit();
    std::printf("  4. throughput done (plain and TLS, %d rounds each)\n", s.sz.tp_rounds);
    std::fflush(stdout);
}

// The TLS pair is done: its rows must match, then it stops (phases 5-6 run on A and B).
inline void finish_tls_pair(run_state& s) {
    node_proc &ta = *s.c.ta, &tb = *s.c.tb;
    check_same(ta, tb, "t", s.sz.sync_rows);
    s.r.rows_lat = check_same(ta, tb, "lat", s.next_lat - 1);
    for (int round = 1; round <= s.sz.tp_rounds; ++round) check_same(ta, tb, "tp" + num(round), s.sz.tp_rows);
    tb.quit();
    ta.quit();
}

// 5. Stalled peer: B stopped, A writes, A's memory sampled; then B must catch up.
inline void stalled_peer(run_state& s) {
    node_proc &a = *s.c.a, &b = *s.c.b;
    const sizes& sz = s.sz;
    results& r = s.r;
    r.stall_rows = sz.stall_rows;
    r.stall_hold_ms = sz.stall_hold_ms;
    r.hwm_reset = reset_peak(a.pid());
    r.rss_before_kb = read_memory(a.pid()).rss_kb;
    std::int64_t sampled = r.rss_before_kb;
    auto sample = [&] { sampled = std::max(sampled, read_memory(a.pid()).rss_kb); };
    const std::int64_t first = s.next_t, last = s.next_t + sz.stall_rows - 1;
    b.signal(SIGSTOP);
    auto t = a.call("insert t " + num(first) + " " + num(sz.stall_rows), rows_timeout_ms(sz.stall_rows), sample);
    s.next_t = last + 1;
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
    report_progress("  5. stalled peer done");
}

// 6. Both nodes hold the same rows.
inline void final_checks(run_state& s) {
    node_proc &a = *s.c.a, &b = *s.c.b;
    s.r.rows_t = check_same(a, b, "t", s.next_t - 1);
    check_same(a, b, "lat", s.r.rows_lat);
    for (int round = 1; round <= s.sz.tp_rounds; ++round) check_same(a, b, "tp" + num(round), s.sz.tp_rows);
    b.quit();
    a.quit();
    report_progress("  6. checks done");
}

// The phases in order; the nodes are left in `c` (for the failure message) as they go.
inline void measure(const sizes& sz, cluster& c, results& r) {
    run_state s{sz, c, r};
    prepare(s);
    initial_sync(s);
    tls_join(s);
    latency(s);
    confirmation(s);
    throughput(s);
    finish_tls_pair(s);
    stalled_peer(s);
    final_checks(s);
}

} // namespace hdbrepl::bench::repl
