// hdbrepl_bench: the `make bench` report. Measures, side by side in one run, a plain SQLite
// table and an hdbrepl replicated virtual table of the same schema, and prints the ratio
// hdbrepl/plain for each workload against the project's targets:
//
//   insert (1,000-row transactions) >= 0.6   single-row commits >= 0.6
//   point lookup by key             >= 0.7   1,000-row range scan by key >= 0.7
//   equality lookup on an INDEXED column >= 0.5
//
// Usage: hdbrepl_bench --lib PATH [--quick] [--rows N] [--rounds N] [--json FILE]
//
// Both databases live in a fresh temporary directory (removed at exit), use WAL with
// synchronous=NORMAL and SQLite's default cache, and are driven by the very same code and
// prepared statements; only the connection differs. The extension is loaded from PATH with
// sqlite3_load_extension, as a user would, so the measured library is the real .so.
//
// Workloads (default sizes; --quick divides them by 10), each split over the rounds:
//   insert        200,000 rows in 1,000-row transactions, fresh keys      -> rows/s
//   commits       2,000 autocommit INSERTs per round                      -> commits/s
//   point lookup  200,000 SELECT ... WHERE id=? on random existing keys   -> lookups/s
//   range scan    2,000 SELECT ... WHERE id>=? AND id<?+1000 (1,000 rows) -> rows/s
//   indexed       20,000 SELECT ... WHERE breed=? (~N/1000 rows each)     -> rows/s
// Every query reads every column of every row, as an application would.
//
// The machine running this is usually shared and noisy, so every workload runs in several
// rounds that alternate plain and hdbrepl (and which of them goes first), and the ratio is
// taken between the medians. Each round also checks that both tables returned the same
// data, and the run exits non-zero if any check fails. A ratio below target is reported,
// not treated as an error: this program is a report.
#include "bench_common.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace hdbrepl::bench;

// ---- options ------------------------------------------------------------------------------

struct options : common_options {
    std::int64_t rows = 0; // 0: default for the mode
    int rounds = 5;
};

void usage(FILE* out) {
    std::fprintf(out,
                 "usage: hdbrepl_bench --lib PATH [--quick] [--rows N] [--rounds N] [--json FILE]\n"
                 "  --lib PATH    the hdbrepl extension to load (e.g. ./build-bench/libhdbrepl)\n"
                 "  --quick       about 10x less work, for a smoke test\n"
                 "  --rows N      rows inserted by the insert workload (default 200000, quick 20000);\n"
                 "                a multiple of rounds*1000\n"
                 "  --rounds N    alternating plain/hdbrepl rounds per workload (default 5)\n"
                 "  --json FILE   also write the figures as JSON\n");
}

std::int64_t parse_count(const char* flag, const char* text) {
    char* end = nullptr;
    long long v = std::strtoll(text, &end, 10);
    if (!*text || *end || v <= 0) fail(std::string(flag) + " needs a positive integer, got '" + text + "'");
    return v;
}

options parse_options(int argc, char** argv) {
    options o;
    parse_common_options(argc, argv, o, usage, [&o](std::string_view a, auto& value) {
        if (a == "--rows") o.rows = parse_count("--rows", value());
        else if (a == "--rounds") o.rounds = static_cast<int>(parse_count("--rounds", value()));
        else return false;
        return true;
    });
    if (!o.rows) o.rows = o.quick ? 20'000 : 200'000;
    // Every insert round is a whole number of 1,000-row transactions, and range scans need
    // room for 1,000 dense keys.
    if (o.rows % (o.rounds * 1000) != 0) fail("--rows must be a multiple of rounds*1000 (" + std::to_string(o.rounds * 1000) + ")");
    return o;
}

// ---- deterministic data (the rows and key streams are in bench_common.hpp) ----------------

constexpr std::int64_t range_rows = 1000;

struct row {
    std::int64_t id;
    std::string name, breed;
};

// Rows are prepared before each timed loop, so the loop measures SQLite alone.
std::vector<row> make_rows(std::int64_t first_id, std::int64_t count) {
    std::vector<row> rows;
    rows.reserve(static_cast<std::size_t>(count));
    row_text t;
    for (std::int64_t id = first_id; id < first_id + count; ++id) {
        make_row(id, t);
        rows.push_back({id, std::string(t.name()), std::string(t.breed())});
    }
    return rows;
}

// Order-independent digest of the rows a query returned (the index and the virtual table
// need not return equal keys in the same order), used to check both tables agree. It is
// summed over rows and costs a few nanoseconds: it runs inside the timed loops, where a
// per-byte hash would add the same time to both sides and flatter the ratio. It looks at the
// key, both lengths and the first bytes of each string; the whole-table comparison after the
// writes (check_same_contents) compares every byte.
std::uint64_t prefix_bits(std::string_view s) {
    std::uint64_t v = 0;
    std::memcpy(&v, s.data(), std::min(s.size(), sizeof v));
    return v;
}

std::uint64_t row_digest(std::int64_t id, std::string_view name, std::string_view breed) {
    std::uint64_t h = static_cast<std::uint64_t>(id) ^ (static_cast<std::uint64_t>(name.size()) << 40) ^
                      (static_cast<std::uint64_t>(breed.size()) << 52);
    return splitmix64(h ^ splitmix64(prefix_bits(name) ^ splitmix64(prefix_bits(breed))));
}

// Every byte of a row, for the whole-table comparisons outside the timed loops.
std::uint64_t full_row_digest(std::int64_t id, std::string_view name, std::string_view breed) {
    std::uint64_t h = 0xcbf29ce484222325ULL ^ static_cast<std::uint64_t>(id);
    for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    h = (h ^ 0xff) * 0x100000001b3ULL;
    for (char c : breed) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    return splitmix64(h);
}

// ---- the two tables under test -----------------------------------------------------------

// The prepared statements every workload runs, identical on both sides.
struct queries {
    statement begin, commit, insert, point, range, by_breed, scan_all;
    explicit queries(sqlite3* db)
        : begin(db, "BEGIN"),
          commit(db, "COMMIT"),
          insert(db, "INSERT INTO t(id, name, breed) VALUES(?1, ?2, ?3)"),
          point(db, "SELECT id, name, breed FROM t WHERE id = ?1"),
          range(db, "SELECT id, name, breed FROM t WHERE id >= ?1 AND id < ?1 + 1000"),
          by_breed(db, "SELECT id, name, breed FROM t WHERE breed = ?1"),
          scan_all(db, "SELECT id, name, breed FROM t") {}
};

// One side of the comparison: a connection with table t and the statements on it.
struct side {
    std::string label;
    database db;
    std::unique_ptr<queries> q; // declared after db, so finalized before it closes

    // `setup` configures the connection and creates t before the statements naming it are
    // prepared.
    side(std::string label_, const std::string& path, const std::function<void(database&)>& setup) : label(std::move(label_)), db(path) {
        setup(db);
        q = std::make_unique<queries>(db.get());
    }

    // Reads every column of every row of `s` (as an application would), adding each row's
    // digest to `digest`; returns the row count.
    template <auto digest_fn = row_digest> static std::int64_t read_rows(statement& s, std::uint64_t& digest) {
        std::int64_t n = 0;
        while (s.step()) {
            digest += digest_fn(s.column_int(0), s.column_text(1), s.column_text(2));
            ++n;
        }
        s.reset();
        return n;
    }
};

void configure(database& db) { db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"); }

// ---- measurement --------------------------------------------------------------------------

struct run_result {
    double seconds = 0;
    std::int64_t units = 0;     // what the rate counts: rows or operations
    std::int64_t ops = 0;       // statements executed (transactions count as their inserts)
    std::uint64_t digest = 0;   // of the data read, to compare plain and hdbrepl
    std::int64_t rows_read = 0;
};

struct workload {
    std::string name, unit;
    double target;
    bool writes; // the run's cost includes checkpointing what it wrote
    std::function<run_result(side&, int round)> run;
};

struct figures {
    std::string name, unit;
    double target = 0;
    double plain = 0, repl = 0, ratio = 0;
    double round_ratio_min = 0, round_ratio_max = 0;
    std::int64_t rows_per_op = 0; // for the indexed lookup: rows returned per lookup
    bool ok() const { return ratio >= target; }
};

// The mean of the two middle values for an even count (--rounds may be even). Not shared:
// the replication benches' median (bench_procs.hpp) takes the upper middle value, a figure
// some round really had.
double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Every timed run starts from an empty WAL, and a writing run ends with a timed checkpoint.
// In WAL mode with synchronous=NORMAL the durable cost of a write is paid at checkpoints
// (copying pages back and two fsyncs), every 1,000 WAL pages; without this, whichever run
// happened to cross that threshold paid for the other's writes too. With it, each side pays
// exactly for the pages it wrote (hdbrepl writes more per commit: its change log).
run_result settled_run(const workload& w, side& s, int round) {
    s.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    run_result res = w.run(s, round);
    if (w.writes) res.seconds += timed([&] { s.db.exec("PRAGMA wal_checkpoint(PASSIVE)"); });
    return res;
}

// Runs `w` for `rounds` rounds, alternating plain and hdbrepl and which goes first (so
// neither side always runs while the machine is in the state the other left), and checks
// that both sides read the same data in every round.
figures measure(const workload& w, side& plain, side& repl, int rounds) {
    std::vector<double> plain_rates, repl_rates, ratios;
    std::int64_t rows_read = 0, ops = 0;
    for (int r = 0; r < rounds; ++r) {
        run_result p, q;
        if (r % 2 == 0) { p = settled_run(w, plain, r); q = settled_run(w, repl, r); }
        else { q = settled_run(w, repl, r); p = settled_run(w, plain, r); }
        if (p.digest != q.digest || p.rows_read != q.rows_read || p.units != q.units || p.ops != q.ops)
            fail(w.name + ", round " + std::to_string(r + 1) + ": plain and hdbrepl returned different data (" +
                 std::to_string(p.rows_read) + " vs " + std::to_string(q.rows_read) + " rows)");
        plain_rates.push_back(static_cast<double>(p.units) / p.seconds);
        repl_rates.push_back(static_cast<double>(q.units) / q.seconds);
        ratios.push_back(repl_rates.back() / plain_rates.back());
        rows_read += p.rows_read;
        ops += p.ops;
    }
    figures f;
    f.name = w.name;
    f.unit = w.unit;
    f.target = w.target;
    f.plain = median(plain_rates);
    f.repl = median(repl_rates);
    f.ratio = f.repl / f.plain;
    f.round_ratio_min = *std::min_element(ratios.begin(), ratios.end());
    f.round_ratio_max = *std::max_element(ratios.begin(), ratios.end());
    f.rows_per_op = ops ? rows_read / ops : 0;
    return f;
}

// ---- workloads ----------------------------------------------------------------------------

struct sizes {
    std::int64_t insert_rows;   // total, in 1,000-row transactions
    std::int64_t commits;       // single-row autocommit inserts, per round
    std::int64_t point_lookups;
    std::int64_t range_scans;
    std::int64_t breed_lookups;
};

sizes sizes_for(const options& o) {
    std::int64_t div = o.quick ? 10 : 1;
    // Commits are counted per round, not in total: a run must span several checkpoints
    // (about every 300-450 commits) for its rate to mean anything.
    return {o.rows, 2'000 / div, 200'000 / div, 2'000 / div, 20'000 / div};
}

// Per-round share of a total, at least one.
std::int64_t per_round(std::int64_t total, int rounds) { return std::max<std::int64_t>(1, total / rounds); }

workload insert_workload(std::int64_t total, int rounds) {
    std::int64_t n = total / rounds;
    return {"insert (1,000-row txns)", "rows/s", 0.6, true, [n](side& t, int round) {
                // Fresh keys every round; both sides insert the same rows in the same round.
                auto rows = make_rows(1 + round * n, n);
                run_result res;
                res.seconds = timed([&] {
                    for (std::int64_t i = 0; i < n; i += txn_rows) {
                        t.q->begin.run();
                        for (std::int64_t j = i; j < i + txn_rows; ++j) {
                            const auto& r = rows[static_cast<std::size_t>(j)];
                            t.q->insert.bind(1, r.id);
                            t.q->insert.bind(2, r.name);
                            t.q->insert.bind(3, r.breed);
                            t.q->insert.run();
                        }
                        t.q->commit.run();
                    }
                });
                res.units = res.ops = n;
                return res;
            }};
}

workload commit_workload(std::int64_t first_id, std::int64_t n) {
    return {"single-row commits", "commits/s", 0.6, true, [first_id, n](side& t, int round) {
                auto rows = make_rows(first_id + round * n, n);
                run_result res;
                res.seconds = timed([&] {
                    for (const auto& r : rows) { // autocommit: each INSERT is its own transaction
                        t.q->insert.bind(1, r.id);
                        t.q->insert.bind(2, r.name);
                        t.q->insert.bind(3, r.breed);
                        t.q->insert.run();
                    }
                });
                res.units = res.ops = n;
                return res;
            }};
}

workload point_workload(std::int64_t max_id, std::int64_t total, int rounds) {
    std::int64_t n = per_round(total, rounds);
    return {"point lookup by key", "lookups/s", 0.7, false, [max_id, n](side& t, int round) {
                rng keys(0x1000 + static_cast<std::uint64_t>(round));
                std::vector<std::int64_t> ids(static_cast<std::size_t>(n));
                for (auto& id : ids) id = keys.between(1, max_id);
                run_result res;
                res.seconds = timed([&] {
                    for (auto id : ids) {
                        t.q->point.bind(1, id);
                        res.rows_read += side::read_rows(t.q->point, res.digest);
                    }
                });
                if (res.rows_read != n) fail(t.label + ": point lookups found " + std::to_string(res.rows_read) + " of " + std::to_string(n) + " keys");
                res.units = res.ops = n;
                return res;
            }};
}

workload range_workload(std::int64_t max_id, std::int64_t total, int rounds) {
    std::int64_t n = per_round(total, rounds);
    return {"range scan (1,000 rows)", "rows/s", 0.7, false, [max_id, n](side& t, int round) {
                rng keys(0x2000 + static_cast<std::uint64_t>(round));
                std::vector<std::int64_t> starts(static_cast<std::size_t>(n));
                for (auto& s : starts) s = keys.between(1, max_id - range_rows + 1);
                run_result res;
                bool short_scan = false;
                res.seconds = timed([&] {
                    for (auto s : starts) {
                        t.q->range.bind(1, s);
                        // Keys are dense, so every scan must see exactly 1,000 rows.
                        short_scan |= side::read_rows(t.q->range, res.digest) != range_rows;
                    }
                });
                res.rows_read = n * range_rows;
                if (short_scan) fail(t.label + ": a range scan over dense keys did not return 1000 rows");
                res.units = res.rows_read;
                res.ops = n;
                return res;
            }};
}

workload breed_workload(std::int64_t total, int rounds) {
    std::int64_t n = per_round(total, rounds);
    return {"indexed-column lookup", "rows/s", 0.5, false, [n](side& t, int round) {
                rng keys(0x3000 + static_cast<std::uint64_t>(round));
                std::vector<std::string> breeds(static_cast<std::size_t>(n));
                for (auto& b : breeds) b = breed_name(keys.between(0, breed_count - 1));
                run_result res;
                res.seconds = timed([&] {
                    for (const auto& b : breeds) {
                        t.q->by_breed.bind(1, b);
                        res.rows_read += side::read_rows(t.q->by_breed, res.digest);
                    }
                });
                if (res.rows_read == 0) fail(t.label + ": indexed lookups found no rows");
                res.units = res.rows_read;
                res.ops = n;
                return res;
            }};
}

// ---- checks and storage figures --------------------------------------------------------------

// Whole-table count and digest, read through the table itself.
std::pair<std::int64_t, std::uint64_t> table_contents(side& t) {
    std::uint64_t digest = 0;
    std::int64_t n = side::read_rows<full_row_digest>(t.q->scan_all, digest);
    return {n, digest};
}

void check_same_contents(side& plain, side& repl, std::int64_t expected_rows, const char* when) {
    auto p = table_contents(plain), q = table_contents(repl);
    if (p.first != expected_rows || q.first != expected_rows)
        fail(std::string(when) + ": expected " + std::to_string(expected_rows) + " rows, plain has " + std::to_string(p.first) +
             ", hdbrepl has " + std::to_string(q.first));
    if (p.second != q.second) fail(std::string(when) + ": plain and hdbrepl tables hold different data");
}

struct storage {
    std::int64_t rows = 0;
    std::int64_t plain_bytes = 0, repl_bytes = 0;
    std::int64_t log_rows = 0, log_bytes = -1; // log_bytes -1: dbstat not available
    double per_row(std::int64_t bytes) const { return static_cast<double>(bytes) / static_cast<double>(rows); }
};

// Database size once the WAL is folded back in, so the file alone holds everything.
std::int64_t checkpointed_size(database& db) {
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    return db.query_int("PRAGMA page_count") * db.query_int("PRAGMA page_size");
}

// Bytes taken by the change log's b-tree, when this SQLite has the dbstat table.
std::int64_t log_btree_bytes(database& db) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db.get(), "SELECT sum(pgsize) FROM dbstat WHERE name = 'hdbrepl_log'", -1, &s, nullptr) != SQLITE_OK) {
        sqlite3_finalize(s);
        return -1;
    }
    std::int64_t bytes = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_finalize(s);
    return bytes;
}

storage measure_storage(side& plain, side& repl, std::int64_t rows) {
    storage st;
    st.rows = rows;
    st.plain_bytes = checkpointed_size(plain.db);
    st.repl_bytes = checkpointed_size(repl.db);
    st.log_rows = repl.db.query_int("SELECT count(*) FROM hdbrepl_log");
    st.log_bytes = log_btree_bytes(repl.db);
    return st;
}

// ---- output -------------------------------------------------------------------------------

void print_table(const std::vector<figures>& all) {
    std::printf("\n%-26s %-10s %13s %13s %6s %7s  %-11s %s\n", "workload", "unit", "plain", "hdbrepl", "ratio", "target",
                "round range", "status");
    for (const auto& f : all) {
        char range[32];
        std::snprintf(range, sizeof range, "%.2f-%.2f", f.round_ratio_min, f.round_ratio_max);
        std::printf("%-26s %-10s %13s %13s %6.2f %7.2f  %-11s %s\n", f.name.c_str(), f.unit.c_str(), grouped(f.plain).c_str(),
                    grouped(f.repl).c_str(), f.ratio, f.target, range, f.ok() ? "ok" : "BELOW TARGET");
    }
}

void print_storage(const storage& st) {
    std::printf("\nstorage after the insert workload (%s rows, WAL checkpointed):\n", grouped(static_cast<double>(st.rows)).c_str());
    std::printf("  plain.db   %12s bytes  %6.1f bytes/row\n", grouped(static_cast<double>(st.plain_bytes)).c_str(), st.per_row(st.plain_bytes));
    std::printf("  repl.db    %12s bytes  %6.1f bytes/row  (+%.1f bytes/row, x%.2f)\n", grouped(static_cast<double>(st.repl_bytes)).c_str(),
                st.per_row(st.repl_bytes), st.per_row(st.repl_bytes - st.plain_bytes),
                static_cast<double>(st.repl_bytes) / static_cast<double>(st.plain_bytes));
    std::printf("  hdbrepl_log %s rows", grouped(static_cast<double>(st.log_rows)).c_str());
    if (st.log_bytes >= 0)
        std::printf(", %s bytes (%.1f bytes/row inserted)", grouped(static_cast<double>(st.log_bytes)).c_str(), st.per_row(st.log_bytes));
    std::printf("\n");
}

void write_json(const std::string& path, const options& o, const std::vector<figures>& all, const storage& st) {
    std::ofstream out(path);
    if (!out) fail("cannot write " + path);
    out << "{\n  \"sqlite_version\": " << json_string(sqlite3_libversion()) << ",\n"
        << "  \"journal_mode\": \"wal\",\n  \"synchronous\": \"normal\",\n"
        << "  \"rows\": " << o.rows << ",\n  \"rounds\": " << o.rounds << ",\n  \"quick\": " << (o.quick ? "true" : "false") << ",\n"
        << "  \"workloads\": [\n";
    for (std::size_t i = 0; i < all.size(); ++i) {
        const auto& f = all[i];
        out << "    {\"name\": " << json_string(f.name) << ", \"unit\": " << json_string(f.unit) << ", \"plain\": " << json_number(f.plain, 0)
            << ", \"hdbrepl\": " << json_number(f.repl, 0) << ", \"ratio\": " << json_number(f.ratio, 3) << ", \"target\": " << json_number(f.target, 2)
            << ", \"round_ratio_min\": " << json_number(f.round_ratio_min, 3) << ", \"round_ratio_max\": " << json_number(f.round_ratio_max, 3)
            << ", \"rows_read_per_op\": " << f.rows_per_op << ", \"ok\": " << (f.ok() ? "true" : "false") << "}" << (i + 1 < all.size() ? "," : "") << "\n";
    }
    out << "  ],\n  \"storage\": {\"rows\": " << st.rows << ", \"plain_bytes\": " << st.plain_bytes << ", \"hdbrepl_bytes\": " << st.repl_bytes
        << ", \"plain_bytes_per_row\": " << json_number(st.per_row(st.plain_bytes), 1)
        << ", \"hdbrepl_bytes_per_row\": " << json_number(st.per_row(st.repl_bytes), 1) << ", \"log_rows\": " << st.log_rows;
    if (st.log_bytes >= 0) out << ", \"log_bytes\": " << st.log_bytes;
    out << "}\n}\n";
    if (!out.flush()) fail("writing " + path);
}

// ---- main ---------------------------------------------------------------------------------

int run(const options& o) {
    temp_dir dir("hdbrepl_bench");
    const sizes sz = sizes_for(o);

    side plain("plain", dir.file("plain.db"), [](database& db) {
        configure(db);
        db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, breed TEXT); CREATE INDEX t_breed ON t(breed);");
    });
    const std::string lib = o.lib;
    side repl("hdbrepl", dir.file("repl.db"), [&lib](database& db) {
        configure(db);
        db.load_extension(lib);
        db.exec("CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT, breed TEXT INDEXED);");
    });
    const std::int64_t log_at_start = repl.db.query_int("SELECT count(*) FROM hdbrepl_log");

    std::printf("hdbrepl benchmark: plain SQLite table vs hdbrepl virtual table, same schema and data\n");
    std::printf("SQLite %s (%s), journal_mode=WAL, synchronous=NORMAL, default cache; extension %s\n", sqlite3_libversion(),
                sqlite3_sourceid(), o.lib.c_str());
    std::printf("%d rounds per workload alternating plain/hdbrepl, figures are medians%s; write rates include\n"
                "checkpointing the WAL. Totals: %s rows inserted in 1,000-row txns, %s single-row commits,\n"
                "%s point lookups, %s range scans, %s indexed-column lookups.\n",
                o.rounds, o.quick ? " (--quick)" : "", grouped(static_cast<double>(sz.insert_rows)).c_str(),
                grouped(static_cast<double>(sz.commits * o.rounds)).c_str(), grouped(static_cast<double>(sz.point_lookups)).c_str(),
                grouped(static_cast<double>(sz.range_scans)).c_str(), grouped(static_cast<double>(sz.breed_lookups)).c_str());
    std::printf("Databases in %s, on %s.\n", dir.str().c_str(), dir.storage().c_str());
    std::fflush(stdout);

    std::vector<figures> all;
    all.push_back(measure(insert_workload(sz.insert_rows, o.rounds), plain, repl, o.rounds));
    check_same_contents(plain, repl, sz.insert_rows, "after the insert workload");
    // One change-log record per committed transaction.
    const std::int64_t insert_txns = sz.insert_rows / txn_rows;
    storage st = measure_storage(plain, repl, sz.insert_rows);
    if (st.log_rows != log_at_start + insert_txns)
        fail("hdbrepl_log has " + std::to_string(st.log_rows) + " rows after " + std::to_string(insert_txns) +
             " insert transactions, expected " + std::to_string(log_at_start + insert_txns));

    const std::int64_t commits = sz.commits * o.rounds;
    all.push_back(measure(commit_workload(sz.insert_rows + 1, sz.commits), plain, repl, o.rounds));
    const std::int64_t total_rows = sz.insert_rows + commits;
    check_same_contents(plain, repl, total_rows, "after the single-row commits");
    if (std::int64_t logged = repl.db.query_int("SELECT count(*) FROM hdbrepl_log"); logged != st.log_rows + commits)
        fail("hdbrepl_log has " + std::to_string(logged) + " rows after " + std::to_string(commits) + " single-row commits, expected " +
             std::to_string(st.log_rows + commits));

    all.push_back(measure(point_workload(total_rows, sz.point_lookups, o.rounds), plain, repl, o.rounds));
    all.push_back(measure(range_workload(total_rows, sz.range_scans, o.rounds), plain, repl, o.rounds));
    all.push_back(measure(breed_workload(sz.breed_lookups, o.rounds), plain, repl, o.rounds));

    print_table(all);
    std::printf("(indexed-column lookup: WHERE breed=? over %d distinct values, %lld rows per lookup on average)\n", breed_count,
                static_cast<long long>(all.back().rows_per_op));
    print_storage(st);
    if (!o.json.empty()) {
        write_json(o.json, o, all, st);
        std::printf("\nfigures written to %s\n", o.json.c_str());
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    return report_failure("hdbrepl_bench", [&] { return run(parse_options(argc, argv)); });
}
