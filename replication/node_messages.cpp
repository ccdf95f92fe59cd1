// One handler per peer message, for a link whose HELLO named a peer. handle() (node_links.cpp)
// calls them after deliver() checked the message against link_entitlement.hpp's table and
// moved the link to its next state, so each handler may assume what the table guarantees
// (a copy_rows comes inside a copy, a removed names the peer itself, ...). hello is
// node_hello.cpp; read_request node_reads.cpp; copy_ack node_copy_sending.cpp; fragment and
// fragment_ack node_fragments.cpp.
// Thread: the io thread (database work is posted to the db thread).
#include "replication/node_impl.hpp"

#include "engine/txn_record.hpp"

#include <algorithm>
#include <utility>

namespace hdbrepl::ext::node_detail {

std::optional<queue_credit> node_impl::take_credit(link_info& li, peer& p, std::size_t n) {
    assert_on(node_thread::io);
    // Input queued for the db thread is bounded per link: an honest sender keeps within
    // maxBytesInFlight of streamed records plus a few copy chunks of at most one frame each.
    // A message assembled from fragments may be larger: the bound is then on what is queued
    // besides it (its sender waited for the acks, which wait for the queue to drain).
    const std::size_t queue_bound = input_bound();
    if (li.queued->load() + (li.frag_assembled ? 0 : n) > queue_bound) {
        note_refusal(li.link->remote_address(), li.peer, "closing link from " + li.peer + ": it sent " + std::to_string(li.queued->load() + n) +
                                                             " bytes not yet applied, past the flow-control bound of " + std::to_string(queue_bound));
        p.last_error = "protocol error: ignored flow control";
        li.link->close("protocol error: ignored flow control");
        return std::nullopt;
    }
    return queue_credit(li.queued, n);
}

received node_impl::received_from(const link_info& li, const peer& p, received::kind what) const {
    received r;
    r.what = what;
    r.peer = p.name;
    r.link_id = li.id;
    r.secure = li.authenticated;
    return r;
}

void node_impl::take_subscription(peer& p, const w::subscription& sub) {
    p.filter = {};
    p.filter.start_after = sub.start_after;
    for (const auto& o : sub.progress) {
        p.filter.progress[o.origin] = o.hlc;
        auto& k = p.known_progress[o.origin];
        k = std::max(k, o.hlc);
    }
    for (const auto& e : sub.exclude) p.filter.exclude.insert(e);
}

void node_impl::stream_from_subscription(const peer& p) {
    auto f = p.filter;
    auto name = p.name;
    on_db([f, name](node_impl& n) {
        std::int64_t start = 0;
        bool needs_copy = n.behind_log_floor(f);
        n.rstore()->find_start(f, start);
        n.on_io([name, start, needs_copy](node_impl& m) {
            if (needs_copy) return m.start_copy_to(name, true);
            if (auto* q = m.find_peer(name)) {
                q->send_pos = start;
                ++q->send_generation;
                m.pump(name);
            }
        });
    });
}

void node_impl::on_msg(link_info&, peer& p, w::subscribe&& x) {
    take_subscription(p, x.sub);
    ++p.send_generation; // reads under way were for the old subscription
    if (p.sending_copy) return; // applied when the copy ends
    stream_from_subscription(p);
}

void node_impl::on_msg(link_info& li, peer& p, w::txn&& x) {
    hlc_t hlc = 0;
    std::string origin;
    peek_record_head(x.record.data(), x.record.size(), hlc, origin);
    p.last_received_remote = std::max(p.last_received_remote, hlc);
    p.last_received_local = now_ms();
    auto c = take_credit(li, p, x.record.size());
    if (!c) return;
    received r = received_from(li, p, received::txn);
    r.seq = x.seq;
    r.record = std::move(x.record);
    r.credit = std::move(*c);
    enqueue(std::move(r));
}

void node_impl::on_msg(link_info&, peer& p, w::ack&& x) {
    const auto before = p.inflight_q.size();
    while (!p.inflight_q.empty() && p.inflight_q.front().seq <= static_cast<std::int64_t>(x.seq)) {
        auto& f = p.inflight_q.front();
        if (!f.partial) {
            if (f.origin == name_) p.confirmed_own = std::max(p.confirmed_own, f.hlc);
            auto& k = p.known_progress[f.origin];
            k = std::max(k, f.hlc);
        }
        p.inflight_bytes -= f.size;
        p.inflight_q.pop_front();
    }
    p.last_commit_confirmed = now_ms();
    if (p.inflight_q.size() != before) confirmations_changed();
    pump(p.name);
}

// ---- receiving a copy (the link is now in receiving_copy) ------------------------------

void node_impl::on_msg(link_info& li, peer& p, w::copy_start&& x) {
    li.copy_tables = 0;
    p.copying = true;
    p.copy_total = x.total_rows;
    p.copy_done = li.copy_source ? li.copy_rows_before : 0;
    p.copy_chunks = 0; // acks count this copy's chunks
    p.copy_tables.clear();
    received r = received_from(li, p, received::copy_begin);
    r.end.progress = std::move(x.progress);
    r.resync = is_resync_copy(li);
    enqueue(std::move(r));
}

void node_impl::on_msg(link_info& li, peer& p, w::copy_table&& x) {
    ++li.copy_tables;
    p.copy_tables.push_back(std::move(x));
}

void node_impl::on_msg(link_info& li, peer& p, w::copy_rows&& x) {
    if (x.table >= p.copy_tables.size()) {
        li.link->close("protocol error: copy rows for unknown table");
        return;
    }
    auto c = take_credit(li, p, copy_rows_charge(x)); // the sender's window counts the same
    if (!c) return;
    p.copy_done += x.rows.size();
    received r = received_from(li, p, received::copy_rows);
    r.rows = std::move(x);
    r.tables = p.copy_tables;
    r.resync = is_resync_copy(li);
    r.credit = std::move(*c);
    enqueue(std::move(r));
}

void node_impl::on_msg(link_info& li, peer& p, w::copy_end&& x) { // the link is back in `peer`
    received r = received_from(li, p, received::copy_end);
    r.resumed = li.copy_source && li.copy_resumed;
    r.end = std::move(x);
    r.tables = p.copy_tables;
    r.resync = is_resync_copy(li);
    // What a resync's end may claim: not the origins this node hears directly (itself, its
    // other peers): their progress is theirs to tell.
    r.excluded.insert(name_);
    for (const auto& [n, q] : peers())
        if (n != p.name && q.link) r.excluded.insert(n);
    enqueue(std::move(r));
}

// ---- the rest ---------------------------------------------------------------------------

void node_impl::on_msg(link_info&, peer& p, w::error_msg&& x) {
    p.last_error = x.text;
    log_line(name_, "peer " + p.name + " reports: " + x.text);
}

void node_impl::on_msg(link_info&, peer& p, w::read_reply&& x) {
    auto it = reads_.find(x.id);
    if (it == reads_.end() || !it->second.waiting.erase(p.name)) return; // late or unasked: dropped
    if (x.status == w::read_status::found) {
        sql::forwarded_read r;
        r.status = sql::forwarded_read::found;
        r.row = std::move(x.row);
        return finish_read(x.id, std::move(r));
    }
    if (!it->second.waiting.empty()) return;
    sql::forwarded_read r;
    r.status = sql::forwarded_read::absent;
    if (!it->second.unreachable.empty()) { // it may be on a node that is down
        std::string who;
        for (const auto& n : it->second.unreachable) who += (who.empty() ? "" : ", ") + n;
        r.status = sql::forwarded_read::failed;
        r.error = "the row is on no node that answered, and these may hold it but are unreachable: " + who;
    }
    finish_read(x.id, std::move(r));
}

void node_impl::on_msg(link_info&, peer& p, w::copy_request&& x) {
    if (!p.sending_copy) start_copy_to(p.name, false, x.resume);
}

void node_impl::on_msg(link_info& li, peer&, w::removed&& x) { // names the peer itself (the table)
    log_line(name_, "removed from the cluster by " + x.by);
    removed_.insert(x.by);
    std::string by = x.by;
    for (auto it = targets().begin(); it != targets().end();)
        if (it->second.peer_name == by) {
            if (it->second.retry) it->second.retry->cancel();
            it = targets().erase(it);
        } else {
            ++it;
        }
    on_db([by](node_impl& n) {
        bool existed = false;
        n.wstore()->remove_node(by, existed);
        n.wstore()->set_removed(by, true);
    });
    li.link->close("removed from the cluster");
}

} // namespace hdbrepl::ext::node_detail
