// hdbrepl_wan_bench: replication over a wide-area round trip, part of `make bench`. Three node
// pairs run side by side in one run, each a writer W and a reader R in separate processes
// (plain `port`, default tuning):
//
//   direct    W 127.0.0.3, R 127.0.0.2, on loopback
//   +100 ms   W 127.0.0.5, R 127.0.0.4, through a delay proxy: 50 ms each way
//   +200 ms   W 127.0.0.7, R 127.0.0.6, through a delay proxy: 100 ms each way
//
// and for each it measures the initial copy (rows/s), streaming throughput (rows/s) and
// commit-to-visible latency (p50, p99), with the ratios delayed / direct against the targets:
//
//   initial copy   >= 0.8 x direct at +100 ms RTT, >= 0.7 x direct at +200 ms RTT
//   streaming      >= 0.9 x direct at +100 ms RTT
//   commit-to-visible p50 <= one-way delay + 5 ms
//
// The delay proxy (delay_proxy.hpp) runs on a thread of this program. A delayed writer
// advertises its hostname (127.0.0.5) but listens on 127.0.0.105 (its `bind`); the proxy
// listens on the hostname's port and forwards to the bind address, dialing FROM the reader's
// address, so the writer sees the reader's own address as a plain-port peer must (its routes
// are its allowlist and a HELLO's name must be the address it comes from). The writer's route
// to its reader names a port nobody listens on: it puts the reader's address on the
// allowlist without the writer dialing it, so every copy runs on the reader's own dial (a
// redial of the writer's that landed first would be replaced as a duplicate mid-copy, and the
// copy resumed on the other link, a variable cost on the delayed pairs).
//
// Usage: hdbrepl_wan_bench --lib PATH [--quick] [--json FILE] [--keep] [--copy-rows N]
//
// Tables have repl_bench's schema and rows (node_role.hpp). Phases (default sizes; --quick:
// a tenth of the rows, one copy round, 30 latency samples):
//   1. The three writers write 200,000 rows into t (1,000-row transactions), at the same time.
//   2. Initial copy, 3 rounds; each round copies on the three pairs in turn (the order
//      rotating): a reader starts with an empty database and a route to its writer, and this
//      program watches max(id) of t on the reader every 1 ms. The rate is the reader's while
//      rows arrive: rows after the first sighting / (last sighting - first sighting), so the
//      connection, HELLO and copy request round trips (a fixed cost of ~3 RTT, reported as
//      "first row after") do not count; the end-to-end rate from repl_start is reported too.
//      Every copy is checked against the writer (count and sums over every column). The
//      readers of the last round stay for phases 3 and 4; the others stop and are deleted.
//   3. Streaming, 5 rounds; each round runs on the three pairs in turn: the writer creates a
//      fresh table and inserts 100,000 rows in 1,000-row transactions as fast as it can, the
//      reader watches max(id): its rate from the first visible row to the last (the one-way
//      delay before the first row does not count), as repl_bench measures throughput. The
//      writer's own inserts bound that rate, and vary with the machine's load from round to
//      round; the reader's rate over its writer's is printed too (1.0: the link costs nothing).
//   4. Latency: 100 single-row autocommit INSERTs on each pair after 10 warm-up rows, the
//      samples of the three pairs taken in turn: the time from just before the INSERT on W to
//      R's tight poll seeing the row (one system-wide clock for both processes).
//   5. Every table is the same on both nodes of each pair.
// Figures are medians over the rounds (the machine is usually shared and noisy); the ratios
// compare medians, and the per-round values are printed.
//
// A figure below target is reported, not an error: this program is a report. It exits
// non-zero when something fails (a node does not start, rows are missing, a wait times out).
// Nodes are killed by PID on every exit path; only loopback addresses are used.
#include "bench_common.hpp"
#include "bench_procs.hpp"
#include "delay_proxy.hpp"
#include "node_role.hpp"
#include "proxy_check.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace hdbrepl::bench;

struct options : common_options {
    bool keep = false;
    std::int64_t copy_rows = 0; // 0: the default for the mode
};

void usage(FILE* out) {
    std::fprintf(out,
                 "usage: hdbrepl_wan_bench --lib PATH [--quick] [--json FILE] [--keep] [--copy-rows N]\n"
                 "  --lib PATH      the hdbrepl extension to load (e.g. ./build-bench/libhdbrepl)\n"
                 "  --quick         a tenth of the rows, one copy round, 30 latency samples\n"
                 "  --json FILE     also write the figures as JSON\n"
                 "  --keep          keep the temporary directory (databases, configs, node logs)\n"
                 "  --copy-rows N   rows of the initial copy (default 200,000; --quick 20,000)\n");
}

options parse_options(int argc, char** argv) {
    options o;
    parse_common_options(argc, argv, o, usage, [&o](std::string_view a, auto& value) {
        if (a == "--keep") o.keep = true;
        else if (a == "--copy-rows") o.copy_rows = std::atoll(value());
        else return false;
        return true;
    });
    if (o.copy_rows < 0) fail("--copy-rows must be positive");
    return o;
}

struct sizes {
    std::int64_t copy_rows, stream_rows;
    int copy_rounds, stream_rounds, latency_samples, warmup;
};

sizes sizes_for(const options& o) {
    sizes s = o.quick ? sizes{20'000, 10'000, 1, 3, 30, 5} : sizes{200'000, 100'000, 3, 5, 100, 10};
    if (o.copy_rows > 0) s.copy_rows = o.copy_rows;
    return s;
}

// The streaming phase's table of `round` (written without "s" + num(round): GCC 12 warns
// wrongly about that operator+ at -O3).
std::string stream_table(int round) { return std::string("s").append(num(round)); }

// Generous bounds: a slow machine gives bad figures, not a failed run.
std::int64_t rows_timeout_ms(std::int64_t rows) { return 60'000 + rows / 2; } // 60 s + 2,000 rows/s

// ---- one pair ---------------------------------------------------------------------------------

struct copy_round {
    double rate = 0, e2e_rate = 0, first_row_ms = 0;
};
struct stream_round {
    double rate = 0, writer_rate = 0;
};

// A writer, its current reader, the proxy between them (none for the direct pair) and the
// figures measured on them. Main thread.
class node_pair {
public:
    node_pair(std::string label, std::string w_host, std::string w_bind, std::string r_host, int one_way_ms, const temp_dir& dir,
              const options& o)
        : label(std::move(label)), one_way_ms(one_way_ms), w_host_(std::move(w_host)), w_bind_(std::move(w_bind)),
          r_host_(std::move(r_host)), dir_(dir), o_(o), exe_(self_exe()) {
        // The writer's port, free on its bind address and (for the proxy) its hostname.
        for (int attempt = 0; attempt < 50 && !w_port_; ++attempt) {
            const int p = free_port(w_bind_.c_str());
            if (w_bind_ == w_host_ || port_free(w_host_.c_str(), p)) w_port_ = p;
        }
        if (!w_port_) fail(label + ": no port free on both " + w_host_ + " and " + w_bind_);
        unused_port_ = free_port(r_host_.c_str());
        write_config(file("w.yaml"), w_host_, w_bind_, w_port_, "ws://" + r_host_ + ":" + num(unused_port_));
        if (one_way_ms > 0) {
            delay_proxy_options po;
            po.listen_ip = w_host_;
            po.listen_port = w_port_;
            po.target_ip = w_bind_;
            po.target_port = w_port_;
            po.dial_from = r_host_;
            po.one_way_delay = std::chrono::milliseconds(one_way_ms);
            proxy_ = std::make_unique<delay_proxy>(po);
            proxy_->start();
        }
    }
    ~node_pair() {
        reader.reset(); // killed if still running
        writer.reset();
        if (proxy_) proxy_->stop();
    }

    void start_writer() {
        writer = std::make_unique<node_proc>(label + " writer", exe_, file("w.db"), o_.lib, file("w.log"));
        writer->call("start " + file("w.yaml"), 20'000);
        writer->call("create t", 20'000);
    }

    // A fresh reader with an empty database; returns repl_start's t_before.
    std::int64_t start_reader(int round) {
        stop_reader();
        const std::string base = "r" + num(round);
        reader_db_ = file((base + ".db").c_str());
        int r_port = free_port(r_host_.c_str());
        for (int i = 0; i < 20 && r_port == unused_port_; ++i) r_port = free_port(r_host_.c_str()); // the writer's route stays unanswered
        write_config(file((base + ".yaml").c_str()), r_host_, r_host_, r_port, "ws://" + w_host_ + ":" + num(w_port_));
        reader = std::make_unique<node_proc>(label + " reader", exe_, reader_db_, o_.lib, file((base + ".log").c_str()));
        return reader->call("start " + file((base + ".yaml").c_str()), 20'000).at(0);
    }
    void stop_reader() {
        if (!reader) return;
        reader->quit();
        reader.reset();
        std::error_code ec;
        for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(reader_db_ + suffix, ec);
    }

    std::string describe() const {
        std::string s = label + ": W " + w_host_ + ":" + num(w_port_);
        if (w_bind_ != w_host_) s += " (listening on " + w_bind_ + ", behind the proxy)";
        return s + ", R " + r_host_ + (proxy_ ? ", " + num(one_way_ms) + " ms each way" : ", loopback");
    }
    std::string proxy_text() const {
        if (!proxy_) return "";
        auto c = proxy_->counters();
        return label + " proxy: " + num(static_cast<std::int64_t>(c.accepted)) + " connections, " + grouped(static_cast<double>(c.bytes_forwarded)) +
               " bytes forwarded, largest queue " + grouped(static_cast<double>(c.peak_queued_bytes)) + " bytes, read pauses at the bound " +
               num(static_cast<std::int64_t>(c.read_pauses));
    }

    const std::string label;
    const int one_way_ms;
    std::unique_ptr<node_proc> writer, reader;
    std::vector<copy_round> copies;
    std::vector<stream_round> streams;
    std::vector<std::int64_t> lat_ns;

    double copy_rate() const { return median(pick(copies, &copy_round::rate)); }
    double copy_e2e_rate() const { return median(pick(copies, &copy_round::e2e_rate)); }
    double first_row_ms() const { return median(pick(copies, &copy_round::first_row_ms)); }
    double stream_rate() const { return median(pick(streams, &stream_round::rate)); }
    double writer_rate() const { return median(pick(streams, &stream_round::writer_rate)); }
    double keeps_up() const {
        std::vector<double> v;
        for (const auto& r : streams) v.push_back(r.rate / r.writer_rate);
        return median(v);
    }
    double p50_ms() const { return millis(percentile(lat_ns, 0.5)); }
    double p99_ms() const { return millis(percentile(lat_ns, 0.99)); }

private:
    template <class R> static std::vector<double> pick(const std::vector<R>& v, double R::*m) {
        std::vector<double> out;
        for (const auto& x : v) out.push_back(x.*m);
        return out;
    }
    std::string file(const char* name) const { return dir_.file((label_slug() + "-" + name).c_str()); }
    std::string file(const std::string& name) const { return file(name.c_str()); }
    std::string label_slug() const { return one_way_ms ? "d" + num(one_way_ms) : "direct"; }

    static bool port_free(const char* ip, int port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        inet_pton(AF_INET, ip, &a.sin_addr);
        a.sin_port = htons(static_cast<std::uint16_t>(port));
        const bool ok = fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        if (fd >= 0) close(fd);
        return ok;
    }
    static void write_config(const std::string& path, const std::string& host, const std::string& bind, int port, const std::string& route) {
        std::ofstream out(path);
        out << "replication:\n  hostname: " << host << "\n  port: " << port << "\n  bind: " << bind << "\n  routes:\n    - " << route << "\n";
        if (!out.flush()) fail("writing " + path);
    }

    std::string w_host_, w_bind_, r_host_;
    int w_port_ = 0, unused_port_ = 0; // unused_port_: the port of the writer's route to the reader, where nobody listens
    const temp_dir& dir_;
    const options& o_;
    std::string exe_, reader_db_;
    std::unique_ptr<delay_proxy> proxy_;
};

// ---- the phases -------------------------------------------------------------------------------

void check_same(node_pair& p, const std::string& table, std::int64_t expected) {
    auto dw = p.writer->call("digest " + table, 120'000), dr = p.reader->call("digest " + table, 120'000);
    if (dw.empty() || dw[0] != expected) fail(p.label + ": the writer's " + table + " holds " + (dw.empty() ? "?" : num(dw[0])) + " rows, expected " + num(expected));
    if (dr != dw)
        fail(p.label + ": the reader's " + table + " holds " + (dr.empty() ? "?" : num(dr[0])) + " rows, the writer's " + num(dw[0]) +
             (!dr.empty() && dr[0] == dw[0] ? " (same count, different contents)" : ""));
}

// The pairs of one round in turn, the order rotating by round so none is always first.
std::vector<node_pair*> in_turn(std::vector<std::unique_ptr<node_pair>>& pairs, int round) {
    std::vector<node_pair*> out;
    for (std::size_t i = 0; i < pairs.size(); ++i) out.push_back(pairs[(i + static_cast<std::size_t>(round)) % pairs.size()].get());
    return out;
}

void copy_once(node_pair& p, const sizes& sz, int round) {
    const std::int64_t t0 = p.start_reader(round);
    const std::string watch = "watch t 1 " + num(sz.copy_rows) + " " + num(rows_timeout_ms(sz.copy_rows));
    p.reader->send(watch);
    p.reader->expect_polling(watch);
    auto w = p.reader->expect_ok(watch, rows_timeout_ms(sz.copy_rows) + 10'000);
    check_same(p, "t", sz.copy_rows);
    copy_round c;
    c.first_row_ms = millis(w.at(0) - t0);
    c.e2e_rate = static_cast<double>(sz.copy_rows) / seconds(w.at(2) - t0);
    c.rate = arrival_rate(w, sz.copy_rows, c.e2e_rate);
    p.copies.push_back(c);
}

void stream_once(node_pair& p, const sizes& sz, const std::string& table) {
    p.writer->call("create " + table, 20'000);
    const std::string watch = "watch " + table + " 1 " + num(sz.stream_rows) + " " + num(rows_timeout_ms(sz.stream_rows));
    p.reader->send(watch); // answers @polling once the table has arrived
    p.reader->expect_polling(watch);
    auto t = p.writer->call("insert " + table + " 1 " + num(sz.stream_rows), rows_timeout_ms(sz.stream_rows));
    auto w = p.reader->expect_ok(watch, rows_timeout_ms(sz.stream_rows) + 10'000);
    stream_round s;
    s.writer_rate = static_cast<double>(sz.stream_rows) / seconds(t.at(1) - t.at(0));
    const double e2e = static_cast<double>(sz.stream_rows) / seconds(w.at(2) - t.at(0));
    s.rate = arrival_rate(w, sz.stream_rows, e2e);
    p.streams.push_back(s);
}

void latency_sample(node_pair& p, std::int64_t id, bool keep) {
    const std::string wait = "waitrow lat " + num(id) + " 20000";
    p.reader->send(wait);
    p.reader->expect_polling(wait);
    auto c = p.writer->call("commit1 lat " + num(id), 20'000);
    auto seen = p.reader->expect_ok(wait, 30'000);
    if (seen.at(1) != c.at(0)) fail(p.label + ": the reader read ts " + num(seen.at(1)) + " in row " + num(id) + ", the writer wrote " + num(c.at(0)));
    if (keep) p.lat_ns.push_back(seen.at(0) - c.at(0));
}

void measure(const sizes& sz, std::vector<std::unique_ptr<node_pair>>& pairs) {
    // 1. The writers write the rows the readers will copy, all at once.
    for (auto& p : pairs) p->start_writer();
    const std::string insert = "insert t 1 " + num(sz.copy_rows);
    for (auto& p : pairs) p->writer->send(insert);
    for (auto& p : pairs) p->writer->expect_ok(insert, rows_timeout_ms(sz.copy_rows));
    std::printf("  1. the writers wrote %s rows\n", grouped(static_cast<double>(sz.copy_rows)).c_str());
    std::fflush(stdout);

    // 2. Initial copies; the last round's readers stay.
    for (int round = 1; round <= sz.copy_rounds; ++round) {
        for (auto* p : in_turn(pairs, round)) copy_once(*p, sz, round);
        std::printf("  2. copy round %d of %d done\n", round, sz.copy_rounds);
        std::fflush(stdout);
    }

    // 3. Streaming.
    for (int round = 1; round <= sz.stream_rounds; ++round)
        for (auto* p : in_turn(pairs, round)) stream_once(*p, sz, stream_table(round));
    std::printf("  3. streaming done (%d rounds)\n", sz.stream_rounds);
    std::fflush(stdout);

    // 4. Latency: the table reaches each reader with its first row; the samples in turn.
    for (auto& p : pairs) {
        p->writer->call("create lat", 20'000);
        p->writer->call("commit1 lat 1", 20'000);
        p->reader->call("waitall lat 1 1 30000", 40'000);
    }
    std::int64_t id = 2;
    for (int i = 0; i < sz.warmup + sz.latency_samples; ++i, ++id)
        for (auto* p : in_turn(pairs, i)) latency_sample(*p, id, i >= sz.warmup);
    std::printf("  4. latency done (%d samples on each pair)\n", sz.latency_samples);
    std::fflush(stdout);

    // 5. Both nodes of each pair hold the same rows.
    for (auto& p : pairs) {
        check_same(*p, "t", sz.copy_rows);
        for (int round = 1; round <= sz.stream_rounds; ++round) check_same(*p, stream_table(round), sz.stream_rows);
        check_same(*p, "lat", id - 1);
        p->stop_reader();
        p->writer->quit();
    }
    std::printf("  5. checks done\n");
    std::fflush(stdout);
}

// ---- the report -------------------------------------------------------------------------------

struct figure {
    std::string name;
    double value, target;
    bool at_least; // else at most
    int decimals;
    bool ok() const { return at_least ? value >= target : value <= target; }
};

void print_report(const sizes& sz, const std::vector<std::unique_ptr<node_pair>>& pairs, std::vector<figure>& figs) {
    const node_pair &d = *pairs[0], &x1 = *pairs[1], &x2 = *pairs[2];
    figs = {
        {"initial copy +100 ms / direct", x1.copy_rate() / d.copy_rate(), 0.8, true, 2},
        {"initial copy +200 ms / direct", x2.copy_rate() / d.copy_rate(), 0.7, true, 2},
        {"streaming +100 ms / direct", x1.stream_rate() / d.stream_rate(), 0.9, true, 2},
        {"commit-to-visible p50 at +100 ms (ms)", x1.p50_ms(), x1.one_way_ms + 5.0, false, 1},
        {"commit-to-visible p50 at +200 ms (ms)", x2.p50_ms(), x2.one_way_ms + 5.0, false, 1},
    };
    std::printf("\n%-40s %12s %12s  %s\n", "figure", "value", "target", "status");
    for (const auto& f : figs)
        std::printf("%-40s %12s %12s  %s\n", f.name.c_str(), fixed_point(f.value, f.decimals).c_str(),
                    ((f.at_least ? ">= " : "<= ") + fixed_point(f.target, f.decimals)).c_str(), f.ok() ? "ok" : "BELOW TARGET");

    std::printf("\n%-36s %12s %12s %7s %12s %7s\n", "medians", "direct", "+100 ms RTT", "ratio", "+200 ms RTT", "ratio");
    auto row = [&](const char* name, double a, double b, double c, int dec) {
        std::printf("%-36s %12s %12s %7.2f %12s %7.2f\n", name, fixed_point(a, dec).c_str(), fixed_point(b, dec).c_str(), b / a, fixed_point(c, dec).c_str(), c / a);
    };
    row("initial copy while rows arrive (rows/s)", d.copy_rate(), x1.copy_rate(), x2.copy_rate(), 0);
    row("  from repl_start (rows/s)", d.copy_e2e_rate(), x1.copy_e2e_rate(), x2.copy_e2e_rate(), 0);
    row("  first row after (ms)", d.first_row_ms(), x1.first_row_ms(), x2.first_row_ms(), 1);
    row("streaming on the reader (rows/s)", d.stream_rate(), x1.stream_rate(), x2.stream_rate(), 0);
    row("  the writer's insert rate (rows/s)", d.writer_rate(), x1.writer_rate(), x2.writer_rate(), 0);
    // The reader keeps pace with its writer, whose own SQLite inserts bound the figure: this
    // ratio takes the writers' noise out and leaves what the link costs.
    row("  reader's rate / its writer's (ratio)", d.keeps_up(), x1.keeps_up(), x2.keeps_up(), 3);
    row("commit-to-visible p50 (ms)", d.p50_ms(), x1.p50_ms(), x2.p50_ms(), 2);
    row("commit-to-visible p99 (ms)", d.p99_ms(), x1.p99_ms(), x2.p99_ms(), 2);

    std::printf("\ndetails (%s-row copies, %d rounds; %s-row streams, %d rounds; %d latency samples each):\n",
                grouped(static_cast<double>(sz.copy_rows)).c_str(), sz.copy_rounds, grouped(static_cast<double>(sz.stream_rows)).c_str(),
                sz.stream_rounds, sz.latency_samples);
    for (const auto& p : pairs) {
        std::string c, s;
        for (const auto& r : p->copies) c += (c.empty() ? "" : ", ") + grouped(r.rate);
        for (const auto& r : p->streams) s += (s.empty() ? "" : ", ") + grouped(r.rate);
        std::printf("  %s: copies %s rows/s; streams %s rows/s; latency min %.2f p90 %.2f max %.2f ms\n", p->label.c_str(), c.c_str(), s.c_str(),
                    millis(percentile(p->lat_ns, 0)), millis(percentile(p->lat_ns, 0.9)), millis(percentile(p->lat_ns, 1)));
        if (auto t = p->proxy_text(); !t.empty()) std::printf("    %s\n", t.c_str());
    }
}

void write_json(const std::string& path, const sizes& sz, const std::vector<std::unique_ptr<node_pair>>& pairs, const std::vector<figure>& figs,
                const std::string& load_start, const std::string& load_end) {
    std::ofstream out(path);
    if (!out) fail("cannot write " + path);
    out << "{\n  \"load_average_start\": " << json_string(load_start) << ", \"load_average_end\": " << json_string(load_end)
        << ",\n  \"copy_rows\": " << sz.copy_rows << ", \"stream_rows\": " << sz.stream_rows << ",\n  \"figures\": [\n";
    for (std::size_t i = 0; i < figs.size(); ++i)
        out << "    {\"name\": " << json_string(figs[i].name) << ", \"value\": " << json_number(figs[i].value, 3) << ", \"target\": "
            << json_number(figs[i].target, 3) << ", \"comparison\": \"" << (figs[i].at_least ? ">=" : "<=") << "\", \"ok\": " << (figs[i].ok() ? "true" : "false")
            << "}" << (i + 1 < figs.size() ? "," : "") << "\n";
    out << "  ],\n  \"pairs\": [\n";
    for (std::size_t i = 0; i < pairs.size(); ++i) {
        const auto& p = *pairs[i];
        out << "    {\"label\": " << json_string(p.label) << ", \"one_way_ms\": " << p.one_way_ms << ", \"copy_rows_per_s\": " << json_number(p.copy_rate(), 0)
            << ", \"copy_from_start_rows_per_s\": " << json_number(p.copy_e2e_rate(), 0) << ", \"copy_first_row_ms\": " << json_number(p.first_row_ms(), 1)
            << ", \"stream_rows_per_s\": " << json_number(p.stream_rate(), 0) << ", \"stream_reader_over_writer\": " << json_number(p.keeps_up(), 3) << ", \"latency_p50_ms\": " << json_number(p.p50_ms(), 3)
            << ", \"latency_p99_ms\": " << json_number(p.p99_ms(), 3) << "}" << (i + 1 < pairs.size() ? "," : "") << "\n";
    }
    out << "  ]\n}\n";
    if (!out.flush()) fail("writing " + path);
}

int run(const options& o) {
    const sizes sz = sizes_for(o);
    temp_dir dir("hdbrepl_wan_bench");
    dir.keep = o.keep;
    const std::string load_start = load_average();
    std::vector<std::unique_ptr<node_pair>> pairs;
    pairs.push_back(std::make_unique<node_pair>("direct", "127.0.0.3", "127.0.0.3", "127.0.0.2", 0, dir, o));
    pairs.push_back(std::make_unique<node_pair>("+100 ms", "127.0.0.5", "127.0.0.105", "127.0.0.4", 50, dir, o));
    pairs.push_back(std::make_unique<node_pair>("+200 ms", "127.0.0.7", "127.0.0.107", "127.0.0.6", 100, dir, o));
    std::printf("hdbrepl wide-area benchmark: three writer/reader pairs side by side, one direct on loopback, two through a\n"
                "delay proxy (user space, on a thread of this program). SQLite %s; extension %s. Load average %s on %ld CPUs.\n"
                "Working directory %s on %s%s\n",
                sqlite3_libversion(), o.lib.c_str(), load_start.c_str(), sysconf(_SC_NPROCESSORS_ONLN), dir.str().c_str(), dir.storage().c_str(),
                o.keep ? " (kept)" : "");
    for (const auto& p : pairs) std::printf("  %s\n", p->describe().c_str());
    // The proxy alone first: the delay it adds and that it does not cap throughput.
    const std::size_t echo_bytes = o.quick ? 32u << 20 : 128u << 20;
    const auto pc = check_delay_proxy("127.0.0.8", 50, echo_bytes);
    std::printf("  the proxy alone (127.0.0.8, 50 ms each way): a 1-byte echo takes %.1f ms; echoing %s MB takes %.0f MB/s through\n"
                "  it (one round trip subtracted), %.0f MB/s directly\n",
                pc.rtt_ms, grouped(static_cast<double>(echo_bytes) / 1e6).c_str(), pc.proxied_mb_s, pc.direct_mb_s);
    std::fflush(stdout);
    try {
        measure(sz, pairs);
    } catch (const bench_error& e) {
        std::vector<node_proc*> nodes;
        for (const auto& p : pairs) nodes.insert(nodes.end(), {p->writer.get(), p->reader.get()});
        fail_with_status(e, nodes);
    }
    const std::string load_end = load_average();
    std::vector<figure> figs;
    print_report(sz, pairs, figs);
    std::printf("  load average at start %s, at end %s\n", load_start.c_str(), load_end.c_str());
    if (!o.json.empty()) {
        write_json(o.json, sz, pairs, figs, load_start, load_end);
        std::printf("\nfigures written to %s\n", o.json.c_str());
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::string_view(argv[1]) == "--node") return node_main(argc, argv);
    install_signal_handlers();
    return report_failure("hdbrepl_wan_bench", [&] { return run(parse_options(argc, argv)); });
}
