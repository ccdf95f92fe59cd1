// The node's links and the protocol state machines: targets and dialing, subscriptions, the
// dispatch of every received message (after link_entitlement.hpp's check) to its handler in
// node_messages.cpp, links closing.
// HELLO is node_hello.cpp; admission and refusals node_admission.cpp.
// Thread: the io thread (database work is posted to the db thread).
#include "replication/node_impl.hpp"

#include "engine/txn_record.hpp"

#include <algorithm>
#include <random>
#include <utility>

namespace hdbrepl::ext::node_detail {

void node_impl::add_target(const std::string& host, int port, const std::string& scheme, std::int64_t start_time_ms, bool verify_tls) {
    assert_on(node_thread::io);
    if (host.empty() || port <= 0) return;
    if (host == cfg_.hostname && port == (cfg_.has_port ? cfg_.port : cfg_.secure_port)) return;
    std::string key = host + ":" + std::to_string(port);
    if (removed_.count(host)) return; // removed with remove_node: stays out until added again
    allowed_ips().insert(host);
    if (auto it = targets().find(key); it != targets().end()) {
        it->second.verify_tls = verify_tls;
        return;
    }
    auto& t = targets()[key];
    t.host = host;
    t.port = port;
    t.scheme = scheme;
    t.start_time_ms = start_time_ms;
    t.verify_tls = verify_tls;
    dial(key);
}

void node_impl::dial(const std::string& key) {
    assert_on(node_thread::io);
    auto it = targets().find(key);
    if (it == targets().end() || stopped_) return;
    auto& t = it->second;
    if (t.dialing) return;
    if (!t.peer_name.empty() && (removed_.count(t.peer_name) || (find_peer(t.peer_name) && find_peer(t.peer_name)->link))) return;
    t.dialing = true;
    net::link_options opts = link_opts();
    std::weak_ptr<node_impl> weak = shared_from_this();
    std::string bind = cfg_.bind == "0.0.0.0" ? "" : cfg_.bind;
    auto done = [weak, key](const net::link_ptr& link, const std::string& error) {
                  auto s = weak.lock();
                  if (!s || s->stopped_) {
                      if (link) link->close("node stopping");
                      return;
                  }
                  auto it = s->targets().find(key);
                  if (it == s->targets().end()) {
                      if (link) link->close("route removed");
                      return;
                  }
                  it->second.dialing = false;
                  // One log line per new complaint, not one per retry.
                  if (!link && error != it->second.last_error) log_line(s->name_, "cannot connect to " + key + ": " + error);
                  it->second.last_error = error;
                  if (!link && it->second.down_since == 0) it->second.down_since = now_ms();
                  if (link) it->second.down_since = 0;
                  for (auto& waiter : std::exchange(it->second.first_result, {})) waiter(error);
                  if (!link) {
                      if (!it->second.peer_name.empty())
                          if (auto* p = s->find_peer(it->second.peer_name); p && !p->link) { // else it is reached the other way
                              p->last_error = error;
                              p->state = peer_state::unreachable;
                          }
                      s->schedule_redial(key);
                      s->update_status();
                      return;
                  }
                  it->second.backoff_ms = 0;
                  it->second.address = link->remote_address();
                  s->on_link_open(link, key, false);
              };
    if (t.scheme == "wss") {
        net::tls_dial_options tls;
        tls.verify_server = t.verify_tls;
        tls.expected_name = t.host;
        net::dial_tls(*io_, t.host, static_cast<std::uint16_t>(t.port), bind, "/hdbrepl?node=" + name_, opts, sec_.identity, tls,
                      std::move(done));
    } else {
        net::dial(*io_, t.host, static_cast<std::uint16_t>(t.port), bind, "/hdbrepl", opts, std::move(done));
    }
}

void node_impl::schedule_redial(const std::string& key) {
    assert_on(node_thread::io);
    auto it = targets().find(key);
    if (it == targets().end() || stopped_) return;
    auto& t = it->second;
    // Capped exponential backoff with jitter, so restarted nodes do not dial in lockstep.
    t.backoff_ms = t.backoff_ms == 0 ? cfg_.reconnect_min_ms : std::min(t.backoff_ms * 2, cfg_.reconnect_max_ms);
    static thread_local std::mt19937 gen(std::random_device{}());
    int delay = t.backoff_ms / 2 + static_cast<int>(gen() % static_cast<unsigned>(t.backoff_ms / 2 + 1));
    std::weak_ptr<node_impl> weak = shared_from_this();
    if (t.retry) t.retry->cancel();
    t.retry = io_->after(clock_ms(delay), [weak, key] {
        if (auto s = weak.lock(); s && !s->stopped_) s->dial(key);
    });
}

void node_impl::send_link(const net::link_ptr& l, const w::message& m) {
    assert_on(node_thread::io);
    if (!l) return;
    for (auto& [id, li] : links()) // a handful of links: found by pointer
        if (li.link == l) return send_on(li, m, false);
    if (!l->send(w::encode(m))) log_line(name_, std::string("send queue full, dropping ") + w::name_of(m));
}

void node_impl::send(peer& p, const w::message& m) {
    assert_on(node_thread::io);
    if (!p.link) return;
    // In order behind a fragmented message, or in fragments itself (node_fragments.cpp).
    if (auto* li = find_link(p.link_id); li && li->link == p.link) return send_on(*li, m, true);
    auto bytes = w::encode(m);
    if (bytes.size() > static_cast<std::size_t>(cfg_.max_frame_bytes)) {
        // The peer would refuse it; say so where an operator looks, and close the link
        // rather than skip a transaction (raise maxFrameBytes on both nodes).
        p.last_error = std::string(w::name_of(m)) + " of " + std::to_string(bytes.size()) + " bytes exceeds maxFrameBytes (" +
                       std::to_string(cfg_.max_frame_bytes) + "); raise replication.maxFrameBytes on both nodes";
        log_line(name_, "to " + p.name + ": " + p.last_error);
        p.link->close("message too big");
        return;
    }
    if (!p.link->send(std::move(bytes))) {
        p.last_error = std::string("send queue full, closing to resync: ") + w::name_of(m);
        log_line(name_, "to " + p.name + ": " + p.last_error);
        p.link->close("send queue full");
    }
}

w::subscription node_impl::my_subscription(const std::string& peer_name, const link_info* li) {
    w::subscription sub;
    {
        for (const auto& [o, h] : board_.progress()) sub.progress.push_back({o, h});
    }
    sub.exclude.push_back(name_);
    for (const auto& [n, p] : peers())
        if (n != peer_name && p.link) sub.exclude.push_back(n);
    // A route or node with a start time skips the history before it.
    if (li)
        if (auto st = start_time_for(*li); st > 0) sub.start_after = hlc_from_ms(static_cast<std::uint64_t>(st));
    // Until the initial copy is done, ask only the copy's link for anything. Not only while
    // a copy runs: when the copy's link is replaced as a duplicate there is no copy link for
    // a moment, and an empty progress sent to another peer then looks "behind its log" to
    // it, so it sent a second full copy (seen under load: a new node copied from two peers).
    if (!synced_ && (!li || copy_link_ == 0 || li->id != copy_link_)) sub.start_after = ~hlc_t{0}, sub.progress.clear();
    return sub;
}

void node_impl::on_link_open(const net::link_ptr& l, const std::string& target_key, bool inbound) {
    assert_on(node_thread::io);
    auto id = next_link_id()++;
    auto& li = links()[id];
    li.link = l;
    li.id = id;
    li.target = target_key;
    li.inbound = inbound;
    if (inbound) {
        li.sign = target_path(l->request_target()) == "/hdbrepl/sign";
        li.claimed_name = query_param(l->request_target(), "node");
    }
    // Inbound TLS links passed the filter's certificate check; outbound ones verified the
    // server unless add_node said verify_tls:false (first contact, before an exchange).
    if (l->secure()) {
        if (inbound) li.authenticated = true;
        else if (auto t = targets().find(target_key); t != targets().end()) li.authenticated = t->second.verify_tls;
    }
    li.state = li.sign ? link_state::signing : link_state::awaiting_hello;
    std::weak_ptr<node_impl> weak = shared_from_this();
    net::link_events ev;
    ev.on_message = [weak, id](const net::link_ptr&, std::vector<std::uint8_t>&& data) {
        if (auto s = weak.lock(); s && !s->stopped_) s->on_message(id, std::move(data));
    };
    ev.on_closed = [weak, id](const net::link_ptr&, const std::string& reason) {
        if (auto s = weak.lock(); s && !s->stopped_) s->on_link_closed(id, reason);
    };
    ev.on_room = [weak, id](const net::link_ptr&) { // io thread: the send queue drained (pump_out asked)
        if (auto s = weak.lock(); s && !s->stopped_) s->pump_out(id);
    };
    l->set_events(std::move(ev));
    if (li.sign && !l->secure()) { // the plain filter refuses it first; never reached
        l->close("certificate exchanges use the secure port");
        return;
    }
    // A link that never says HELLO (or, for an exchange, never asks) is closed: a connection
    // costs a slot and memory, and a peer that stalls here has nothing to gain. Half the ping
    // timeout: a peer that answers pings but says nothing is cut off too.
    li.hello_timer = io_->after(clock_ms(std::clamp<std::int64_t>(cfg_.ping_timeout_ms / 2, 500, 5000)), [weak, id] {
        auto s = weak.lock();
        if (!s || s->stopped_) return;
        auto* x = s->find_link(id);
        if (!x || !x->link || x->state != (x->sign ? link_state::signing : link_state::awaiting_hello) || (x->sign && x->sign_requested)) return;
        s->note_refusal(x->link->remote_address(), "", "closing link from " + x->link->remote_address() + ": " + (x->sign ? "no certificate request" : "no hello") +
                                                          " in time");
        x->link->close(x->sign ? "no certificate request in time" : "no hello in time");
    });
    if (li.sign) return; // a certificate exchange: the client speaks first, in JSON
    w::hello h;
    h.node_name = name_;
    h.node_url = self_url();
    h.database = "main";
    // A database never synced copies from the first peer that answers, and only from it.
    bool has_start_time = start_time_for(li) > 0;
    if (has_start_time) synced_ = true; // start_time: skip the copy, stream from that time
    if (!synced_ && copy_link_ == 0) {
        h.needs_copy = true;
        h.resume = resume_point_;
        choose_copy_source(li);
    }
    h.sub = my_subscription("", &li);
    if (h.needs_copy) { h.sub.start_after = ~hlc_t{0}; h.sub.progress.clear(); }
    send_link(l, h);
    li.hello_sent = true;
}

void node_impl::on_message(std::uint64_t link_id, std::vector<std::uint8_t>&& data) {
    assert_on(node_thread::io);
    auto* li = find_link(link_id);
    if (!li) return;
    if (li->sign) {
        // Never a peer (so no subscribe or copy traffic reaches it): one request, one answer.
        if (li->sign_requested) return;
        li->sign_requested = true;
        return on_sign_request(*li, std::move(data));
    }
    deliver(*li, std::move(data), false);
}

void node_impl::deliver(link_info& link, bytes&& data, bool assembled) {
    assert_on(node_thread::io);
    auto* li = &link;
    std::string err;
    auto m = w::decode(std::move(data), err);
    if (!m) {
        // A malformed or hostile frame closes that link, with a log line, and nothing else.
        note_refusal(li->link->remote_address(), li->peer, "closing link from " + li->link->remote_address() + ": " + err);
        if (!li->peer.empty()) {
            if (auto* p = find_peer(li->peer)) p->last_error = err;
        } else if (!li->target.empty()) {
            // Before its HELLO (e.g. a peer of another protocol version): shown under the target.
            if (auto t = targets().find(li->target); t != targets().end()) t->second.last_error = "protocol error: " + err;
        }
        li->link->close("protocol error: " + err);
        return;
    }
    // What this link may receive in its state (link_entitlement.hpp); the rest closes it.
    link_view v;
    v.state = li->state;
    v.peer = li->peer;
    v.initial_copy_source = !synced_ && li->copy_source && copy_link_ == li->id;
    v.synced = synced_;
    v.copy_tables = li->copy_tables;
    if (auto* p = li->peer.empty() ? nullptr : find_peer(li->peer); p && p->link_id == li->id) {
        v.sending_copy = static_cast<bool>(p->sending_copy);
        v.copy_acks_due = p->copy_chunks_acked < p->copy_chunks_sent;
    }
    v.fragment_acks_due = li->fragment_acks_due();
    if (std::string why = link_refusal(v, *m); !why.empty()) {
        note_refusal(li->link->remote_address(), li->peer,
                     "closing link from " + li->link->remote_address() + (li->peer.empty() ? "" : " (" + li->peer + ")") + ": " + why);
        if (auto* p = li->peer.empty() ? nullptr : find_peer(li->peer); p && p->link_id == li->id) p->last_error = "protocol error: " + why;
        li->link->close("protocol error: " + why);
        return;
    }
    li->frag_assembled = assembled;
    handle(*li, std::move(*m));
    li->frag_assembled = false;
}

void node_impl::resubscribe_all() {
    for (auto& [id, li] : links()) {
        if (li.peer.empty() || !li.link) continue;
        if (li.copy_source && copy_link_ == li.id) continue; // its subscription follows the copy
        send_link(li.link, w::subscribe{my_subscription(li.peer, &li)});
    }
}

void node_impl::handle(link_info& li, w::message&& m) {
    assert_on(node_thread::io);
    if (auto* h = std::get_if<w::hello>(&m)) return on_hello(li, std::move(*h)); // moves to `peer` once accepted
    auto* p = find_peer(li.peer);
    if (!p || p->link_id != li.id) return;
    // The link's next state (link_entitlement.hpp's table), before its handler runs.
    li.state = link_state_after(li.state, m);
    std::visit(
        [&](auto&& x) {
            if constexpr (!std::is_same_v<std::decay_t<decltype(x)>, w::hello>) on_msg(li, *p, std::move(x));
        },
        std::move(m));
    // No status rebuild per message: the 250 ms tick refreshes counters and times, and
    // state changes (hello, close, copy end, removal) refresh it where they happen.
}

void node_impl::on_link_closed(std::uint64_t link_id, const std::string& reason) {
    assert_on(node_thread::io);
    auto it = links().find(link_id);
    if (it == links().end()) return;
    link_info li = std::move(it->second);
    links().erase(it);
    if (li.hello_timer) li.hello_timer->cancel();
    on_db([link_id](node_impl& n) {
        n.max_seen_seq_.erase(link_id);
        // Held records of a closed link are dropped: the sender sends them again after our
        // progress on its next link, so keeping them would only hold a second copy.
        for (auto& [origin, po] : n.parked_)
            po.items.erase(std::remove_if(po.items.begin(), po.items.end(), [&](const received& r) { return r.link_id == link_id; }),
                           po.items.end());
    });
    if (li.copy_source && copy_link_ == link_id) {
        copy_link_ = 0; // another link asks for the copy (the same peer's, if it has one)
        copy_peer_ = li.peer;
    }
    if (li.copy_source && !li.peer.empty())
        if (auto* p = find_peer(li.peer)) p->copying = false;
    if (!li.peer.empty())
        if (auto* p = find_peer(li.peer); p && p->link_id == link_id) {
            p->link.reset();
            p->down_since = now_ms();
            p->state = removed_.count(p->name) ? peer_state::removed : peer_state::disconnected;
            if (!reason.empty()) p->last_error = reason;
            p->copying = false;
            p->sending_copy.reset();
            if (removed_.count(p->name)) peers().erase(li.peer);
            resubscribe_all(); // others now relay what this peer sent directly
        }
    if (!li.target.empty()) {
        // A link closed before its HELLO was answered (e.g. a peer speaking another protocol
        // version): say why in cluster_status, under the target.
        if (li.peer.empty() && !reason.empty())
            if (auto it = targets().find(li.target); it != targets().end() && it->second.last_error.rfind("protocol error", 0) != 0)
                it->second.last_error = reason;
        schedule_redial(li.target);
    }
    ensure_copy_source();
    update_status();
}

} // namespace hdbrepl::ext::node_detail
