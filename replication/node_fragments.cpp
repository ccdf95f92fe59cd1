// Messages larger than a frame (docs/protocol.md, "Fragments"). Sending: such a message is
// queued on its link and goes out in fragments, never more than a window of them
// unacknowledged; what must follow it waits behind it and goes in order once the peer has
// acknowledged all of it. Receiving: the pieces are assembled (replication/fragments.hpp checks
// them against each other), acknowledged as far as the link's input queue allows, and the
// whole message goes to deliver() as if it had come in one frame: the same entitlement
// check, the same handle(). A link's queues die with it: the stream and copies resend from
// the subscription or the resume point on the next link.
// Thread: the io thread.
#include "replication/node_impl.hpp"

namespace hdbrepl::ext::node_detail {

namespace {

// How a message goes while a fragmented one is under way on its link:
//   flow     at once, always: acks of every kind (they free the windows that the fragmented
//            message and the stream wait on, in either direction: when both nodes send a huge
//            message at once, each must still acknowledge the other's pieces), and what is
//            said before a close (error, removed: a queue dropped at the close would lose
//            it). hello comes before anything is queued.
//   data     in order behind it: the stream and copies (a copy's messages in order, the
//            stream after its copy_end, records in log order).
//   control  the receiving direction and reads (subscribe, copy_request, read_request,
//            read_reply): no order with the data this node sends, so they overtake queued
//            data, but not a queued control message (a later subscribe must not arrive
//            before an earlier one).
enum class lane { flow, control, data };

lane lane_of(const w::message& m) {
    return std::visit(
        [](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, w::txn> || std::is_same_v<T, w::copy_start> || std::is_same_v<T, w::copy_table> ||
                          std::is_same_v<T, w::copy_rows> || std::is_same_v<T, w::copy_end>)
                return lane::data;
            else if constexpr (std::is_same_v<T, w::subscribe> || std::is_same_v<T, w::copy_request> || std::is_same_v<T, w::read_request> ||
                               std::is_same_v<T, w::read_reply>)
                return lane::control;
            else
                return lane::flow;
        },
        m);
}

// Room kept in the transport's queue for the messages that go at once (acks are a few bytes).
constexpr std::size_t flow_reserve = 64 * 1024;

} // namespace

void node_impl::send_on(link_info& li, const w::message& m, bool close_if_full) {
    assert_on(node_thread::io);
    if (!li.link) return;
    auto data = w::encode(m);
    const lane l = lane_of(m);
    const bool fits = data.size() <= static_cast<std::size_t>(cfg_.max_frame_bytes);
    if (l == lane::flow || (fits && (li.out_q.empty() || (l == lane::control && li.out_controls == 0)))) {
        if (li.link->send(std::move(data))) return;
        if (!close_if_full) return log_line(name_, std::string("send queue full, dropping ") + w::name_of(m));
        const std::string why = std::string("send queue full, closing to resync: ") + w::name_of(m);
        if (auto* p = li.peer.empty() ? nullptr : find_peer(li.peer); p && p->link_id == li.id) p->last_error = why;
        log_line(name_, "to " + (li.peer.empty() ? li.link->remote_address() : li.peer) + ": " + why);
        li.link->close("send queue full");
        return;
    }
    li.out_q.push_back({std::move(data), l == lane::control});
    if (l == lane::control) ++li.out_controls;
    pump_out(li.id);
}

void node_impl::pump_out(std::uint64_t link_id) {
    assert_on(node_thread::io);
    auto* li = find_link(link_id);
    if (!li || !li->link || li->out_q.empty()) return;
    const auto frame = static_cast<std::size_t>(cfg_.max_frame_bytes);
    const std::size_t piece = fragment_data_bytes(frame);
    const std::size_t window = fragment_window_bytes(frame, static_cast<std::size_t>(cfg_.max_bytes_in_flight));
    const std::size_t room = link_opts().max_queued_bytes - flow_reserve;
    // The transport's queue is full: it calls on_room (node_links.cpp), and so pump_out
    // again, once a write has made room for `n` bytes.
    auto later = [&](std::size_t n) { li->link->notify_room(n); };
    auto refused = [&] { // closing, or full although it had room: the peer resyncs on a new link
        log_line(name_, "to " + (li->peer.empty() ? li->link->remote_address() : li->peer) + ": send queue full, closing to resync");
        li->link->close("send queue full");
    };
    while (!li->out_q.empty()) {
        auto& front = li->out_q.front();
        const std::size_t size = front.data.size();
        if (size > frame) {
            while (li->out_sent < size && li->out_sent - li->out_acked < window) {
                const std::size_t n = std::min(piece, size - li->out_sent);
                if (li->link->queued_bytes() + n + w::fragment_header_bytes > room) return later(n + w::fragment_header_bytes + flow_reserve);
                if (!li->link->send(w::encode_fragment(size, front.data.data() + li->out_sent, n))) return refused();
                li->out_sent += n;
            }
            // What follows waits until the peer holds all of it: its last ack waits in turn
            // until the peer's input queue has room (ack_fragments), which bounds the peer's
            // memory to one such message besides its usual bound.
            if (li->out_acked < size) return;
            li->out_sent = li->out_acked = 0;
        } else {
            if (li->link->queued_bytes() + size > room) return later(size + flow_reserve);
            if (!li->link->send(std::move(front.data))) return refused();
        }
        if (front.control) --li->out_controls;
        li->out_q.pop_front();
    }
    // Drained: the stream and a copy may go on (copy_pump reads no chunk while messages wait).
    if (auto* p = li->peer.empty() ? nullptr : find_peer(li->peer); p && p->link_id == li->id) {
        const std::string name = p->name;
        copy_pump(name);
        pump(name);
    }
}

bool node_impl::out_backlog(const peer& p) {
    auto* li = find_link(p.link_id);
    return li && li->link == p.link && !li->out_q.empty();
}

void node_impl::on_fragment_ack(link_info& li, const w::fragment_ack& a) {
    assert_on(node_thread::io);
    // The entitlement table let it in only while fragments are unacknowledged; it must also
    // acknowledge more than before and no more than was sent.
    if (li.out_q.empty() || a.received <= li.out_acked || a.received > li.out_sent)
        return refuse_on_link(li, "fragment_ack of " + std::to_string(a.received) + " bytes, but " + std::to_string(li.out_sent) +
                                      " were sent and " + std::to_string(li.out_acked) + " acknowledged");
    li.out_acked = static_cast<std::size_t>(a.received);
    pump_out(li.id);
}

void node_impl::on_fragment(link_info& li, w::fragment&& f) {
    assert_on(node_thread::io);
    const bool starts = !li.frag_in.active();
    if (std::string why = li.frag_in.add(f, fragment_cap()); !why.empty()) return refuse_on_link(li, why);
    if (starts) li.frag_acked = 0;
    li.frag_received = li.frag_in.received();
    f.data = {};
    const auto id = li.id;
    if (li.frag_in.complete()) {
        bytes whole = li.frag_in.take();
        const auto refused_before = refusals_total_;
        deliver(li, std::move(whole), true);
        if (refusals_total_ != refused_before) return; // its link is closing: nothing to ack
    }
    ack_fragments(id);
}

void node_impl::ack_fragments(std::uint64_t link_id) {
    assert_on(node_thread::io);
    auto* li = find_link(link_id);
    if (!li || !li->link || li->frag_received <= li->frag_acked) return;
    if (li->queued->load() > input_bound()) {
        // Held back until the db thread has caught up: the sender's window stops it meanwhile,
        // so a second huge message never piles up behind the first. The db thread says when
        // it has given queued bytes back (drain_received, node_receiving.cpp).
        frag_acks_waiting_.store(true);
        // Looked at again after raising the flag: a drain that gave the bytes back just before
        // may have found the flag still down.
        if (li->queued->load() > input_bound()) return;
    }
    li->frag_acked = li->frag_received;
    send_on(*li, w::fragment_ack{li->frag_acked}, true);
}

void node_impl::ack_all_fragments() {
    std::vector<std::uint64_t> ids;
    for (const auto& [id, li] : links())
        if (li.frag_received > li.frag_acked) ids.push_back(id);
    for (auto id : ids) ack_fragments(id); // sets the flag again for a link still over its bound
}

void node_impl::refuse_on_link(link_info& li, const std::string& why) {
    const std::string from = li.link->remote_address();
    note_refusal(from, li.peer, "closing link from " + from + (li.peer.empty() ? "" : " (" + li.peer + ")") + ": " + why);
    if (auto* p = li.peer.empty() ? nullptr : find_peer(li.peer); p && p->link_id == li.id) p->last_error = "protocol error: " + why;
    li.frag_in.reset();
    li.link->close("protocol error: " + why);
}

std::uint64_t node_impl::fragment_cap() {
    if (fragment_cap_ == 0) {
        // The longest string or BLOB SQLite takes here, which bounds a row too (SQLite refuses
        // a row longer than it): this SQLite's limit, as a new connection has it (the node's
        // connections keep that default). Plus one frame: room for the message's headers, a
        // row's other columns' encoding and a chunk's other rows.
        std::int64_t limit = 1'000'000'000; // SQLITE_MAX_LENGTH's default
        sqlite3* db = nullptr;
        if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) == SQLITE_OK)
            limit = sqlite3_limit(db, SQLITE_LIMIT_LENGTH, -1);
        if (db) sqlite3_close_v2(db);
        fragment_cap_ = static_cast<std::uint64_t>(limit) + static_cast<std::uint64_t>(cfg_.max_frame_bytes);
    }
    return fragment_cap_;
}

} // namespace hdbrepl::ext::node_detail
