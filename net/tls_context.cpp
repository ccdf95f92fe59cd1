// OpenSSL contexts for the TLS links, per-connection client settings and certificate
// inspection (see tls_context.hpp).
//
// Server side the verify callback records the first verification error on the SSL object (in
// an ex_data slot of ours) and returns 1: the handshake always completes, and the listener's
// filter decides with the whole picture (and can say why at the HTTP level). Client side
// OpenSSL's default verification fails the handshake, and SSL_get_verify_result() says why.
#include "net/runtime_state.hpp"
#include "net/tls_context.hpp"
#include "security/openssl_util.hpp"

#include <boost/asio/ssl/context.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>

namespace hdbrepl::net::detail {

namespace ssl = boost::asio::ssl;
using error_code = boost::system::error_code;

namespace {

// The ex_data slot holding the first verification error of a server-side connection.
int first_error_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

extern "C" int record_first_error(int ok, X509_STORE_CTX* store) {
    if (!ok) {
        auto* s = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
        if (s && !SSL_get_ex_data(s, first_error_index())) {
            int e = X509_STORE_CTX_get_error(store);
            SSL_set_ex_data(s, first_error_index(), reinterpret_cast<void*>(static_cast<std::intptr_t>(e ? e : X509_V_ERR_UNSPECIFIED)));
        }
    }
    return 1;
}

// No passphrase prompts on a terminal: an encrypted key simply fails to load.
extern "C" int no_password(char*, int, int, void*) { return 0; }


std::string verify_text(long code) {
    std::string s = X509_verify_cert_error_string(code);
    return ossl::is_unknown_ca(code) ? "unknown CA: " + s : s;
}

bool is_ip_literal(const std::string& s) {
    unsigned char buf[16];
    return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

void common_settings(ssl::context& ctx) {
    SSL_CTX* h = ctx.native_handle();
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_compression | ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(h, TLS1_2_VERSION);
    SSL_CTX_set_options(h, SSL_OP_NO_RENEGOTIATION);
    // Present exactly the configured chain: never complete it from the trust store (which
    // would send our trusted roots to every peer).
    SSL_CTX_set_mode(h, SSL_MODE_NO_AUTO_CHAIN);
    SSL_CTX_set_default_passwd_cb(h, &no_password);
}

bool key_parses(const std::string& pem) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    if (!bio) return false;
    EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, &no_password, nullptr);
    BIO_free(bio);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return key != nullptr;
}

// Loads chain and key; "" or an error.
std::string load_identity(ssl::context& ctx, const tls_identity& id) {
    error_code ec;
    if (id.certificate_chain_pem.empty()) return "no certificate chain";
    ctx.use_certificate_chain(boost::asio::buffer(id.certificate_chain_pem), ec);
    if (ec) return "certificate chain: " + ec.message();
    if (id.private_key_pem.empty()) return "no private key";
    ctx.use_private_key(boost::asio::buffer(id.private_key_pem), ssl::context::pem, ec);
    if (ec) return key_parses(id.private_key_pem) ? "private key does not match the certificate" : "private key: " + ec.message();
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) return "private key does not match the certificate";
    return {};
}

std::string load_trust(ssl::context& ctx, const tls_identity& id) {
    error_code ec;
    for (std::size_t i = 0; i < id.trusted_ca_pems.size(); ++i) {
        ctx.add_certificate_authority(boost::asio::buffer(id.trusted_ca_pems[i]), ec);
        if (ec) return "trusted CA #" + std::to_string(i + 1) + ": " + ec.message();
    }
    if (id.use_system_roots) {
        ctx.set_default_verify_paths(ec);
        if (ec) return "system roots: " + ec.message();
    }
    return {};
}

std::vector<std::string> certificate_names(X509* cert) {
    std::vector<std::string> names;
    auto add = [&](std::string n) {
        if (!n.empty() && std::find(names.begin(), names.end(), n) == names.end()) names.push_back(std::move(n));
    };
    X509_NAME* subject = X509_get_subject_name(cert);
    for (int i = -1; subject && (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;) {
        ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
        unsigned char* utf8 = nullptr;
        int n = ASN1_STRING_to_UTF8(&utf8, data);
        if (n >= 0) add(std::string(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n)));
        OPENSSL_free(utf8);
    }
    auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); ++i) {
        const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
        if (g->type == GEN_DNS) {
            const ASN1_STRING* s = g->d.dNSName;
            add(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<std::size_t>(ASN1_STRING_length(s))));
        } else if (g->type == GEN_IPADD) {
            const ASN1_OCTET_STRING* s = g->d.iPAddress;
            char text[INET6_ADDRSTRLEN] = {};
            int len = ASN1_STRING_length(s);
            int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
            if (family && inet_ntop(family, ASN1_STRING_get0_data(s), text, sizeof text)) add(text);
        }
    }
    GENERAL_NAMES_free(sans);
    return names;
}

std::string certificate_pem(X509* cert) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (!bio) return {};
    std::string pem;
    if (PEM_write_bio_X509(bio, cert) == 1) {
        char* data = nullptr;
        long n = BIO_get_mem_data(bio, &data);
        if (n > 0) pem.assign(data, static_cast<std::size_t>(n));
    }
    BIO_free(bio);
    return pem;
}

} // namespace

context_result make_server_context(const tls_identity& identity) {
    try {
        auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
        common_settings(*ctx);
        SSL_CTX* h = ctx->native_handle();
        // Every connection verifies afresh: no resumption that would skip the client's check
        // (or outlive a rotated trust).
        SSL_CTX_set_options(h, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(h, 0);
        SSL_CTX_set_session_cache_mode(h, SSL_SESS_CACHE_OFF);
        static const unsigned char sid[] = "hdbrepl";
        SSL_CTX_set_session_id_context(h, sid, sizeof sid - 1);
        if (auto e = load_identity(*ctx, identity); !e.empty()) return {nullptr, e};
        if (auto e = load_trust(*ctx, identity); !e.empty()) return {nullptr, e};
        SSL_CTX_set_verify(h, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, &record_first_error);
        return {std::move(ctx), {}};
    } catch (...) {
        return {nullptr, current_exception_text()};
    }
}

context_result make_client_context(const tls_identity* identity, bool verify) {
    try {
        auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
        common_settings(*ctx);
        if (identity && !identity->certificate_chain_pem.empty()) {
            if (auto e = load_identity(*ctx, *identity); !e.empty()) return {nullptr, e};
        }
        if (verify) {
            if (identity) {
                if (auto e = load_trust(*ctx, *identity); !e.empty()) return {nullptr, e};
            }
            SSL_CTX_set_verify(ctx->native_handle(), SSL_VERIFY_PEER, nullptr);
        } else {
            SSL_CTX_set_verify(ctx->native_handle(), SSL_VERIFY_NONE, nullptr);
        }
        return {std::move(ctx), {}};
    } catch (...) {
        return {nullptr, current_exception_text()};
    }
}

std::string prepare_client(ssl_st* s, const std::string& host, const std::string& expected_name, bool verify) {
    if (!is_ip_literal(host) && SSL_set_tlsext_host_name(s, host.c_str()) != 1) return "cannot set SNI name '" + host + "'";
    if (!verify) return {};
    const std::string& name = expected_name.empty() ? host : expected_name;
    X509_VERIFY_PARAM* param = SSL_get0_param(s);
    if (is_ip_literal(name)) {
        if (X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) != 1) return "bad expected IP '" + name + "'";
    } else {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size()) != 1) return "bad expected name '" + name + "'";
    }
    return {};
}

peer_certificate inspect_peer(ssl_st* s) {
    peer_certificate r;
    X509* cert = SSL_get0_peer_certificate(s);
    if (!cert) {
        r.verify_error = "no certificate presented";
        return r;
    }
    r.presented = true;
    long first = static_cast<long>(reinterpret_cast<std::intptr_t>(SSL_get_ex_data(s, first_error_index())));
    long code = first != 0 ? first : SSL_get_verify_result(s);
    r.verified = code == X509_V_OK;
    if (!r.verified) r.verify_error = verify_text(code);
    r.names = certificate_names(cert);
    r.pem = certificate_pem(cert);
    return r;
}

std::string server_verify_failure(ssl_st* s, const std::string& expected_name) {
    long code = SSL_get_verify_result(s);
    if (code == X509_V_OK) return {};
    std::string why = X509_verify_cert_error_string(code);
    if (ossl::is_unknown_ca(code)) return "TLS: server certificate not trusted (unknown CA): " + why;
    switch (code) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return "TLS: server certificate has expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "TLS: server certificate is not yet valid";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        return "TLS: server certificate does not match name '" + expected_name + "'";
    default:
        return "TLS: server certificate rejected: " + why;
    }
}

} // namespace hdbrepl::net::detail
