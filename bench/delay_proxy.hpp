// delay_proxy.hpp: a user-space TCP proxy on loopback that adds a one-way delay in each
// direction, so that benches can measure replication over a wide-area round trip on a
// machine without netem (tc qdisc needs privileges these machines do not give).
//
// It listens on one address:port and forwards every accepted connection to one target,
// optionally dialing the target FROM a given local address: a node on the plain port knows
// its peers by address, so the proxy dials as the node that dialed it (the receiving node
// then sees the address its routes name, and its checks stay as they are).
//
// What it models is latency, not a thin pipe: bytes read from one side are timestamped and
// released to the other side at read time + delay, with any number of chunks in flight, so
// throughput is not capped (a connection carries as much per round trip as the endpoints
// keep in flight). Memory is bounded: a direction whose queue holds more than
// max_queued_bytes stops reading until it drains (TCP flow control then pushes back on the
// sender), so a stalled receiver cannot make the proxy grow.
//
// Threads: the proxy runs its own Boost.Asio io_context on one thread it starts ("the proxy
// thread"); every socket, timer and queue lives there. The public functions are called from
// any other thread (the user thread): start(), stop(), set_delay(), the counters.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace hdbrepl::bench {

struct delay_proxy_options {
    std::string listen_ip = "127.0.0.1";
    int listen_port = 0;  // 0: any free port (port() says which)
    std::string target_ip = "127.0.0.1";
    int target_port = 0;
    std::string dial_from; // local address to dial the target from; "" = the kernel's choice
    std::chrono::microseconds one_way_delay{0};
    std::size_t max_queued_bytes = 64u << 20; // per direction of each connection
};

// Counters, read from any thread (relaxed: figures for a report, not synchronisation).
struct delay_proxy_counters {
    std::uint64_t accepted = 0, upstream_failed = 0, open = 0;
    std::uint64_t bytes_forwarded = 0;
    std::uint64_t read_pauses = 0;          // times a direction stopped reading at the bound
    std::uint64_t peak_queued_bytes = 0;    // the largest queue of one direction seen
};

class delay_proxy {
public:
    explicit delay_proxy(delay_proxy_options o);
    ~delay_proxy(); // stop()
    delay_proxy(const delay_proxy&) = delete;
    delay_proxy& operator=(const delay_proxy&) = delete;

    // User thread. Binds and listens (throws std::runtime_error when it cannot), then starts
    // the proxy thread.
    void start();
    // User thread. Closes the listener and every proxied connection (both sockets, queued
    // bytes dropped), then joins the proxy thread. Idempotent.
    void stop();

    int port() const;                                // the listening port, after start()
    void set_delay(std::chrono::microseconds d);     // any thread; applies to bytes read from now on
    std::chrono::microseconds delay() const;
    delay_proxy_counters counters() const;

    struct impl;

private:
    std::shared_ptr<impl> impl_;
};

} // namespace hdbrepl::bench
