// The transport layer: moves bytes between nodes over WebSockets (binary messages only).
// It knows nothing about replication; the protocol frames and node state live in engine/
// and call this API.
//
// Threads. One io_runtime owns one io thread running a single-threaded io_context. Every
// callback in this file (on_open, on_message, on_closed, dial's done, timers, post) runs on
// that thread, one at a time, so the code behind them needs no locks among themselves.
// Each declaration below says which threads may call it ("io thread" = only from inside
// one of those callbacks; "any thread" = thread-safe).
//
// Lifetime. Once stop_and_join() has been called, no callback starts any more (not even
// on_closed for links that stop_and_join closes), and when it returns none is running.
// Callbacks must not block: a callback that holds the io thread longer than ping_timeout
// makes links time out, on both ends.
// Handles (link_ptr, listener, timer) may outlive the runtime: they keep its io_context
// alive, and their operations become no-ops.
//
// Errors are reported as text (dial's done, on_closed's reason, listen's error) and as one
// log line each through set_log_sink(); nothing here throws out of the io thread. An
// exception thrown by a callback is caught, logged, and (for link callbacks) closes the link.
//
// This header includes no Boost header (engine/ and sql/ include it); the Asio/Beast code is
// in net/*.cpp, compiled once (see net/asio_impl.cpp).
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace hdbrepl::net {

namespace detail {
struct runtime_state;
struct runtime_access;
struct timer_impl;
struct listener_impl;
} // namespace detail

// Where log lines go: one line per refused connection, per closed link (with the reason),
// per error, each starting "net: ". Default: discarded. Any thread; the sink is called on the
// io thread (and on the thread that calls listen(), for its errors), never under a lock of
// this library.
void set_log_sink(std::function<void(const std::string& line)> sink);

// A one-shot timer from io_runtime::after(). Destroying the last handle cancels it, so keep
// the handle for as long as the callback should be able to run.
class timer {
public:
    explicit timer(std::shared_ptr<detail::timer_impl> impl); // made by io_runtime::after()
    ~timer();
    timer(const timer&) = delete;
    timer& operator=(const timer&) = delete;

    // Any thread. Called on the io thread, the callback will not run. Called on another
    // thread, it will not start after cancel() returns (it may be running at that moment).
    void cancel();

private:
    std::shared_ptr<detail::timer_impl> impl_;
};

// Owns the io_context and the io thread. Make one per process with make_io_runtime().
class io_runtime {
public:
    ~io_runtime(); // stop_and_join(); if destroyed on the io thread, stops and detaches instead
    io_runtime(const io_runtime&) = delete;
    io_runtime& operator=(const io_runtime&) = delete;

    // Any thread. Runs `fn` on the io thread. Dropped (destroyed on the caller's thread)
    // once stop_and_join() has been called.
    void post(std::function<void()> fn);

    // Any thread. Runs `fn` on the io thread after `delay`, unless cancelled or the handle
    // is dropped first (see timer).
    [[nodiscard]] std::shared_ptr<timer> after(std::chrono::milliseconds delay, std::function<void()> fn);

    // Any thread except the io thread. Cancels everything (closes listeners, links and pending
    // dials without a WebSocket close handshake, cancels timers), drops pending posts and
    // joins the io thread. Returns promptly (a stuck getaddrinfo() is the one thing it may
    // wait for, at most 2 s, after which the io_context is stopped). Safe to call twice and
    // concurrently. Called on the io thread it only starts the stop and logs an error.
    void stop_and_join();

    // Any thread. Whether the caller is the io thread.
    bool in_io_thread() const;

private:
    friend struct detail::runtime_access;
    friend std::shared_ptr<io_runtime> make_io_runtime();
    io_runtime();
    struct thread_state;
    std::shared_ptr<detail::runtime_state> state_;
    std::unique_ptr<thread_state> thread_;
};

// Any thread. Creates the runtime and starts its io thread.
std::shared_ptr<io_runtime> make_io_runtime();

// A message larger than max_queued_bytes can never be sent: keep it at least as large as the
// largest message the sender produces (with the defaults, 16 MiB, although a peer accepts 64).
struct link_options {
    std::size_t max_message_bytes = 64 << 20;  // a larger incoming message closes the link
    std::size_t max_queued_bytes = 16 << 20;   // bound of the send queue (incl. the message being written)
    std::chrono::milliseconds handshake_timeout{5000}; // each of resolve, connect, WebSocket
                                                       // handshake (both sides), close handshake
    std::chrono::milliseconds ping_interval{1000};     // keepalive period (see link); <= 0: none
    std::chrono::milliseconds ping_timeout{3000};      // nothing received for this long: close
    // Listeners only: connections held at once (from the TCP accept, through the handshake,
    // until the link has ended) per remote IP address and in total; 0 = no cap. A connection
    // over a cap is closed at once, before anything is read from it or any TLS is done (so it
    // costs the listener nothing), with one log line "refused <ip:port> on <listener>: <n>
    // connections from <ip> (limit <cap>)" (at most 10 such lines a second per listener; the
    // next one logged counts those left out); a dialer sees the stream end. The defaults leave
    // room for a cluster's real traffic (a peer holds one or two links, a few more while it
    // reconnects; 32 lets a dozen nodes share one NAT address) while one address cannot hold
    // more than 32 sockets, nor everyone together more than 512 (half the usual 1024 soft
    // descriptor limit, the rest left for the database, the log and outgoing dials).
    std::size_t max_connections_per_address = 32;
    std::size_t max_connections = 512;
};

class link;
using link_ptr = std::shared_ptr<link>;

// ---- TLS (mutual authentication with X.509 certificates; TLS 1.2 minimum, 1.3 preferred)

// PEM texts: what a node presents and whom it trusts. Immutable once handed over (shared).
struct tls_identity {
    std::string certificate_chain_pem;        // leaf first, then intermediates (may be empty on
                                              // a client that has none)
    std::string private_key_pem;              // the leaf's key (unencrypted PEM)
    std::vector<std::string> trusted_ca_pems; // each a PEM text (may hold several certificates)
    bool use_system_roots = false;            // also trust the OS root store
};

// What a listener learned about a connecting peer, given to the accept filter after the TLS
// handshake and the HTTP upgrade request, before the WebSocket upgrade.
struct peer_check {
    std::string remote_ip;     // IPv4-mapped IPv6 shown as IPv4
    std::string target;        // HTTP target of the upgrade request
    std::string authorization; // its Authorization header, "" if none
    bool tls = false;
    bool certificate_presented = false;
    // Chains to trusted_ca_pems (and the system roots if asked) and is within its validity
    // period. The name is NOT checked here: compare certificate_names with whom you expect.
    bool certificate_verified = false;
    // When presented but not verified, OpenSSL's first complaint in plain words, e.g.
    //   "unknown CA: unable to get local issuer certificate", "unknown CA: self-signed
    //   certificate", "certificate has expired", "certificate is not yet valid";
    // "no certificate presented" when none was. Empty when verified or not TLS.
    std::string verify_error;
    std::vector<std::string> certificate_names; // CN and every subjectAltName (DNS, IP as text)
    std::string certificate_pem;                // the peer's leaf certificate, "" if none
};

// The accept filter's answer. http_status 0 accepts; anything else refuses with that status
// (401, 403, ...) and `reason` as the text/plain body, then closes; a dialer of this library
// gets "handshake refused: HTTP <status> <phrase>: <reason>".
struct accept_decision {
    int http_status = 0;
    std::string reason;
};

// An accept filter that may answer later, from any thread (e.g. after checking a password
// hash on a worker thread: the io thread must not be held by such work).
//   The filter itself is called on the io thread, once per upgrade request, and must return
//   promptly. `check` is valid only during that call: copy what is needed later.
//   `respond` may be called from any thread, during the call or after it; the decision then
//   takes effect on the io thread. Only the first call counts: later ones are ignored (one
//   log line). Not calling it at all is allowed: the connection waits at most
//   handshake_timeout for the answer (counted from the filter's call), then is closed with
//   one log line and no HTTP answer. If the filter throws before responding, the connection
//   is refused with 403.
//   `respond` is safe to call, and to keep, after the connection, the listener or the
//   io_runtime has gone (it then does nothing); it holds none of them alive.
using respond_fn = std::function<void(accept_decision)>;
using async_accept_filter = std::function<void(const peer_check& check, respond_fn respond)>;

// How dial_tls() checks the server.
struct tls_dial_options {
    // false: accept any server certificate (first contact with a fresh node); the names of
    // what it presented are still in link::peer_certificate_names().
    bool verify_server = true;
    // The name the server certificate must carry (a DNS name matches a SAN DNS entry, or the CN
    // when the certificate has no DNS SAN; an IP literal matches an IP SAN). "" = the host.
    std::string expected_name;
    // Sent as the Authorization header of the upgrade request when not empty.
    std::string authorization;
};

// All called on the io thread.
struct link_events {
    // One complete binary message.
    std::function<void(const link_ptr&, std::vector<std::uint8_t>&& message)> on_message;
    // Exactly once per opened link (except after stop_and_join()), after which the link sends
    // and receives nothing. `reason` is empty for a local close(), otherwise one of:
    //   "closed by peer (<code>)" or "closed by peer (<code>): <peer's reason>"
    //   "ping timeout"
    //   "message too big (limit <n> bytes)"
    //   "protocol error: text frame"
    //   "read: <error>", "write: <error>", "ping: <error>"   (e.g. "read: End of file" when
    //                                    the peer drops TCP without a close frame)
    //   "<callback> threw: <what>"       (on_message, on_open or dial's done threw; the peer
    //                                    gets close code 1011 "internal error")
    //   "internal error: <what>"        (an unexpected exception inside this library)
    std::function<void(const link_ptr&, const std::string& reason)> on_closed;
    // After notify_room(n): once, when the send queue has room for n more bytes again (a
    // write completed). Lets a sender that found the queue full go on without polling.
    std::function<void(const link_ptr&)> on_room;
};

// One WebSocket connection carrying binary messages, accepted by a listener or dialed.
// A link is kept alive by its own pending operations until it is closed; holding a link_ptr
// after that is harmless.
class link {
public:
    virtual ~link() = default;

    // io thread. Queues a binary message. Returns false, queueing nothing, when the queued
    // bytes (including the message being written) would exceed max_queued_bytes, when the
    // link is closing or closed, or when called off the io thread (also logged). Messages go
    // out in order, exactly one write in flight; large messages are written as 64 KiB frames
    // so control frames are not stuck behind them.
    virtual bool send(std::vector<std::uint8_t> message) = 0;

    // Any thread. Bytes queued and not yet completely written.
    virtual std::size_t queued_bytes() const = 0;

    // io thread. Asks for one on_room call as soon as the send queue can take `bytes` more
    // (soon after this call returns, when it already can; never from inside it). A later
    // call replaces the request.
    virtual void notify_room(std::size_t bytes) = 0;

    // Any thread (posted to the io thread when called elsewhere). Stops delivering messages
    // and refuses send(), writes what is already queued, then does the WebSocket close
    // handshake with code 1000 and `reason` (cut to 123 bytes at a UTF-8 character boundary);
    // then on_closed(link, ""). Calling it again, or on a closed link, does nothing.
    // Bounded by handshake_timeout, after which the TCP connection is simply closed.
    virtual void close(const std::string& reason) = 0;

    // Any thread; fixed once the link is open.
    virtual std::string remote_address() const = 0; // IP as text, IPv4-mapped IPv6 shown as IPv4
    virtual std::uint16_t remote_port() const = 0;
    virtual bool inbound() const = 0;                 // accepted by a listener
    virtual std::string request_target() const = 0;   // HTTP target of the upgrade request

    // Any thread. Round trip of the last answered ping in milliseconds, -1 if none yet.
    // Keepalive: every ping_interval the link sends a WebSocket ping when it is quiet (nothing
    // of ours queued, no data from the peer lately), otherwise an unsolicited pong: a heartbeat
    // that needs no answer, so a streaming peer's reads never wait behind its own writes. A link
    // that received nothing (no data, no ping, no pong) for ping_timeout closes with "ping
    // timeout". So latency_ms() is refreshed while the link is quiet and keeps its last value
    // during bulk transfers (it measures the network, not our send queue).
    virtual double latency_ms() const = 0;

    // io thread: takes effect immediately. Other threads: posted to the io thread. Reading
    // starts only after on_open / dial's done returns, so events set there miss nothing.
    virtual void set_events(link_events events) = 0;

    // Any thread; fixed once the link is open. Whether the link runs over TLS (listen_tls /
    // dial_tls).
    virtual bool secure() const = 0;

    // Any thread; fixed once the link is open. The CN and every subjectAltName (DNS names, IPs
    // as text) of the certificate the peer presented in the TLS handshake: on an inbound link
    // the client's (verified or not: the accept filter decided), on an outbound link the
    // server's (verified unless dialed with verify_server = false). Empty on plain links and
    // when the peer presented none.
    virtual std::vector<std::string> peer_certificate_names() const = 0;
};

// A listening socket. Destroying the last handle closes it.
class listener {
public:
    explicit listener(std::shared_ptr<detail::listener_impl> impl); // made by listen()
    ~listener();
    listener(const listener&) = delete;
    listener& operator=(const listener&) = delete;

    // Any thread. Stops accepting; connections still in their handshake are dropped (on_open
    // is not called for them once close() has run on the io thread). Open links stay open.
    void close();

    // Any thread. The bound port (useful after listening on port 0).
    std::uint16_t port() const;

    // Any thread (the new context is built on the caller's thread). A TLS listener's
    // certificate and trust for every later accepted connection (certificate rotation without
    // a restart); connections already open or in their handshake keep the old ones. Returns ""
    // on success, else why the identity was refused (the old one stays), e.g.
    // "not a TLS listener", "private key: ...", "private key does not match the certificate".
    std::string set_tls_identity(std::shared_ptr<const tls_identity> identity);

private:
    std::shared_ptr<detail::listener_impl> impl_;
};

// Any thread. Binds and listens on bind_address:port (port 0: any free port). For each
// accepted TCP connection within the connection caps (link_options::max_connections*), reads
// the HTTP upgrade request (within handshake_timeout from the accept, TLS handshake included
// for listen_tls: a client that sends nothing, or trickles its request, is closed then) and
// calls accept_filter(remote_ip, target) on the io thread BEFORE completing the upgrade:
// false answers "HTTP 403 Forbidden" (empty body) and closes (nothing else is exchanged,
// one log line);
// true completes the WebSocket handshake and calls on_open(link) on the io thread.
// On failure (bad address, address in use, runtime stopped) returns nullptr and sets `error`.
std::shared_ptr<listener> listen(io_runtime& rt, const std::string& bind_address, std::uint16_t port,
                                 link_options options,
                                 std::function<bool(const std::string& remote_ip, const std::string& target)> accept_filter,
                                 std::function<void(const link_ptr&)> on_open, std::string& error);

// Any thread. As listen(), with a filter that also sees the Authorization header and
// answers with a status and a reason (sent as the body of the refusal): refusals are
// "HTTP <status> <phrase>" with that body instead of a bare 403.
std::shared_ptr<listener> listen_checked(io_runtime& rt, const std::string& bind_address, std::uint16_t port,
                                         link_options options, std::function<accept_decision(const peer_check&)> filter,
                                         std::function<void(const link_ptr&)> on_open, std::string& error);

// Any thread. As listen_checked(), but every connection starts with a TLS handshake (server
// side, presenting identity's certificate chain, within handshake_timeout) before the HTTP
// upgrade request. The server asks for a client certificate but never fails the handshake
// because it is missing or not trusted: the filter sees the outcome in peer_check and refuses
// at the HTTP level, so the dialer learns why. A null filter accepts exactly the clients whose
// certificate is verified, refusing others with 403 "client certificate not verified:
// <verify_error>". A client that does not speak TLS (or sends garbage) is dropped with one log
// line ("handshake with <ip:port> failed: TLS handshake: <OpenSSL reason>"). Sessions are not
// resumed (no tickets, no cache): every connection presents and verifies its certificate.
// On failure (as listen(), or identity missing/unusable: "listen_tls <addr>: certificate
// chain: ...", "... private key does not match the certificate") returns nullptr and sets error.
std::shared_ptr<listener> listen_tls(io_runtime& rt, const std::string& bind_address, std::uint16_t port,
                                     link_options options, std::shared_ptr<const tls_identity> identity,
                                     std::function<accept_decision(const peer_check&)> filter,
                                     std::function<void(const link_ptr&)> on_open, std::string& error);

// Any thread. As listen_checked() and listen_tls(), with a filter that may answer later and
// from another thread (see async_accept_filter). A null filter accepts everyone
// (listen_checked_async) or the clients whose certificate is verified (listen_tls_async),
// as the synchronous forms do; those are thin wrappers of these.
std::shared_ptr<listener> listen_checked_async(io_runtime& rt, const std::string& bind_address, std::uint16_t port,
                                               link_options options, async_accept_filter filter,
                                               std::function<void(const link_ptr&)> on_open, std::string& error);
std::shared_ptr<listener> listen_tls_async(io_runtime& rt, const std::string& bind_address, std::uint16_t port,
                                           link_options options, std::shared_ptr<const tls_identity> identity,
                                           async_accept_filter filter, std::function<void(const link_ptr&)> on_open,
                                           std::string& error);

// Any thread. Connects to host:port (host: IP literal or name, resolved), binding the source
// address to `bind_address` when it is not empty (so IP-authenticating peers see it), then
// does the WebSocket handshake with `target` (e.g. "/hdbrepl?node=a"). Each step is bounded by
// options.handshake_timeout. Calls done on the io thread exactly once (unless stop_and_join()
// comes first): done(link, "") on success, done(nullptr, error text) on failure, e.g.
// "connect 127.0.0.1:9: Connection refused" or "handshake refused: HTTP 403 Forbidden" (with
// ": <body>" appended when the refusal had a body, as listen_checked()/listen_tls() send).
void dial(io_runtime& rt, const std::string& host, std::uint16_t port, const std::string& bind_address,
          const std::string& target, link_options options,
          std::function<void(const link_ptr&, const std::string& error)> done);

// Any thread. As dial(), with a TLS handshake (client side; SNI when host is a DNS name)
// between connect and the WebSocket handshake, presenting identity's certificate if it has
// one (identity may be null: no certificate and nothing trusted, so only verify_server =
// false can succeed).
// With verify_server the server's chain must lead to identity's trusted CAs (or the system
// roots if use_system_roots) and carry expected_name. Errors given to done, besides dial()'s:
//   "TLS: server certificate not trusted (unknown CA): <OpenSSL reason>"
//   "TLS: server certificate has expired"
//   "TLS: server certificate is not yet valid"
//   "TLS: server certificate does not match name '<expected_name>'"
//   "TLS: server certificate rejected: <OpenSSL reason>"       (other verification failures)
//   "TLS handshake with <ip:port>: <OpenSSL reason>"           (e.g. the server is not TLS)
//   "TLS: <what is wrong with identity>"                        (e.g. "TLS: private key: ...")
//   "handshake refused: HTTP 403 Forbidden: <filter's reason>" (the server's filter said no;
//                                                                the reason is cut to 512 bytes)
void dial_tls(io_runtime& rt, const std::string& host, std::uint16_t port, const std::string& bind_address,
              const std::string& target, link_options options, std::shared_ptr<const tls_identity> identity,
              tls_dial_options tls_options, std::function<void(const link_ptr&, const std::string& error)> done);

} // namespace hdbrepl::net
