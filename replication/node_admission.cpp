// Admission: who may connect to the plain port, which name a plain-port HELLO may give, and
// the record of every refusal (log line, counts, the newest few for cluster_status).
// Thread: the io thread (the plain listener's filter runs there too).
#include "replication/node_impl.hpp"

namespace hdbrepl::ext::node_detail {

bool node_impl::accept_ip(const std::string& ip) {
    // IP authentication for the plain port: only configured routes and known nodes.
    if (allowed_ips().count(ip)) return true;
    note_refusal(ip, "", "refused connection from " + ip + ": not a configured route or known node");
    return false;
}

bool node_impl::accept_plain(const std::string& ip, const std::string& target) {
    // The plain port carries replication only: a certificate exchange there would turn
    // address trust into certificate trust (and send credentials in the clear).
    if (target_path(target) != "/hdbrepl") {
        note_refusal(ip, "", "refused " + target_path(target) + " from " + ip + " on the plain port: it serves /hdbrepl only" +
                                 (target_path(target) == "/hdbrepl/sign" ? " (certificate exchanges use the secure port)" : ""));
        return false;
    }
    return accept_ip(ip);
}

void node_impl::note_refusal(const std::string& from, const std::string& node, const std::string& reason, bool log) {
    if (log) log_line(name_, reason);
    ++refusals_total_;
    refusals_.push_back({now_ms(), from, node, reason});
    while (refusals_.size() > 20) refusals_.pop_front();
    if (!node.empty())
        if (auto* p = find_peer(node)) {
            ++p->refusals;
            p->last_refusal = reason;
        }
    update_status();
}

bool node_impl::name_bound_to_address(const std::string& name, const std::string& ip) const {
    if (name == ip) return true;
    for (const auto& [key, t] : targets())
        if ((t.host == name || t.peer_name == name) && (t.host == ip || t.address == ip)) return true;
    return false;
}

} // namespace hdbrepl::ext::node_detail
