// Internal to net/: building OpenSSL contexts from a tls_identity, the per-connection TLS
// settings (SNI, expected server name), what the peer's certificate says, and turning
// OpenSSL's verification results into the plain-words texts documented in transport.hpp.
// Only net/*.cpp include it. The calls are cheap enough for the io thread except building a
// context (PEM parsing), which listen_tls()/set_tls_identity()/dial_tls() do on their caller's
// thread or once per dial.
#pragma once
#include "net/transport.hpp"

#include <memory>
#include <string>
#include <vector>

struct ssl_st; // OpenSSL's SSL

namespace boost::asio::ssl {
class context;
}

namespace hdbrepl::net::detail {

using ssl_context_ptr = std::shared_ptr<boost::asio::ssl::context>;

struct context_result {
    ssl_context_ptr context; // null on failure
    std::string error;       // why, e.g. "private key does not match the certificate"
};

// Any thread. A server context: TLS >= 1.2, presents identity's chain and key (both required),
// asks for a client certificate and verifies it against identity's trust, but never fails the
// handshake over it (the first verification error is kept for inspect_peer()); no session
// resumption.
context_result make_server_context(const tls_identity& identity);

// Any thread. A client context: TLS >= 1.2, presents identity's chain if it has one; with
// `verify`, the server's chain must verify (the name is set per connection by
// prepare_client()). `identity` may be null.
context_result make_client_context(const tls_identity* identity, bool verify);

// io thread, before the client handshake: SNI (when host is a DNS name) and, with `verify`,
// the name the server's certificate must carry (IP literal: IP SAN; else DNS SAN or CN).
// Returns "" or an error text.
std::string prepare_client(ssl_st* ssl, const std::string& host, const std::string& expected_name, bool verify);

struct peer_certificate {
    bool presented = false;
    bool verified = false;
    std::string verify_error; // see peer_check::verify_error
    std::vector<std::string> names;
    std::string pem;
};

// io thread, after a completed handshake: the peer's leaf certificate and its verification.
peer_certificate inspect_peer(ssl_st* ssl);

// io thread, after a failed client handshake: the documented "TLS: server certificate ..." text
// when the failure was the server certificate's verification, else "".
std::string server_verify_failure(ssl_st* ssl, const std::string& expected_name);

} // namespace hdbrepl::net::detail
