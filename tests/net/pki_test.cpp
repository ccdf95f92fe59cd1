// [net] tests of net::pki: a CA, CSRs and leaf certificates (IP, IPv6 and DNS names), the
// checks sign_csr makes, certificate parsing, name matching, chain verification (unknown CA,
// expired, not yet valid, intermediates), key matching, garbage input everywhere, and a
// cross-check with the `openssl verify` command line. A few helpers build with OpenSSL
// directly what the API deliberately cannot (an intermediate CA, CSRs with other SANs, an
// encrypted key).
#include <catch2/catch.hpp>

#include "security/credentials.hpp"
#include "security/pki.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <stdlib.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

using namespace hdbrepl::net;

namespace {

// ---- OpenSSL helpers (test only) ----------------------------------------------------------

template <class T, void (*Free)(T*)>
struct freer {
    void operator()(T* p) const { Free(p); }
};
using bio_t = std::unique_ptr<BIO, freer<BIO, BIO_free_all>>;
using pkey_t = std::unique_ptr<EVP_PKEY, freer<EVP_PKEY, EVP_PKEY_free>>;
using x509_t = std::unique_ptr<X509, freer<X509, X509_free>>;
using req_t = std::unique_ptr<X509_REQ, freer<X509_REQ, X509_REQ_free>>;
using ext_t = std::unique_ptr<X509_EXTENSION, freer<X509_EXTENSION, X509_EXTENSION_free>>;

pkey_t load_key(const std::string& pem) {
    bio_t bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    return pkey_t(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, const_cast<char*>("")));
}
x509_t load_cert(const std::string& pem) {
    bio_t bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    return x509_t(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}
req_t load_req(const std::string& pem) {
    bio_t bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    return req_t(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
}
std::string mem_text(BIO* bio) {
    char* d = nullptr;
    long n = BIO_get_mem_data(bio, &d);
    return std::string(d, static_cast<std::size_t>(n));
}

// A CSR with the given CN (none if empty) and subjectAltName config text (none if empty).
std::string csr_with(const std::string& key_pem, const std::string& cn, const std::string& san) {
    pkey_t key = load_key(key_pem);
    REQUIRE(key);
    req_t req(X509_REQ_new());
    X509_NAME* name = X509_REQ_get_subject_name(req.get());
    if (!cn.empty())
        REQUIRE(X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                           reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) == 1);
    REQUIRE(X509_REQ_set_pubkey(req.get(), key.get()) == 1);
    if (!san.empty()) {
        STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
        X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
        REQUIRE(ext);
        sk_X509_EXTENSION_push(exts, ext);
        CHECK(X509_REQ_add_extensions(req.get(), exts) == 1);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    }
    REQUIRE(X509_REQ_sign(req.get(), key.get(), EVP_sha256()) > 0);
    bio_t bio(BIO_new(BIO_s_mem()));
    REQUIRE(PEM_write_bio_X509_REQ(bio.get(), req.get()) == 1);
    return mem_text(bio.get());
}

void add_ext(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
    ext_t ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
    REQUIRE(ext);
    REQUIRE(X509_add_ext(cert, ext.get(), -1) == 1);
}

// An intermediate CA certificate for the CSR's key and CN, issued by the given CA.
std::string make_intermediate(const std::string& csr_pem, const std::string& ca_pem, const std::string& ca_key_pem) {
    req_t req = load_req(csr_pem);
    x509_t ca = load_cert(ca_pem);
    pkey_t ca_key = load_key(ca_key_pem);
    REQUIRE((req && ca && ca_key));
    x509_t cert(X509_new());
    REQUIRE(X509_set_version(cert.get(), X509_VERSION_3) == 1);
    REQUIRE(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 4242) == 1);
    REQUIRE(X509_set_subject_name(cert.get(), X509_REQ_get_subject_name(req.get())) == 1);
    REQUIRE(X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.get())) == 1);
    REQUIRE(X509_set_pubkey(cert.get(), X509_REQ_get0_pubkey(req.get())) == 1);
    REQUIRE(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600));
    REQUIRE(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400L * 30));
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca.get(), cert.get(), nullptr, nullptr, 0);
    add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_ext(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash");
    add_ext(cert.get(), &ctx, NID_authority_key_identifier, "keyid");
    REQUIRE(X509_sign(cert.get(), ca_key.get(), EVP_sha256()) > 0);
    bio_t bio(BIO_new(BIO_s_mem()));
    REQUIRE(PEM_write_bio_X509(bio.get(), cert.get()) == 1);
    return mem_text(bio.get());
}

std::string encrypted_key(const std::string& key_pem) {
    pkey_t key = load_key(key_pem);
    REQUIRE(key);
    bio_t bio(BIO_new(BIO_s_mem()));
    char pass[] = "passphrase";
    REQUIRE(PEM_write_bio_PKCS8PrivateKey(bio.get(), key.get(), EVP_aes_256_cbc(), pass, 10, nullptr, nullptr) == 1);
    return mem_text(bio.get());
}

// Re-encodes a PEM after replacing the first `from` in its DER bytes by `to` (same length).
std::string patch_der(const std::string& pem, const std::string& from, const std::string& to) {
    std::istringstream in(pem);
    std::string line, body, label;
    while (std::getline(in, line)) {
        if (line.rfind("-----BEGIN ", 0) == 0) label = line.substr(11, line.size() - 16);
        else if (line.rfind("-----", 0) != 0) body += line;
    }
    std::string der;
    REQUIRE(cred::base64_decode(body, der));
    std::size_t at = der.find(from);
    REQUIRE(at != std::string::npos);
    der.replace(at, from.size(), to);
    std::string b64 = cred::base64_encode(der), out = "-----BEGIN " + label + "-----\n";
    for (std::size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + "\n";
    return out + "-----END " + label + "-----\n";
}

// ---- fixtures -------------------------------------------------------------------------------

struct ca_t {
    std::string key, cert;
};

ca_t make_ca(const std::string& cn = "hdbrepl test CA", int days = 30) {
    auto key = pki::generate_private_key();
    REQUIRE(key.ok());
    auto cert = pki::make_ca_certificate(key.value, cn, days);
    INFO(cert.error);
    REQUIRE(cert.ok());
    return {key.value, cert.value};
}

struct node_t {
    std::string key, csr, cert;
};

node_t make_node(const ca_t& ca, const std::string& name, int days = 30) {
    node_t n;
    auto key = pki::generate_private_key();
    REQUIRE(key.ok());
    n.key = key.value;
    auto csr = pki::make_csr(n.key, name);
    INFO(csr.error);
    REQUIRE(csr.ok());
    n.csr = csr.value;
    auto cert = pki::sign_csr(n.csr, ca.cert, ca.key, days);
    INFO(cert.error);
    REQUIRE(cert.ok());
    n.cert = cert.value;
    return n;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A temporary directory removed at destruction.
struct scratch_dir {
    std::filesystem::path path;
    scratch_dir() {
        std::string t = (std::filesystem::temp_directory_path() / "hdbrepl_pki_XXXXXX").string();
        REQUIRE(mkdtemp(t.data()) != nullptr);
        path = t;
    }
    ~scratch_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string write(const std::string& name, const std::string& text) const {
        auto p = path / name;
        std::ofstream(p) << text;
        return p.string();
    }
};

} // namespace

TEST_CASE("pki: generate_private_key gives distinct PKCS#8 P-256 keys", "[net]") {
    auto a = pki::generate_private_key(), b = pki::generate_private_key();
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(starts_with(a.value, "-----BEGIN PRIVATE KEY-----\n"));
    CHECK(a.value != b.value);
    pkey_t key = load_key(a.value);
    REQUIRE(key);
    CHECK(EVP_PKEY_is_a(key.get(), "EC"));
    char group[64] = {};
    size_t len = 0;
    REQUIRE(EVP_PKEY_get_group_name(key.get(), group, sizeof group, &len) == 1);
    CHECK(std::string(group) == "prime256v1");
    CHECK(pki::looks_like_private_key(a.value));
}

TEST_CASE("pki: the CA certificate", "[net]") {
    const std::int64_t before = now_s();
    ca_t ca = make_ca("hdbrepl test CA", 10);
    pki::cert_details d;
    REQUIRE(pki::parse_certificate(ca.cert, d) == "");
    CHECK(d.subject == "CN=hdbrepl test CA");
    CHECK(d.issuer == "CN=hdbrepl test CA");
    CHECK(d.common_name == "hdbrepl test CA");
    CHECK(d.subject_alt_name.empty());
    CHECK(d.names == std::vector<std::string>{"hdbrepl test CA"});
    CHECK(d.is_authority);
    CHECK(d.is_self_signed);
    CHECK(d.serial_number.size() >= 20); // 128 random bits: 32 hex digits unless leading zeros
    CHECK(d.serial_number.size() <= 32);
    CHECK(d.serial_number.find_first_not_of("0123456789ABCDEF") == std::string::npos);
    CHECK(d.sha256_fingerprint.size() == 32 * 3 - 1);
    CHECK(d.sha256_fingerprint.find_first_not_of("0123456789ABCDEF:") == std::string::npos);
    CHECK(d.not_after_s >= before + 10 * 86400 - 5);
    CHECK(d.not_after_s <= now_s() + 10 * 86400 + 5);
    CHECK(d.valid_from.size() == 20);
    CHECK(d.valid_from.back() == 'Z');
    CHECK(d.valid_from[10] == 'T');
    CHECK(d.valid_from < d.valid_to);
    CHECK(pki::check_key_matches(ca.cert, ca.key) == "");
    // A second CA has another serial and fingerprint.
    ca_t other = make_ca("hdbrepl test CA", 10);
    pki::cert_details d2;
    REQUIRE(pki::parse_certificate(other.cert, d2) == "");
    CHECK(d2.serial_number != d.serial_number);
    CHECK(d2.sha256_fingerprint != d.sha256_fingerprint);
    // The CA verifies against itself.
    CHECK(pki::verify_certificate(ca.cert, {ca.cert}, false, "") == "");

    SECTION("bad arguments") {
        CHECK_FALSE(pki::make_ca_certificate(ca.key, "", 10).ok());
        CHECK_FALSE(pki::make_ca_certificate(ca.key, std::string(65, 'x'), 10).ok());
        CHECK_FALSE(pki::make_ca_certificate(ca.key, "bad\nname", 10).ok());
        CHECK_FALSE(pki::make_ca_certificate(ca.key, "ca", 0).ok());
        CHECK_FALSE(pki::make_ca_certificate(ca.key, "ca", -5).ok());
        CHECK_FALSE(pki::make_ca_certificate(ca.key, "ca", 40000).ok());
        CHECK_FALSE(pki::make_ca_certificate("", "ca", 10).ok());
        CHECK_FALSE(pki::make_ca_certificate(ca.cert, "ca", 10).ok());
        CHECK_FALSE(pki::make_ca_certificate(encrypted_key(ca.key), "ca", 10).ok()); // never prompts
        auto utf8 = pki::make_ca_certificate(ca.key, "Zürich CA", 10);
        REQUIRE(utf8.ok());
        REQUIRE(pki::parse_certificate(utf8.value, d) == "");
        CHECK(d.common_name == "Zürich CA");
        CHECK(d.subject == "CN=Zürich CA");
    }
}

TEST_CASE("pki: CSR, signing and verification round trip with an IP name", "[net]") {
    ca_t ca = make_ca();
    node_t n = make_node(ca, "127.0.0.2");
    CHECK(starts_with(n.csr, "-----BEGIN CERTIFICATE REQUEST-----"));
    auto cn = pki::csr_common_name(n.csr);
    CHECK(cn.ok());
    CHECK(cn.value == "127.0.0.2");

    CHECK(pki::verify_certificate(n.cert, {ca.cert}, false, "127.0.0.2") == "");
    CHECK(pki::verify_certificate(n.cert, {ca.cert}, false, "") == "");
    CHECK(pki::verify_certificate(n.cert, {ca.cert}, true, "127.0.0.2") == ""); // system roots as well
    CHECK(pki::check_key_matches(n.cert, n.key) == "");

    pki::cert_details d, cad;
    REQUIRE(pki::parse_certificate(n.cert, d) == "");
    REQUIRE(pki::parse_certificate(ca.cert, cad) == "");
    CHECK(d.subject == "CN=127.0.0.2");
    CHECK(d.issuer == cad.subject);
    CHECK(d.common_name == "127.0.0.2");
    CHECK(d.subject_alt_name == "IP Address:127.0.0.2");
    CHECK(d.names == std::vector<std::string>{"127.0.0.2"});
    CHECK_FALSE(d.is_authority);
    CHECK_FALSE(d.is_self_signed);
    CHECK(d.serial_number != cad.serial_number);
    CHECK(d.not_after_s <= cad.not_after_s + 5);

    // Extensions, as a TLS stack sees them.
    x509_t cert = load_cert(n.cert);
    REQUIRE(cert);
    CHECK(X509_get_version(cert.get()) == X509_VERSION_3);
    CHECK((X509_get_extension_flags(cert.get()) & EXFLAG_BCONS));
    CHECK_FALSE((X509_get_extension_flags(cert.get()) & EXFLAG_CA));
    CHECK(X509_get_key_usage(cert.get()) == (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
    CHECK(X509_get_extended_key_usage(cert.get()) == (XKU_SSL_SERVER | XKU_SSL_CLIENT));
    CHECK(X509_get0_subject_key_id(cert.get()) != nullptr);
    x509_t ca_x = load_cert(ca.cert);
    REQUIRE(X509_get0_authority_key_id(cert.get()) != nullptr);
    CHECK(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(cert.get()), X509_get0_subject_key_id(ca_x.get())) == 0);
    CHECK(X509_check_issued(ca_x.get(), cert.get()) == X509_V_OK);
    CHECK(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_SERVER, 0) == 1);
    CHECK(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_CLIENT, 0) == 1);
    // notBefore is an hour back (clock skew between nodes).
    int days = 0, secs = 0;
    REQUIRE(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notBefore(cert.get())) == 1);
    CHECK(days * 86400 + secs <= -3590);
    CHECK(days * 86400 + secs >= -3610);
}

TEST_CASE("pki: DNS and IPv6 names", "[net]") {
    ca_t ca = make_ca();
    SECTION("DNS") {
        node_t n = make_node(ca, "node-a.example");
        pki::cert_details d;
        REQUIRE(pki::parse_certificate(n.cert, d) == "");
        CHECK(d.subject_alt_name == "DNS:node-a.example");
        CHECK(d.names == std::vector<std::string>{"node-a.example"});
        CHECK(pki::verify_certificate(n.cert, {ca.cert}, false, "node-a.example") == "");
        CHECK(pki::verify_certificate(n.cert, {ca.cert}, false, "NODE-A.Example") == ""); // case-insensitive
        CHECK(pki::certificate_matches_name(n.cert, "node-a.example"));
        CHECK_FALSE(pki::certificate_matches_name(n.cert, "node-b.example"));
        CHECK_FALSE(pki::certificate_matches_name(n.cert, "a.node-a.example"));
        CHECK_FALSE(pki::certificate_matches_name(n.cert, "127.0.0.2"));
        CHECK_FALSE(pki::certificate_matches_name(n.cert, ""));
    }
    SECTION("IPv6") {
        node_t n = make_node(ca, "::1");
        pki::cert_details d;
        REQUIRE(pki::parse_certificate(n.cert, d) == "");
        CHECK(d.subject_alt_name == "IP Address:::1");
        CHECK(d.names == std::vector<std::string>{"::1"});
        CHECK(pki::verify_certificate(n.cert, {ca.cert}, false, "::1") == "");
        CHECK(pki::certificate_matches_name(n.cert, "0:0:0:0:0:0:0:1")); // compared as addresses
        CHECK_FALSE(pki::certificate_matches_name(n.cert, "::2"));
        CHECK_FALSE(pki::certificate_matches_name(n.cert, "127.0.0.1"));
    }
    SECTION("names that are neither") {
        auto key = pki::generate_private_key();
        for (const char* bad : {"", "has space", "a,DNS:evil.example", "*.example", "x/y", "a..b", ".a", "fe80::1%eth0",
                                "127.0.0.1:8080"}) {
            INFO(bad);
            CHECK_FALSE(pki::make_csr(key.value, bad).ok());
        }
        CHECK_FALSE(pki::make_csr(key.value, std::string(65, 'a')).ok());
        CHECK(pki::make_csr(key.value, std::string(64, 'a')).ok());
        CHECK(pki::make_csr(key.value, "node_1").ok());
    }
}

TEST_CASE("pki: name mismatch", "[net]") {
    ca_t ca = make_ca();
    node_t n = make_node(ca, "127.0.0.2");
    CHECK(pki::verify_certificate(n.cert, {ca.cert}, false, "127.0.0.3") ==
          "name mismatch: certificate is for 127.0.0.2, not 127.0.0.3");
    CHECK(starts_with(pki::verify_certificate(n.cert, {ca.cert}, false, "node-a"), "name mismatch: "));
    CHECK_FALSE(pki::certificate_matches_name(n.cert, "127.0.0.3"));
    CHECK_FALSE(pki::certificate_matches_name(n.cert, "127.0.0.2 "));
    CHECK(pki::certificate_matches_name(n.cert, "127.0.0.2"));
}

TEST_CASE("pki: name matching rules (SAN precedence, CN fallback, wildcards)", "[net]") {
    ca_t ca = make_ca();
    auto key = pki::generate_private_key();
    REQUIRE(key.ok());
    auto issue = [&](const std::string& cn, const std::string& san) {
        auto r = pki::sign_csr(csr_with(key.value, cn, san), ca.cert, ca.key, 5);
        INFO(r.error);
        REQUIRE(r.ok());
        return r.value;
    };
    SECTION("no SAN: the CN is used, for IPs and DNS names") {
        std::string ip = issue("10.1.2.3", "");
        pki::cert_details d;
        REQUIRE(pki::parse_certificate(ip, d) == "");
        CHECK(d.subject_alt_name.empty());
        CHECK(pki::certificate_matches_name(ip, "10.1.2.3"));
        CHECK_FALSE(pki::certificate_matches_name(ip, "10.1.2.4"));
        std::string dns = issue("Node-C", "");
        CHECK(pki::certificate_matches_name(dns, "node-c"));
    }
    SECTION("a SAN takes precedence over the CN") {
        std::string c = issue("cn-name", "DNS:san-name,IP:10.0.0.1");
        CHECK(pki::certificate_matches_name(c, "san-name"));
        CHECK(pki::certificate_matches_name(c, "10.0.0.1"));
        CHECK_FALSE(pki::certificate_matches_name(c, "cn-name"));
        // Only IP SANs: a DNS name still falls back to the CN, an IP does not.
        std::string ips = issue("10.9.9.9", "IP:10.0.0.2");
        CHECK(pki::certificate_matches_name(ips, "10.0.0.2"));
        CHECK_FALSE(pki::certificate_matches_name(ips, "10.9.9.9"));
        std::string ips_dns_cn = issue("host-x", "IP:10.0.0.2");
        CHECK(pki::certificate_matches_name(ips_dns_cn, "host-x"));
    }
    SECTION("one whole leftmost wildcard label") {
        std::string w = issue("wild", "DNS:*.nodes.example");
        CHECK(pki::certificate_matches_name(w, "a.nodes.example"));
        CHECK(pki::certificate_matches_name(w, "B.NODES.example"));
        CHECK_FALSE(pki::certificate_matches_name(w, "nodes.example"));
        CHECK_FALSE(pki::certificate_matches_name(w, "a.b.nodes.example"));
        std::string partial = issue("wild", "DNS:n*.nodes.example");
        CHECK_FALSE(pki::certificate_matches_name(partial, "na.nodes.example"));
    }
    SECTION("sign_csr keeps only DNS and IP SAN entries, and the CN only of the subject") {
        std::string c = issue("mixed", "DNS:a.example,email:ops@example.com,IP:10.0.0.7,URI:https://example.com/");
        pki::cert_details d;
        REQUIRE(pki::parse_certificate(c, d) == "");
        CHECK(d.subject_alt_name == "DNS:a.example, IP Address:10.0.0.7");
        CHECK(d.names == std::vector<std::string>{"mixed", "a.example", "10.0.0.7"});
        std::string only_email = issue("mail", "email:ops@example.com");
        REQUIRE(pki::parse_certificate(only_email, d) == "");
        CHECK(d.subject_alt_name.empty());
    }
    SECTION("a CSR without a CN is refused") {
        auto r = pki::sign_csr(csr_with(key.value, "", "DNS:a.example"), ca.cert, ca.key, 5);
        CHECK_FALSE(r.ok());
        CHECK_FALSE(pki::csr_common_name(csr_with(key.value, "", "DNS:a.example")).ok());
    }
}

TEST_CASE("pki: unknown CA", "[net]") {
    // Two independent CAs with the same name: only the key identifiers tell them apart.
    ca_t ca1 = make_ca("hdbrepl CA"), ca2 = make_ca("hdbrepl CA");
    node_t n = make_node(ca1, "127.0.0.2");
    std::string e = pki::verify_certificate(n.cert, {ca2.cert}, false, "127.0.0.2");
    INFO(e);
    CHECK(starts_with(e, "unknown CA: "));
    CHECK(starts_with(pki::verify_certificate(n.cert, {}, false, ""), "unknown CA: "));
    CHECK(starts_with(pki::verify_certificate(n.cert, {}, true, ""), "unknown CA: "));
    CHECK(starts_with(pki::verify_certificate(n.cert, {"garbage"}, false, ""), "unknown CA: "));
    CHECK(starts_with(pki::verify_certificate(ca2.cert, {ca1.cert}, false, ""), "unknown CA: "));
    // Either CA in the trusted list is enough, in one PEM or in several.
    CHECK(pki::verify_certificate(n.cert, {ca2.cert, ca1.cert}, false, "127.0.0.2") == "");
    CHECK(pki::verify_certificate(n.cert, {ca2.cert + ca1.cert}, false, "127.0.0.2") == "");
}

TEST_CASE("pki: expired and not yet valid certificates", "[net]") {
    ca_t ca = make_ca();
    node_t n = make_node(ca, "127.0.0.2");
    auto expired = pki::sign_csr_with_validity(n.csr, ca.cert, ca.key, -10 * 86400, -86400);
    REQUIRE(expired.ok());
    std::string e = pki::verify_certificate(expired.value, {ca.cert}, false, "127.0.0.2");
    INFO(e);
    CHECK(starts_with(e, "certificate expired: CN=127.0.0.2"));
    pki::cert_details d;
    REQUIRE(pki::parse_certificate(expired.value, d) == "");
    CHECK(d.not_after_s < now_s());

    auto future = pki::sign_csr_with_validity(n.csr, ca.cert, ca.key, 86400, 10 * 86400);
    REQUIRE(future.ok());
    CHECK(starts_with(pki::verify_certificate(future.value, {ca.cert}, false, ""), "certificate not yet valid: "));

    CHECK_FALSE(pki::sign_csr_with_validity(n.csr, ca.cert, ca.key, 100, 100).ok());
    CHECK_FALSE(pki::sign_csr_with_validity(n.csr, ca.cert, ca.key, 100, -100).ok());

    SECTION("an expired CA in the chain, and sign_csr refusing to use it") {
        auto ca_csr = csr_with(ca.key, "old CA", "");
        // A CA whose own certificate has expired: issue it through OpenSSL as a self-signed v3 CA.
        pkey_t key = load_key(ca.key);
        x509_t old(X509_new());
        X509_NAME* nm = X509_get_subject_name(old.get());
        REQUIRE(X509_NAME_add_entry_by_NID(nm, NID_commonName, MBSTRING_UTF8,
                                           reinterpret_cast<const unsigned char*>("old CA"), -1, -1, 0) == 1);
        REQUIRE(X509_set_issuer_name(old.get(), nm) == 1);
        REQUIRE(X509_set_version(old.get(), X509_VERSION_3) == 1);
        REQUIRE(ASN1_INTEGER_set(X509_get_serialNumber(old.get()), 7) == 1);
        REQUIRE(X509_set_pubkey(old.get(), key.get()) == 1);
        REQUIRE(X509_gmtime_adj(X509_getm_notBefore(old.get()), -20 * 86400));
        REQUIRE(X509_gmtime_adj(X509_getm_notAfter(old.get()), -10 * 86400));
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, old.get(), old.get(), nullptr, nullptr, 0);
        add_ext(old.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(old.get(), &ctx, NID_subject_key_identifier, "hash");
        REQUIRE(X509_sign(old.get(), key.get(), EVP_sha256()) > 0);
        bio_t bio(BIO_new(BIO_s_mem()));
        REQUIRE(PEM_write_bio_X509(bio.get(), old.get()) == 1);
        std::string old_pem = mem_text(bio.get());
        auto r = pki::sign_csr(n.csr, old_pem, ca.key, 5);
        CHECK_FALSE(r.ok());
        CHECK(r.error == "CA certificate has expired");
        auto leaf = pki::sign_csr_with_validity(n.csr, old_pem, ca.key, -3600, 86400);
        REQUIRE(leaf.ok());
        CHECK(starts_with(pki::verify_certificate(leaf.value, {old_pem}, false, ""), "certificate expired: CN=old CA"));
        (void)ca_csr;
    }
}

TEST_CASE("pki: sign_csr refuses bad requests and bad signers", "[net]") {
    ca_t ca = make_ca();
    node_t n = make_node(ca, "node-a");

    SECTION("a tampered CSR") {
        std::string tampered = patch_der(n.csr, "node-a", "node-b");
        REQUIRE(tampered != n.csr);
        auto r = pki::sign_csr(tampered, ca.cert, ca.key, 5);
        CHECK_FALSE(r.ok());
        CHECK(r.error == "invalid CSR: its signature does not verify");
        CHECK_FALSE(pki::csr_common_name(tampered).ok());
    }
    SECTION("a signer that is not a CA") {
        auto r = pki::sign_csr(make_node(ca, "node-b").csr, n.cert, n.key, 5);
        CHECK_FALSE(r.ok());
        CHECK(starts_with(r.error, "CA certificate is not a CA"));
    }
    SECTION("a CA key that does not belong to the CA certificate") {
        ca_t other = make_ca();
        auto r = pki::sign_csr(n.csr, ca.cert, other.key, 5);
        CHECK_FALSE(r.ok());
        CHECK(r.error == "CA key does not match the CA certificate");
        CHECK_FALSE(pki::sign_csr(n.csr, ca.cert, n.key, 5).ok());
    }
    SECTION("bad days and garbage") {
        CHECK_FALSE(pki::sign_csr(n.csr, ca.cert, ca.key, 0).ok());
        CHECK_FALSE(pki::sign_csr(n.csr, ca.cert, ca.key, 36501).ok());
        CHECK_FALSE(pki::sign_csr("", ca.cert, ca.key, 5).ok());
        CHECK_FALSE(pki::sign_csr(n.cert, ca.cert, ca.key, 5).ok()); // a certificate is not a CSR
        CHECK_FALSE(pki::sign_csr(n.csr, n.csr, ca.key, 5).ok());
        CHECK_FALSE(pki::sign_csr(n.csr, ca.cert, ca.cert, 5).ok());
        CHECK_FALSE(pki::sign_csr(n.csr, ca.cert, encrypted_key(ca.key), 5).ok());
    }
    SECTION("the same CSR may be signed again, with a new serial") {
        auto again = pki::sign_csr(n.csr, ca.cert, ca.key, 5);
        REQUIRE(again.ok());
        pki::cert_details a, b;
        REQUIRE(pki::parse_certificate(n.cert, a) == "");
        REQUIRE(pki::parse_certificate(again.value, b) == "");
        CHECK(a.serial_number != b.serial_number);
    }
}

TEST_CASE("pki: sign_csr_for_name issues for the one authorised name, nothing the CSR asks", "[net]") {
    ca_t ca = make_ca();
    auto key = pki::generate_private_key();
    REQUIRE(key.ok());
    // A CSR asking for another CN, other members' addresses, DNS names and an e-mail.
    const std::string greedy = csr_with(key.value, "127.0.0.3", "IP:127.0.0.3,DNS:evil.example,IP:127.0.0.2,IP:::1,email:x@y.z");
    REQUIRE(pki::sign_csr(greedy, ca.cert, ca.key, 5).ok()); // (sign_csr copies its DNS/IP SANs)

    SECTION("an IP name: CN and exactly one IP subjectAltName") {
        auto r = pki::sign_csr_for_name(greedy, "127.0.0.2", ca.cert, ca.key, 5);
        INFO(r.error);
        REQUIRE(r.ok());
        pki::cert_details d;
        REQUIRE(pki::parse_certificate(r.value, d) == "");
        CHECK(d.subject == "CN=127.0.0.2");
        CHECK(d.subject_alt_name == "IP Address:127.0.0.2");
        CHECK(d.names == std::vector<std::string>{"127.0.0.2"});
        CHECK_FALSE(d.is_authority);
        CHECK(pki::verify_certificate(r.value, {ca.cert}, false, "127.0.0.2") == "");
        for (const char* other : {"127.0.0.3", "evil.example", "::1"}) CHECK_FALSE(pki::certificate_matches_name(r.value, other));
        CHECK(pki::check_key_matches(r.value, key.value) == ""); // the CSR's key, and only that
        x509_t cert = load_cert(r.value);
        REQUIRE(cert);
        CHECK((X509_get_extension_flags(cert.get()) & EXFLAG_BCONS));
        CHECK_FALSE((X509_get_extension_flags(cert.get()) & EXFLAG_CA));
        CHECK(X509_get_key_usage(cert.get()) == (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
        CHECK(X509_get_extended_key_usage(cert.get()) == (XKU_SSL_SERVER | XKU_SSL_CLIENT));
    }
    SECTION("a DNS name: exactly one DNS subjectAltName") {
        auto r = pki::sign_csr_for_name(greedy, "node-a.example", ca.cert, ca.key, 5);
        REQUIRE(r.ok());
        pki::cert_details d;
        REQUIRE(pki::parse_certificate(r.value, d) == "");
        CHECK(d.subject == "CN=node-a.example");
        CHECK(d.subject_alt_name == "DNS:node-a.example");
        CHECK(d.names == std::vector<std::string>{"node-a.example"});
    }
    SECTION("a CSR without CN or SAN is signed for the name too") {
        auto r = pki::sign_csr_for_name(csr_with(key.value, "", ""), "127.0.0.2", ca.cert, ca.key, 5);
        REQUIRE(r.ok());
        CHECK(pki::certificate_matches_name(r.value, "127.0.0.2"));
    }
    SECTION("refusals: a CSR whose self-signature fails, a name that is not a host, bad signers") {
        std::string tampered = patch_der(greedy, "evil.example", "evil.exampl3");
        REQUIRE(tampered != greedy);
        auto r = pki::sign_csr_for_name(tampered, "127.0.0.2", ca.cert, ca.key, 5);
        CHECK(r.error == "invalid CSR: its signature does not verify");
        for (const std::string bad : {std::string(), std::string("a b"), std::string("x,IP:127.0.0.3"), std::string(65, 'a'),
                                      std::string("a\0b", 3)})
            CHECK_FALSE(pki::sign_csr_for_name(greedy, bad, ca.cert, ca.key, 5).ok());
        node_t n = make_node(ca, "node-b");
        CHECK_FALSE(pki::sign_csr_for_name(greedy, "127.0.0.2", n.cert, n.key, 5).ok());
        CHECK_FALSE(pki::sign_csr_for_name(greedy, "127.0.0.2", ca.cert, n.key, 5).ok());
        CHECK_FALSE(pki::sign_csr_for_name(greedy, "127.0.0.2", ca.cert, ca.key, 0).ok());
        CHECK_FALSE(pki::sign_csr_for_name("garbage", "127.0.0.2", ca.cert, ca.key, 5).ok());
    }
}

TEST_CASE("pki: check_key_matches both ways", "[net]") {
    ca_t ca = make_ca();
    node_t a = make_node(ca, "127.0.0.2"), b = make_node(ca, "127.0.0.3");
    CHECK(pki::check_key_matches(a.cert, a.key) == "");
    CHECK(pki::check_key_matches(b.cert, b.key) == "");
    CHECK(pki::check_key_matches(a.cert, b.key) == "private key does not match the certificate");
    CHECK(pki::check_key_matches(b.cert, a.key) == "private key does not match the certificate");
    CHECK(pki::check_key_matches(a.cert, ca.key) != "");
    CHECK(pki::check_key_matches(a.key, a.cert) != ""); // swapped fields
    CHECK(pki::check_key_matches(a.cert, encrypted_key(a.key)) != "");
}

TEST_CASE("pki: looks_like_private_key", "[net]") {
    ca_t ca = make_ca();
    CHECK(pki::looks_like_private_key(ca.key));
    CHECK(pki::looks_like_private_key(ca.cert + ca.key)); // a key appended to a certificate
    CHECK(pki::looks_like_private_key(encrypted_key(ca.key)));
    CHECK_FALSE(pki::looks_like_private_key(ca.cert));
    CHECK_FALSE(pki::looks_like_private_key(""));
    CHECK_FALSE(pki::looks_like_private_key("-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n"));
    CHECK_FALSE(pki::looks_like_private_key("password123"));
}

TEST_CASE("pki: garbage input gives errors, never a crash", "[net]") {
    ca_t ca = make_ca();
    node_t n = make_node(ca, "127.0.0.2");
    std::string truncated = n.cert.substr(0, n.cert.size() / 2);
    std::string cut_end = n.cert.substr(0, n.cert.size() - 30);
    std::string bad_body = patch_der(n.cert, std::string("\x30", 1), std::string("\x31", 1)); // outer SEQUENCE tag
    const std::vector<std::string> garbage = {
        "", "garbage", "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", truncated, cut_end, bad_body,
        std::string("\0\0\0", 3), std::string(100000, 'A')};
    for (const auto& g : garbage) {
        INFO(g.substr(0, 80));
        CHECK_FALSE(pki::make_ca_certificate(g, "ca", 5).ok());
        CHECK_FALSE(pki::make_csr(g, "127.0.0.2").ok());
        CHECK_FALSE(pki::sign_csr(g, ca.cert, ca.key, 5).ok());
        CHECK_FALSE(pki::sign_csr(n.csr, g, ca.key, 5).ok());
        CHECK_FALSE(pki::sign_csr(n.csr, ca.cert, g, 5).ok());
        CHECK_FALSE(pki::sign_csr_with_validity(n.csr, ca.cert, g, -5, 5).ok());
        CHECK_FALSE(pki::csr_common_name(g).ok());
        pki::cert_details d;
        d.common_name = "stale";
        CHECK(pki::parse_certificate(g, d) != "");
        CHECK(d.common_name.empty());
        CHECK(pki::split_pem_certificates(g).empty());
        CHECK_FALSE(pki::certificate_matches_name(g, "127.0.0.2"));
        CHECK(starts_with(pki::verify_certificate(g, {ca.cert}, false, "127.0.0.2"), "invalid certificate: "));
        CHECK(pki::verify_certificate(n.cert, {g, ca.cert}, false, "127.0.0.2") == "");
        CHECK(pki::check_key_matches(g, n.key) != "");
        CHECK(pki::check_key_matches(n.cert, g) != "");
        CHECK_FALSE(pki::looks_like_private_key(g));
    }
}

TEST_CASE("pki: split_pem_certificates and chains through an intermediate", "[net]") {
    ca_t root = make_ca("root CA");
    auto inter_key = pki::generate_private_key();
    REQUIRE(inter_key.ok());
    ca_t inter{inter_key.value, make_intermediate(csr_with(inter_key.value, "intermediate CA", ""), root.cert, root.key)};
    pki::cert_details d;
    REQUIRE(pki::parse_certificate(inter.cert, d) == "");
    CHECK(d.is_authority);
    CHECK_FALSE(d.is_self_signed);
    CHECK(d.issuer == "CN=root CA");

    node_t leaf = make_node(inter, "127.0.0.5"); // sign_csr accepts an intermediate CA
    const std::string chain = leaf.cert + inter.cert;
    CHECK(pki::verify_certificate(chain, {root.cert}, false, "127.0.0.5") == "");
    CHECK(starts_with(pki::verify_certificate(leaf.cert, {root.cert}, false, ""), "unknown CA: "));
    // Trust anchors are roots: an intermediate alone does not anchor a chain.
    CHECK(starts_with(pki::verify_certificate(leaf.cert, {inter.cert}, false, ""), "unknown CA: "));
    CHECK(pki::verify_certificate(leaf.cert, {root.cert + inter.cert}, false, "") == "");
    CHECK(pki::verify_certificate(chain, {make_ca("other").cert + root.cert}, false, "") == "");
    CHECK(starts_with(pki::verify_certificate(chain, {make_ca("root CA").cert}, false, ""), "unknown CA: "));
    // The name check is on the leaf only.
    CHECK(starts_with(pki::verify_certificate(chain, {root.cert}, false, "intermediate CA"), "name mismatch: "));

    auto parts = pki::split_pem_certificates("junk before\n" + chain + leaf.key + "\ntrailing junk\n" + root.cert);
    REQUIRE(parts.size() == 3);
    CHECK(parts[0] == leaf.cert);
    CHECK(parts[1] == inter.cert);
    CHECK(parts[2] == root.cert);
    // Stops at a broken block.
    auto cut = pki::split_pem_certificates(leaf.cert + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" + root.cert);
    CHECK(cut.size() == 1);
    // CRLF line ends are read, and re-encoded with LF.
    std::string crlf;
    for (char c : leaf.cert) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
    auto one = pki::split_pem_certificates(crlf);
    REQUIRE(one.size() == 1);
    CHECK(one[0] == leaf.cert);
}

TEST_CASE("pki: the openssl command line verifies what we issue", "[net]") {
    ca_t ca = make_ca();
    node_t n = make_node(ca, "127.0.0.2");
    scratch_dir dir;
    const std::string ca_file = dir.write("ca.pem", ca.cert);
    const std::string cert_file = dir.write("cert.pem", n.cert);
    const std::string csr_file = dir.write("node.csr", n.csr);
    const std::string out_file = (dir.path / "out.txt").string();
    auto run = [&](const std::string& args) {
        std::string cmd = "timeout 30 openssl " + args + " > '" + out_file + "' 2>&1";
        int rc = std::system(cmd.c_str());
        std::ifstream in(out_file);
        std::stringstream text;
        text << in.rdbuf();
        INFO(cmd);
        INFO(text.str());
        CHECK(rc != -1);
        CHECK(WIFEXITED(rc));
        return std::make_pair(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, text.str());
    };
    auto [rc, text] = run("verify -CAfile '" + ca_file + "' '" + cert_file + "'");
    CHECK(rc == 0);
    CHECK(text.find(": OK") != std::string::npos);
    CHECK(run("verify -purpose sslserver -verify_ip 127.0.0.2 -CAfile '" + ca_file + "' '" + cert_file + "'").first == 0);
    CHECK(run("verify -purpose sslclient -CAfile '" + ca_file + "' '" + cert_file + "'").first == 0);
    CHECK(run("verify -verify_ip 127.0.0.3 -CAfile '" + ca_file + "' '" + cert_file + "'").first != 0);
    CHECK(run("req -verify -noout -in '" + csr_file + "'").first == 0);
    // And the other way round: a certificate signed by a CA the command line made is read by us.
    CHECK(run("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=cli-ca -keyout '" +
              (dir.path / "cli.key").string() + "' -out '" + (dir.path / "cli.pem").string() + "'").first == 0);
    std::ifstream cli(dir.path / "cli.pem");
    std::stringstream cli_pem;
    cli_pem << cli.rdbuf();
    pki::cert_details d;
    REQUIRE(pki::parse_certificate(cli_pem.str(), d) == "");
    CHECK(d.common_name == "cli-ca");
    CHECK(d.is_self_signed);
    CHECK(pki::verify_certificate(cli_pem.str(), {cli_pem.str()}, false, "cli-ca") == "");
}

TEST_CASE("pki: concurrent use from several threads", "[net]") {
    ca_t ca = make_ca();
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 5; ++i) {
                std::string name = "127.0.1." + std::to_string(t * 10 + i);
                auto key = pki::generate_private_key();
                auto csr = pki::make_csr(key.value, name);
                auto cert = pki::sign_csr(csr.value, ca.cert, ca.key, 1);
                if (!key.ok() || !csr.ok() || !cert.ok() ||
                    pki::verify_certificate(cert.value, {ca.cert}, false, name) != "" ||
                    pki::check_key_matches(cert.value, key.value) != "" ||
                    !cred::verify_password("pw", cred::hash_password("pw", 100000)))
                    ++failures;
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(failures == 0);
}
