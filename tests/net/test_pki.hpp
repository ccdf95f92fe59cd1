// A tiny certificate authority for the TLS tests, on the OpenSSL API (no files, no CLI):
// P-256 keys, a self-signed CA, and leaf certificates with chosen names (CN, IP and DNS
// subjectAltNames) and validity windows (an expired one is just a window in the past).
// Independent of net/pki.* on purpose: the transport tests must not depend on the library
// that produces real certificates.
#pragma once
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>

namespace hdbrepl::net::test {

struct pki_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

using pkey_ptr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using x509_ptr = std::unique_ptr<X509, decltype(&X509_free)>;

inline pkey_ptr new_key() {
    pkey_ptr k(EVP_EC_gen("P-256"), &EVP_PKEY_free);
    if (!k) throw pki_error("EVP_EC_gen failed");
    return k;
}

inline std::string to_pem(X509* cert) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    PEM_write_bio_X509(bio.get(), cert);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

inline std::string to_pem(EVP_PKEY* key) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

struct issued {
    std::string cert_pem;
    std::string key_pem;
};

// Validity windows, in seconds relative to now.
struct validity {
    long not_before = -3600;
    long not_after = 30L * 86400;
};
inline constexpr validity expired_window{-2L * 86400, -86400};

class test_ca {
public:
    explicit test_ca(const std::string& name) : key_(new_key()), cert_(X509_new(), &X509_free) {
        build(cert_.get(), name, key_.get(), cert_.get(), key_.get(), {}, true, {});
        cert_pem = to_pem(cert_.get());
    }

    // A leaf certificate signed by this CA. `sans` in OpenSSL config syntax, e.g.
    // "IP:127.0.0.2, DNS:node-b" ("" for none).
    issued issue(const std::string& cn, const std::string& sans, validity window = {}) const {
        auto key = new_key();
        x509_ptr cert(X509_new(), &X509_free);
        build(cert.get(), cn, key.get(), cert_.get(), key_.get(), sans, false, window);
        return {to_pem(cert.get()), to_pem(key.get())};
    }

    std::string cert_pem;

private:
    static void build(X509* x, const std::string& cn, EVP_PKEY* subject_key, X509* issuer, EVP_PKEY* issuer_key,
                      const std::string& sans, bool ca, validity window) {
        static std::atomic<long> serial{1000};
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial);
        X509_gmtime_adj(X509_getm_notBefore(x), window.not_before);
        X509_gmtime_adj(X509_getm_notAfter(x), window.not_after);
        X509_set_pubkey(x, subject_key);
        X509_NAME* name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
        X509_set_issuer_name(x, ca ? name : X509_get_subject_name(issuer));
        X509V3_CTX v;
        X509V3_set_ctx_nodb(&v);
        X509V3_set_ctx(&v, ca ? x : issuer, x, nullptr, nullptr, 0);
        auto add = [&](int nid, const std::string& value) {
            X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &v, nid, value.c_str());
            if (!e) throw pki_error("bad extension value: " + value);
            X509_add_ext(x, e, -1);
            X509_EXTENSION_free(e);
        };
        if (ca) {
            add(NID_basic_constraints, "critical,CA:TRUE");
            add(NID_key_usage, "critical,keyCertSign,cRLSign");
        } else {
            add(NID_basic_constraints, "critical,CA:FALSE");
            add(NID_key_usage, "critical,digitalSignature");
            add(NID_ext_key_usage, "serverAuth,clientAuth");
            if (!sans.empty()) add(NID_subject_alt_name, sans);
        }
        if (X509_sign(x, issuer_key, EVP_sha256()) <= 0) throw pki_error("X509_sign failed");
    }

    pkey_ptr key_;
    x509_ptr cert_;
};

} // namespace hdbrepl::net::test
