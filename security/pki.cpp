// The cluster PKI (see pki.hpp): key, CA, CSR and leaf generation with OpenSSL 3's EVP and
// X509 APIs, certificate details and chain verification. PEM in and out and the error texts
// are in pem_io.cpp; node names, CNs, subjectAltNames and the name check in x509_names.cpp;
// both are declared, with the ownership types, in pki_internal.hpp.
//
// How it works: every OpenSSL object is held by a unique_ptr with its free function as the
// deleter, so each early `return` frees what was built. Each public function starts with an
// error_mark, which sets a mark on this thread's OpenSSL error queue and pops back to it on
// exit: errors OpenSSL queued while we worked are read into our message text and then
// dropped, and errors that were there before (another caller's) are left alone.
#include "security/pki.hpp"
#include "security/openssl_util.hpp"
#include "security/pki_internal.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace hdbrepl::net::pki {

using namespace detail;
using ossl::error_mark;
using ossl::is_unknown_ca;

namespace {

// ---- building certificates ----------------------------------------------------------------

const EVP_MD* digest_for(const EVP_PKEY* key) {
    // Ed25519/Ed448 sign without a separate digest; everything else uses SHA-256.
    int id = EVP_PKEY_get_id(key);
    return (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448) ? nullptr : EVP_sha256();
}

bool set_random_serial(X509* cert) {
    unsigned char buf[16];
    for (int attempt = 0; attempt < 4; ++attempt) {
        if (RAND_bytes(buf, sizeof buf) != 1) return false;
        bn_ptr bn(BN_bin2bn(buf, sizeof buf, nullptr)); // unsigned: always positive
        if (!bn) return false;
        if (BN_is_zero(bn.get())) continue;
        ASN1_INTEGER* serial = X509_get_serialNumber(cert);
        return BN_to_ASN1_INTEGER(bn.get(), serial) != nullptr;
    }
    return false;
}

// Adds an extension from its OpenSSL config text (only fixed texts are passed here: never
// user input, which could smuggle extra values in through the config syntax).
bool add_ext(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
    ext_ptr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
    return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

bool valid_days(int days) { return days >= 1 && days <= 36500; }

// The leaf for a CSR; `window` = {not_before, not_after} offsets in seconds from now. With
// `only_name` set, the leaf is for that name alone (CN and one subjectAltName) and takes
// nothing from the CSR but its public key; otherwise CN and DNS/IP SANs come from the CSR.
result issue(const std::string& csr_pem, const std::string& ca_cert_pem, const std::string& ca_key_pem,
             std::int64_t not_before_s, std::int64_t not_after_s, bool check_ca_validity,
             const std::string* only_name = nullptr) {
    req_ptr req = read_req(csr_pem);
    if (!req) return fail(unreadable(csr_pem, "invalid CSR: cannot read the CSR PEM"));
    EVP_PKEY* req_key = X509_REQ_get0_pubkey(req.get());
    if (!req_key) return fail(ossl_error("invalid CSR: no public key"));
    if (X509_REQ_verify(req.get(), req_key) != 1)
        return fail("invalid CSR: its signature does not verify");
    std::string cn = only_name ? *only_name : common_name_of(X509_REQ_get_subject_name(req.get()));
    if (cn.empty()) return fail("invalid CSR: no common name");
    if (only_name)
        if (std::string e = check_node_name(cn); !e.empty()) return fail(e);

    x509_ptr ca = read_cert(ca_cert_pem);
    if (!ca) return fail(unreadable(ca_cert_pem, "invalid CA certificate: cannot read the certificate PEM"));
    pkey_ptr ca_key = read_key(ca_key_pem);
    if (!ca_key) return fail(unreadable(ca_key_pem, "invalid CA key: cannot read the private key PEM"));
    uint32_t flags = X509_get_extension_flags(ca.get());
    if (!(flags & EXFLAG_BCONS) || !(flags & EXFLAG_CA))
        return fail("CA certificate is not a CA (no basicConstraints CA:TRUE)");
    if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(ca.get()) & KU_KEY_CERT_SIGN))
        return fail("CA certificate is not a CA (its keyUsage lacks keyCertSign)");
    const EVP_PKEY* ca_pub = X509_get0_pubkey(ca.get());
    if (!ca_pub || EVP_PKEY_eq(ca_pub, ca_key.get()) != 1)
        return fail("CA key does not match the CA certificate");
    if (check_ca_validity) {
        if (X509_cmp_current_time(X509_get0_notAfter(ca.get())) <= 0)
            return fail("CA certificate has expired");
        if (X509_cmp_current_time(X509_get0_notBefore(ca.get())) >= 0)
            return fail("CA certificate is not yet valid");
    }

    std::string san_error = "out of memory";
    gens_ptr sans;
    if (only_name) {
        sans = single_name_san(*only_name);
    } else {
        ext_stack_ptr req_exts(X509_REQ_get_extensions(req.get()));
        sans = dns_and_ip_sans(req_exts.get(), san_error);
    }
    if (!sans) return fail("invalid CSR: " + san_error);

    x509_ptr cert(X509_new());
    name_ptr subject = cn_name(cn);
    if (!cert || !subject) return fail(ossl_error("cannot build the certificate"));
    if (X509_set_version(cert.get(), X509_VERSION_3) != 1 || !set_random_serial(cert.get()) ||
        X509_set_subject_name(cert.get(), subject.get()) != 1 ||
        X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.get())) != 1 ||
        X509_set_pubkey(cert.get(), req_key) != 1 ||
        !X509_gmtime_adj(X509_getm_notBefore(cert.get()), static_cast<long>(not_before_s)) ||
        !X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(not_after_s)))
        return fail(ossl_error("cannot build the certificate"));

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ca.get(), cert.get(), nullptr, nullptr, 0);
    if (!add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment") ||
        !add_ext(cert.get(), &ctx, NID_ext_key_usage, "serverAuth,clientAuth") ||
        !add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash") ||
        !add_ext(cert.get(), &ctx, NID_authority_key_identifier, "keyid,issuer"))
        return fail(ossl_error("cannot add the certificate extensions"));
    if (sk_GENERAL_NAME_num(sans.get()) > 0 &&
        X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, sans.get(), 0, X509V3_ADD_DEFAULT) != 1)
        return fail(ossl_error("cannot add the subjectAltName"));

    if (X509_sign(cert.get(), ca_key.get(), digest_for(ca_key.get())) <= 0)
        return fail(ossl_error("cannot sign the certificate"));
    return write_pem(cert.get(), PEM_write_bio_X509, "the certificate");
}

// ---- reading certificates -------------------------------------------------------------------

bool asn1_time_parts(const ASN1_TIME* t, std::string& iso, std::int64_t& epoch) {
    std::tm tm{};
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return false;
    using namespace std::chrono;
    year_month_day ymd{year{tm.tm_year + 1900}, month{static_cast<unsigned>(tm.tm_mon + 1)},
                       day{static_cast<unsigned>(tm.tm_mday)}};
    if (!ymd.ok()) return false;
    auto s = sys_days(ymd).time_since_epoch() + hours(tm.tm_hour) + minutes(tm.tm_min) + seconds(tm.tm_sec);
    epoch = duration_cast<seconds>(s).count();
    char buf[80]; // room for any int fields, which keeps -Wformat-truncation quiet
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    iso = buf;
    return true;
}

std::string hex_colons(const unsigned char* d, unsigned n) {
    static const char digits[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned i = 0; i < n; ++i) {
        if (i) out += ':';
        out += digits[d[i] >> 4];
        out += digits[d[i] & 15];
    }
    return out;
}

std::string fill_details(X509* cert, cert_details& out) {
    if (std::string e = read_names(cert, out); !e.empty()) return e;

    const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
    bn_ptr bn(serial ? ASN1_INTEGER_to_BN(serial, nullptr) : nullptr);
    if (!bn) return ossl_error("invalid certificate: unreadable serial number");
    ossl_chars hex(BN_bn2hex(bn.get()));
    if (!hex) return "out of memory";
    out.serial_number = hex.get();

    std::int64_t not_before = 0;
    if (!asn1_time_parts(X509_get0_notBefore(cert), out.valid_from, not_before) ||
        !asn1_time_parts(X509_get0_notAfter(cert), out.valid_to, out.not_after_s))
        return "invalid certificate: unreadable validity dates";

    uint32_t flags = X509_get_extension_flags(cert);
    if (flags & EXFLAG_INVALID) return "invalid certificate: malformed extensions";
    out.is_authority = (flags & EXFLAG_BCONS) && (flags & EXFLAG_CA);
    out.is_self_signed = X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)) == 0 &&
                         X509_self_signed(cert, 1) == 1;

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (X509_digest(cert, EVP_sha256(), md, &n) != 1) return ossl_error("cannot hash the certificate");
    out.sha256_fingerprint = hex_colons(md, n);
    return {};
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out.empty() ? "<no names>" : out;
}

} // namespace

result generate_private_key() {
    error_mark mark;
    pkey_ptr key(EVP_EC_gen("P-256"));
    if (!key) return fail(ossl_error("cannot generate an EC P-256 key"));
    return write_pem(key.get(), [](BIO* b, EVP_PKEY* k) {
        return PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
    }, "the private key");
}

result make_ca_certificate(const std::string& key_pem, const std::string& common_name, int days) {
    error_mark mark;
    if (common_name.empty() || common_name.size() > 64 || has_control_chars(common_name))
        return fail("CA common name must be 1..64 characters without control characters");
    if (!valid_days(days)) return fail("days must be between 1 and 36500");
    pkey_ptr key = read_key(key_pem);
    if (!key) return fail(unreadable(key_pem, "invalid key: cannot read the private key PEM"));

    x509_ptr cert(X509_new());
    name_ptr name = cn_name(common_name);
    if (!cert || !name) return fail(ossl_error("invalid CA common name"));
    if (X509_set_version(cert.get(), X509_VERSION_3) != 1 || !set_random_serial(cert.get()) ||
        X509_set_subject_name(cert.get(), name.get()) != 1 ||
        X509_set_issuer_name(cert.get(), name.get()) != 1 ||
        X509_set_pubkey(cert.get(), key.get()) != 1 ||
        !X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) ||
        !X509_time_adj_ex(X509_getm_notAfter(cert.get()), days, 0, nullptr))
        return fail(ossl_error("cannot build the CA certificate"));

    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
    if (!add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE") ||
        !add_ext(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        !add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash"))
        return fail(ossl_error("cannot add the CA certificate extensions"));
    if (X509_sign(cert.get(), key.get(), digest_for(key.get())) <= 0)
        return fail(ossl_error("cannot sign the CA certificate"));
    return write_pem(cert.get(), PEM_write_bio_X509, "the CA certificate");
}

result make_csr(const std::string& key_pem, const std::string& node_name) {
    error_mark mark;
    if (std::string e = check_node_name(node_name); !e.empty()) return fail(e);
    pkey_ptr key = read_key(key_pem);
    if (!key) return fail(unreadable(key_pem, "invalid key: cannot read the private key PEM"));

    req_ptr req(X509_REQ_new());
    name_ptr name = cn_name(node_name);
    if (!req || !name) return fail(ossl_error("cannot build the CSR"));
    if (X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 ||
        X509_REQ_set_subject_name(req.get(), name.get()) != 1 ||
        X509_REQ_set_pubkey(req.get(), key.get()) != 1)
        return fail(ossl_error("cannot build the CSR"));

    gens_ptr sans = single_name_san(node_name);
    if (!sans) return fail("out of memory");

    STACK_OF(X509_EXTENSION)* raw = nullptr;
    if (!X509V3_add1_i2d(&raw, NID_subject_alt_name, sans.get(), 0, X509V3_ADD_DEFAULT))
        return fail(ossl_error("cannot encode the subjectAltName"));
    ext_stack_ptr exts(raw);
    if (X509_REQ_add_extensions(req.get(), exts.get()) != 1)
        return fail(ossl_error("cannot add the CSR extensions"));
    if (X509_REQ_sign(req.get(), key.get(), digest_for(key.get())) <= 0)
        return fail(ossl_error("cannot sign the CSR"));
    return write_pem(req.get(), PEM_write_bio_X509_REQ, "the CSR");
}

result sign_csr(const std::string& csr_pem, const std::string& ca_cert_pem, const std::string& ca_key_pem,
                int days) {
    error_mark mark;
    if (!valid_days(days)) return fail("days must be between 1 and 36500");
    return issue(csr_pem, ca_cert_pem, ca_key_pem, -3600, std::int64_t{days} * 86400, true);
}

result sign_csr_for_name(const std::string& csr_pem, const std::string& name, const std::string& ca_cert_pem,
                         const std::string& ca_key_pem, int days) {
    error_mark mark;
    if (!valid_days(days)) return fail("days must be between 1 and 36500");
    return issue(csr_pem, ca_cert_pem, ca_key_pem, -3600, std::int64_t{days} * 86400, true, &name);
}

result sign_csr_with_validity(const std::string& csr_pem, const std::string& ca_cert_pem,
                              const std::string& ca_key_pem, std::int64_t not_before_offset_s,
                              std::int64_t not_after_offset_s) {
    error_mark mark;
    constexpr std::int64_t limit = std::int64_t{36500} * 86400;
    if (not_before_offset_s >= not_after_offset_s || not_before_offset_s < -limit || not_after_offset_s > limit)
        return fail("invalid validity window");
    return issue(csr_pem, ca_cert_pem, ca_key_pem, not_before_offset_s, not_after_offset_s, false);
}

result csr_common_name(const std::string& csr_pem) {
    error_mark mark;
    req_ptr req = read_req(csr_pem);
    if (!req) return fail(unreadable(csr_pem, "invalid CSR: cannot read the CSR PEM"));
    EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
    if (!key || X509_REQ_verify(req.get(), key) != 1) return fail("invalid CSR: its signature does not verify");
    std::string cn = common_name_of(X509_REQ_get_subject_name(req.get()));
    if (cn.empty()) return fail("invalid CSR: no common name");
    return success(cn);
}

std::string parse_certificate(const std::string& pem, cert_details& out) {
    error_mark mark;
    out = cert_details{};
    x509_ptr cert = read_cert(pem);
    if (!cert) return unreadable(pem, "invalid certificate: cannot read the certificate PEM");
    std::string e = fill_details(cert.get(), out);
    if (!e.empty()) out = cert_details{};
    return e;
}

std::vector<std::string> split_pem_certificates(const std::string& pem_bundle) {
    error_mark mark;
    std::vector<std::string> out;
    for (auto& c : read_certs(pem_bundle)) {
        // "Parses" as parse_certificate means it: OpenSSL also reads certificates whose
        // extensions are malformed, which parse_certificate then refuses.
        cert_details details;
        if (!fill_details(c.get(), details).empty()) break;
        result r = write_pem(c.get(), PEM_write_bio_X509, "the certificate");
        if (!r.ok()) break;
        out.push_back(std::move(r.value));
    }
    return out;
}

bool certificate_matches_name(const std::string& cert_pem, const std::string& name) {
    error_mark mark;
    x509_ptr cert = read_cert(cert_pem);
    return cert && matches_name(cert.get(), name);
}

std::string verify_certificate(const std::string& cert_chain_pem, const std::vector<std::string>& trusted_ca_pems,
                               bool use_system_roots, const std::string& expected_name) {
    error_mark mark;
    std::vector<x509_ptr> chain = read_certs(cert_chain_pem);
    if (chain.empty()) return unreadable(cert_chain_pem, "invalid certificate: cannot read the certificate PEM");

    store_ptr store(X509_STORE_new());
    cert_stack_ptr untrusted(sk_X509_new_null());
    if (!store || !untrusted) return "invalid certificate: out of memory";
    std::size_t trusted = 0;
    for (const auto& pem : trusted_ca_pems) {
        for (auto& ca : read_certs(pem)) {
            if (X509_STORE_add_cert(store.get(), ca.get()) == 1) ++trusted; // the store takes its own reference
        }
    }
    if (use_system_roots && X509_STORE_set_default_paths(store.get()) == 1) ++trusted;
    if (trusted == 0) return "unknown CA: no trusted CA certificate is configured";
    for (std::size_t i = 1; i < chain.size(); ++i) {
        if (!sk_X509_push(untrusted.get(), chain[i].get())) return "invalid certificate: out of memory";
        chain[i].release(); // now owned by the stack
    }
    X509* leaf = chain[0].get();

    store_ctx_ptr ctx(X509_STORE_CTX_new());
    if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get()) != 1)
        return ossl_error("invalid certificate: cannot set up verification");
    if (X509_verify_cert(ctx.get()) != 1) {
        int err = X509_STORE_CTX_get_error(ctx.get());
        X509* bad = X509_STORE_CTX_get_current_cert(ctx.get());
        if (!bad) bad = leaf;
        std::string who = one_line(X509_get_subject_name(bad));
        std::string reason = X509_verify_cert_error_string(err);
        std::string when;
        std::int64_t ignored = 0;
        if (err == X509_V_ERR_CERT_HAS_EXPIRED) {
            asn1_time_parts(X509_get0_notAfter(bad), when, ignored);
            return "certificate expired: " + who + " expired at " + when;
        }
        if (err == X509_V_ERR_CERT_NOT_YET_VALID) {
            asn1_time_parts(X509_get0_notBefore(bad), when, ignored);
            return "certificate not yet valid: " + who + " is valid from " + when;
        }
        if (is_unknown_ca(err))
            return "unknown CA: " + who + " is issued by " + one_line(X509_get_issuer_name(bad)) +
                   ", which is not trusted (" + reason + ")";
        return "invalid certificate: " + who + ": " + reason;
    }
    if (!expected_name.empty() && !matches_name(leaf, expected_name)) {
        cert_details d;
        fill_details(leaf, d);
        return "name mismatch: certificate is for " + join(d.names) + ", not " + expected_name;
    }
    return {};
}

std::string check_key_matches(const std::string& cert_pem, const std::string& key_pem) {
    error_mark mark;
    x509_ptr cert = read_cert(cert_pem);
    if (!cert) return unreadable(cert_pem, "invalid certificate: cannot read the certificate PEM");
    pkey_ptr key = read_key(key_pem);
    if (!key) return unreadable(key_pem, "invalid key: cannot read the private key PEM");
    const EVP_PKEY* pub = X509_get0_pubkey(cert.get());
    if (!pub || EVP_PKEY_eq(pub, key.get()) != 1) return "private key does not match the certificate";
    return {};
}

bool looks_like_private_key(const std::string& text) {
    error_mark mark;
    if (read_key(text)) return true;
    auto bio = read_bio(text);
    if (!bio) return false;
    for (;;) {
        char* name = nullptr;
        char* header = nullptr;
        unsigned char* data = nullptr;
        long len = 0;
        if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) return false;
        ossl_chars hold_name(name), hold_header(header);
        ossl_bytes hold_data(data);
        std::string n = name ? name : "", h = header ? header : "";
        if (n == "ENCRYPTED PRIVATE KEY") return true;
        bool key_block = n.size() >= 11 && n.compare(n.size() - 11, 11, "PRIVATE KEY") == 0;
        if (key_block && h.find("ENCRYPTED") != std::string::npos) return true;
    }
}

} // namespace hdbrepl::net::pki
