// Per-origin intake (db thread): a streamed record that cannot be applied now, because it is
// too far ahead of this node's clock or because applying it failed, is held back with every
// later record of its origin, and retried with backoff, while records of other origins go on.
// Before, one such record stopped intake from every peer (clock skew) or closed its link
// and came back with the next connection, forever (a failure).
//
// Acks: an ack covers every seq before it, so a link's acks stop below its first held
// record; the sender's flow-control window then bounds what that link can queue here.
// Held records keep their queue credit (node_impl.hpp), so they count against the bound.
#include "replication/node_impl.hpp"

#include "engine/txn_record.hpp"
#include "engine/json.hpp"

#include <algorithm>
#include <limits>

namespace hdbrepl::ext::node_detail {

void node_impl::park(const std::string& origin, received&& r, const std::string& why, bool refused) {
    assert_on(node_thread::db);
    auto& po = parked_[origin];
    if (po.items.empty()) {
        // The first held record: it says why, and when to try again.
        const bool first_time = po.attempts == 0;
        po.reason = why.empty() ? po.reason : why;
        po.seq = r.seq;
        po.peer = r.peer;
        if (!po.since) po.since = now_ms();
        ++po.attempts;
        // Early records (clock skew) are tried again soon and often; refused ones back off
        // to a minute.
        const std::int64_t base = refused ? 1000 : 250, cap = refused ? 60000 : 5000;
        po.retry_ms = po.retry_ms == 0 ? base : std::min<std::int64_t>(po.retry_ms * 2, cap);
        po.retrying = false;
        if (first_time || refused)
            log_line(name_, "holding back the transactions of origin '" + origin + "' from " + r.peer + " (seq " + std::to_string(r.seq) +
                                "): " + po.reason + "; other origins go on, retrying in " + std::to_string(po.retry_ms) + " ms");
        std::weak_ptr<node_impl> weak = weak_from_this();
        const auto delay = clock_ms(po.retry_ms);
        on_io([weak, origin, delay](node_impl& m) {
            m.park_timers_[origin] = m.io_->after(delay, [weak, origin] {
                if (auto s = weak.lock(); s && !s->stopped_) s->on_db([origin](node_impl& n) { n.retry_parked(origin); });
            });
        });
    }
    po.items.push_back(std::move(r));
}

void node_impl::retry_parked(const std::string& origin) {
    assert_on(node_thread::db);
    auto it = parked_.find(origin);
    if (it == parked_.end() || it->second.items.empty()) return;
    auto& q = it->second.items;
    const bool schedule = intake_.put_back(q, 0);
    q.clear();
    it->second.retrying = true;
    if (schedule) drain_received();
}

void node_impl::parked_done(const std::string& origin) {
    auto it = parked_.find(origin);
    if (it == parked_.end() || !it->second.retrying) return;
    log_line(name_, "the transactions of origin '" + origin + "' apply again");
    parked_.erase(it);
    // Acks held below the record that now applied can go up to what was processed since.
    std::map<std::uint64_t, std::uint64_t> acks;
    for (const auto& [link, seq] : max_seen_seq_) acks[link] = std::min(seq, ack_ceiling(link));
    publish_parked();
    on_io([acks](node_impl& m) {
        for (const auto& [link, seq] : acks)
            for (auto& [name, p] : m.peers())
                if (p.link_id == link && p.link && seq > 0) m.send(p, w::ack{seq});
    });
}

std::uint64_t node_impl::ack_ceiling(std::uint64_t link_id) const {
    std::uint64_t ceiling = std::numeric_limits<std::uint64_t>::max();
    for (const auto& [o, po] : parked_)
        for (const auto& r : po.items)
            if (r.link_id == link_id && r.seq > 0) ceiling = std::min(ceiling, r.seq - 1);
    return ceiling;
}

void node_impl::publish_parked() {
    json::array held;
    for (const auto& [origin, po] : parked_) {
        if (po.items.empty() && !po.retrying) continue;
        held.push_back(json::object{{"origin", origin},
                                    {"peer", po.peer},
                                    {"seq", po.seq},
                                    {"lastError", po.reason},
                                    {"attempts", po.attempts},
                                    {"retryInMs", po.retry_ms},
                                    {"waiting", static_cast<std::uint64_t>(po.items.size())}});
    }
    std::string text = held.empty() ? "" : json::serialize(held);
    std::map<std::string, std::string> per_peer;
    for (const auto& [origin, po] : parked_)
        if (!po.peer.empty() && !po.reason.empty())
            per_peer[po.peer] = "holding back origin '" + origin + "' at seq " + std::to_string(po.seq) + ": " + po.reason;
    on_io([text = std::move(text), per_peer = std::move(per_peer)](node_impl& m) {
        m.parked_status_json_ = text;
        for (const auto& [peer, why] : per_peer)
            if (auto* p = m.find_peer(peer)) p->last_error = why;
        m.update_status();
    });
}

} // namespace hdbrepl::ext::node_detail
