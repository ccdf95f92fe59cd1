// One link as the io thread keeps it, from accept or dial to close: its state in the peer
// protocol (link_entitlement.hpp), the peer its HELLO named, and the messages larger than a
// frame going either way on it. Also a refusal kept for cluster_status, and the query of an
// HTTP target. Thread: the io thread.
#pragma once
#include "replication/fragments.hpp"
#include "replication/link_entitlement.hpp"
#include "replication/node_common.hpp"
#include "net/transport.hpp"

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

namespace hdbrepl::ext::node_detail {

// A refusal of something a peer or a stranger sent, kept for cluster_status (the newest few).
struct refusal_entry {
    std::uint64_t at_ms = 0;
    std::string from;   // address
    std::string node;   // name, when known
    std::string reason;
};

// A link before its HELLO names the peer.
struct link_info {
    net::link_ptr link;
    std::uint64_t id = 0;
    std::string target; // "host:port" we dialed, "" for inbound
    bool inbound = false;
    bool hello_sent = false;
    bool copy_source = false; // we asked this link for an initial copy
    std::uint64_t copy_rows_before = 0; // rows already here when we asked it to resume one
    bool copy_resumed = false;          // we asked it to resume a cut copy (sent a resume point)
    std::string peer;         // set after HELLO
    bool sign = false;        // an inbound certificate exchange (/hdbrepl/sign), not replication
    bool sign_requested = false; // its one request arrived (more are ignored)
    std::string claimed_name; // ?node= of an inbound request
    link_state state = link_state::awaiting_hello; // link_entitlement.hpp
    bool authenticated = false; // TLS with a verified certificate both ways (inbound: the filter
                                // checked the client's; outbound: we verified the server's)
    std::size_t copy_tables = 0; // copy_table messages of the copy under way
    std::shared_ptr<net::timer> hello_timer; // closes a link that never says HELLO
    std::shared_ptr<std::atomic<std::size_t>> queued = std::make_shared<std::atomic<std::size_t>>(0);
    // ---- messages larger than a frame (node_fragments.cpp; io thread) ----
    // Receiving: the message under assembly, the bytes of it (or of the last one) buffered
    // and acknowledged, and a fragment_ack held back while the input queue is over its bound.
    fragment_assembler frag_in;
    std::uint64_t frag_received = 0, frag_acked = 0;
    bool frag_assembled = false; // handle() runs a message assembled from fragments
    // Sending: a message sent in fragments at the front, and in order behind it what must
    // follow it; of the front, the bytes sent and the bytes the peer acknowledged.
    struct out_message {
        bytes data;
        bool control = false; // may overtake queued stream and copy messages (node_fragments.cpp)
    };
    std::deque<out_message> out_q;
    std::size_t out_controls = 0, out_sent = 0, out_acked = 0;
    bool fragment_acks_due() const {
        return !out_q.empty() && out_sent > out_acked;
    }
};

// The value of `key` in the query of an HTTP target ("/hdbrepl?node=a" -> "a").
inline std::string query_param(const std::string& target, const std::string& key) {
    auto q = target.find('?');
    if (q == std::string::npos) return "";
    std::string rest = target.substr(q + 1);
    std::size_t pos = 0;
    while (pos <= rest.size()) {
        auto amp = rest.find('&', pos);
        std::string kv = rest.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
        if (kv.compare(0, key.size() + 1, key + "=") == 0) return kv.substr(key.size() + 1);
        if (amp == std::string::npos) break;
        pos = amp + 1;
    }
    return "";
}

inline std::string target_path(const std::string& target) { return target.substr(0, target.find('?')); }

} // namespace hdbrepl::ext::node_detail
