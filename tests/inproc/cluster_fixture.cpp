// The in-process cluster (cluster_fixture.hpp; threads are described there).
#include "tests/inproc/cluster_fixture.hpp"

#include "engine/json.hpp"
#include "extension/config.hpp"
#include "extension/entry.hpp"
#include "net/transport.hpp"

#include <catch2/catch.hpp>

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace hdbrepl::test::inproc {

const sqlite3_api_routines* host_sqlite_api(); // sqlite_host.cpp

namespace {

// sqlite_host.cpp: the table SQLite hands loadable extensions, what the extension's own entry
// point passes to start_node. Every sqlite3_* call below goes through it.
const sqlite3_api_routines* host_api() { return host_sqlite_api(); }

// ---- stderr, kept ------------------------------------------------------------------------------

// The nodes write their log lines to stderr; fd 2 becomes a pipe read by one thread for the
// life of the process, which passes everything on to the original stderr and keeps the lines.
class log_capture {
public:
    static log_capture& get() {
        static log_capture* c = new log_capture(); // never destroyed: its thread runs until exit
        return *c;
    }
    std::size_t mark() {
        std::lock_guard lock(m_);
        return lines_.size();
    }
    std::vector<std::string> since(std::size_t from, const std::string& prefix) {
        std::lock_guard lock(m_);
        std::vector<std::string> out;
        for (std::size_t i = from; i < lines_.size(); ++i)
            if (lines_[i].rfind(prefix, 0) == 0) out.push_back(lines_[i]);
        return out;
    }

private:
    log_capture() {
        int p[2];
        if (pipe(p) != 0) throw std::runtime_error("pipe failed");
        out_ = dup(2);
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
        // A sanitizer's report goes straight to the real stderr: it may end the process before
        // this thread passes on what is in the pipe.
        __sanitizer_set_report_fd(reinterpret_cast<void*>(static_cast<std::uintptr_t>(out_)));
#endif
        dup2(p[1], 2);
        close(p[1]);
        in_ = p[0];
        std::thread([this] { run(); }).detach();
        net::set_log_sink([](const std::string& line) { std::fprintf(stderr, "hdbrepl: %s\n", line.c_str()); });
    }
    void run() {
        char buf[8192];
        std::string partial;
        for (;;) {
            ssize_t n = read(in_, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return;
            for (ssize_t off = 0; off < n;) {
                ssize_t w = write(out_, buf + off, static_cast<std::size_t>(n - off));
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) break;
                off += w;
            }
            partial.append(buf, static_cast<std::size_t>(n));
            std::lock_guard lock(m_);
            for (std::size_t nl; (nl = partial.find('\n')) != std::string::npos; partial.erase(0, nl + 1))
                lines_.push_back(partial.substr(0, nl));
        }
    }
    int in_ = -1, out_ = -1;
    std::mutex m_;
    std::vector<std::string> lines_;
};

// ---- addresses and ports ---------------------------------------------------------------------

// Public addresses 127.0.0.40.., private ones 127.0.0.80.. (the process tests use .2-.9).
std::string public_ip(int k) { return "127.0.0." + std::to_string(40 + k); }
std::string private_ip(int k) { return "127.0.0." + std::to_string(80 + k); }

bool port_free(const std::string& ip, int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return false;
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    bool ok = bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(s);
    return ok;
}

// Below the kernel's ephemeral range (32768-), so no outgoing connection takes a node's port
// while the node is down.
int pick_port(const std::vector<std::string>& ips, int avoid = 0) {
    std::mt19937 gen(static_cast<unsigned>(getpid()) * 7919u + static_cast<unsigned>(std::random_device{}()));
    for (int i = 0; i < 300; ++i) {
        int port = 20000 + static_cast<int>(gen() % 12000);
        if (port == avoid) continue;
        bool ok = true;
        for (const auto& ip : ips) ok = ok && port_free(ip, port);
        if (ok) return port;
    }
    throw std::runtime_error("no free port found");
}

// The threads of this process named like the nodes' db threads (hdbrepl-db).
std::vector<std::string> db_threads() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& t : std::filesystem::directory_iterator("/proc/self/task", ec)) {
        std::ifstream comm(t.path() / "comm");
        std::string name;
        std::getline(comm, name);
        if (name == "hdbrepl-db") out.push_back(t.path().filename().string());
    }
    return out;
}

const json::object* find_entry(const json::value& status, const std::string& peer) {
    if (!status.is_object()) return nullptr;
    const auto* conns = status.as_object().if_contains("connections");
    if (!conns || !conns->is_array()) return nullptr;
    for (const auto& c : conns->as_array())
        if (c.is_object() && json::get_string(c.as_object(), "name") == peer) return &c.as_object();
    return nullptr;
}

} // namespace

// ---- free helpers ----------------------------------------------------------------------------

void wait_until(const std::function<bool()>& pred, ms timeout, const std::string& what, const std::function<std::string()>& describe,
                ms interval) {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + timeout;
    const long tries = static_cast<long>(timeout / interval) + 10;
    std::string last_error;
    for (long n = 0; n < tries; ++n) {
        try {
            if (pred()) return;
            last_error.clear();
        } catch (const std::exception& e) {
            last_error = e.what();
        }
        if (std::chrono::steady_clock::now() >= deadline) break;
        std::this_thread::sleep_for(interval);
    }
    std::string state;
    if (describe) {
        try {
            state = describe();
        } catch (const std::exception& e) {
            state = std::string("<") + e.what() + ">";
        }
    }
    const auto waited = std::chrono::duration_cast<ms>(std::chrono::steady_clock::now() - start).count();
    FAIL("timed out after " << waited << " ms waiting for " << what << (last_error.empty() ? "" : "; last error: " + last_error)
                            << (state.empty() ? "" : "\n  state: " + state.substr(0, 3000)));
}

std::vector<std::string> query_rows(sqlite3* db, const std::string& sql) {
    std::vector<std::string> out;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
        std::string err = sqlite3_errmsg(db);
        sqlite3_finalize(s);
        FAIL("prepare failed: " << sql << "\n  error: " << err);
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        std::string row;
        for (int i = 0; i < sqlite3_column_count(s); ++i) {
            if (i) row += "|";
            auto* t = sqlite3_column_text(s, i);
            row += t ? reinterpret_cast<const char*>(t) : "NULL";
        }
        out.push_back(std::move(row));
    }
    std::string err = rc == SQLITE_DONE ? "" : sqlite3_errmsg(db);
    sqlite3_finalize(s);
    if (!err.empty()) FAIL("query failed: " << sql << "\n  error: " << err);
    return out;
}

std::string join_rows(const std::vector<std::string>& rows, std::size_t max_chars) {
    std::string s = "[";
    for (std::size_t i = 0; i < rows.size() && s.size() < max_chars; ++i) s += (i ? ", " : "") + rows[i];
    if (s.size() >= max_chars) s = s.substr(0, max_chars) + "...";
    return s + "] (" + std::to_string(rows.size()) + " rows)";
}

// ---- the cluster -------------------------------------------------------------------------------

cluster::cluster(std::vector<node_spec> specs) {
    (void)log_capture::get();
    log_mark_ = log_capture::get().mark();
    if (!host_api()) FAIL("could not get SQLite's extension API table");
    char tmpl[] = "/tmp/hdbrepl-inproc-XXXXXX";
    if (!mkdtemp(tmpl)) FAIL("mkdtemp failed");
    dir_ = tmpl;
    std::vector<std::string> ips;
    std::vector<relay_endpoint> ends;
    for (std::size_t k = 0; k < specs.size(); ++k) {
        slot s;
        s.spec = std::move(specs[k]);
        s.public_ip = public_ip(static_cast<int>(k));
        s.private_ip = private_ip(static_cast<int>(k));
        s.path = dir_ + "/node" + std::to_string(k) + ".db";
        ips.push_back(s.public_ip);
        ips.push_back(s.private_ip);
        ends.push_back({s.public_ip, s.private_ip});
        slots_.push_back(std::move(s));
    }
    ips.push_back(unused_address());
    for (int attempt = 0;; ++attempt) {
        port_ = pick_port(ips);
        try {
            relay_ = std::make_unique<relay>(ends, port_);
            break;
        } catch (const std::exception& e) { // taken meanwhile by another test process
            if (attempt >= 5) FAIL(e.what());
        }
    }
    for (int i = 0; i < size(); ++i)
        if (at(i).spec.start) start(i);
}

cluster::~cluster() {
    for (int i = 0; i < size(); ++i)
        if (running(i)) shut_down(i, true);
    relay_.reset();
    std::error_code ec;
    if (!std::getenv("HDBREPL_KEEP")) std::filesystem::remove_all(dir_, ec);
}

cluster::slot& cluster::at(int i) {
    if (i < 0 || i >= size()) FAIL("no node " << i);
    return slots_[static_cast<std::size_t>(i)];
}
const cluster::slot& cluster::at(int i) const { return slots_.at(static_cast<std::size_t>(i)); }

const std::string& cluster::name(int i) const { return at(i).public_ip; }
std::string cluster::path(int i) const { return at(i).path; }
node_spec& cluster::spec(int i) { return at(i).spec; }
int cluster::dead_port(int i) const { return pick_port({at(i).public_ip}, port_); }
std::string cluster::unused_address() const { return public_ip(size()); }
bool cluster::running(int i) const { return at(i).node != nullptr; }

std::string cluster::config_text(int i) const {
    const slot& s = at(i);
    std::ostringstream y;
    y << "replication:\n  hostname: " << s.public_ip << "\n  port: " << port_ << "\n  bind: " << s.private_ip << "\n";
    std::vector<std::string> routes;
    if (s.spec.routes) {
        for (int j : *s.spec.routes) routes.push_back("ws://" + at(j).public_ip + ":" + std::to_string(port_));
    } else {
        for (int j = 0; j < size(); ++j)
            if (j != i) routes.push_back("ws://" + at(j).public_ip + ":" + std::to_string(port_));
    }
    for (const auto& r : s.spec.extra_routes) routes.push_back(r);
    if (!routes.empty()) {
        y << "  routes:\n";
        for (const auto& r : routes) y << "    - " << r << "\n";
    }
    // As the process tests' harness: fast redials, so restarts are noticed quickly.
    std::map<std::string, std::string> keys{{"reconnectMaxDelay", "500ms"}};
    for (const auto& [k, v] : s.spec.extra) keys[k] = v;
    for (const auto& [k, v] : keys) y << "  " << k << ": " << v << "\n";
    return y.str();
}

void cluster::start(int i) {
    slot& s = at(i);
    if (s.node) FAIL("node " << i << " is already running");
    auto loaded = ext::load_node_config(config_text(i));
    if (auto* e = std::get_if<ext::config_error>(&loaded)) FAIL("node " << i << " config: " << e->message << "\n" << config_text(i));
    const auto cfg = std::get<ext::node_config>(loaded);
    s.db = open_connection(i);
    relay_->set_down(i, false);
    s.io = net::make_io_runtime();
    const auto threads_before = db_threads();
    auto started = ext::start_node(s.io, s.path, cfg, host_api(), hdbrepl_register_internal, s.spec.faults);
    if (started) s.node = *started;
    if (!s.node) {
        const std::string error = started ? "" : started.error().message;
        s.io->stop_and_join();
        s.io.reset();
        sqlite3_close_v2(s.db);
        s.db = nullptr;
        FAIL("node " << i << " (" << s.public_ip << ") did not start: " << error);
    }
    // start_node ran its first job on the new db thread, so the thread has its name.
    s.db_tids.clear();
    for (const auto& t : db_threads())
        if (std::find(threads_before.begin(), threads_before.end(), t) == threads_before.end()) s.db_tids.push_back(t);
}

bool cluster::db_thread_sleeping(int i) {
    if (at(i).db_tids.empty()) FAIL("node " << i << ": its db threads were not found in /proc/self/task");
    for (const auto& tid : at(i).db_tids) {
        const std::string dir = "/proc/self/task/" + tid + "/";
        std::ifstream wchan(dir + "wchan"), syscall(dir + "syscall");
        std::string w, call;
        std::getline(wchan, w);
        syscall >> call;
        // nanosleep and clock_nanosleep, for kernels that show no wait channel names.
#if defined(__x86_64__)
        const bool sleep_call = call == "35" || call == "230";
#elif defined(__aarch64__)
        const bool sleep_call = call == "101" || call == "115";
#else
        const bool sleep_call = false;
#endif
        if (w.find("nanosleep") != std::string::npos || sleep_call) return true;
    }
    return false;
}

void cluster::shut_down(int i, bool graceful) {
    slot& s = at(i);
    if (!s.node) return;
    // Abrupt: every TCP connection of the node ends at once, without a WebSocket close, and no
    // new one reaches it; then its threads stop (what its db thread already holds is finished,
    // as a process would if killed right after).
    if (!graceful) relay_->set_down(i, true);
    s.node->stop();
    s.node.reset();
    s.io->stop_and_join();
    s.io.reset();
    relay_->set_down(i, true);
    sqlite3_close_v2(s.db);
    s.db = nullptr;
}

void cluster::stop(int i) { shut_down(i, true); }
void cluster::kill(int i) { shut_down(i, false); }

void cluster::restart(int i) {
    if (running(i)) stop(i);
    start(i);
}

ext::node& cluster::node(int i) {
    if (!at(i).node) FAIL("node " << i << " is not running");
    return *at(i).node;
}

sqlite3* cluster::db(int i) {
    if (!at(i).db) FAIL("node " << i << " has no user connection (not running)");
    return at(i).db;
}

sqlite3* cluster::open_connection(int i) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(at(i).path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
        std::string e = db ? sqlite3_errmsg(db) : "out of memory";
        sqlite3_close_v2(db);
        FAIL("cannot open " << at(i).path << ": " << e);
    }
    char* err = nullptr;
    if (hdbrepl_register(db, &err, host_api()) != SQLITE_OK) {
        std::string e = err ? err : "?";
        sqlite3_free(err);
        sqlite3_close_v2(db);
        FAIL("registering hdbrepl: " << e);
    }
    sqlite3_busy_timeout(db, 10000);
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", nullptr, nullptr, nullptr);
    return db;
}

std::string cluster::try_exec(int i, const std::string& sql) {
    char* msg = nullptr;
    int rc = sqlite3_exec(db(i), sql.c_str(), nullptr, nullptr, &msg);
    std::string err = rc == SQLITE_OK ? "" : (msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return err;
}

void cluster::exec(int i, const std::string& sql) {
    std::string err = try_exec(i, sql);
    if (!err.empty()) FAIL("node " << i << ": SQL failed: " << sql.substr(0, 300) << "\n  error: " << err);
}

std::vector<std::string> cluster::rows(int i, const std::string& sql) { return query_rows(db(i), sql); }

std::string cluster::try_rows(int i, const std::string& sql, std::vector<std::string>& out) {
    out.clear();
    sqlite3* d = db(i);
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(d, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
        std::string err = sqlite3_errmsg(d);
        sqlite3_finalize(s);
        return err;
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        std::string row;
        for (int k = 0; k < sqlite3_column_count(s); ++k) {
            if (k) row += "|";
            auto* t = sqlite3_column_text(s, k);
            row += t ? reinterpret_cast<const char*>(t) : "NULL";
        }
        out.push_back(std::move(row));
    }
    std::string err = rc == SQLITE_DONE ? "" : sqlite3_errmsg(d);
    sqlite3_finalize(s);
    return err;
}

std::string cluster::scalar(int i, const std::string& sql) {
    auto r = rows(i, sql);
    if (r.size() != 1) FAIL("node " << i << ": expected one row from " << sql << ", got " << join_rows(r));
    return r[0];
}

std::int64_t cluster::count(int i, const std::string& sql) { return std::stoll(scalar(i, sql)); }

std::string cluster::status(int i) { return node(i).cluster_status_json(); }

std::string cluster::peer_field(int i, const std::string& peer, const std::string& field) {
    auto v = json::parse_or_null(status(i));
    const auto* e = find_entry(v, peer);
    if (!e) return "";
    const auto* f = e->if_contains(field);
    if (!f) { // a field of its (one) database socket: connected, latency, ...
        const auto* socks = e->if_contains("database_sockets");
        if (socks && socks->is_array() && !socks->as_array().empty() && socks->as_array()[0].is_object())
            f = socks->as_array()[0].as_object().if_contains(field);
    }
    if (!f || f->is_null()) return "";
    return f->is_string() ? std::string(f->as_string()) : json::serialize(*f);
}

bool cluster::listed(int i, const std::string& peer) { return find_entry(json::parse_or_null(status(i)), peer) != nullptr; }

bool cluster::connected(int i, int j) { return running(i) && peer_field(i, name(j), "connected") == "true"; }

void cluster::set_latency(int from, int to, ms delay) { relay_->set_latency(from, to, delay); }
void cluster::cut(int a, int b) { relay_->cut(a, b); }
void cluster::blackhole(int a, int b) { relay_->blackhole(a, b); }
void cluster::heal(int a, int b) { relay_->heal(a, b); }
void cluster::heal_all() {
    for (int a = 0; a < size(); ++a)
        for (int b = a + 1; b < size(); ++b) heal(a, b);
}

std::vector<std::string> cluster::log_lines(int i) { return log_capture::get().since(log_mark_, "hdbrepl[" + name(i) + "]"); }

bool cluster::logged(int i, const std::string& text) {
    for (const auto& l : log_lines(i))
        if (l.find(text) != std::string::npos) return true;
    return false;
}

std::string cluster::log_tail(int i, std::size_t n) {
    auto lines = log_lines(i);
    std::string out;
    for (std::size_t k = lines.size() > n ? lines.size() - n : 0; k < lines.size(); ++k) out += "\n    " + lines[k];
    return out.empty() ? "(no log lines)" : out;
}

void cluster::wait_connected(int i, int j, ms timeout) {
    wait_until([&] { return connected(i, j); }, timeout, name(i) + " connected to " + name(j), [&] { return status(i); });
}

void cluster::wait_mesh(ms timeout) {
    wait_until(
        [&] {
            for (int i = 0; i < size(); ++i)
                for (int j = 0; j < size(); ++j)
                    if (i != j && running(i) && running(j) && !connected(i, j)) return false;
            return true;
        },
        timeout, "every running node linked to every other", [&] {
            std::string s;
            for (int i = 0; i < size(); ++i)
                if (running(i)) s += "\n  " + name(i) + ": " + status(i).substr(0, 800);
            return s;
        });
}

void cluster::wait_rows(int i, const std::string& sql, const std::vector<std::string>& want, ms timeout) {
    std::vector<std::string> last;
    std::string error;
    wait_until(
        [&] {
            error = try_rows(i, sql, last); // e.g. the table not replicated yet: poll again
            return error.empty() && last == want;
        },
        timeout, name(i) + ": " + sql + " == " + join_rows(want, 300),
        [&] { return (error.empty() ? "last rows: " + join_rows(last) : "last error: " + error) + "\n  log:" + log_tail(i); });
}

void cluster::wait_logged(int i, const std::string& text, ms timeout) {
    wait_until([&] { return logged(i, text); }, timeout, name(i) + " logging '" + text + "'", [&] { return log_tail(i); });
}

std::vector<std::string> cluster::wait_converged(const std::string& sql, ms timeout) {
    std::vector<std::vector<std::string>> seen(static_cast<std::size_t>(size()));
    wait_until(
        [&] {
            bool same = true;
            const std::vector<std::string>* first = nullptr;
            for (int i = 0; i < size(); ++i) {
                if (!running(i)) continue;
                seen[static_cast<std::size_t>(i)] = rows(i, sql);
                if (!first) first = &seen[static_cast<std::size_t>(i)];
                else same = same && *first == seen[static_cast<std::size_t>(i)];
            }
            return same;
        },
        timeout, "the same rows on every running node from " + sql, [&] {
            std::string s;
            for (int i = 0; i < size(); ++i)
                if (running(i)) s += "\n  " + name(i) + ": " + join_rows(seen[static_cast<std::size_t>(i)], 400);
            return s;
        });
    for (int i = 0; i < size(); ++i)
        if (running(i)) return seen[static_cast<std::size_t>(i)];
    return {};
}

} // namespace hdbrepl::test::inproc
