// bench_common.hpp: what the two benchmark programs (bench.cpp, the plain-vs-hdbrepl report,
// and repl_bench.cpp, the replication report) share, header-only: the error path, the options
// both take, the SQLite wrappers, the temporary directory, the clock, the deterministic rows
// and number formatting. It lives in one place because the two programs must agree: they
// write the very same rows for the same keys (repl_bench's tables are bench's plus a
// timestamp), and they report figures in the same way (grouped integers, fixed-point JSON).
// What only one program needs stays in that program.
#pragma once

#include <sqlite3.h>

#include <linux/magic.h>
#include <sys/statfs.h>
#include <time.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace hdbrepl::bench {

// ---- errors and options -------------------------------------------------------------------

// Any failed SQLite call, node or check ends the run with this message and a non-zero status.
class bench_error : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

[[noreturn]] inline void fail(const std::string& msg) { throw bench_error(msg); }

// The options both programs take; each program's `options` derives from this and adds its own.
struct common_options {
    std::string lib;    // --lib PATH (required): the extension to load
    std::string json;   // --json FILE: also write the figures as JSON
    bool quick = false; // --quick: about 10x less work
};

// Reads argv into `o`: --lib, --json, --quick and --help/-h here; any other argument goes to
// `more(arg, value)`, which returns false for one it does not know (`value()` consumes and
// returns the argument's value, failing when there is none). An unknown argument or a missing
// --lib prints `usage` to stderr and fails; --help prints it to stdout and exits.
template <class More> void parse_common_options(int argc, char** argv, common_options& o, void (*usage)(FILE*), More&& more) {
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) fail(std::string(a) + " needs a value");
            return argv[++i];
        };
        if (a == "--lib") o.lib = value();
        else if (a == "--json") o.json = value();
        else if (a == "--quick") o.quick = true;
        else if (a == "--help" || a == "-h") { usage(stdout); std::exit(0); }
        else if (!more(a, value)) { usage(stderr); fail("unknown argument '" + std::string(a) + "'"); }
    }
    if (o.lib.empty()) { usage(stderr); fail("--lib PATH is required"); }
}

// main()'s body: runs `body` and turns an exception into "PROGRAM: message" on stderr and
// exit status 1 (stdout flushed first, so the message follows what was printed).
template <class F> int report_failure(const char* program, F&& body) {
    try {
        return body();
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "%s: %s\n", program, e.what());
        return 1;
    }
}

// ---- clock --------------------------------------------------------------------------------

// CLOCK_MONOTONIC is one clock for every process of the machine, so a time taken on A and
// one taken on B subtract directly (std::chrono::steady_clock reads the same clock).
inline std::int64_t mono_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline double seconds(std::int64_t ns) { return static_cast<double>(ns) / 1e9; }
inline double millis(std::int64_t ns) { return static_cast<double>(ns) / 1e6; }

inline void sleep_us(long us) {
    timespec ts{us / 1'000'000, (us % 1'000'000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

// Seconds `body` took.
template <class F> double timed(F&& body) {
    const std::int64_t t0 = mono_ns();
    body();
    return seconds(mono_ns() - t0);
}

// ---- SQLite wrappers ----------------------------------------------------------------------

class statement {
public:
    statement(sqlite3* db, const char* sql) {
        if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK)
            fail(std::string("preparing '") + sql + "': " + sqlite3_errmsg(db));
    }
    ~statement() { sqlite3_finalize(s_); }
    statement(const statement&) = delete;
    statement& operator=(const statement&) = delete;

    void bind(int i, std::int64_t v) { sqlite3_bind_int64(s_, i, v); }
    // SQLITE_STATIC: the caller's strings outlive the statement's use of them (the reset
    // that follows each step), and copying them would be measured as SQLite work.
    void bind(int i, std::string_view t) { sqlite3_bind_text(s_, i, t.data(), static_cast<int>(t.size()), SQLITE_STATIC); }
    // A C string is copied (SQLITE_TRANSIENT): for arguments outside the timed loops.
    void bind(int i, const char* t) { sqlite3_bind_text(s_, i, t, -1, SQLITE_TRANSIENT); }

    // One step: true for a row, false when done; throws on an error.
    bool step() {
        int rc = sqlite3_step(s_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        std::string msg = std::string("running '") + sqlite3_sql(s_) + "': " + sqlite3_errmsg(sqlite3_db_handle(s_));
        sqlite3_reset(s_);
        fail(msg);
    }
    // Runs a statement that returns no rows, then makes it reusable.
    void run() {
        while (step()) {}
        reset();
    }
    void reset() { sqlite3_reset(s_); }

    std::int64_t column_int(int i) const { return sqlite3_column_int64(s_, i); }
    bool column_null(int i) const { return sqlite3_column_type(s_, i) == SQLITE_NULL; }
    // Valid until the next step or reset.
    std::string_view column_text(int i) const {
        auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s_, i));
        return {t ? t : "", static_cast<std::size_t>(sqlite3_column_bytes(s_, i))};
    }

private:
    sqlite3_stmt* s_ = nullptr;
};

class database {
public:
    explicit database(const std::string& path) {
        if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
            std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
            sqlite3_close(db_);
            fail("opening " + path + ": " + msg);
        }
    }
    // close_v2: statements owned elsewhere may still be finalized after this.
    ~database() { sqlite3_close_v2(db_); }
    database(const database&) = delete;
    database& operator=(const database&) = delete;

    sqlite3* get() const { return db_; }

    void exec(const std::string& sql) {
        char* msg = nullptr;
        if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
            std::string err = msg ? msg : sqlite3_errmsg(db_);
            sqlite3_free(msg);
            fail("'" + sql + "': " + err);
        }
    }
    std::int64_t query_int(const std::string& sql) {
        statement s(db_, sql.c_str());
        if (!s.step()) fail("'" + sql + "' returned no row");
        return s.column_int(0);
    }

    // Loads the extension the way a user does, then switches loading off again so nothing
    // run later on this connection can load code.
    void load_extension(const std::string& path) {
        sqlite3_enable_load_extension(db_, 1);
        char* msg = nullptr;
        int rc = sqlite3_load_extension(db_, path.c_str(), nullptr, &msg);
        std::string err = msg ? msg : "";
        sqlite3_free(msg);
        sqlite3_enable_load_extension(db_, 0);
        if (rc != SQLITE_OK) fail("loading extension " + path + ": " + err);
    }

private:
    sqlite3* db_ = nullptr;
};

// ---- temporary directory ------------------------------------------------------------------

// A fresh directory $TMPDIR/PREFIX.XXXXXX ($TMPDIR defaults to /tmp), removed with everything
// in it when the run ends, unless `keep` is set (repl_bench's --keep).
class temp_dir {
public:
    explicit temp_dir(const char* prefix) {
        // $TMPDIR picks the file system (e.g. TMPDIR=/dev/shm to take the disk's fsync out of
        // the figures); /tmp otherwise.
        const char* base = std::getenv("TMPDIR");
        std::string pattern = std::string(base && *base ? base : "/tmp") + "/" + prefix + ".XXXXXX";
        std::vector<char> tmpl(pattern.begin(), pattern.end());
        tmpl.push_back('\0');
        if (!mkdtemp(tmpl.data())) fail(std::string("mkdtemp: ") + std::strerror(errno));
        path_ = tmpl.data();
    }
    // What the directory is on: "tmpfs (memory)" or "disk", for the report's header (the
    // storage decides the absolute figures: on a slow virtual disk SQLite's own WAL writes
    // bound them, and the ratios against plain SQLite on the same storage are what compare).
    std::string storage() const {
        struct statfs fs {};
        if (statfs(path_.c_str(), &fs) != 0) return "unknown storage";
        return fs.f_type == TMPFS_MAGIC ? "tmpfs (memory)" : "disk";
    }
    ~temp_dir() {
        if (keep) return;
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    std::string file(const char* name) const { return (path_ / name).string(); }
    std::string str() const { return path_.string(); }
    bool keep = false;

private:
    std::filesystem::path path_;
};

// ---- deterministic data -------------------------------------------------------------------

constexpr std::uint64_t seed = 0x68646272'65706c31ULL; // "hdbrepl1": fixed, so runs compare
constexpr int breed_count = 1000;
constexpr std::int64_t txn_rows = 1000; // rows per transaction of the bulk inserts

inline std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// A small PRNG stream; each (workload, round) gets its own so that the sides compared see
// the same sequence of keys.
class rng {
public:
    explicit rng(std::uint64_t stream) : state_(splitmix64(seed ^ splitmix64(stream))) {}
    std::uint64_t next() { return splitmix64(state_++); }
    // Uniform in [lo, hi]; the modulo bias is irrelevant at these sizes.
    std::int64_t between(std::int64_t lo, std::int64_t hi) { return lo + static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(hi - lo + 1)); }

private:
    std::uint64_t state_;
};

// "breed-NNN", the value of the INDEXED column; returns the length written.
inline int format_breed(char* buf, std::size_t size, std::int64_t i) {
    return std::snprintf(buf, size, "breed-%03lld", static_cast<long long>(i));
}

inline std::string breed_name(std::int64_t i) {
    char buf[16];
    format_breed(buf, sizeof buf, i);
    return buf;
}

// The text columns of one generated row, in fixed buffers: making one allocates nothing
// (about 0.1 us, against several us per insert), so rows can be made inside timed loops
// rather than prepared in advance, and a million prepared rows do not count in a node's RSS.
struct row_text {
    char name_buf[24];
    int name_len;
    char breed_buf[16];
    int breed_len;
    std::string_view name() const { return {name_buf, static_cast<std::size_t>(name_len)}; }
    std::string_view breed() const { return {breed_buf, static_cast<std::size_t>(breed_len)}; }
};

// The row with key `id` is a function of the key alone, so every database holds identical
// data whatever order it was written in, and both programs write the same rows.
inline void make_row(std::int64_t id, row_text& out) {
    rng r(static_cast<std::uint64_t>(id) ^ 0x726f77ULL);
    out.breed_len = format_breed(out.breed_buf, sizeof out.breed_buf, static_cast<std::int64_t>(r.next() % breed_count));
    out.name_len = static_cast<int>(10 + r.next() % 11); // names of 10..20 characters
    for (int i = 0; i < out.name_len; ++i) out.name_buf[i] = static_cast<char>('a' + r.next() % 26);
}

// ---- output -------------------------------------------------------------------------------

// An integer with thousands separators: 1234567.6 -> "1,234,568".
inline std::string grouped(double v) {
    auto n = static_cast<long long>(v + 0.5);
    std::string digits = std::to_string(n), out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

inline std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

// Fixed notation (a README quotes these), `decimals` after the point.
inline std::string json_number(double v, int decimals) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

} // namespace hdbrepl::bench
