// A node's identity, trust and the certificate exchange (see node_security.hpp).
#include "replication/node_security.hpp"

#include "replication/replication_store.hpp"
#include "engine/system_tables.hpp"
#include "engine/json.hpp"
#include "security/key_files.hpp"
#include "security/credentials.hpp"
#include "security/pki.hpp"

#include <algorithm>
#include <chrono>
#include <set>
#include <vector>

namespace hdbrepl::ext {

namespace {
constexpr int ca_days = 3650;
constexpr int node_cert_days = 825;
constexpr std::int64_t max_used_tokens = 10000; // operation tokens remembered at once (each for a day at most)

std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string sql_error(sqlite3* db, const std::string& what) { return what + ": " + sqlite3_errmsg(db); }

const engine::certificate_row* find_row(const std::vector<engine::certificate_row>& rows, const std::string& name) {
    for (const auto& r : rows)
        if (r.name == name) return &r;
    return nullptr;
}

std::string reply_error(const std::string& text) {
    json::object o;
    o["error"] = text;
    return json::serialize(o);
}
} // namespace

std::string certificate_details_json(const net::pki::cert_details& d) {
    json::object o;
    o["issuer"] = d.issuer;
    o["subject"] = d.subject;
    o["subject_alt_name"] = d.subject_alt_name;
    o["serial_number"] = d.serial_number;
    o["valid_from"] = d.valid_from;
    o["valid_to"] = d.valid_to;
    o["is_self_signed"] = d.is_self_signed;
    o["fingerprint_sha256"] = d.sha256_fingerprint;
    return json::serialize(o);
}

node_security::node_security(sqlite3* db, std::string db_path, const node_config& cfg)
    : db_(db), db_path_(std::move(db_path)), cfg_(cfg), store_(db, "main") {}

std::string node_security::store_authority(const std::string& pem, bool& added) {
    added = false;
    net::pki::cert_details d;
    if (std::string e = net::pki::parse_certificate(pem, d); !e.empty()) return "not a certificate: " + e;
    if (!d.is_authority) return "certificate '" + d.subject + "' is not a CA";
    std::vector<engine::certificate_row> rows;
    if (store_.load_certificates(rows) != SQLITE_OK) return sql_error(db_, "reading hdbrepl_certificates");
    std::string name = d.common_name.empty() ? d.subject : d.common_name;
    for (const auto& r : rows) {
        net::pki::cert_details other;
        if (r.is_authority && net::pki::parse_certificate(r.certificate, other).empty() && other.sha256_fingerprint == d.sha256_fingerprint)
            return ""; // already trusted
    }
    if (find_row(rows, name)) name += " " + d.serial_number.substr(0, 8);
    engine::certificate_row row;
    row.name = name;
    row.uses_json = "[\"authority\"]";
    row.certificate = net::pki::split_pem_certificates(pem).front();
    row.is_authority = true;
    row.details_json = certificate_details_json(d);
    if (store_.put_certificate(row) != SQLITE_OK) return sql_error(db_, "writing hdbrepl_certificates");
    added = true;
    return "";
}

std::string node_security::configured_name() const { return cfg_.hostname + " (tls.certificate)"; }

std::string node_security::import_configured() {
    const auto& t = cfg_.tls;
    if (!t.certificate_authority.empty()) {
        std::string pem;
        if (std::string e = read_pem_file(t.certificate_authority, pem); !e.empty()) return "tls.certificateAuthority: " + e;
        auto certs = net::pki::split_pem_certificates(pem);
        if (certs.empty()) return "tls.certificateAuthority: " + t.certificate_authority + " holds no PEM certificate";
        for (const auto& c : certs) {
            bool added = false;
            if (std::string e = store_authority(c, added); !e.empty()) return "tls.certificateAuthority: " + e;
        }
    }
    if (t.certificate.empty()) {
        if (!t.private_key.empty()) return "tls.privateKey is set without tls.certificate";
        return "";
    }
    if (t.private_key.empty()) return "tls.certificate needs tls.privateKey (the key of that certificate)";
    std::string pem, key;
    if (std::string e = read_pem_file(t.certificate, pem); !e.empty()) return "tls.certificate: " + e;
    if (std::string e = read_pem_file(t.private_key, key); !e.empty()) return "tls.privateKey: " + e;
    net::pki::cert_details d;
    if (std::string e = net::pki::parse_certificate(pem, d); !e.empty()) return "tls.certificate: " + e;
    if (std::string e = net::pki::check_key_matches(pem, key); !e.empty()) return "tls.privateKey does not belong to tls.certificate: " + e;
    net::cred::wipe(key);
    if (!net::pki::certificate_matches_name(pem, cfg_.hostname))
        return "tls.certificate is for " + d.subject_alt_name + (d.subject_alt_name.empty() ? d.subject : "") +
               ", not this node's hostname '" + cfg_.hostname + "'";
    engine::certificate_row row;
    row.name = configured_name();
    row.uses_json = "[\"replication\"]";
    row.certificate = pem;
    row.key_file = t.private_key; // the operator's file, read at each start, never copied
    row.details_json = certificate_details_json(d);
    if (store_.put_certificate(row) != SQLITE_OK) return sql_error(db_, "writing hdbrepl_certificates");
    return "";
}

std::string node_security::generate_identity() {
    std::vector<engine::certificate_row> rows;
    if (store_.load_certificates(rows) != SQLITE_OK) return sql_error(db_, "reading hdbrepl_certificates");
    std::string ca_name, ca_pem, ca_key;
    if (store_.get_meta("own_ca", ca_name) != SQLITE_OK) return sql_error(db_, "reading hdbrepl_meta");
    if (const auto* r = ca_name.empty() ? nullptr : find_row(rows, ca_name); r && !r->key_file.empty() && read_pem_file(r->key_file, ca_key).empty()) {
        ca_pem = r->certificate;
    } else {
        auto key = net::pki::generate_private_key();
        if (!key.ok()) return "generating the CA key: " + key.error;
        ca_name = "hdbrepl CA " + cfg_.hostname;
        auto ca = net::pki::make_ca_certificate(key.value, ca_name + " " + net::cred::base64url_encode(net::cred::random_bytes(6)), ca_days);
        if (!ca.ok()) return "generating the CA certificate: " + ca.error;
        engine::certificate_row row;
        row.name = ca_name;
        row.uses_json = "[\"authority\"]";
        row.certificate = ca.value;
        row.is_authority = true;
        if (std::string e = write_key_file(db_path_, "ca-" + cfg_.hostname, key.value, row.key_file); !e.empty()) return e;
        net::pki::cert_details d;
        net::pki::parse_certificate(ca.value, d);
        row.details_json = certificate_details_json(d);
        if (store_.put_certificate(row) != SQLITE_OK || store_.set_meta("own_ca", ca_name) != SQLITE_OK)
            return sql_error(db_, "writing hdbrepl_certificates");
        ca_pem = ca.value;
        ca_key = key.value;
    }
    auto key = net::pki::generate_private_key();
    if (!key.ok()) return "generating the node key: " + key.error;
    auto csr = net::pki::make_csr(key.value, cfg_.hostname);
    if (!csr.ok()) return "making the node CSR: " + csr.error;
    auto cert = net::pki::sign_csr(csr.value, ca_pem, ca_key, node_cert_days);
    net::cred::wipe(ca_key);
    if (!cert.ok()) return "signing the node certificate: " + cert.error;
    engine::certificate_row row;
    row.name = cfg_.hostname;
    row.uses_json = "[\"replication\"]";
    row.certificate = cert.value;
    if (std::string e = write_key_file(db_path_, "node-" + cfg_.hostname + "-" + std::to_string(now_s()), key.value, row.key_file); !e.empty())
        return e;
    net::pki::cert_details d;
    net::pki::parse_certificate(cert.value, d);
    row.details_json = certificate_details_json(d);
    if (store_.put_certificate(row) != SQLITE_OK) return sql_error(db_, "writing hdbrepl_certificates");
    return "";
}

std::string node_security::load(security_snapshot& out) {
    std::string err;
    if (engine::ensure_security_tables(db_, "main", err) != SQLITE_OK) return "creating the certificate tables: " + err;
    if (cfg_.serve_secure || !cfg_.tls.certificate.empty() || !cfg_.tls.certificate_authority.empty())
        if (std::string e = import_configured(); !e.empty()) return e;
    auto identity = std::make_shared<net::tls_identity>();
    identity->use_system_roots = cfg_.enable_root_cas;
    for (int attempt = 0; attempt < 2; ++attempt) {
        std::vector<engine::certificate_row> rows;
        if (store_.load_certificates(rows) != SQLITE_OK) return sql_error(db_, "reading hdbrepl_certificates");
        identity->trusted_ca_pems.clear();
        const engine::certificate_row* chosen = nullptr;
        std::string chosen_key;
        const std::string configured = configured_name();
        for (const auto& r : rows) {
            if (r.is_authority) {
                identity->trusted_ca_pems.push_back(r.certificate);
                continue;
            }
            if (r.key_file.empty() || !net::pki::certificate_matches_name(r.certificate, cfg_.hostname)) continue;
            // A configured tls.certificate is the operator's choice and always presented (even
            // expired: peers then say so); otherwise the newest unexpired one we hold a key for.
            const bool is_configured = !cfg_.tls.certificate.empty() && r.name == configured;
            if (!cfg_.tls.certificate.empty() && !is_configured) continue;
            net::pki::cert_details d;
            if (!net::pki::parse_certificate(r.certificate, d).empty() || (!is_configured && d.not_after_s <= now_s())) continue;
            std::string key;
            if (!read_pem_file(r.key_file, key).empty() || !net::pki::check_key_matches(r.certificate, key).empty()) continue;
            chosen = &r; // rows come oldest first: the newest usable one wins
            net::cred::wipe(chosen_key);
            chosen_key = std::move(key);
        }
        // The CAs of the cluster's members (gossip): each member's row names the CA of its certificate.
        std::vector<engine::member_row> members;
        engine::load_members(db_, "main", members);
        for (const auto& m : members) {
            if (m.ca.empty() || std::find(identity->trusted_ca_pems.begin(), identity->trusted_ca_pems.end(), m.ca) != identity->trusted_ca_pems.end())
                continue;
            net::pki::cert_details d;
            std::string distrusted;
            if (!net::pki::parse_certificate(m.ca, d).empty() || !d.is_authority) continue;
            store_.get_meta("distrusted:" + d.sha256_fingerprint, distrusted); // removed here: the local decision wins
            if (distrusted.empty()) identity->trusted_ca_pems.push_back(m.ca);
        }
        if (chosen) {
            identity->certificate_chain_pem = chosen->certificate;
            identity->private_key_pem = std::move(chosen_key);
            out.certificate_name = chosen->name;
            current_cert_ = chosen->certificate;
            break;
        }
        if (attempt == 1) return "no usable certificate for '" + cfg_.hostname + "' after generating one";
        if (std::string e = generate_identity(); !e.empty()) return e;
    }
    out.identity = std::move(identity);
    std::vector<engine::user_row> users;
    if (store_.load_users(users) != SQLITE_OK) return sql_error(db_, "reading hdbrepl_users");
    out.users.users.clear();
    for (auto& u : users) out.users.users[u.username] = std::move(u);
    std::string secret;
    if (store_.get_meta("token_secret", secret) != SQLITE_OK) return sql_error(db_, "reading hdbrepl_meta");
    out.users.token_secret.clear();
    if (!secret.empty()) net::cred::base64_decode(secret, out.users.token_secret);
    out.users.issuer = cfg_.hostname;
    return "";
}

std::string node_security::issuer_of(const std::string& cert_pem) {
    net::pki::cert_details d;
    if (!net::pki::parse_certificate(cert_pem, d).empty()) return "";
    std::vector<engine::certificate_row> rows;
    if (store_.load_certificates(rows) != SQLITE_OK) return "";
    for (const auto& r : rows) {
        if (!r.is_authority) continue;
        if (net::pki::verify_certificate(cert_pem, {r.certificate}, false, "").empty()) return r.certificate;
    }
    return "";
}

std::string node_security::make_sign_request(std::string& request_json, std::string& pending_key) {
    json::object o;
    o["node_name"] = cfg_.hostname;
    // Always a CSR (a new key): the peer signs it unless we are already a member it trusts.
    // A peer never trusts a CA because the requester sends it.
    auto key = net::pki::generate_private_key();
    if (!key.ok()) return "generating a key: " + key.error;
    auto csr = net::pki::make_csr(key.value, cfg_.hostname);
    if (!csr.ok()) return "making the CSR: " + csr.error;
    pending_key = std::move(key.value);
    o["csr"] = csr.value;
    request_json = json::serialize(o);
    return "";
}

std::string node_security::accept_sign_reply(const std::string& reply_json, const std::string& pending_key, const std::string& peer_host) {
    json::value v;
    if (std::string e = json::parse_object(reply_json, v); !e.empty()) return peer_host + " answered the certificate request with bad JSON: " + e;
    auto& o = v.as_object();
    if (auto e = json::get_string(o, "error"); !e.empty()) return peer_host + " refused to sign: " + e;
    for (const char* key : {"signing_ca", "server_ca"}) {
        std::string pem = json::get_string(o, key);
        if (pem.empty()) continue;
        bool added = false;
        if (std::string e = store_authority(pem, added); !e.empty()) return peer_host + "'s " + key + ": " + e;
    }
    std::string cert = json::get_string(o, "certificate");
    if (cert.empty()) return "";
    if (pending_key.empty()) return peer_host + " sent a certificate that was not asked for";
    if (std::string e = net::pki::check_key_matches(cert, pending_key); !e.empty()) return peer_host + " signed a different key: " + e;
    if (!net::pki::certificate_matches_name(cert, cfg_.hostname)) return peer_host + " signed a certificate for another name";
    std::vector<engine::certificate_row> rows;
    if (store_.load_certificates(rows) != SQLITE_OK) return sql_error(db_, "reading hdbrepl_certificates");
    std::string old_key;
    if (const auto* r = find_row(rows, cfg_.hostname)) old_key = r->key_file;
    engine::certificate_row row;
    row.name = cfg_.hostname;
    row.uses_json = "[\"replication\"]";
    row.certificate = cert;
    if (std::string e = write_key_file(db_path_, "node-" + cfg_.hostname + "-" + std::to_string(now_s()) + "-" +
                                                     net::cred::base64url_encode(net::cred::random_bytes(3)),
                                       pending_key, row.key_file);
        !e.empty())
        return e;
    net::pki::cert_details d;
    net::pki::parse_certificate(cert, d);
    row.details_json = certificate_details_json(d);
    if (store_.put_certificate(row) != SQLITE_OK) return sql_error(db_, "writing hdbrepl_certificates");
    if (!old_key.empty() && old_key != row.key_file) remove_key_file(db_path_, old_key);
    return "";
}

bool node_security::is_current_member(const std::string& name) {
    std::set<std::string> removed;
    engine::load_removals(db_, "main", removed);
    engine::replication_store rs(db_, "main");
    rs.load_removed(removed);
    if (removed.count(name)) return false;
    std::vector<engine::member_row> members;
    engine::load_members(db_, "main", members);
    for (const auto& m : members)
        if (m.name == name) return true;
    std::vector<engine::node_row> nodes;
    rs.load_nodes(nodes);
    for (const auto& n : nodes)
        if (n.name == name) return true;
    return false;
}

std::string node_security::sign_admission(const std::string& name, bool holds_trusted_certificate) {
    if (name == cfg_.hostname) return "'" + name + "' is this node's own name: no certificate is signed for it";
    if (holds_trusted_certificate || !is_current_member(name)) return "";
    return "'" + name + "' is a member of this cluster and presents no certificate this node trusts; a member's name is "
           "never signed again (remove_node '" + name + "' first to have a new certificate signed for it)";
}

std::string node_security::use_token(const std::string& jti, std::int64_t expires_s) {
    int outcome = 2;
    if (store_.use_token(jti, expires_s, now_s(), max_used_tokens, outcome) != SQLITE_OK) return sql_error(db_, "recording the token's use");
    if (outcome == 1) return "token already used: an operation token authorizes one exchange; create a new one";
    if (outcome == 2) return "too many operation tokens in use on this node; retry with a password, or after tokens expire";
    return "";
}

std::string node_security::handle_sign_request(const std::string& request_json, const std::string& claimed_name, bool& changed) {
    changed = false; // answering never changes this node's trust: nothing the requester sends is trusted
    json::value v;
    if (std::string e = json::parse_object(request_json, v); !e.empty()) return reply_error("bad request: " + e);
    auto& o = v.as_object();
    std::string name = json::get_string(o, "node_name");
    if (name.empty()) return reply_error("bad request: node_name is missing");
    if (name != claimed_name)
        return reply_error("bad request: node_name '" + name + "' differs from the node named in the request ('" + claimed_name + "')");
    if (name == cfg_.hostname) return reply_error("'" + name + "' is this node's own name: no certificate is signed for it");
    json::object reply;
    reply["node_name"] = cfg_.hostname;
    if (std::string mine = issuer_of(current_cert_); !mine.empty()) reply["server_ca"] = mine;
    if (is_current_member(name)) {
        // Admitted as a member (its certificate verified for its name at the accept filter):
        // it keeps that certificate. No new one is signed for a name the cluster already has.
        reply["message"] = "'" + name + "' is a member of this cluster and keeps its certificate";
        return json::serialize(reply);
    }
    std::string csr = json::get_string(o, "csr");
    if (csr.empty()) return reply_error("bad request: a certificate request needs a CSR (this node never trusts a CA sent by the requester)");
    auto cn = net::pki::csr_common_name(csr);
    if (!cn.ok()) return reply_error("bad CSR: " + cn.error);
    if (cn.value != name) return reply_error("the CSR is for '" + cn.value + "', not for '" + name + "'");
    std::string ca_name, ca_key;
    store_.get_meta("own_ca", ca_name);
    std::vector<engine::certificate_row> rows;
    if (store_.load_certificates(rows) != SQLITE_OK) return reply_error("internal error reading certificates");
    const auto* ca = ca_name.empty() ? nullptr : find_row(rows, ca_name);
    if (!ca || ca->key_file.empty() || !read_pem_file(ca->key_file, ca_key).empty())
        return reply_error("node '" + cfg_.hostname + "' holds no CA key to sign with (it uses configured certificates); "
                           "give both nodes certificates from one CA instead");
    // For the authorised name alone: CN and one subjectAltName; of the CSR only its key.
    auto cert = net::pki::sign_csr_for_name(csr, name, ca->certificate, ca_key, node_cert_days);
    net::cred::wipe(ca_key);
    if (!cert.ok()) return reply_error("cannot sign the CSR: " + cert.error);
    reply["certificate"] = cert.value;
    reply["signing_ca"] = ca->certificate;
    return json::serialize(reply);
}

} // namespace hdbrepl::ext
