// PEM in and out for the PKI (see pki_internal.hpp), and the error texts for what did not
// read: keys, certificates and CSRs are parsed from memory BIOs, and OpenSSL's queued reason
// is turned into the message the caller sees.
//
// PEM is read with a passphrase callback that refuses, so an encrypted key is an error
// instead of a prompt on the terminal.
#include "security/pki_internal.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cstdint>

namespace hdbrepl::net::pki::detail {

std::string ossl_error(const std::string& what) {
    unsigned long e = ERR_peek_last_error();
    if (e == 0) return what;
    const char* reason = ERR_reason_error_string(e);
    if (reason) return what + ": " + reason;
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return what + ": " + buf;
}

std::string unreadable(const std::string& text, const std::string& what) {
    if (text.find("-----BEGIN ") == std::string::npos) return what + ": no PEM block found";
    if (text.find("ENCRYPTED") != std::string::npos && text.find("PRIVATE KEY") != std::string::npos)
        return what + ": encrypted private keys are not supported";
    return ossl_error(what);
}

namespace {
int refuse_passphrase(char*, int, int, void*) { return -1; }
} // namespace

bio_ptr read_bio(const std::string& text) {
    if (text.size() > static_cast<std::size_t>(INT32_MAX)) return nullptr;
    return bio_ptr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

pkey_ptr read_key(const std::string& pem) {
    auto bio = read_bio(pem);
    if (!bio) return nullptr;
    return pkey_ptr(PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, nullptr));
}

x509_ptr read_cert(const std::string& pem) {
    auto bio = read_bio(pem);
    if (!bio) return nullptr;
    return x509_ptr(PEM_read_bio_X509(bio.get(), nullptr, refuse_passphrase, nullptr));
}

req_ptr read_req(const std::string& pem) {
    auto bio = read_bio(pem);
    if (!bio) return nullptr;
    return req_ptr(PEM_read_bio_X509_REQ(bio.get(), nullptr, refuse_passphrase, nullptr));
}

std::vector<x509_ptr> read_certs(const std::string& pem) {
    std::vector<x509_ptr> out;
    auto bio = read_bio(pem);
    if (!bio) return out;
    while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, refuse_passphrase, nullptr))
        out.emplace_back(c);
    return out;
}

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    return n > 0 && data ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

} // namespace hdbrepl::net::pki::detail
