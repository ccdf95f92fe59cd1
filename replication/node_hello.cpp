// HELLO: who the peer at the other end of a link is (its name bound to its certificate or
// address), one link per pair of nodes, its subscription, and which link a never-synced node
// takes its initial copy from. Thread: the io thread (database work is posted).
#include "replication/node_impl.hpp"

#include <algorithm>

namespace hdbrepl::ext::node_detail {

void node_impl::on_hello(link_info& li, w::hello&& h) {
    auto refuse = [&](const std::string& why) {
        note_refusal(li.link->remote_address(), "", "refusing " + h.node_name + " (" + li.link->remote_address() + "): " + why);
        send_link(li.link, w::error_msg{why});
        li.link->close(why);
    };
    if (!li.peer.empty()) return refuse("second hello");
    if (h.node_name == name_) return refuse("a node cannot connect to itself (same name '" + name_ + "')");
    if (h.database != "main") return refuse("database '" + h.database + "' is not replicated here");
    if (removed_.count(h.node_name)) return refuse("node '" + h.node_name + "' was removed from this cluster");
    if (li.link->secure()) {
        // Over TLS a node is who its certificate says: the name in its HELLO must be on it.
        auto names = li.link->peer_certificate_names();
        if (std::find(names.begin(), names.end(), h.node_name) == names.end())
            return refuse("certificate name mismatch: the certificate is for " + join_names(names) + ", not '" + h.node_name + "'");
    }
    if (li.inbound && !li.claimed_name.empty() && li.claimed_name != h.node_name)
        return refuse("HELLO names '" + h.node_name + "' but the connection was opened for '" + li.claimed_name + "'");
    // On the plain port a node is known by its address: the name must belong to the address
    // the connection comes from (the address itself, or a route or known node of that name
    // reached there), or one member could speak as another.
    if (li.inbound && !li.link->secure() && !name_bound_to_address(h.node_name, li.link->remote_address()))
        return refuse("HELLO names '" + h.node_name + "', which is not the name of a route or known node at " + li.link->remote_address());
    // One link per pair of nodes: when both dialed, keep the link dialed by the smaller name.
    if (auto* existing = find_peer(h.node_name); existing && existing->link) {
        auto old = std::find_if(links().begin(), links().end(), [&](auto& kv) { return kv.second.id == existing->link_id; });
        std::string old_dialer = old != links().end() && old->second.inbound ? h.node_name : name_;
        std::string new_dialer = li.inbound ? h.node_name : name_;
        bool keep_new = old_dialer == new_dialer ? true : new_dialer == std::min(name_, h.node_name);
        if (!keep_new) {
            if (li.copy_source && copy_link_ == li.id) copy_link_ = 0;
            li.copy_source = false;
            li.peer = "";
            if (!li.target.empty()) targets()[li.target].peer_name = h.node_name;
            li.link->close("duplicate link");
            return;
        }
        if (old != links().end()) {
            auto old_link = old->second.link;
            if (old->second.copy_source && copy_link_ == old->second.id) {
                copy_link_ = 0; // ensure_copy_source() asks on the kept link
                copy_peer_ = h.node_name;
                existing->copying = false;
            }
            links().erase(old);
            old_link->close("duplicate link");
        }
    }
    li.peer = h.node_name;
    li.state = link_state_after(li.state, w::message{w::hello{}}); // accepted: `peer`
    if (li.hello_timer) li.hello_timer->cancel();
    if (!li.target.empty()) targets()[li.target].peer_name = h.node_name;
    // A target of ours whose own dial never reached this peer (refused before the peer knew
    // us, or backing off) while the peer's dial did: it is this peer, not a node down (a
    // forwarded read would wait for it as unreachable; the status would list it twice).
    // Matched by the URL the peer advertises, host and port: nodes on one machine share an
    // address.
    if (!h.node_url.empty()) {
        const node_url u = split_node_url(h.node_url);
        for (auto& [key, t] : targets())
            if (t.peer_name.empty() && t.host == u.host && t.port == u.port) t.peer_name = h.node_name;
    }
    allowed_ips().insert(li.link->remote_address());
    auto& p = peers()[h.node_name];
    p.name = h.node_name;
    p.url = h.node_url;
    p.link = li.link;
    p.link_id = li.id;
    p.state = peer_state::connected;
    p.down_since = 0;
    p.last_error.clear();
    p.subscribed = true;
    take_subscription(p, h.sub);
    p.inflight_q.clear();
    p.inflight_bytes = 0;
    ++p.send_generation;
    p.sending_copy.reset();
    if (li.copy_source) {
        p.copying = true;
        p.copy_done = p.copy_total = 0;
    }
    on_db([name = h.node_name, url = h.node_url](node_impl& n) {
        n.wstore()->ensure_node(name, url);
        // Announce ourselves again with a fresh version: a peer that has our row only from an
        // initial copy (copies do not enter its log) could not relay it to nodes we do not
        // reach yet; a new log record can.
        n.update_own_member(true);
    });
    // Other peers' subscriptions change: what this peer sends directly, they need not relay.
    resubscribe_all();
    if (h.needs_copy) {
        start_copy_to(h.node_name, false, h.resume);
    } else {
        stream_from_subscription(p);
    }
    ensure_copy_source();
    update_status();
}

void node_impl::ensure_copy_source() {
    if (synced_ || copy_link_ != 0) return;
    // The peer whose copy was cut (e.g. its link replaced as a duplicate) first: a copy is
    // taken from one peer only, and starting over elsewhere would copy twice.
    for (int pass = 0; pass < 2; ++pass)
        for (auto& [id, li] : links()) {
            if (li.peer.empty() || !li.link || (pass == 0 && li.peer != copy_peer_)) continue;
            auto* p = find_peer(li.peer);
            if (!p || p->link_id != id) continue;
            copy_peer_.clear();
            choose_copy_source(li);
            p->copying = true;
            p->copy_done = p->copy_total = 0;
            send_link(li.link, w::copy_request{resume_point_});
            return;
        }
}

// The one link this node takes its initial copy from, and what it asked that link for: the
// rows after the resume point (if a copy was cut) or all of them. Set in one place because the
// copy's end reads all three (node_receiving.cpp: a resumed copy claims less).
void node_impl::choose_copy_source(link_info& li) {
    li.copy_source = true;
    li.copy_resumed = resume_point_.has_value();
    li.copy_rows_before = li.copy_resumed ? resume_rows_ : 0;
    copy_link_ = li.id;
}

} // namespace hdbrepl::ext::node_detail
