// Security: the secure port's accept filter, both sides of the certificate exchange, and
// reloads of certificates and users. Threads: the io thread filters and dials; the
// credential thread checks passwords and tokens; the db thread reads and writes
// certificates and records used tokens; user threads wait for exchanges and reloads.
#include "replication/node_impl.hpp"

#include "engine/json.hpp"
#include "security/credentials.hpp"

#include <algorithm>

namespace hdbrepl::ext::node_detail {

namespace {

} // namespace

void node_impl::refresh_users() {
    std::vector<user_row> rows;
    security_store store(wdb(), "main");
    if (store.load_users(rows) != SQLITE_OK) return;
    std::map<std::string, user_row> users;
    for (auto& u : rows) users[u.username] = std::move(u);
    auto same = [](const std::map<std::string, user_row>& a, const std::map<std::string, user_row>& b) {
        if (a.size() != b.size()) return false;
        for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
            if (ia->first != ib->first || ia->second.role != ib->second.role || ia->second.password_hash != ib->second.password_hash) return false;
        return true;
    };
    if (same(users, users_seen_)) return;
    users_seen_ = users;
    on_io([users = std::move(users)](node_impl& m) mutable { m.sec_.users.users = std::move(users); });
}

// io thread. The secure port's accept filter. /hdbrepl is decided at once from the TLS
// outcome. /hdbrepl/sign goes through three threads, so that neither the io thread nor the
// database thread computes a password hash: here (io) the name and the attempt limit; the
// credential thread (extension/auth_worker) the Authorization header; the database thread
// the name against the membership (sign_admission) and the single use of a token. Each step
// answers `respond` itself when it refuses; the transport waits handshake_timeout at most.
void node_impl::check_secure(const net::peer_check& pc, std::function<void(net::accept_decision)> respond) {
    const std::string path = target_path(pc.target);
    const std::string claimed = query_param(pc.target, "node");
    // Any thread (io, credential, db): logs at once, and counts in cluster_status on the io
    // thread. The node is locked only there (as on_io does): on the credential thread the last
    // reference could otherwise end the node there, and its worker would join itself.
    auto refuse = [node = name_, line = "refused " + path + " from " + pc.remote_ip + (claimed.empty() ? "" : " (" + claimed + ")") + ": ",
                   ip = pc.remote_ip, weak_node = weak_from_this(), weak_io = std::weak_ptr<net::io_runtime>(io_)](int status, const std::string& why) {
        log_line(node, line + why);
        if (auto rt = weak_io.lock())
            rt->post([weak_node, ip, text = line + why] {
                if (auto s = weak_node.lock(); s && !s->stopped_) s->note_refusal(ip, "", text, false);
            });
        return net::accept_decision{status, why};
    };
    if (path == "/hdbrepl/sign") {
        if (claimed.empty()) return respond(refuse(400, "a certificate request must name its node (?node=<hostname>)"));
        if (!security_) return respond(refuse(503, "the node is starting"));
        auth_worker& worker = security_->credential_worker();
        if (!worker.allow(pc.remote_ip))
            return respond(refuse(429, "too many certificate requests from " + pc.remote_ip + "; retry in a few seconds"));
        const auto& names = pc.certificate_names;
        const bool holds_trusted = pc.certificate_presented && pc.certificate_verified &&
                                   std::find(names.begin(), names.end(), claimed) != names.end();
        auto users = std::make_shared<const auth::directory>(sec_.users);
        std::weak_ptr<node_impl> weak = shared_from_this();
        std::weak_ptr<net::io_runtime> io = io_;
        const std::string ip = pc.remote_ip;
        auto checked = [weak, respond, refuse, claimed, ip, holds_trusted](auth::outcome o) {
            // io thread: the credentials are good; the rest needs the database.
            auto s = weak.lock();
            if (!s || s->stopped_) return respond(net::accept_decision{503, "node stopping"});
            s->on_db([respond, refuse, claimed, ip, holds_trusted, o = std::move(o)](node_impl& n) {
                if (std::string why = n.security_->sign_admission(claimed, holds_trusted); !why.empty()) return respond(refuse(403, why));
                if (!o.token_id.empty())
                    if (std::string why = n.security_->use_token(o.token_id, o.token_expires_s); !why.empty())
                        return respond(refuse(why.rfind("token already used", 0) == 0 ? 401 : 503, why));
                log_line(n.name_, "certificate exchange with " + claimed + " (" + ip + ") authorized by user '" + o.username + "'" +
                                      (o.token_id.empty() ? "" : " (operation token, now used)"));
                respond({});
            });
        };
        // A request waits at most half the handshake timeout for the credential thread, so the
        // client gets 503 rather than a connection closed without an answer.
        const bool queued = worker.submit([users, header = pc.authorization, respond, refuse, checked, io](bool run) mutable {
            // Credential thread (or, when the node stops, the thread destroying the worker).
            if (!run) return respond(refuse(503, "busy checking other certificate requests (or stopping); retry in a few seconds"));
            auth::outcome o = auth::check_header(*users, header, static_cast<std::int64_t>(now_ms() / 1000));
            net::cred::wipe(header);
            if (o.http_status != 0) return respond(refuse(o.http_status, o.message));
            auto rt = io.lock();
            if (!rt) return respond(net::accept_decision{503, "node stopping"});
            rt->post([checked, o = std::move(o)]() mutable { checked(std::move(o)); });
        }, std::max(std::chrono::milliseconds(500), link_opts().handshake_timeout / 2));
        if (!queued) respond(refuse(503, "busy checking other certificate requests; retry in a few seconds"));
        return;
    }
    if (path != "/hdbrepl") return respond(refuse(404, "unknown path " + path));
    if (!pc.certificate_presented)
        return respond(refuse(403, "no client certificate: use this cluster's certificates, or add_node with authorization to have one signed"));
    if (!pc.certificate_verified) return respond(refuse(403, "client certificate refused: " + pc.verify_error));
    if (claimed.empty()) return respond(refuse(403, "the request must name its node (?node=<hostname>)"));
    const auto& names = pc.certificate_names;
    if (std::find(names.begin(), names.end(), claimed) == names.end())
        return respond(refuse(403, "certificate name mismatch: the certificate is for " + join_names(names) + ", not '" + claimed + "'"));
    if (removed_.count(claimed)) return respond(refuse(403, "node '" + claimed + "' was removed from this cluster"));
    respond({});
}

void node_impl::on_sign_request(link_info& li, std::vector<std::uint8_t>&& data) {
    // One request per exchange; the answer closes the link.
    std::string request(data.begin(), data.end());
    on_db([request = std::move(request), claimed = li.claimed_name, id = li.id](node_impl& n) {
        bool changed = false;
        std::string reply = n.security_->handle_sign_request(request, claimed, changed);
        security_snapshot snap;
        std::string reload_error = changed ? n.security_->load(snap) : "";
        json::value v = json::parse_or_null(reply);
        std::string outcome = v.is_object() && v.as_object().contains("error") ? "refused: " + json::get_string(v.as_object(), "error")
                              : v.is_object() && v.as_object().contains("certificate") ? "signed a certificate for exactly '" + claimed + "'"
                                                                                          : "no certificate signed: " + json::get_string(v.as_object(), "message");
        log_line(n.name_, "certificate exchange with " + claimed + ": " + outcome);
        n.on_io([reply = std::move(reply), id, changed, reload_error, snap = std::move(snap)](node_impl& m) mutable {
            if (changed && reload_error.empty()) m.apply_security(std::move(snap));
            if (!reload_error.empty()) log_line(m.name_, "reloading certificates: " + reload_error);
            auto* li = m.find_link(id);
            if (!li) return;
            li->link->send(std::vector<std::uint8_t>(reply.begin(), reply.end()));
            li->link->close("certificate exchange done");
        });
    });
}

void node_impl::apply_security(security_snapshot snap) {
    sec_ = std::move(snap);
    if (tls_listener_)
        if (std::string e = tls_listener_->set_tls_identity(sec_.identity); !e.empty()) log_line(name_, "new certificate not taken: " + e);
}

result<void> node_impl::reload_security() {
    auto answer = submit_to<std::string>(node_thread::db, std::chrono::seconds(10), [](node_impl& n, reply<std::string> p) {
        security_snapshot snap;
        if (std::string e = n.security_->load(snap); !e.empty()) return p(e);
        n.users_seen_ = snap.users.users;
        n.on_io([p, snap = std::move(snap)](node_impl& m) mutable {
            m.apply_security(std::move(snap));
            p("");
        });
    });
    if (!answer) return error{SQLITE_ERROR, "the node did not reload its certificates in time"};
    if (!answer->empty()) return error{SQLITE_ERROR, *answer};
    return ok();
}

std::string node_impl::exchange_certificates(const std::string& host, int port, bool verify_tls, std::string authorization) {
    auto answer = submit_to<std::string>(node_thread::db, std::chrono::seconds(20), [host, port, verify_tls, authorization = std::move(authorization)](node_impl& n, reply<std::string> result) {
        std::string request, key;
        if (std::string e = n.security_->make_sign_request(request, key); !e.empty()) return result(e);
        n.on_io([result, host, port, verify_tls, authorization, request, key](node_impl& m) {
            net::tls_dial_options tls;
            tls.verify_server = verify_tls;
            tls.expected_name = host;
            tls.authorization = authorization;
            std::weak_ptr<node_impl> weak = m.shared_from_this();
            std::string bind = m.cfg_.bind == "0.0.0.0" ? "" : m.cfg_.bind;
            net::dial_tls(
                *m.io_, host, static_cast<std::uint16_t>(port), bind, "/hdbrepl/sign?node=" + m.name_, m.link_opts(), m.sec_.identity, tls,
                [weak, result, host, request, key](const net::link_ptr& link, const std::string& error) {
                    if (!link) return result(error);
                    auto answered = std::make_shared<std::atomic<bool>>(false);
                    net::link_events ev;
                    ev.on_message = [weak, result, host, key, answered](const net::link_ptr& l, std::vector<std::uint8_t>&& data) {
                        if (answered->exchange(true)) return;
                        l->close("");
                        auto s = weak.lock();
                        if (!s || s->stopped_) return result("node stopping");
                        s->on_db([result, host, key, reply = std::string(data.begin(), data.end())](node_impl& n) {
                            if (std::string e = n.security_->accept_sign_reply(reply, key, host); !e.empty()) return result(e);
                            security_snapshot snap;
                            if (std::string e = n.security_->load(snap); !e.empty()) return result(e);
                            n.update_own_member(); // the cluster learns the CA of our new certificate
                            log_line(n.name_, "certificate exchange with " + host + " done");
                            n.on_io([result, snap = std::move(snap)](node_impl& m) mutable {
                                m.apply_security(std::move(snap));
                                result("");
                            });
                        });
                    };
                    ev.on_closed = [result, answered](const net::link_ptr&, const std::string& reason) {
                        if (!answered->load()) result("the peer closed the certificate exchange without answering" + (reason.empty() ? "" : ": " + reason));
                    };
                    link->set_events(std::move(ev));
                    link->send(std::vector<std::uint8_t>(request.begin(), request.end()));
                });
        });
    });
    net::cred::wipe(authorization);
    if (!answer) return "the certificate exchange with " + host + " timed out";
    return *answer;
}

std::string node_impl::first_dial_result(const std::string& key, std::chrono::milliseconds timeout) {
    auto answer = submit_to<std::string>(node_thread::io, timeout, [key](node_impl& m, reply<std::string> result) {
        auto it = m.targets().find(key);
        if (it == m.targets().end()) return result("");
        auto& t = it->second;
        if (auto* p = t.peer_name.empty() ? nullptr : m.find_peer(t.peer_name); p && p->link) return result("");
        t.first_result.push_back([result](const std::string& e) { result(e); });
        if (!t.dialing) m.dial(key);
    });
    // No answer in time (a slow or silent peer) is not a refusal: the node keeps trying.
    return answer ? *answer : std::string();
}

} // namespace hdbrepl::ext::node_detail
