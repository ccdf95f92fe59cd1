// A node's TLS identity and trust, and both sides of the certificate exchange behind
// cross-generated certificates (add_node with verify_tls:false and authorization).
//
// Identity. At start the node imports the files of the `tls:` section (certificate and CA
// into hdbrepl_certificates; the private key stays in its file). It presents the configured
// tls.certificate when there is one (even expired: the operator chose it, and peers say
// why they refuse it); otherwise the newest unexpired non-authority certificate whose
// private key it holds and whose names include its hostname. With none, it generates its own CA ("hdbrepl CA <hostname>") and a node
// certificate signed by it (EC P-256), keys in "<database>-keys/", so a restarted node keeps
// them. It trusts every authority in hdbrepl_certificates (plus the system roots with
// enableRootCAs), and the CAs that members of its cluster announce in their membership rows
// (hdbrepl_members.ca, engine/system_tables.hpp): trust travels with membership.
//
// The exchange (docs/security.md). The asking node A dials B's secure port at
// /hdbrepl/sign?node=A with the one-time Authorization header, presenting the certificate it
// has; B's listener checks the credentials (on its credential thread, extension/auth_worker)
// and the name (sign_admission) before the upgrade. A sends one JSON message:
//   {"node_name": A, "csr": PEM}
// a CSR for a new key. B answers with one JSON message:
//   {"node_name": B, "certificate": PEM?, "signing_ca": PEM?, "server_ca": PEM?, "message": text?}
// or {"error": text}. For a name that is not a member of B's cluster, B signs the CSR with its
// own CA for exactly the name A was admitted under (CN and one subjectAltName; of the CSR only
// its key); A stores the CAs as authorities and the certificate as its identity, and from then
// on both sides verify each other. A member that presented a certificate B trusts for its name
// (a node joining again, e.g. add_node re-run after a restart) is answered without a
// certificate and keeps its own. B never signs its own name or the name of another current
// member, and never trusts a CA because a requester sent it (the former
// "certificate_authority" field is ignored). The credentials never reach any store.
//
// Thread: the node's database thread (every call; `db` is the node's write connection).
#pragma once
#include <memory>
#include <string>

#include "engine/security_store.hpp"
#include "security/auth.hpp"
#include "security/auth_worker.hpp"
#include "replication/node_config.hpp"
#include "security/pki.hpp"
#include "net/transport.hpp"

namespace hdbrepl::ext {

// What the io thread works with: immutable, replaced whole on every reload.
struct security_snapshot {
    std::shared_ptr<const net::tls_identity> identity;
    auth::directory users;
    std::string certificate_name; // hdb_certificate name of the certificate presented
};

// The details column of hdb_certificate (issuer, subject, SANs, serial, validity).
std::string certificate_details_json(const net::pki::cert_details& d);

class node_security {
public:
    node_security(sqlite3* db, std::string db_path, const node_config& cfg);

    // Imports the tls: files, makes sure there is a usable identity (generating one when
    // there is none), and builds the snapshot. Returns "" or an error text.
    std::string load(security_snapshot& out);

    // Any thread: where certificate requests' credentials are checked, and their attempts
    // limited per address (made with this object, stopped when it is destroyed).
    auth_worker& credential_worker() { return *worker_; }

    // The CA that signed the certificate presented (PEM), "" when it is not held: what the
    // node's membership row tells the cluster to trust for it.
    std::string presented_ca() { return issuer_of(current_cert_); }

    // Client side: the request to send; `pending_key` receives the key of the CSR (if any).
    std::string make_sign_request(std::string& request_json, std::string& pending_key);
    // Client side: stores what the peer answered; "" or the peer's / our complaint.
    std::string accept_sign_reply(const std::string& reply_json, const std::string& pending_key, const std::string& peer_host);

    // Server side, at the accept filter: "" when a certificate exchange for `name` may go on,
    // else why not (the node's own name; a current member without a certificate this node
    // trusts for that name). `holds_trusted_certificate`: the requester's TLS certificate
    // verified and carries `name`.
    std::string sign_admission(const std::string& name, bool holds_trusted_certificate);
    // Server side: records the single use of an operation token (id `jti`, valid until
    // `expires_s`); "" or why it is refused ("token already used", too many tokens held).
    std::string use_token(const std::string& jti, std::int64_t expires_s);
    // Server side: answers an admitted request (never throws; errors become {"error"}).
    // `claimed_name` is the ?node= of the request. `changed` is always false: answering
    // never changes this node's trust.
    std::string handle_sign_request(const std::string& request_json, const std::string& claimed_name, bool& changed);

private:
    std::string import_configured();
    std::string configured_name() const; // hdb_certificate name of the configured tls.certificate
    std::string generate_identity();
    std::string store_authority(const std::string& pem, bool& added);
    // The CA that issued `cert_pem`, among our authorities ("" if not held).
    std::string issuer_of(const std::string& cert_pem);
    // A member of the cluster now: in hdbrepl_members or hdb_nodes, and not removed.
    bool is_current_member(const std::string& name);

    sqlite3* db_;
    std::string db_path_;
    std::string current_cert_; // the certificate presented, as of the last load()
    const node_config& cfg_;
    engine::security_store store_;
    std::unique_ptr<auth_worker> worker_ = std::make_unique<auth_worker>();
};

} // namespace hdbrepl::ext
