// A node this node dials (a route, add_node, or a membership row): where it is, how the
// dialing goes, and the peer it turned out to be. Also node urls as hdb_nodes stores them.
// Thread: the io thread.
#pragma once
#include "replication/node_common.hpp"
#include "net/transport.hpp"

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace hdbrepl::ext::node_detail {

// A node url as hdb_nodes and membership rows store it: "ws://host:port", "wss://[v6]:port".
// scheme is "" and port 0 when absent.
struct node_url {
    std::string scheme, host;
    int port = 0;
};
inline node_url split_node_url(const std::string& url) {
    node_url u;
    auto pos = url.find("://");
    std::string rest = pos == std::string::npos ? url : url.substr(pos + 3);
    if (pos != std::string::npos) u.scheme = url.substr(0, pos);
    auto colon = rest.rfind(':');
    u.host = rest.substr(0, colon);
    if (!u.host.empty() && u.host.front() == '[') u.host = u.host.substr(1, u.host.size() - 2);
    if (colon != std::string::npos) u.port = std::atoi(rest.c_str() + colon + 1);
    return u;
}

inline std::string join_names(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out.empty() ? "no name" : out;
}

struct target {
    std::string host;
    int port = 0;
    std::string scheme;
    std::int64_t start_time_ms = -1;
    int backoff_ms = 0;
    bool dialing = false;
    std::shared_ptr<net::timer> retry;
    std::string peer_name; // learned from HELLO
    std::string address;   // the address our last successful dial reached (binds a plain HELLO)
    bool verify_tls = true; // add_node verify_tls (false only until a certificate exchange)
    std::string last_error; // of the last dial, for cluster_status before any HELLO
    std::uint64_t down_since = 0; // ms of the first failed dial in a row (0: none)
    // add_node waits for the first dial of a wss target: refusals become its SQL error.
    std::vector<std::function<void(const std::string&)>> first_result;
};

} // namespace hdbrepl::ext::node_detail
