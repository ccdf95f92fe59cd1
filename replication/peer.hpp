// A named peer as the io thread keeps it: its link and state for cluster_status, and what
// this node is sending it — the stream's position and flow-control window, and a copy.
// Thread: the io thread.
#pragma once
#include "replication/copy_window.hpp"
#include "replication/node_common.hpp"
#include "replication/replication_store.hpp"
#include "replication/wire.hpp"
#include "net/transport.hpp"

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace hdbrepl::ext::node_detail {

struct inflight {
    std::int64_t seq;
    std::size_t size;
    std::string origin;
    hlc_t hlc;
    // A part of a transaction other than its last (txn_record.hpp): its ack says it is staged,
    // not that the peer has the transaction, so it confirms nothing.
    bool partial = false;
};

struct copy_state; // sender side of an initial copy, lives on the db thread (copy_state.hpp)

// A peer's connection as cluster_status reports it (its "state", with "copying" and
// "full-resync" shown while a copy runs either way).
enum class peer_state { connecting, connected, unreachable, disconnected, removed };

inline const char* peer_state_name(peer_state s) {
    switch (s) {
    case peer_state::connecting: return "connecting";
    case peer_state::connected: return "connected";
    case peer_state::unreachable: return "unreachable";
    case peer_state::disconnected: return "disconnected";
    case peer_state::removed: return "removed";
    }
    return "unknown";
}

struct peer {
    std::string name;
    std::string url;
    net::link_ptr link;
    std::uint64_t link_id = 0;
    peer_state state = peer_state::connecting;
    std::string last_error;
    std::uint64_t down_since = 0; // ms since the link was lost (0: connected or never lost)
    double latency = -1;
    // receiving
    bool copying = false;
    std::uint64_t copy_total = 0, copy_done = 0;
    std::vector<w::copy_table> copy_tables;
    std::uint64_t copy_chunks = 0;
    // sending
    bool subscribed = false;
    replication_store::filter filter;
    std::int64_t send_pos = 0;
    std::uint64_t send_generation = 0; // bumped when the position is reset: stale reads are dropped
    bool reading = false;
    bool pump_again = false; // a wake-up came while a read ran: read again when it ends
    std::deque<inflight> inflight_q;
    std::size_t inflight_bytes = 0;
    hlc_t confirmed_own = 0;
    progress_map known_progress; // what this peer is known to have, per origin (for pruning)
    std::shared_ptr<copy_state> sending_copy;
    std::uint64_t copy_chunks_sent = 0, copy_chunks_acked = 0;
    copy_window copy_win; // what of the copy may be unacknowledged (replication/copy_window.hpp)
    bool copy_reading = false, copy_done_reading = false;
    // A copy sent because the peer fell behind the retained log (cluster_status shows it).
    bool full_resync = false;
    std::uint64_t full_resyncs = 0, last_full_resync = 0;
    // times (ms) and versions for cluster_status
    std::uint64_t last_commit_confirmed = 0, last_received_local = 0, last_send = 0;
    hlc_t last_received_remote = 0;
    // messages and changes refused from this peer (link_entitlement.hpp, record_entitlement.hpp)
    std::uint64_t refusals = 0;
    std::string last_refusal;
};

} // namespace hdbrepl::ext::node_detail
