// Small OpenSSL helpers shared by the project's OpenSSL users: security/pki.cpp,
// security/credentials.cpp and net/tls_context.cpp. Includes OpenSSL headers, so only .cpp
// files include it (never a public header of security/ or net/). Thread: any.
#pragma once
#include <openssl/err.h>
#include <openssl/x509_vfy.h>

namespace hdbrepl::net::ossl {

// Sets a mark on this thread's OpenSSL error queue and pops back to it (dropping the errors
// queued meanwhile) on exit, so errors that were there before (another caller's) stay.
class error_mark {
public:
    error_mark() { ERR_set_mark(); }
    ~error_mark() { ERR_pop_to_mark(); }
    error_mark(const error_mark&) = delete;
    error_mark& operator=(const error_mark&) = delete;
};

// Whether an X509 verification error means the chain does not lead to a CA we trust.
inline bool is_unknown_ca(long err) {
    switch (err) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED: return true;
    default: return false;
    }
}

} // namespace hdbrepl::net::ossl
