// Security: the secure port's accept filter, both sides of the certificate exchange, and
// reloads of certificates and users. Threads: the io thread filters and dials; the db thread
// reads and writes certificates; user threads wait for exchanges and reloads.
#include "extension/node_impl.hpp"

#include "extension/json.hpp"
#include "net/credentials.hpp"

#include <algorithm>

namespace hdbrepl::ext::node_detail {

namespace {

// A promise that several callbacks may race to fulfil; the first wins.
struct once_result {
    std::promise<std::string> promise;
    std::atomic<bool> set{false};
    void operator()(const std::string& v) {
        if (!set.exchange(true)) promise.set_value(v);
    }
};

} // namespace

void node_impl::refresh_users() {
    std::vector<user_row> rows;
    security_store store(wdb_, "main");
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

net::accept_decision node_impl::check_secure(const net::peer_check& pc) {
    const std::string path = target_path(pc.target);
    const std::string claimed = query_param(pc.target, "node");
    auto refuse = [&](int status, const std::string& why) {
        log_line(name_, "refused " + path + " from " + pc.remote_ip + (claimed.empty() ? "" : " (" + claimed + ")") + ": " + why);
        return net::accept_decision{status, why};
    };
    if (path == "/hdbrepl/sign") {
        if (claimed.empty()) return refuse(400, "a certificate request must name its node (?node=<hostname>)");
        if (!security_ || !security_->credential_worker().allow(pc.remote_ip))
            return refuse(429, "too many certificate requests from " + pc.remote_ip + "; retry in a few seconds");
        auto o = auth::check_header(sec_.users, pc.authorization, static_cast<std::int64_t>(now_ms() / 1000));
        if (o.http_status != 0) return refuse(o.http_status, o.message);
        log_line(name_, "certificate exchange with " + claimed + " (" + pc.remote_ip + ") authorized by user '" + o.username + "'");
        return {};
    }
    if (path != "/hdbrepl") return refuse(404, "unknown path " + path);
    if (!pc.certificate_presented)
        return refuse(403, "no client certificate: use this cluster's certificates, or add_node with authorization to have one signed");
    if (!pc.certificate_verified) return refuse(403, "client certificate refused: " + pc.verify_error);
    if (claimed.empty()) return refuse(403, "the request must name its node (?node=<hostname>)");
    const auto& names = pc.certificate_names;
    if (std::find(names.begin(), names.end(), claimed) == names.end())
        return refuse(403, "certificate name mismatch: the certificate is for " + join_names(names) + ", not '" + claimed + "'");
    if (removed_.count(claimed)) return refuse(403, "node '" + claimed + "' was removed from this cluster");
    return {};
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

std::string node_impl::reload_security() {
    auto p = std::make_shared<std::promise<std::string>>();
    auto fut = p->get_future();
    on_db([p](node_impl& n) {
        security_snapshot snap;
        if (std::string e = n.security_->load(snap); !e.empty()) return p->set_value(e);
        n.users_seen_ = snap.users.users;
        n.on_io([p, snap = std::move(snap)](node_impl& m) mutable {
            m.apply_security(std::move(snap));
            p->set_value("");
        });
    });
    if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return "the node did not reload its certificates in time";
    return fut.get();
}

std::string node_impl::exchange_certificates(const std::string& host, int port, bool verify_tls, std::string authorization) {
    auto result = std::make_shared<once_result>();
    auto fut = result->promise.get_future();
    on_db([result, host, port, verify_tls, authorization](node_impl& n) {
        std::string request, key;
        if (std::string e = n.security_->make_sign_request(request, key); !e.empty()) return (*result)(e);
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
                    if (!link) return (*result)(error);
                    auto answered = std::make_shared<std::atomic<bool>>(false);
                    net::link_events ev;
                    ev.on_message = [weak, result, host, key, answered](const net::link_ptr& l, std::vector<std::uint8_t>&& data) {
                        if (answered->exchange(true)) return;
                        l->close("");
                        auto s = weak.lock();
                        if (!s || s->stopped_) return (*result)("node stopping");
                        s->on_db([result, host, key, reply = std::string(data.begin(), data.end())](node_impl& n) {
                            if (std::string e = n.security_->accept_sign_reply(reply, key, host); !e.empty()) return (*result)(e);
                            security_snapshot snap;
                            if (std::string e = n.security_->load(snap); !e.empty()) return (*result)(e);
                            n.update_own_member(); // the cluster learns the CA of our new certificate
                            log_line(n.name_, "certificate exchange with " + host + " done");
                            n.on_io([result, snap = std::move(snap)](node_impl& m) mutable {
                                m.apply_security(std::move(snap));
                                (*result)("");
                            });
                        });
                    };
                    ev.on_closed = [result, answered](const net::link_ptr&, const std::string& reason) {
                        if (!answered->load()) (*result)("the peer closed the certificate exchange without answering" + (reason.empty() ? "" : ": " + reason));
                    };
                    link->set_events(std::move(ev));
                    link->send(std::vector<std::uint8_t>(request.begin(), request.end()));
                });
        });
    });
    net::cred::wipe(authorization);
    if (fut.wait_for(std::chrono::seconds(20)) != std::future_status::ready) return "the certificate exchange with " + host + " timed out";
    return fut.get();
}

std::string node_impl::first_dial_result(const std::string& key, std::chrono::milliseconds timeout) {
    auto result = std::make_shared<once_result>();
    auto fut = result->promise.get_future();
    on_io([key, result](node_impl& m) {
        auto it = m.targets_.find(key);
        if (it == m.targets_.end()) return (*result)("");
        auto& t = it->second;
        if (auto* p = t.peer_name.empty() ? nullptr : m.find_peer(t.peer_name); p && p->link) return (*result)("");
        t.first_result.push_back([result](const std::string& e) { (*result)(e); });
        if (!t.dialing) m.dial(key);
    });
    // No answer in time (a slow or silent peer) is not a refusal: the node keeps trying.
    if (fut.wait_for(timeout) != std::future_status::ready) return "";
    return fut.get();
}

} // namespace hdbrepl::ext::node_detail
