// repl_report.hpp: the report of the replication bench (repl_bench.cpp): its header (the
// setup), the figures against their targets, the plain port against the secure port with
// the ratios, the details of every phase, and the same figures as JSON. Header-only: the
// bench is one translation unit. Thread: the bench's main thread.
#pragma once

#include "bench_common.hpp"
#include "bench_procs.hpp"
#include "repl_cluster.hpp"
#include "repl_results.hpp"

#include <sqlite3.h>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace hdbrepl::bench::repl {

// A figure against its target: at least, at most or under.
struct figure {
    std::string name, unit;
    double value = 0, target = 0;
    enum kind { at_least, at_most, under } cmp = at_least;
    int decimals = 0;
    bool ok() const { return cmp == at_least ? value >= target : cmp == at_most ? value <= target : value < target; }
    std::string text(double v) const { return fixed_point(v, decimals); }
    const char* op() const { return cmp == at_least ? ">=" : cmp == at_most ? "<=" : "<"; }
};

// The figures with targets, in the order of the table.
inline std::vector<figure> target_figures(const results& r) {
    std::vector<figure> all;
    all.push_back({"commit-to-visible latency p50", "ms", r.plain.p50_ms(), 2.0, figure::at_most, 3});
    all.push_back({"commit-to-visible latency p99", "ms", r.plain.p99_ms(), 10.0, figure::at_most, 3});
    all.push_back({"throughput visible on B (1,000-row txns)", "rows/s", r.plain.b_rate(), 100'000, figure::at_least, 0});
    all.push_back({"  the same / local insert rate", "ratio", r.plain.b_rate() / r.base_rate(), 0.5, figure::at_least, 2});
    all.push_back({"TLS throughput / plain throughput", "ratio", r.tls.b_rate() / r.plain.b_rate(), 0.8, figure::at_least, 2});
    all.push_back({"TLS latency p99 / plain latency p99", "ratio", r.tls.p99_ms() / r.plain.p99_ms(), 1.5, figure::at_most, 2});
    all.push_back({"initial sync", "rows/s", r.sync_rate, 200'000, figure::at_least, 0});
    all.push_back({"peak RSS of A while B is stalled", "MB", mb(r.hwm_kb), 100.0, figure::under, 1});
    return all;
}

// The setup, printed before the run starts.
inline void print_header(const options& o, const sizes& sz, const ports& p, const temp_dir& dir, const results& r) {
    std::printf("hdbrepl replication benchmark: two nodes in separate processes, WebSockets on loopback\n");
    std::printf("A = %s:%d, B = %s:%d (plain port, a route each way, default tuning); SQLite %s; extension %s\n", ip_a, p.a, ip_b,
                p.b, sqlite3_libversion(), o.lib.c_str());
    std::printf("A' = %s:%d, B' = %s:%d (securePort only, mutual TLS: B' joined A' with add_node and credentials)\n", ip_ta, p.ta,
                ip_tb, p.tb);
    std::printf("%s rows for the initial sync, %s latency samples, %d x %s rows for throughput (each on both pairs), %s rows written while\n"
                "B is stopped%s; bulk writes in 1,000-row transactions. Load average %s. Working directory %s on %s%s\n",
                grouped(static_cast<double>(sz.sync_rows)).c_str(), grouped(static_cast<double>(sz.latency_samples)).c_str(), sz.tp_rounds,
                grouped(static_cast<double>(sz.tp_rows)).c_str(), grouped(static_cast<double>(sz.stall_rows)).c_str(),
                o.quick ? " (--quick)" : "", r.load_start.c_str(), dir.str().c_str(), dir.storage().c_str(), o.keep ? " (kept)" : "");
    std::fflush(stdout);
}

inline void print_table(const std::vector<figure>& all) {
    std::printf("\n%-42s %-7s %12s %12s  %s\n", "figure", "unit", "value", "target", "status");
    for (const auto& f : all) {
        std::string target = std::string(f.op()) + " " + f.text(f.target);
        std::printf("%-42s %-7s %12s %12s  %s\n", f.name.c_str(), f.unit.c_str(), f.text(f.value).c_str(), target.c_str(),
                    f.ok() ? "ok" : "BELOW TARGET");
    }
}

// Plain port against secure port, side by side: the absolute figures of both pairs and the
// ratios TLS / plain, with the secure port's targets on the ratios.
inline void print_tls_comparison(const results& r, const sizes& sz) {
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

inline void print_details(const results& r, const sizes& sz) {
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

inline void write_json(const std::string& path, const options& o, const std::vector<figure>& all, const results& r) {
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

} // namespace hdbrepl::bench::repl
