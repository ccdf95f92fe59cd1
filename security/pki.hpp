// Certificates for the cluster: a small PKI that lets one node act as the cluster's CA and
// the others ask it for certificates, plus the checks a node runs on what it is given.
//
// Usage (the certificate exchange):
//   CA node:   key = generate_private_key(); ca = make_ca_certificate(key, "hdbrepl CA", 3650)
//   new node:  k = generate_private_key(); csr = make_csr(k, "127.0.0.2")  -> send csr to the CA
//   CA node:   csr_common_name(csr) == the peer's node name?  cert = sign_csr(csr, ca, key, 365)
//   new node:  verify_certificate(cert, {ca}, false, "127.0.0.2") == ""  and
//              check_key_matches(cert, k) == ""
//
// Formats: everything is PEM text. Keys are EC P-256 in PKCS#8 ("BEGIN PRIVATE KEY"), but
// every function that reads a key also accepts RSA, Ed25519 and the traditional "BEGIN EC
// PRIVATE KEY" form; encrypted keys are refused (nothing here ever prompts for a passphrase).
//
// Errors are returned as text ("" or result::error empty means success); nothing throws.
// Threads: every function may be called from any thread, concurrently; there is no shared
// mutable state (OpenSSL's error queue is per thread and is left as it was found).
//
// This header includes no OpenSSL or Boost header: extension/ code includes it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hdbrepl::net::pki {

struct result {
    std::string value; // the PEM text (or the common name) on success
    std::string error; // empty on success
    bool ok() const { return error.empty(); }
};

// A new EC P-256 private key, PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----").
result generate_private_key();

// A self-signed CA certificate: subject = issuer = CN=common_name (1..64 characters of
// UTF-8 text without control characters), X.509 v3, basicConstraints critical CA:TRUE,
// keyUsage critical keyCertSign+cRLSign, subjectKeyIdentifier, random positive 128-bit
// serial, notBefore now-1h, notAfter now+days (days in 1..36500), signed with SHA-256.
result make_ca_certificate(const std::string& key_pem, const std::string& common_name, int days);

// A certificate signing request for node_name, signed with key_pem: subject CN=node_name and
// subjectAltName IP:<name> when node_name is an IPv4/IPv6 literal (inet_pton syntax, no
// brackets or zone), else DNS:<name>. A DNS name must be 1..64 characters of letters, digits,
// '-', '_' and '.' (64 is the CN length limit).
result make_csr(const std::string& key_pem, const std::string& node_name);

// Issues a leaf certificate for a CSR. Checks that the CSR's self-signature verifies and that
// it has a common name; that ca_cert is a CA (basicConstraints CA:TRUE and, if it has a
// keyUsage, keyCertSign), is currently valid, and that ca_key belongs to it. The leaf has:
// subject CN copied from the CSR (nothing else of the CSR's subject), the CSR's DNS and IP
// subjectAltName entries (others dropped; no SAN when none remain), basicConstraints
// critical CA:FALSE, keyUsage critical digitalSignature+keyEncipherment, extendedKeyUsage
// serverAuth+clientAuth, subjectKeyIdentifier, authorityKeyIdentifier from the CA, issuer =
// the CA's subject, random serial, validity now-1h .. now+days (days in 1..36500), SHA-256.
result sign_csr(const std::string& csr_pem, const std::string& ca_cert_pem,
                const std::string& ca_key_pem, int days);

// What the certificate exchange issues: a leaf for exactly `name` and nothing the CSR asks
// for but its public key. Checks the CSR's self-signature (proof that the requester holds the
// key) and the CA as sign_csr does. The leaf has subject CN=name and exactly one
// subjectAltName, IP:<name> for an IPv4/IPv6 literal, else DNS:<name> (a host name as
// make_csr accepts it; anything else is an error); the CSR's subject and extensions are
// ignored. Extensions, serial and validity as sign_csr.
result sign_csr_for_name(const std::string& csr_pem, const std::string& name, const std::string& ca_cert_pem,
                         const std::string& ca_key_pem, int days);

// sign_csr with an explicit validity window, in seconds relative to now (may be negative):
// notBefore = now + not_before_offset_s, notAfter = now + not_after_offset_s; requires
// not_before_offset_s < not_after_offset_s. The CA's own validity is not checked here, so
// tests can issue expired and not-yet-valid certificates. Not for production issuing.
result sign_csr_with_validity(const std::string& csr_pem, const std::string& ca_cert_pem,
                              const std::string& ca_key_pem, std::int64_t not_before_offset_s,
                              std::int64_t not_after_offset_s);

// The common name a CSR asks for (to check it against the peer's node name before signing).
// Also verifies the CSR's self-signature: a CSR that does not verify is an error.
result csr_common_name(const std::string& csr_pem);

struct cert_details {
    std::string subject, issuer;          // one-line RFC 2253 style, e.g. "CN=127.0.0.2"
    std::string common_name;              // "" when the subject has no CN
    std::string subject_alt_name;         // "IP Address:127.0.0.2, DNS:node-a" style, in
                                          // certificate order ("" when there is none)
    std::vector<std::string> names;       // CN + every DNS and IP SAN as plain text, no duplicates
    std::string serial_number;            // hex, uppercase, no separators
    std::string valid_from, valid_to;     // ISO 8601 UTC "2026-12-02T05:00:00Z"
    std::int64_t not_after_s = 0;         // epoch seconds
    bool is_authority = false;            // basicConstraints CA:TRUE
    bool is_self_signed = false;          // issuer == subject and self-signature verifies
    std::string sha256_fingerprint;       // hex "AB:CD:..." of the DER encoding
};

// Reads the first certificate of the PEM into `out` (reset first). Returns "" or an error text.
std::string parse_certificate(const std::string& pem, cert_details& out);

// Every CERTIFICATE block of a PEM bundle, each re-encoded as its own PEM text, in order.
// Other PEM blocks (keys, CSRs) and text between blocks are skipped; reading stops at the
// first block that does not parse.
std::vector<std::string> split_pem_certificates(const std::string& pem_bundle);

// The name check TLS peers do, on the first certificate of cert_pem:
//  - an IP literal matches an IP SAN with the same address; only if the certificate has no
//    subjectAltName at all, the CN equal to the text;
//  - a DNS name matches a DNS SAN (case-insensitive, one whole-label wildcard allowed in the
//    leftmost label, e.g. "*.example.com"); only if there is no DNS SAN, the CN.
// False for garbage input or an empty name.
bool certificate_matches_name(const std::string& cert_pem, const std::string& name);

// Verifies the leaf (first certificate of cert_chain_pem; the following ones are untrusted
// intermediates) against the CA certificates in trusted_ca_pems (each may hold several) and,
// if use_system_roots, the system's default root store, at the current time; no purpose or
// revocation check. Then, if expected_name is not empty, the name check above. Returns ""
// when fine, else a text starting with one of:
//   "unknown CA: ", "certificate expired: ", "certificate not yet valid: ",
//   "name mismatch: certificate is for <names>, not <expected>", "invalid certificate: ".
std::string verify_certificate(const std::string& cert_chain_pem,
                               const std::vector<std::string>& trusted_ca_pems,
                               bool use_system_roots, const std::string& expected_name);

// "" if key_pem is the private key of (the first certificate of) cert_pem, else an error text.
std::string check_key_matches(const std::string& cert_pem, const std::string& key_pem);

// True if the text holds a private key PEM block: one that parses as an unencrypted key,
// or an encrypted one ("ENCRYPTED PRIVATE KEY" or a legacy "Proc-Type: 4,ENCRYPTED" key).
// Used to refuse keys pasted into a certificate field.
bool looks_like_private_key(const std::string& text);

} // namespace hdbrepl::net::pki
