// bench_procs.hpp: the benchmark side of the replication benches (repl_bench.cpp, wan_bench.cpp):
// node processes (node_proc: fork + exec of the bench itself with --node, see node_role.hpp),
// free loopback ports, the /proc readings (RSS, peak RSS, CPU per thread), signal handling,
// and the small helpers both reports compute and print figures with. Header-only.
// Thread: the bench's main thread.
#pragma once

#include "bench_common.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace hdbrepl::bench {

// Set by the bench's SIGINT/SIGTERM/SIGHUP handler: a wait for a node then fails at once.
inline volatile sig_atomic_t g_interrupted = 0;

inline void on_signal(int) { g_interrupted = 1; }

// main()'s setup in both benches: the handler above for SIGINT, SIGTERM and SIGHUP (the
// nodes are then killed by PID on the way out), and SIGPIPE ignored (a write to a node that
// died fails with its exit status in the message instead of ending this program).
inline void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
}

inline std::string num(std::int64_t v) { return std::to_string(v); }

// `v` with `decimals` digits after the point; grouped (1,234,568) for none.
inline std::string fixed_point(double v, int decimals) {
    if (decimals == 0) return grouped(v);
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}


// A TCP port that is free on `ip` right now (the node binds it a moment later).
inline int free_port(const char* ip) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail(std::string("socket: ") + std::strerror(errno));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a.sin_addr);
    a.sin_port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        int e = errno;
        close(fd);
        fail(std::string("cannot bind ") + ip + " (loopback 127.0.0.0/8 is needed): " + std::strerror(e));
    }
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
}

inline std::string self_exe() {
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) fail(std::string("readlink /proc/self/exe: ") + std::strerror(errno));
    return std::string(buf, static_cast<std::size_t>(n));
}

struct memory {
    std::int64_t rss_kb = -1, hwm_kb = -1;
};

inline memory read_memory(pid_t pid) {
    memory m;
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) m.rss_kb = std::atoll(line.c_str() + 6);
        else if (line.rfind("VmHWM:", 0) == 0) m.hwm_kb = std::atoll(line.c_str() + 6);
    }
    return m;
}

// Resets VmHWM to the current RSS (Linux >= 4.0); false when not allowed.
inline bool reset_peak(pid_t pid) {
    std::ofstream out("/proc/" + std::to_string(pid) + "/clear_refs");
    if (!out) return false;
    out << "5";
    out.flush();
    return static_cast<bool>(out);
}

// CPU time (user + system, seconds) of each thread of a process, summed by thread name:
// the node's threads are named hdbrepl-io and hdbrepl-db; every other one is "main" (the
// process's own SQL connection: the writer on A, the polling reader on B).
using thread_cpu = std::map<std::string, double>;

inline thread_cpu read_thread_cpu(pid_t pid) {
    thread_cpu out;
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
        std::ifstream comm_in(task.path() / "comm"), stat_in(task.path() / "stat");
        std::string comm, stat;
        std::getline(comm_in, comm);
        std::getline(stat_in, stat);
        auto close_paren = stat.rfind(')');
        if (close_paren == std::string::npos) continue; // the thread ended meanwhile
        // After "pid (comm)": state is field 3; utime and stime are fields 14 and 15.
        std::istringstream fields(stat.substr(close_paren + 2));
        std::string f;
        double utime = 0, stime = 0;
        for (int i = 3; i <= 15 && fields >> f; ++i) {
            if (i == 14) utime = std::atof(f.c_str());
            if (i == 15) stime = std::atof(f.c_str());
        }
        out[comm.rfind("hdbrepl-", 0) == 0 ? comm : "main"] += (utime + stime) / tick;
    }
    return out;
}

// after - before, per thread name.
inline thread_cpu cpu_spent(const thread_cpu& before, const thread_cpu& after) {
    thread_cpu d = after;
    for (const auto& [name, s] : before) d[name] -= s;
    return d;
}

inline double mb(std::int64_t kb) { return static_cast<double>(kb) * 1024.0 / 1e6; }

// One node process and its command pipes.
class node_proc {
public:
    node_proc(std::string name, const std::string& exe, const std::string& db, const std::string& lib, std::string log)
        : name_(std::move(name)), log_(std::move(log)) {
        int to[2], from[2];
        if (pipe2(to, O_CLOEXEC) != 0) fail(std::string("pipe: ") + std::strerror(errno));
        if (pipe2(from, O_CLOEXEC) != 0) {
            int e = errno;
            close(to[0]), close(to[1]);
            fail(std::string("pipe: ") + std::strerror(e));
        }
        int log_fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        pid_t parent = getpid();
        std::fflush(nullptr);
        pid_ = log_fd < 0 ? -1 : fork();
        if (pid_ < 0) {
            int e = errno;
            for (int fd : {to[0], to[1], from[0], from[1], log_fd})
                if (fd >= 0) close(fd);
            fail((log_fd < 0 ? "cannot create " + log_ + ": " : std::string("fork: ")) + std::strerror(e));
        }
        if (pid_ == 0) {
            // The child: dies with the benchmark, reads commands on stdin, answers on stdout.
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(1);
            dup2(to[0], 0);
            dup2(from[1], 1);
            dup2(log_fd, 2);
            const char* args[] = {exe.c_str(), "--node", "--db", db.c_str(), "--lib", lib.c_str(), nullptr};
            execv(exe.c_str(), const_cast<char* const*>(args));
            _exit(127);
        }
        close(to[0]);
        close(from[1]);
        close(log_fd);
        to_ = to[1];
        from_ = from[0];
    }
    ~node_proc() { kill_now(); }
    node_proc(const node_proc&) = delete;
    node_proc& operator=(const node_proc&) = delete;

    pid_t pid() const { return pid_; }
    const std::string& name() const { return name_; }

    void send(const std::string& command) {
        std::string line = command + "\n";
        std::size_t off = 0;
        while (off < line.size()) {
            ssize_t n = write(to_, line.data() + off, line.size() - off);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) fail(name_ + ": cannot send '" + command + "': " + std::strerror(errno) + exit_text());
            off += static_cast<std::size_t>(n);
        }
    }

    // Waits (bounded) for the next answer line; `tick` runs about every 10 ms meanwhile.
    std::string read_answer(std::int64_t timeout_ms, const std::function<void()>& tick = {}) {
        const std::int64_t deadline = mono_ns() + timeout_ms * 1'000'000;
        for (;;) {
            for (std::size_t nl; (nl = buf_.find('\n')) != std::string::npos;) {
                std::string line = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                if (!line.empty() && line[0] == '@') return line;
            }
            if (g_interrupted) fail("interrupted");
            std::int64_t left_ms = (deadline - mono_ns()) / 1'000'000;
            if (left_ms <= 0) fail(name_ + ": no answer within " + std::to_string(timeout_ms) + " ms" + log_tail());
            pollfd p{from_, POLLIN, 0};
            int r = poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left_ms, tick ? 10 : 100)));
            if (r < 0 && errno != EINTR) fail(std::string("poll: ") + std::strerror(errno));
            if (r > 0) {
                char tmp[4096];
                ssize_t n = read(from_, tmp, sizeof tmp);
                if (n == 0) fail(name_ + " exited unexpectedly" + exit_text() + log_tail());
                if (n < 0 && errno != EINTR && errno != EAGAIN) fail(name_ + ": read: " + std::strerror(errno));
                if (n > 0) buf_.append(tmp, static_cast<std::size_t>(n));
            }
            if (tick) tick();
        }
    }

    // Sends a command and returns the integers of its "@ok" answer.
    std::vector<std::int64_t> call(const std::string& command, std::int64_t timeout_ms, const std::function<void()>& tick = {}) {
        send(command);
        return expect_ok(command, timeout_ms, tick);
    }
    std::vector<std::int64_t> expect_ok(const std::string& command, std::int64_t timeout_ms, const std::function<void()>& tick = {}) {
        std::string line = read_answer(timeout_ms, tick);
        if (line.rfind("@ok", 0) != 0)
            fail(name_ + ": '" + command + "' failed: " + (line.rfind("@err ", 0) == 0 ? line.substr(5) : line) + log_tail());
        std::vector<std::int64_t> out;
        std::istringstream in(line.substr(3));
        long long v;
        while (in >> v) out.push_back(v);
        return out;
    }
    void expect_polling(const std::string& command) {
        std::string line = read_answer(10'000);
        if (line != "@polling") fail(name_ + ": '" + command + "' failed: " + line + log_tail());
    }

    // repl_cluster_status() of a running node, for error messages ("" when it cannot answer).
    std::string status() {
        if (pid_ <= 0 || stopped_) return "";
        try {
            send("status");
            const std::int64_t deadline = mono_ns() + 3'000'000'000LL;
            while (mono_ns() < deadline) { // skips a late answer to a command that timed out here
                std::string line = read_answer(3000);
                if (line.rfind("@status ", 0) == 0) return line.substr(8);
            }
            return "";
        } catch (const bench_error&) {
            return "";
        }
    }

    void signal(int sig) {
        if (pid_ > 0 && ::kill(pid_, sig) != 0) fail(name_ + ": kill: " + std::strerror(errno));
        stopped_ = sig == SIGSTOP ? true : sig == SIGCONT ? false : stopped_;
    }

    // Graceful end: repl_stop() and exit, each bounded; killed otherwise.
    void quit() {
        if (pid_ <= 0) return;
        if (stopped_) signal(SIGCONT);
        try {
            call("stop", 15'000);
        } catch (const bench_error&) {
            kill_now();
            throw;
        }
        if (!reap(5'000)) {
            kill_now();
            fail(name_ + " did not exit after repl_stop()");
        }
    }

    // The last lines of the node's log, for error messages.
    std::string log_tail() const {
        std::ifstream in(log_);
        std::deque<std::string> lines;
        for (std::string l; std::getline(in, l);) {
            lines.push_back(l);
            if (lines.size() > 12) lines.pop_front();
        }
        std::string out;
        for (auto& l : lines) out += "\n    " + l;
        return lines.empty() ? "" : "\n  last lines of " + name_ + "'s log (" + log_ + "):" + out;
    }

private:
    bool reap(std::int64_t timeout_ms) {
        const std::int64_t deadline = mono_ns() + timeout_ms * 1'000'000;
        for (;;) {
            int status = 0;
            pid_t r = waitpid(pid_, &status, WNOHANG);
            if (r == pid_ || (r < 0 && errno == ECHILD)) {
                status_ = status;
                pid_ = -1;
                close_fds();
                return true;
            }
            if (mono_ns() > deadline) return false;
            sleep_us(2000);
        }
    }
    void kill_now() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL); // also ends a stopped process
            if (!reap(10'000)) std::fprintf(stderr, "repl_bench: %s (pid %d) did not die\n", name_.c_str(), static_cast<int>(pid_));
        }
        close_fds();
    }
    void close_fds() {
        if (to_ >= 0) close(to_);
        if (from_ >= 0) close(from_);
        to_ = from_ = -1;
    }
    std::string exit_text() {
        if (pid_ > 0) reap(1000);
        if (pid_ > 0) return "";
        if (WIFEXITED(status_)) return " (exit status " + std::to_string(WEXITSTATUS(status_)) + ")";
        if (WIFSIGNALED(status_)) return std::string(" (killed by signal ") + strsignal(WTERMSIG(status_)) + ")";
        return "";
    }

    std::string name_, log_;
    pid_t pid_ = -1;
    int to_ = -1, from_ = -1;
    int status_ = 0;
    bool stopped_ = false;
    std::string buf_;
};

// The nearest-rank percentile `p` (0..1) of `v` (not empty).
inline std::int64_t percentile(std::vector<std::int64_t> v, double p) {
    std::sort(v.begin(), v.end());
    auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::min(v.size(), std::max<std::size_t>(rank, 1)) - 1]; // nearest rank
}

// The upper middle value for an even count, 0 for none: a figure some round really had.
// (bench.cpp's median averages the two middle values.)
inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

// The rate at which rows arrived on a reader, from the answer {t_first, max_at_first, t_last}
// to `watch TABLE FIRST last MS`: the rows after the first sighting over the time from the
// first sighting to the last, so neither the wait for the first row nor the rows already
// there at the first look count. `all_at_once` when everything became visible at one look.
inline double arrival_rate(const std::vector<std::int64_t>& watch, std::int64_t last, double all_at_once) {
    return watch.at(2) > watch.at(0) && last > watch.at(1) ? static_cast<double>(last - watch.at(1)) / seconds(watch.at(2) - watch.at(0))
                                                           : all_at_once;
}

// Fails with `e`'s message and what each node still running thinks of its links (its
// repl_cluster_status()); null entries are nodes not started.
[[noreturn]] inline void fail_with_status(const bench_error& e, const std::vector<node_proc*>& nodes) {
    std::string msg = e.what();
    for (auto* n : nodes)
        if (n)
            if (auto st = n->status(); !st.empty()) msg += "\n  " + n->name() + " repl_cluster_status(): " + st;
    fail(msg);
}

// The machine's load average (1, 5, 15 minutes) for the reports: it is usually shared.
inline std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    in >> a >> b >> c;
    return a.empty() ? "?" : a + " " + b + " " + c;
}

} // namespace hdbrepl::bench
