// proxy_check.hpp: what the wide-area bench's delay proxy itself does to a connection, measured
// before the nodes run, so the report can show that the proxy adds the delay it claims and
// does not cap throughput: a 1-byte echo's round trip, and a bulk echo (bytes sent, echoed
// back and received at once) through the proxy and directly. Header-only.
// Threads: the main thread (the client) and one echo thread per check.
#pragma once

#include "bench_common.hpp"
#include "delay_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace hdbrepl::bench {

struct proxy_check_result {
    double rtt_ms = 0;             // a 1-byte echo through the proxy (median of 5)
    double proxied_mb_s = 0;       // bulk echo through the proxy, after subtracting one round trip
    double direct_mb_s = 0;        // the same directly on loopback
};

namespace proxy_check_detail {

inline int tcp_socket() {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail(std::string("socket: ") + std::strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

inline sockaddr_in address(const char* ip, int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a.sin_addr);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    return a;
}

// An echo server for one connection, on its own thread: writes back what it reads until EOF.
class echo_server {
public:
    explicit echo_server(const char* ip) : fd_(tcp_socket()) {
        auto a = address(ip, 0);
        socklen_t len = sizeof a;
        if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 4) != 0 ||
            getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
            fail(std::string("echo server on ") + ip + ": " + std::strerror(errno));
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~echo_server() {
        shutdown(fd_, SHUT_RDWR); // ends a blocked accept()
        thread_.join();
        close(fd_);
    }
    int port() const { return port_; }

private:
    void serve() { // echo thread
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        std::vector<char> buf(256 * 1024);
        for (;;) {
            ssize_t n = read(c, buf.data(), buf.size());
            if (n <= 0) break;
            for (ssize_t off = 0; off < n;) {
                ssize_t w = write(c, buf.data() + off, static_cast<std::size_t>(n - off));
                if (w <= 0) break;
                off += w;
            }
        }
        close(c);
    }
    int fd_, port_ = 0;
    std::thread thread_;
};

inline int dial(const char* ip, int port) {
    int fd = tcp_socket();
    auto a = address(ip, port);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail(std::string("connect: ") + std::strerror(errno));
    return fd;
}

inline void read_exactly(int fd, char* p, std::size_t n) {
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0) fail("proxy check: the echo ended early");
        p += r, n -= static_cast<std::size_t>(r);
    }
}

// Seconds to send `bytes` and read them all back (a sender thread, this thread reading).
inline double bulk_echo(int fd, std::size_t bytes) {
    const std::int64_t t0 = mono_ns();
    std::thread sender([fd, bytes] {
        std::vector<char> chunk(256 * 1024, 'x');
        for (std::size_t sent = 0; sent < bytes;) {
            ssize_t w = write(fd, chunk.data(), std::min(chunk.size(), bytes - sent));
            if (w <= 0) return;
            sent += static_cast<std::size_t>(w);
        }
    });
    std::vector<char> buf(256 * 1024);
    for (std::size_t got = 0; got < bytes;) {
        ssize_t r = read(fd, buf.data(), std::min(buf.size(), bytes - got));
        if (r <= 0) break;
        got += static_cast<std::size_t>(r);
    }
    sender.join();
    return seconds(mono_ns() - t0);
}

} // namespace proxy_check_detail

// Through a proxy with `one_way_ms` each way on `ip` (loopback), and directly.
inline proxy_check_result check_delay_proxy(const char* ip, int one_way_ms, std::size_t bytes) {
    using namespace proxy_check_detail;
    proxy_check_result r;
    {
        echo_server echo(ip);
        delay_proxy_options o;
        o.listen_ip = o.target_ip = ip;
        o.target_port = echo.port();
        o.one_way_delay = std::chrono::milliseconds(one_way_ms);
        delay_proxy proxy(o);
        proxy.start();
        int fd = dial(ip, proxy.port());
        // Five 1-byte echoes, the median (the first also waits for the proxy's own dial).
        std::vector<double> rtts;
        for (int i = 0; i < 5; ++i) {
            char c = 'p';
            const std::int64_t t0 = mono_ns();
            if (write(fd, &c, 1) != 1) fail("proxy check: write failed");
            read_exactly(fd, &c, 1);
            rtts.push_back(millis(mono_ns() - t0));
        }
        std::sort(rtts.begin(), rtts.end());
        r.rtt_ms = rtts[rtts.size() / 2];
        const double s = bulk_echo(fd, bytes);
        r.proxied_mb_s = static_cast<double>(bytes) / 1e6 / std::max(1e-3, s - r.rtt_ms / 1000.0);
        close(fd);
        proxy.stop();
    }
    {
        echo_server echo(ip);
        int fd = dial(ip, echo.port());
        r.direct_mb_s = static_cast<double>(bytes) / 1e6 / bulk_echo(fd, bytes);
        close(fd);
    }
    return r;
}

} // namespace hdbrepl::bench
