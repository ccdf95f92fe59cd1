// The cluster as this node sees and changes it: the cluster_status snapshot and commit
// confirmations (built on the io thread), the operations add/set/update/remove/search_nodes
// (user thread: they post to the other threads and wait with a timeout), and membership
// gossip (rows read and written on the db thread, targets changed on the io thread).
#include "replication/node_impl.hpp"

#include "engine/json.hpp"
#include "security/credentials.hpp"

#include <algorithm>
#include <ctime>

namespace hdbrepl::ext::node_detail {

namespace {

std::string http_date(std::uint64_t ms) {
    if (ms == 0) return {};
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return buf;
}

// A refusal that adding the node again will not cure: bad certificate or credentials.
bool is_refusal(const std::string& error) {
    return error.rfind("TLS: server certificate", 0) == 0 || error.rfind("handshake refused: HTTP 4", 0) == 0;
}

// How long an operation waits for the node's threads. They are normally free within
// milliseconds; a long wait means the database thread is inside a big step (an initial
// copy's end building the indexes of a large table, a large batch).
constexpr std::chrono::seconds op_wait{10};

std::string busy_node_error(const std::string& what) {
    return what + ": the node's database thread has been busy for " + std::to_string(op_wait.count()) +
           " s (an initial copy or a large batch); the change is queued and takes effect when it gets to it "
           "(see hdb_nodes and repl_cluster_status)";
}

} // namespace

// ---- status ------------------------------------------------------------------------------

void node_impl::notify_confirmations() {
    std::map<std::string, hlc_t> confirmed;
    for (auto& [n, p] : peers()) confirmed[n] = p.confirmed_own;
    board_.merge_confirmed(confirmed);
}

// The status first, then the waiters: once repl_confirm returns, the peers it counted show
// their confirmation (backlog, lastCommitConfirmed) in repl_cluster_status too; the 250 ms
// refresh alone left them stale. One rebuild for all the acks already queued on the io
// thread: with many peers each commit brings an ack from each, and rebuilding the whole
// document for every one of them would cost the io thread more than the acks themselves.
void node_impl::confirmations_changed() {
    if (confirm_refresh_posted_) return;
    confirm_refresh_posted_ = true;
    on_io([](node_impl& m) {
        m.confirm_refresh_posted_ = false;
        m.update_status();
        m.notify_confirmations();
    });
}

int node_impl::wait_confirmed(hlc_t hlc, int n, std::chrono::milliseconds timeout, const std::set<std::string>& only) {
    return board_.wait_confirmed(hlc, n, timeout, only, [this] { return stopped_.load(); });
}

void node_impl::update_status() {
    json::object top;
    top["type"] = "cluster-status";
    top["node_name"] = name_;
    json::array conns;
    bool any = false;
    for (auto& [name, p] : peers()) {
        json::object c;
        c["name"] = name;
        c["url"] = p.url;
        c["subscriptions"] = nullptr;
        c["replicates"] = true;
        c["state"] = p.copying ? "copying" : p.full_resync && p.sending_copy ? "full-resync" : peer_state_name(p.state);
        c["lastError"] = p.last_error.empty() ? json::value(nullptr) : json::value(p.last_error);
        if (!p.link && p.down_since) c["unreachableSince"] = http_date(p.down_since);
        std::int64_t pending = std::max<std::int64_t>(0, log_last_seq_ - p.send_pos);
        c["backlog"] = static_cast<std::int64_t>(p.inflight_q.size()) + pending;
        // A resumed copy counts the rows from before the cut, which a newer snapshot may hold
        // a few fewer of (deleted meanwhile): progress never shows more than the total.
        if (p.copying) c["sync"] = json::object{{"rowsDone", std::min(p.copy_done, p.copy_total)}, {"rowsTotal", p.copy_total}};
        // Full copies sent to this peer because it fell behind our retained log.
        c["fullResyncs"] = p.full_resyncs;
        c["refusals"] = p.refusals;
        c["lastRefusal"] = p.last_refusal.empty() ? json::value(nullptr) : json::value(p.last_refusal);
        c["lastFullResync"] = p.last_full_resync ? json::value(http_date(p.last_full_resync)) : json::value(nullptr);
        json::object sock;
        sock["database"] = "main";
        sock["connected"] = static_cast<bool>(p.link);
        any = any || p.link;
        sock["latency"] = p.link ? json::value(p.link->latency_ms()) : json::value(nullptr);
        sock["lastCommitConfirmed"] = http_date(p.last_commit_confirmed);
        sock["lastReceivedRemoteTime"] = http_date(hlc_ms(p.last_received_remote));
        sock["lastReceivedLocalTime"] = p.copying ? std::string("Copying") : http_date(p.last_received_local);
        sock["lastSendTime"] = http_date(p.last_send);
        c["database_sockets"] = json::array{sock};
        conns.push_back(std::move(c));
    }
    // Targets never reached yet (no HELLO, so no peer): their state and why.
    for (auto& [key, t] : targets()) {
        if (!t.peer_name.empty() && peers().count(t.peer_name)) continue;
        json::object c;
        c["name"] = t.host;
        c["url"] = t.scheme + "://" + (t.host.find(':') != std::string::npos ? "[" + t.host + "]" : t.host) + ":" + std::to_string(t.port);
        c["subscriptions"] = nullptr;
        c["replicates"] = true;
        c["state"] = t.last_error.empty() ? "connecting" : is_refusal(t.last_error) ? "refused" : "unreachable";
        c["lastError"] = t.last_error.empty() ? json::value(nullptr) : json::value(t.last_error);
        if (t.down_since) c["unreachableSince"] = http_date(t.down_since);
        c["backlog"] = nullptr;
        json::object sock;
        sock["database"] = "main";
        sock["connected"] = false;
        sock["latency"] = nullptr;
        c["database_sockets"] = json::array{sock};
        conns.push_back(std::move(c));
    }
    top["connections"] = std::move(conns);
    top["is_enabled"] = true;
    top["connected"] = any;
    // Receiving stopped because this node cannot write (disk full, maxDatabaseSize): null
    // while all is well.
    top["intakePaused"] = intake_status_.empty() ? json::value(nullptr) : json::value(intake_status_);
    // Origins whose transactions are held back (too far ahead of the clock, or refused by the
    // apply step): retried with backoff while the others go on. [] while all is well.
    top["heldOrigins"] = parked_status_json_.empty() ? json::value(json::array{}) : json::parse_or_null(parked_status_json_);
    // What peers and strangers sent that was refused (link_entitlement.hpp,
    // record_entitlement.hpp, connection checks): the count, and the newest few.
    json::array recent;
    for (const auto& r : refusals_)
        recent.push_back(json::object{{"time", http_date(r.at_ms)}, {"from", r.from}, {"node", r.node.empty() ? json::value(nullptr) : json::value(r.node)},
                                      {"reason", r.reason}});
    top["refusals"] = json::object{{"total", refusals_total_}, {"recent", std::move(recent)}};
    board_.set_status(json::serialize(top));
}

std::string node_impl::cluster_status_json() {
    return board_.status();
}

// ---- operations (user thread) --------------------------------------------------------------

result<std::string> node_impl::set_node(const std::string& operation_json) {
    std::string reply;
    if (std::string why = apply_set_node(operation_json, reply); !why.empty()) return error{SQLITE_ERROR, why};
    return reply;
}

result<std::string> node_impl::remove_node(const std::string& operation_json) {
    std::string reply;
    if (std::string why = apply_remove_node(operation_json, reply); !why.empty()) return error{SQLITE_ERROR, why};
    return reply;
}

std::string node_impl::apply_set_node(const std::string& operation_json, std::string& reply_json) {
    json::value v;
    std::string err = json::parse_object(operation_json, v);
    if (!err.empty()) return err;
    auto& o = v.as_object();
    std::string hostname = json::get_string(o, "hostname");
    if (hostname.empty()) hostname = json::get_string(o, "node_name");
    if (hostname.empty()) hostname = json::get_string(o, "name");
    std::string url = json::get_string(o, "url");
    int port = 0;
    std::string scheme;
    if (!url.empty()) {
        auto pos = url.find("://");
        if (pos == std::string::npos) return "'url' must look like ws://host:port or wss://host:port";
        scheme = url.substr(0, pos);
        if (scheme != "ws" && scheme != "wss") return "'url' scheme must be ws or wss, not '" + scheme + "'";
        std::string rest = url.substr(pos + 3);
        if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
        auto colon = rest.rfind(':');
        std::string host = colon == std::string::npos ? rest : rest.substr(0, colon);
        if (!host.empty() && host.front() == '[') host = host.substr(1, host.size() - 2);
        if (colon != std::string::npos) port = std::atoi(rest.c_str() + colon + 1);
        if (hostname.empty()) hostname = host;
    }
    if (hostname.empty()) return "'hostname' or 'url' is required";
    if (auto* pv = o.if_contains("port")) {
        if (!pv->is_int64() || pv->as_int64() < 1 || pv->as_int64() > 65535) return "'port' must be an integer between 1 and 65535";
        port = static_cast<int>(pv->as_int64());
    }
    // Without a URL, a node that serves TLS reaches others on their secure port.
    if (scheme.empty()) scheme = cfg_.serve_secure ? "wss" : "ws";
    if (port == 0) port = scheme == "wss" ? cfg_.secure_port : cfg_.port;
    bool verify_tls = true;
    if (auto* vt = o.if_contains("verify_tls")) {
        if (!vt->is_bool()) return "'verify_tls' must be true or false";
        verify_tls = vt->as_bool();
    }
    // The one-time credentials for a certificate exchange: used below, never stored.
    std::string authorization;
    if (auto* a = o.if_contains("authorization"); a && !a->is_null()) {
        if (a->is_string()) {
            authorization = std::string(a->as_string());
        } else if (a->is_object()) {
            std::string user = json::get_string(a->as_object(), "username"), pass = json::get_string(a->as_object(), "password");
            if (user.empty() || pass.empty()) return "'authorization' must hold a non-empty username and password";
            authorization = "Basic " + net::cred::base64_encode(user + ":" + pass);
            net::cred::wipe(pass);
        } else {
            return "'authorization' must be {\"username\": ..., \"password\": ...} or an HTTP Authorization string (Basic ..., Bearer <jwt>)";
        }
        if (authorization.empty()) return "'authorization' is empty";
        if (scheme != "wss")
            return "'authorization' is for a certificate exchange over TLS (wss://, securePort); the connection to '" + hostname + "' is " + scheme + "://";
    }
    std::int64_t start_time = -1;
    if (auto* st = o.if_contains("start_time")) {
        std::string e = json::parse_time_ms(*st, start_time);
        if (!e.empty()) return "'start_time' " + e;
    }
    node_row row;
    row.name = hostname;
    row.url = scheme + "://" + (hostname.find(':') != std::string::npos ? "[" + hostname + "]" : hostname) + ":" + std::to_string(port);
    row.start_time_ms = start_time;
    if (auto* sh = o.if_contains("shard")) {
        if (!sh->is_int64() || sh->as_int64() < 0 || sh->as_int64() >= 65536) return "'shard' must be an integer from 0 to 65535";
        row.shard = static_cast<int>(sh->as_int64());
    }
    if (auto* subs = o.if_contains("subscriptions")) {
        if (!subs->is_array() && !subs->is_null()) return "'subscriptions' must be an array of {database, table, publish, subscribe}";
        row.subscriptions_json = json::serialize(*subs);
    }
    if (hostname == name_) return "cannot add this node ('" + name_ + "') to its own cluster";
    if (!authorization.empty()) {
        // Cross-generated certificates: the exchange first, so that the link below is
        // verified mutual TLS from its first byte.
        std::string e = exchange_certificates(hostname, port, verify_tls, std::move(authorization));
        net::cred::wipe(authorization);
        if (!e.empty()) return "certificate exchange with '" + hostname + "' failed: " + e;
        verify_tls = true; // we trust its CA now
    }
    row_filter_.set_rules(row.name, row.subscriptions_json);
    // The row, then the dialing, chained from the database thread: if that thread is busy
    // past the wait below, the operation still completes as a whole when it gets to it.
    auto written = submit_to<int>(node_thread::db, op_wait, [row, hostname, port, scheme, start_time, verify_tls](node_impl& n, reply<int> done) {
        n.row_filter_.set_given_shard(row.name, row.shard);
        int rc = n.wstore()->put_node(row);
        if (rc == SQLITE_OK) rc = n.wstore()->set_removed(row.name, false);
        if (rc == SQLITE_OK) rc = clear_removal(n.wdb(), "main", row.name);
        n.membership_.readmit(row.name);
        if (rc != SQLITE_OK) return done(rc);
        n.on_io([done, hostname, port, scheme, start_time, verify_tls](node_impl& m) {
            m.removed_.erase(hostname);
            m.add_target(hostname, port, scheme, start_time, verify_tls);
            done(SQLITE_OK);
        });
    });
    if (!written) return busy_node_error("adding '" + hostname + "'");
    if (int rc = *written; rc != SQLITE_OK) return std::string("writing hdb_nodes: ") + sqlite3_errstr(rc);
    if (scheme == "wss") {
        // A refusal (untrusted certificate, name mismatch, refused credentials) is the
        // answer to this add_node; a node that is merely down is kept and retried.
        const std::string key = hostname + ":" + std::to_string(port);
        std::string e = first_dial_result(key, std::chrono::seconds(8));
        if (is_refusal(e)) {
            on_io([key](node_impl& m) {
                if (auto it = m.targets().find(key); it != m.targets().end()) {
                    if (it->second.retry) it->second.retry->cancel();
                    m.targets().erase(it);
                }
                m.update_status();
            });
            (void)submit_to<done_t>(node_thread::db, op_wait, [name = row.name](node_impl& n, reply<done_t> removed) {
                bool existed = false;
                n.wstore()->remove_node(name, existed);
                removed(done);
            });
            return "cannot connect to '" + hostname + "': " + e;
        }
    }
    std::string op = json::get_string(o, "operation");
    reply_json = op == "update_node" ? json::message("Successfully updated '" + hostname + "'")
                                     : json::message("Successfully added '" + hostname + "' to cluster");
    return "";
}

std::string node_impl::apply_remove_node(const std::string& operation_json, std::string& reply_json) {
    std::string name;
    json::value v;
    if (json::parse_object(operation_json, v).empty()) {
        auto& o = v.as_object();
        name = json::get_string(o, "hostname");
        if (name.empty()) name = json::get_string(o, "node_name");
        if (name.empty()) name = json::get_string(o, "name");
        if (name.empty()) {
            std::string url = json::get_string(o, "url");
            if (auto pos = url.find("://"); pos != std::string::npos) {
                std::string rest = url.substr(pos + 3);
                name = rest.substr(0, rest.rfind(':'));
            }
        }
    } else {
        name = operation_json; // a bare hostname
        if (name.size() >= 2 && name.front() == '"' && name.back() == '"') name = name.substr(1, name.size() - 2);
    }
    if (name.empty()) return "'hostname' (or 'name' or 'url') is required";
    struct removal {
        int rc = SQLITE_OK;
        bool existed = false; // a row in hdb_nodes
        bool known = false;   // a peer or a target of this node
    };
    // As in set_node: the io step is chained from the database step, so a removal the wait
    // below gives up on still completes.
    auto answer = submit_to<removal>(node_thread::db, op_wait, [name](node_impl& n, reply<removal> done) {
        removal r;
        r.rc = n.wstore()->remove_node(name, r.existed);
        if (r.rc == SQLITE_OK) r.rc = n.wstore()->set_removed(name, true);
        // Every member learns it (and no stale membership row brings the node back).
        if (r.rc == SQLITE_OK) r.rc = put_removal(n.wdb(), "main", name, n.name_);
        n.membership_.note_removal(name);
        if (r.rc != SQLITE_OK) return done(r);
        n.on_io([name, done, r](node_impl& m) mutable {
            r.known = m.peers().count(name) > 0;
            for (const auto& [key, t] : m.targets()) r.known = r.known || t.peer_name == name || t.host == name;
            m.forget_node(name);
            done(r);
        });
    });
    if (!answer) return busy_node_error("removing '" + name + "'");
    const removal r = *answer;
    if (r.rc != SQLITE_OK) return std::string("writing hdb_nodes: ") + sqlite3_errstr(r.rc);
    const bool existed = r.existed, was_known = r.known;
    if (!existed && !was_known) return "'" + name + "' does not exist";
    reply_json = json::message("Successfully removed '" + name + "' from cluster");
    return "";
}

std::string node_impl::search_nodes_json() {
    auto rows = submit_to<std::vector<node_row>>(node_thread::db, op_wait, [](node_impl& n, reply<std::vector<node_row>> done) {
        std::vector<node_row> loaded;
        n.wstore()->load_nodes(loaded);
        done(std::move(loaded));
    });
    if (!rows) return "[]";
    json::array out;
    json::object self;
    self["name"] = name_;
    self["url"] = self_url();
    self["replicates"] = true;
    self["shard"] = cfg_.shard < 0 ? json::value(nullptr) : json::value(cfg_.shard);
    out.push_back(self);
    for (const auto& r : *rows) {
        json::object o;
        o["name"] = r.name;
        o["url"] = r.url;
        o["replicates"] = true;
        o["shard"] = r.shard < 0 ? json::value(nullptr) : json::value(r.shard);
        o["subscriptions"] = r.subscriptions_json.empty() ? json::value(nullptr) : json::parse_or_null(r.subscriptions_json);
        if (r.start_time_ms >= 0) o["start_time"] = r.start_time_ms;
        out.push_back(std::move(o));
    }
    return json::serialize(out);
}

// ---- membership (gossip, engine/system_tables.hpp) -----------------------------------------

void node_impl::update_own_member(bool fresh_version) {
    member_row me{name_, self_url(), security_ ? security_->presented_ca() : "", cfg_.shard};
    std::vector<member_row> rows;
    if (load_members(wdb(), "main", rows) != SQLITE_OK) return;
    for (const auto& r : rows)
        if (r == me && !fresh_version) return; // unchanged: no log record
    if (put_member(wdb(), "main", me) != SQLITE_OK) log_line(name_, std::string("writing this node's membership row: ") + sqlite3_errmsg(wdb()));
}

void node_impl::refresh_membership(bool force_targets) {
    std::vector<member_row> members;
    std::set<std::string> removals;
    if (load_members(wdb(), "main", members) != SQLITE_OK || load_removals(wdb(), "main", removals) != SQLITE_OK) return;
    membership_change change = membership_.update(members, removals, force_targets);
    if (!change.changed) return;
    const bool cas_changed = change.cas_changed;
    std::vector<std::string> new_removals = std::move(change.new_removals);
    row_filter_.set_member_shards(members);
    // A removal made elsewhere is ours too: out of hdb_nodes, and kept out across restarts.
    for (const auto& r : new_removals) {
        if (r == name_) continue;
        bool existed = false;
        wstore()->remove_node(r, existed);
        wstore()->set_removed(r, true);
    }
    security_snapshot snap;
    bool reload = cas_changed && !force_targets && security_->load(snap).empty();
    on_io([members = std::move(members), new_removals = std::move(new_removals), reload, snap = std::move(snap)](node_impl& m) mutable {
        if (reload) m.apply_security(std::move(snap)); // trust the CAs members announce, before dialing them
        for (const auto& r : new_removals)
            if (r != m.name_) m.forget_node(r);
        for (const auto& member : members) m.add_member_target(member);
        m.update_status();
    });
}

void node_impl::add_member_target(const member_row& member) {
    if (member.name == name_ || removed_.count(member.name)) return;
    auto [scheme, host, port] = split_node_url(member.url);
    if (scheme.empty() || port == 0) return;
    // A member we already reach (by any target) needs no second route.
    if (auto* p = find_peer(member.name); p && p->link) return;
    for (const auto& [key, t] : targets())
        if (t.peer_name == member.name || t.host == host) return;
    if (scheme != "ws" && scheme != "wss") return;
    add_target(host, port, scheme, -1);
}

void node_impl::forget_node(const std::string& name) {
    // The removed node's addresses leave the plain port's allowlist too, unless a configured
    // route or another node still uses them.
    std::set<std::string> addresses{name};
    if (auto* p = find_peer(name); p && p->link) addresses.insert(p->link->remote_address());
    for (auto it = targets().begin(); it != targets().end();) {
        if (it->second.peer_name == name || it->second.host == name) {
            if (it->second.retry) it->second.retry->cancel();
            addresses.insert(it->second.host);
            if (!it->second.address.empty()) addresses.insert(it->second.address);
            it = targets().erase(it);
        } else {
            ++it;
        }
    }
    removed_.insert(name);
    if (auto* p = find_peer(name)) {
        // Tell the peer, so the flow stops both ways, then close.
        send(*p, w::removed{name_});
        if (p->link) p->link->close("removed from the cluster");
    }
    peers().erase(name);
    for (const auto& a : addresses) {
        bool used = false;
        for (const auto& r : cfg_.routes) used = used || r.hostname == a;
        for (const auto& [key, t] : targets()) used = used || t.host == a || t.address == a;
        if (!used) allowed_ips().erase(a);
    }
    resubscribe_all();
    update_status();
}

} // namespace hdbrepl::ext::node_detail
