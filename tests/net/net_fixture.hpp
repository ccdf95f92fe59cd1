// Helpers for the [net] tests: bounded waits on things that happen on the io thread, a
// collector of link events, a captured log, and raw POSIX sockets that play a misbehaving
// peer (silent after the handshake, sending text frames, never answering a handshake).
// Catch2 assertions are only made on the test thread; io-thread callbacks just record.
#pragma once
#include "net/transport.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace hdbrepl::net::test {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

// Upper bound for anything that should happen "soon" (generous: sanitizer builds are slow).
constexpr auto soon = 10s;

inline double elapsed_ms(steady::time_point since) {
    return std::chrono::duration<double, std::milli>(steady::now() - since).count();
}

// Polls `pred` until true or `limit`; returns the last value.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::duration_cast<ms>(soon)) {
    auto end = steady::now() + limit;
    while (!pred()) {
        if (steady::now() >= end) return pred();
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

// Runs `f` on the io thread and returns its result; nullopt if it did not run in time.
template <class F>
auto on_io(io_runtime& rt, F f) -> std::optional<decltype(f())> {
    using R = decltype(f());
    auto p = std::make_shared<std::promise<R>>();
    auto fut = p->get_future();
    rt.post([p, f = std::move(f)]() mutable { p->set_value(f()); });
    if (fut.wait_for(soon) != std::future_status::ready) return std::nullopt;
    return fut.get();
}

// Waits until every function posted before this call has run.
inline bool drain(io_runtime& rt) { return on_io(rt, [] { return true; }).value_or(false); }

// Records what a link's callbacks deliver.
struct recorder {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::vector<std::uint8_t>> messages;
    std::optional<std::string> closed_reason;
    int closed_count = 0;
    std::thread::id callback_thread;

    link_events events() {
        link_events ev;
        ev.on_message = [this](const link_ptr&, std::vector<std::uint8_t>&& m) {
            std::lock_guard lk(mu);
            callback_thread = std::this_thread::get_id();
            messages.push_back(std::move(m));
            cv.notify_all();
        };
        ev.on_closed = [this](const link_ptr&, const std::string& reason) {
            std::lock_guard lk(mu);
            closed_reason = reason;
            ++closed_count;
            cv.notify_all();
        };
        return ev;
    }
    bool wait_messages(std::size_t n, std::chrono::milliseconds limit = std::chrono::duration_cast<ms>(soon)) {
        std::unique_lock lk(mu);
        return cv.wait_for(lk, limit, [&] { return messages.size() >= n; });
    }
    std::optional<std::string> wait_closed(std::chrono::milliseconds limit = std::chrono::duration_cast<ms>(soon)) {
        std::unique_lock lk(mu);
        cv.wait_for(lk, limit, [&] { return closed_reason.has_value(); });
        return closed_reason;
    }
    std::size_t message_count() {
        std::lock_guard lk(mu);
        return messages.size();
    }
};

// Captures log lines for the duration of a test (the sink holds the lines by shared_ptr, so
// a line logged while this object goes away is still safe).
struct captured_log {
    struct lines_t {
        std::mutex mu;
        std::vector<std::string> lines;
    };
    std::shared_ptr<lines_t> st = std::make_shared<lines_t>();
    captured_log() {
        set_log_sink([st = st](const std::string& line) {
            std::lock_guard lk(st->mu);
            st->lines.push_back(line);
        });
    }
    ~captured_log() { set_log_sink(nullptr); }
    bool contains(const std::string& text) {
        std::lock_guard lk(st->mu);
        for (const auto& l : st->lines)
            if (l.find(text) != std::string::npos) return true;
        return false;
    }
    std::string all() {
        std::lock_guard lk(st->mu);
        std::string s;
        for (const auto& l : st->lines) s += l + "\n";
        return s;
    }
};

inline std::vector<std::uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }
inline std::string text(const std::vector<std::uint8_t>& b) { return {b.begin(), b.end()}; }

// A test message: an index and a length, filled with a pattern derived from both.
inline std::vector<std::uint8_t> patterned(std::uint32_t index, std::size_t size) {
    std::vector<std::uint8_t> m(size);
    for (std::size_t i = 0; i < size; ++i) m[i] = static_cast<std::uint8_t>((i * 31 + index * 7) & 0xff);
    if (size >= 4) std::memcpy(m.data(), &index, 4);
    return m;
}

// A client and a server link over 127.0.0.1 on one runtime, the server side echoing or
// recording as configured.
struct link_pair {
    std::shared_ptr<io_runtime> rt = make_io_runtime();
    std::shared_ptr<listener> server;
    link_ptr client_link, server_link;
    recorder client_rec, server_rec;
    std::string error;

    explicit link_pair(link_options server_opts = {}, link_options client_opts = {},
                       std::string target = "/hdbrepl?node=a&db=main") {
        std::promise<link_ptr> opened;
        auto opened_f = opened.get_future();
        auto opened_p = std::make_shared<std::promise<link_ptr>>(std::move(opened));
        server = listen(*rt, "127.0.0.1", 0, server_opts, nullptr,
                        [this, opened_p](const link_ptr& l) {
                            l->set_events(server_rec.events());
                            opened_p->set_value(l);
                        },
                        error);
        if (!server) return;
        auto dialed = std::make_shared<std::promise<std::pair<link_ptr, std::string>>>();
        auto dialed_f = dialed->get_future();
        dial(*rt, "127.0.0.1", server->port(), "", target, client_opts,
             [this, dialed](const link_ptr& l, const std::string& err) {
                 if (l) l->set_events(client_rec.events());
                 dialed->set_value({l, err});
             });
        if (dialed_f.wait_for(soon) != std::future_status::ready) {
            error = "dial did not complete";
            return;
        }
        auto [l, err] = dialed_f.get();
        client_link = l;
        error = err;
        if (opened_f.wait_for(soon) != std::future_status::ready) {
            error += "server on_open did not run";
            return;
        }
        server_link = opened_f.get();
    }
    ~link_pair() { rt->stop_and_join(); }
    bool ok() const { return client_link && server_link && error.empty(); }

    // Sends on the io thread; returns send()'s answer.
    bool send(const link_ptr& l, std::vector<std::uint8_t> m) {
        return on_io(*rt, [l, m = std::move(m)]() mutable { return l->send(std::move(m)); }).value_or(false);
    }
};

// ---- raw sockets (the misbehaving peers)

inline sockaddr_in v4(const char* ip, std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

struct raw_socket {
    int fd = -1;
    raw_socket() = default;
    explicit raw_socket(int f) : fd(f) {}
    raw_socket(raw_socket&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
    raw_socket& operator=(raw_socket&& o) noexcept {
        reset();
        fd = std::exchange(o.fd, -1);
        return *this;
    }
    ~raw_socket() { reset(); }
    void reset() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
    explicit operator bool() const { return fd >= 0; }

    bool send_all(const void* data, std::size_t n) {
        auto p = static_cast<const char*>(data);
        while (n > 0) {
            ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
            if (k <= 0) return false;
            p += k;
            n -= static_cast<std::size_t>(k);
        }
        return true;
    }
    bool send_all(const std::string& s) { return send_all(s.data(), s.size()); }

    // Reads what arrives within `limit`; stops early at end of stream (eof = true) or once
    // `until` has been seen.
    std::string read_for(std::chrono::milliseconds limit, bool* eof = nullptr, const std::string& until = {}) {
        std::string got;
        if (eof) *eof = false;
        auto end = steady::now() + limit;
        for (;;) {
            auto left = std::chrono::duration_cast<ms>(end - steady::now()).count();
            if (left <= 0) return got;
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
            char buf[4096];
            ssize_t k = ::recv(fd, buf, sizeof buf, 0);
            if (k <= 0) {
                if (eof) *eof = true;
                return got;
            }
            got.append(buf, static_cast<std::size_t>(k));
            if (!until.empty() && got.find(until) != std::string::npos) return got;
        }
    }
};

inline raw_socket raw_connect(const char* ip, std::uint16_t port) {
    raw_socket s(::socket(AF_INET, SOCK_STREAM, 0));
    auto a = v4(ip, port);
    if (::connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) s.reset();
    return s;
}

// As raw_connect(), from source address `from` (a 127.0.0.x other than the listener's).
inline raw_socket raw_connect_from(const char* from, const char* ip, std::uint16_t port) {
    raw_socket s(::socket(AF_INET, SOCK_STREAM, 0));
    auto src = v4(from, 0);
    auto a = v4(ip, port);
    if (::bind(s.fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
        ::connect(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        s.reset();
    return s;
}

// A listening socket on ip:0 that never accepts: connections complete in the kernel backlog
// and then nothing is ever said.
inline raw_socket raw_listen(const char* ip, std::uint16_t& port) {
    raw_socket s(::socket(AF_INET, SOCK_STREAM, 0));
    auto a = v4(ip, 0);
    if (::bind(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s.fd, 16) != 0) {
        s.reset();
        return s;
    }
    socklen_t len = sizeof a;
    ::getsockname(s.fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    return s;
}

// Does the client side of the WebSocket opening handshake by hand; returns the response head.
inline std::string raw_ws_handshake(raw_socket& s, std::uint16_t port, const std::string& target = "/raw") {
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    if (!s.send_all(req)) return {};
    return s.read_for(std::chrono::duration_cast<ms>(soon), nullptr, "\r\n\r\n");
}

// One masked client frame (FIN set) with a payload shorter than 126 bytes.
inline std::string raw_client_frame(std::uint8_t opcode, const std::string& payload) {
    std::string f;
    f += static_cast<char>(0x80 | opcode);
    f += static_cast<char>(0x80 | payload.size());
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    f.append(reinterpret_cast<const char*>(mask), 4);
    for (std::size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ mask[i % 4]);
    return f;
}

} // namespace hdbrepl::net::test
