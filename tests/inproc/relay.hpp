// A fault-injecting TCP relay between the nodes of an in-process cluster (cluster_fixture.hpp).
//
// Every node k has two loopback addresses: a public one (its name, what routes and URLs say)
// and a private one (where it listens and what it dials from). The relay listens on each
// node's public address at the cluster's port. A connection to node j's public address comes
// from some node i's private address (nodes bind their dials to it), so the relay knows the
// directed pair (i -> j); it dials node j's private address from node i's PUBLIC address, so
// node j sees node i by the name its routes give (IP-authenticated plain ports work as they
// do between processes). Bytes each way then go through the relay, which can:
//   - delay them (per direction: the bytes node i sends to node j, whichever of them dialed);
//   - cut a pair: close its connections on both sides; new ones are closed as they come in;
//   - blackhole a pair: keep reading its connections and deliver nothing; new ones are
//     accepted and read, never connected onwards (only ping and handshake timeouts notice);
//   - heal a pair: no delay, cut or blackhole; connections that lost bytes are closed;
//   - take a node down: close every connection to or from it and refuse new ones.
//
// Threads: the relay runs its own Boost.Asio io_context on one thread it starts (the relay
// thread); every socket, timer and queue lives there. The public functions are called from
// other threads and return once the change has taken effect on the relay thread.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hdbrepl::test::inproc {

struct relay_endpoint {
    std::string public_ip, private_ip;
};

// What went through one directed pair (from -> to: the bytes `from` sent to `to`).
struct relay_counters {
    std::uint64_t connections = 0;     // accepted connections dialed by `from` to `to`
    std::uint64_t refused = 0;         // of those, closed at once (cut, node down, connect failed)
    std::uint64_t bytes_delivered = 0; // from -> to
    std::uint64_t bytes_dropped = 0;   // from -> to, read and thrown away (blackhole)
    std::uint64_t bytes_pending = 0;   // from -> to, read and not yet delivered (latency)
};

class relay {
public:
    // Binds public_ip:port for every node (throws std::runtime_error when one is taken),
    // then starts the relay thread.
    relay(std::vector<relay_endpoint> nodes, int port);
    ~relay(); // closes everything and joins the relay thread
    relay(const relay&) = delete;
    relay& operator=(const relay&) = delete;

    void set_latency(int from, int to, std::chrono::milliseconds delay);
    void cut(int a, int b);
    void blackhole(int a, int b);
    void heal(int a, int b);
    void set_down(int node, bool down);
    relay_counters counters(int from, int to);

private:
    friend struct relay_session;
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace hdbrepl::test::inproc
