// Internal to net/: what the WebSocket classes share — namespace names, sizes, the texts of
// addresses, close reasons and refusals, and the completion-handler wrapper (see transport.hpp
// for the contract).
//
// Everything runs on the io thread (a single-threaded io_context, so no strand); each
// asynchronous step is a do_x() / on_x(ec) pair whose handler holds shared_from_this().
//
// A link's life, and which class carries it:
//   handshake  inbound (ws_acceptor, net/ws_acceptor.hpp, started by the listener in
//                        net/ws_accept.hpp): connection caps (a slot per connection,
//                        connection_caps.hpp) -> [TLS handshake] -> HTTP request read (both
//                        within one handshake_timeout from the accept) -> accept filter (its
//                        answer may come later from any thread, posted back; awaited
//                        handshake_timeout) -> refusal (status + reason body) or WebSocket accept
//              outbound (ws_dialer, net/ws_dialer.hpp): resolve (timeout) -> bind source
//                        address -> connect (timeout) -> [TLS handshake (timeout)] -> WebSocket
//                        handshake
//              a failure here is logged (and reported to dial's done), never to on_closed
//   open       (ws_session, net/ws_session.hpp, which takes over the WebSocket stream, the
//              connection's slot and what the handshake learned; it is the link_ptr the user
//              sees) one read loop, one write in flight, one ping timer
//   closing    close(reason): flush the queue, WebSocket close handshake, bounded by
//              handshake_timeout (Beast's own close timeout, and our deadline timer)
//   finished   socket closed, timers cancelled, on_closed called once (not during a stop)
//
// TLS. The three classes are templates on the stream below the WebSocket layer:
// beast::tcp_stream for plain links, tls_stream for TLS ones. Everything except the TLS
// handshakes is written against the websocket::stream and its lowest layer, so reads, writes,
// pings, close, limits and teardown are shared, and link_ptr is one type. Each TLS object holds
// the ssl::context its stream was made with (`keep`) for as long as the stream lives.
//
// Files: ws_link_plain.cpp and ws_link_tls.cpp each instantiate the three classes for one stream
// type, with the dial and accept entry points; ws_link.cpp holds the listener handle and
// listen*(), which instantiate neither (net/ws_accept.hpp reaches the accepted connection's
// start through start_inbound_plain/start_inbound_tls). Split so that the two instantiations,
// most of the compile time of net/, build in parallel.
#pragma once
#include "net/connection_caps.hpp"
#include "net/runtime_state.hpp"
#include "net/tls_context.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

namespace hdbrepl::net {
namespace detail {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;

using tls_stream = beast::ssl_stream<beast::tcp_stream>;
template <class Stream>
inline constexpr bool is_tls_stream = !std::is_same_v<Stream, beast::tcp_stream>;
// No permessage-deflate.
template <class Stream>
using ws_stream = websocket::stream<Stream, false>;

inline constexpr std::size_t frame_bytes = 64 * 1024;      // read piece and written frame size
inline constexpr std::size_t max_request_header = 8 * 1024; // HTTP upgrade request
inline constexpr std::size_t max_tracked_pings = 8;
inline constexpr std::size_t max_refusal_text = 512;    // of a refusal's body, in dial's error text

// IPv4-mapped IPv6 addresses (from a dual-stack listener) are shown as IPv4, so an
// accept_filter compares like with like.
inline std::string address_text(const asio::ip::address& a) {
    if (a.is_v6() && a.to_v6().is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string();
    return a.to_string();
}

inline std::string host_port(const std::string& host, std::uint16_t port) {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

inline bool aborted(const error_code& ec) { return ec == asio::error::operation_aborted; }

// A close frame carries at most 123 bytes of reason, which must be valid UTF-8: cut at a
// character boundary.
inline std::string close_reason_text(const std::string& reason) {
    if (reason.size() <= 123) return reason;
    std::size_t n = 123;
    while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;
    return reason.substr(0, n);
}

// The answer to a refused upgrade request: status line, a text/plain body, connection closed.
// Written as bytes: an HTTP serializer would cost more to compile.
inline std::string refusal_response(int status, const std::string& body) {
    if (status < 100 || status > 999) status = 403;
    std::string phrase(http::obsolete_reason(static_cast<http::status>(status)));
    if (phrase.empty() || phrase == "<unknown-status>") phrase = "Refused";
    return "HTTP/1.1 " + std::to_string(status) + " " + phrase +
           "\r\nServer: hdbrepl\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

// A refusal body as it goes into an error text: at most max_refusal_text bytes (at a UTF-8
// boundary), control characters as spaces, no trailing whitespace.
inline std::string refusal_text(const std::string& body) {
    std::string t = body;
    if (t.size() > max_refusal_text) {
        std::size_t n = max_refusal_text;
        while (n > 0 && (static_cast<unsigned char>(t[n]) & 0xC0) == 0x80) --n;
        t.resize(n);
    }
    for (auto& c : t)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    while (!t.empty() && t.back() == ' ') t.pop_back();
    return t;
}

// "inbound link from <ip:port> <target>" / "outbound link to ...": how log lines name a link.
inline std::string link_description(bool inbound, const std::string& address, std::uint16_t port, const std::string& target) {
    return std::string(inbound ? "inbound link from " : "outbound link to ") + host_port(address, port) + " " + target;
}

// Wraps a member function of `self` as a completion handler that keeps the object alive and
// turns an exception into self->internal_error() (nothing escapes into io_context::run()).
template <class T, class... Args>
auto bind_step(std::shared_ptr<T> self, void (T::*member)(Args...)) {
    return [self = std::move(self), member](auto&&... args) {
        try {
            ((*self).*member)(std::forward<decltype(args)>(args)...);
        } catch (...) {
            self->internal_error(current_exception_text());
        }
    };
}

// io thread. Calls a user callback unless the runtime is stopping (then no user callback may
// start). Returns the failure text if it threw.
template <class F>
std::string call_user(const runtime_state& st, const char* name, F&& f) {
    if (st.stopping) return {};
    try {
        f();
        return {};
    } catch (...) {
        return std::string(name) + " threw: " + current_exception_text();
    }
}

// What a handshake hands to the session it ends in: who the peer is, and what must live as long
// as the connection.
struct handshake_result {
    bool inbound = false;
    std::string remote_address;
    std::uint16_t remote_port = 0;
    std::string target;     // the upgrade request's target
    peer_certificate peer;  // TLS: what the peer presented
    std::shared_ptr<void> keep; // what the stream refers to (a TLS link's ssl::context)
    std::unique_ptr<connection_counts::slot> slot; // inbound: its place under the listener's caps
};

} // namespace detail
} // namespace hdbrepl::net
