// WebSocket links, the listener and the dialer (see transport.hpp for the contract).
//
// Everything here runs on the io thread (a single-threaded io_context, so no strand);
// each asynchronous step is a do_x() / on_x(ec) pair whose handler holds shared_from_this().
//
// A link's life:
//   handshake  inbound:  connection caps (a slot per connection, connection_caps.hpp) ->
//                        [TLS handshake] -> HTTP request read (both within one
//                        handshake_timeout from the accept) -> accept filter (its answer may
//                        come later from any thread, posted back; awaited handshake_timeout)
//                        -> refusal (status + reason body) or WebSocket accept
//              outbound: resolve (timeout) -> bind source address -> connect (timeout) ->
//                        [TLS handshake (timeout)] -> WebSocket handshake
//              a failure here is logged (and reported to dial's done), never to on_closed
//   open       one read loop (async_read_some in 64 KiB pieces, so every received byte counts
//              as liveness even inside a long message), one write in flight (messages are sent
//              as 64 KiB frames, so control frames interleave with big messages), one ping
//              timer (see "Keepalive" below; nothing received for ping_timeout -> "ping
//              timeout", TCP closed at once)
//   closing    close(reason): flush the queue, WebSocket close handshake, bounded by
//              handshake_timeout (Beast's own close timeout, and our deadline timer)
//   finished   socket closed, timers cancelled, on_closed called once (not during a stop)
//
// Keepalive. Every ping_interval each side sends one control frame, so the other side always
// hears from it: a ping (its pong gives latency_ms) when the link is quiet — nothing of ours
// queued or being written, no data from the peer during the last interval — otherwise an
// unsolicited pong (RFC 6455 5.5.3: a one-way heartbeat that needs no answer). Why not always
// ping: Beast's read operation answers a ping by waiting for its own write side, so a peer that
// is streaming stops reading until its current frame is out; if both sides stream and both
// ping, both reads can wait on writes that wait on the other's read (broken only by the ping
// timeout). And a ping behind our own bulk data is answered only after the peer has read all of
// it, a long round trip on a slow link that would look like a dead peer. Liveness is "received
// anything": the peer's data, pings and heartbeats all count, never our pings' answers alone.
//
// TLS. ws_link is a template on the stream below the WebSocket layer: beast::tcp_stream for
// plain links, beast::ssl_stream<beast::tcp_stream> for TLS ones (tls_link). Everything except
// two steps is written against `ws_` and `beast::get_lowest_layer(ws_)`, so reads, writes,
// pings, close, limits and teardown are shared, and link_ptr is one type. The two steps:
//   inbound:  TLS handshake (server side, bounded by handshake_timeout) before the HTTP read;
//             the server asks for a client certificate but never fails the handshake over it
//             (net/tls_context.cpp records the first verification error), so the accept filter
//             gets the whole picture in a peer_check and can refuse with a status and a reason
//   outbound: between on_connect() and the WebSocket handshake: SNI and the expected server
//             name on the SSL object, then the TLS handshake (client side, bounded); a failed
//             verification becomes one of the "TLS: server certificate ..." texts
// The listener keeps its ssl::context behind a mutex (set_tls_identity() swaps it); each TLS
// link holds the context it was made with (keep_) for as long as its stream lives.
// A refusal is a fixed HTTP answer written as bytes (status, reason phrase, text/plain body);
// the dialer reads the body with the refused response and appends it to its error text.
//
// Files: this header holds the link template and the dialer; net/ws_accept.hpp the listener's
// internals and the inbound handshake; ws_link.cpp the listener handle and listen*();
// ws_link_plain.cpp and ws_link_tls.cpp each instantiate one link type (plain_link, tls_link)
// with its dial and accept entry points. Split so that the
// two instantiations, most of the compile time of net/, build in parallel.
#pragma once
#include "net/connection_caps.hpp"
#include "net/runtime_state.hpp"
#include "net/tls_context.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <algorithm>
#include <charconv>
#include <deque>
#include <mutex>
#include <type_traits>


namespace hdbrepl::net {
namespace detail {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using steady = std::chrono::steady_clock;


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


struct listener_impl;

enum class phase { handshake, open, closing, finished };

template <class Stream>
class ws_link final : public link, public closable, public std::enable_shared_from_this<ws_link<Stream>> {
public:
    using done_fn = std::function<void(const link_ptr&, const std::string&)>;
    static constexpr bool is_tls = !std::is_same_v<Stream, beast::tcp_stream>;

    // `keep` holds what the stream refers to (a TLS link's ssl::context) while the stream lives.
    ws_link(std::shared_ptr<runtime_state> st, Stream&& stream, link_options options, bool inbound,
            std::shared_ptr<void> keep = {})
        : st_(std::move(st)),
          keep_(std::move(keep)),
          ws_(std::move(stream)),
          opts_(options),
          inbound_(inbound),
          ping_timer_(st_->ioc),
          deadline_(st_->ioc) {}

    // ---- link (see transport.hpp)

    bool send(std::vector<std::uint8_t> message) override {
        if (!st_->in_io_thread()) {
            log(describe() + ": send() called off the io thread; message refused");
            return false;
        }
        if (phase_ != phase::open) return false;
        std::size_t queued = queued_.load(std::memory_order_relaxed);
        if (message.size() > opts_.max_queued_bytes || queued > opts_.max_queued_bytes - message.size()) return false;
        queued_.store(queued + message.size(), std::memory_order_relaxed);
        queue_.push_back(std::move(message));
        do_write();
        return true;
    }

    std::size_t queued_bytes() const override { return queued_.load(std::memory_order_relaxed); }

    void notify_room(std::size_t bytes) override {
        if (!st_->in_io_thread() || phase_ == phase::finished) return;
        room_wanted_ = bytes;
        room_armed_ = true;
        // Room already: reported from the io_context, not from inside this call (the caller
        // is in the middle of its own sending).
        asio::post(st_->ioc, [w = this->weak_from_this()] {
            if (auto self = w.lock()) self->report_room();
        });
    }

    void close(const std::string& reason) override {
        if (!st_->in_io_thread()) {
            if (st_->stopping) return;
            asio::post(st_->ioc, [w = this->weak_from_this(), reason] {
                if (auto self = w.lock()) self->close(reason);
            });
            return;
        }
        begin_close(websocket::close_code::normal, reason, "", true);
    }

    std::string remote_address() const override { return remote_address_; }
    std::uint16_t remote_port() const override { return remote_port_; }
    bool inbound() const override { return inbound_; }
    std::string request_target() const override { return target_; }
    double latency_ms() const override { return latency_ms_.load(std::memory_order_relaxed); }

    void set_events(link_events events) override {
        if (!st_->in_io_thread()) {
            if (st_->stopping) return;
            asio::post(st_->ioc, [w = this->weak_from_this(), events = std::move(events)]() mutable {
                if (auto self = w.lock()) self->set_events(std::move(events));
            });
            return;
        }
        if (phase_ == phase::finished) return; // would only keep the callbacks alive
        events_ = std::make_shared<const link_events>(std::move(events));
    }

    bool secure() const override { return is_tls; }
    std::vector<std::string> peer_certificate_names() const override { return peer_.names; }

    // ---- closable

    void shutdown() override {
        if (phase_ == phase::finished) return;
        phase_ = phase::finished;
        hard_close();
        drop_user_state();
    }

    // ---- starting

    // io thread. An accepted TCP connection: read the upgrade request, ask the filter, accept.
    // `slot` is its place under the listener's connection caps, held until the link ends.
    void start_inbound(std::shared_ptr<listener_impl> from, std::unique_ptr<connection_counts::slot> slot);

    // io thread, before start_outbound(). How a TLS dial checks the server (ignored by plain
    // links), and the Authorization header of the upgrade request ("" = none).
    void set_client_options(bool verify_server, std::string expected_name, std::string authorization) {
        verify_server_ = verify_server;
        expected_name_ = std::move(expected_name);
        authorization_ = std::move(authorization);
    }

    // io thread. Resolve, connect (source bound to bind_address when given), TLS handshake
    // (TLS links), WebSocket handshake; done is called exactly once unless the runtime stops
    // first.
    void start_outbound(std::string host, std::uint16_t port, std::string bind_address, std::string target,
                        done_fn done) {
        host_ = std::move(host);
        port_ = port;
        bind_address_ = std::move(bind_address);
        target_ = std::move(target);
        done_ = std::move(done);
        if (st_->stopping || !st_->enroll(this->weak_from_this())) return shutdown();
        error_code ec;
        auto address = asio::ip::make_address(host_, ec);
        if (!ec) {
            endpoints_.emplace_back(address, port_);
            return connect_next();
        }
        resolver_.emplace(st_->ioc);
        resolving_ = true;
        deadline_.expires_after(opts_.handshake_timeout);
        deadline_.async_wait(step(&ws_link::on_resolve_deadline));
        resolver_->async_resolve(host_, std::to_string(port_), step(&ws_link::on_resolve));
    }

private:
    // Wraps a member function as a completion handler that keeps the link alive and turns an
    // exception into a failure of this link (nothing escapes into io_context::run()).
    template <class... Args>
    auto step(void (ws_link::*member)(Args...)) {
        return [self = this->shared_from_this(), member](auto&&... args) {
            try {
                ((*self).*member)(std::forward<decltype(args)>(args)...);
            } catch (...) {
                self->internal_error(current_exception_text());
            }
        };
    }

    auto& lowest() { return beast::get_lowest_layer(ws_); }

    std::string describe() const {
        return std::string(inbound_ ? "inbound link from " : "outbound link to ") + host_port(remote_address_, remote_port_) +
               " " + target_;
    }

    // Calls a user callback unless the runtime is stopping. Returns the failure text if it threw.
    template <class F>
    std::string call_user(const char* name, F&& f) {
        if (st_->stopping) return {};
        try {
            f();
            return {};
        } catch (...) {
            return std::string(name) + " threw: " + current_exception_text();
        }
    }

    void configure_websocket() {
        ws_.set_option(websocket::stream_base::timeout{opts_.handshake_timeout, websocket::stream_base::none(), false});
        ws_.read_message_max(opts_.max_message_bytes);
        ws_.binary(true);
        ws_.auto_fragment(false); // we frame big messages ourselves (frame_bytes)
        if (inbound_) {
            ws_.set_option(websocket::stream_base::decorator(
                [](websocket::response_type& res) { res.set(http::field::server, "hdbrepl"); }));
        } else {
            ws_.set_option(websocket::stream_base::decorator([authorization = authorization_](websocket::request_type& req) {
                req.set(http::field::user_agent, "hdbrepl");
                if (!authorization.empty()) req.set(http::field::authorization, authorization);
            }));
        }
    }

    // ---- inbound handshake

    void on_tls_accept(error_code ec) {
        if (phase_ == phase::finished) return;
        if (ec) return handshake_failed("TLS handshake: " + ec.message());
        if constexpr (is_tls) peer_ = inspect_peer(ws_.next_layer().native_handle());
        read_request();
    }
    void read_request();
    void on_request(error_code ec, std::size_t);
    void on_decision(accept_decision decision);
    void on_decision_deadline(error_code ec) {
        if (ec || phase_ != phase::handshake || !awaiting_decision_) return;
        awaiting_decision_ = false;
        handshake_failed("the accept filter did not answer within " + std::to_string(opts_.handshake_timeout.count()) + " ms");
    }
    void on_refused(error_code, std::size_t) {
        if (phase_ == phase::finished) return;
        error_code ignored;
        lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
        handshake_failed({});
    }
    void on_accept(error_code ec);

    // ---- outbound handshake

    void on_resolve_deadline(error_code ec) {
        if (ec || !resolving_ || phase_ != phase::handshake) return;
        resolve_timed_out_ = true;
        resolver_->cancel();
    }

    void on_resolve(error_code ec, tcp::resolver::results_type results) {
        if (phase_ == phase::finished) return;
        resolving_ = false;
        deadline_.cancel();
        if (resolve_timed_out_) return dial_failed("resolve " + host_ + ": timeout");
        if (ec) return dial_failed("resolve " + host_ + ": " + ec.message());
        for (const auto& entry : results) endpoints_.push_back(entry.endpoint());
        connect_next();
    }

    void connect_next() {
        asio::ip::address source;
        if (!bind_address_.empty()) {
            error_code ec;
            source = asio::ip::make_address(bind_address_, ec);
            if (ec) return dial_failed("bad bind address '" + bind_address_ + "': " + ec.message());
        }
        while (next_endpoint_ < endpoints_.size()) {
            tcp::endpoint ep = endpoints_[next_endpoint_++];
            if (!bind_address_.empty() && ep.address().is_v4() != source.is_v4()) continue; // other family
            error_code ec;
            auto& socket = lowest().socket();
            socket.close(ec);
            socket.open(ep.protocol(), ec);
            if (!ec && !bind_address_.empty()) {
                socket.bind(tcp::endpoint(source, 0), ec);
                if (ec) return dial_failed("bind source address " + bind_address_ + ": " + ec.message());
            }
            if (ec) {
                last_error_ = "connect " + host_port(address_text(ep.address()), ep.port()) + ": " + ec.message();
                continue;
            }
            connecting_ = ep;
            lowest().expires_after(opts_.handshake_timeout);
            lowest().async_connect(ep, step(&ws_link::on_connect));
            return;
        }
        dial_failed(!last_error_.empty() ? last_error_
                                         : "no address of " + host_ + " in the family of bind address " + bind_address_);
    }

    void on_connect(error_code ec) {
        if (phase_ == phase::finished) return;
        if (ec) {
            last_error_ = "connect " + host_port(address_text(connecting_.address()), connecting_.port()) + ": " + ec.message();
            return connect_next();
        }
        remote_address_ = address_text(connecting_.address());
        remote_port_ = connecting_.port();
        lowest().socket().set_option(tcp::no_delay(true), ec);
        if constexpr (is_tls) {
            auto* native = ws_.next_layer().native_handle();
            std::string bad = prepare_client(native, host_, expected_name_, verify_server_);
            if (!bad.empty()) return dial_failed("TLS: " + bad);
            lowest().expires_after(opts_.handshake_timeout);
            return ws_.next_layer().async_handshake(asio::ssl::stream_base::client, step(&ws_link::on_tls_handshake));
        }
        start_websocket_handshake();
    }

    void on_tls_handshake(error_code ec) {
        if (phase_ == phase::finished) return;
        if constexpr (is_tls) {
            auto* native = ws_.next_layer().native_handle();
            if (ec) {
                std::string why = verify_server_ ? server_verify_failure(native, expected_name_.empty() ? host_ : expected_name_) : "";
                if (why.empty()) why = "TLS handshake with " + host_port(remote_address_, remote_port_) + ": " + ec.message();
                return dial_failed(why);
            }
            peer_ = inspect_peer(native);
        }
        start_websocket_handshake();
    }

    void start_websocket_handshake() {
        lowest().expires_never(); // the WebSocket layer has its own timeouts from here on
        configure_websocket();
        ws_.async_handshake(response_, host_port(host_, port_), target_, step(&ws_link::on_handshake));
    }

    void on_handshake(error_code ec) {
        if (phase_ == phase::finished) return;
        if (ec == websocket::error::upgrade_declined) {
            std::string text = "handshake refused: HTTP " + std::to_string(response_.result_int()) + " " +
                               std::string(response_.reason());
            std::string body = refusal_text(response_.body());
            if (!body.empty()) text += ": " + body;
            return dial_failed(text);
        }
        if (ec) return dial_failed("WebSocket handshake with " + host_port(remote_address_, remote_port_) + ": " + ec.message());
        open();
        auto done = std::move(done_);
        done_ = nullptr;
        auto self = this->shared_from_this();
        std::string threw = call_user("dial callback", [&] {
            if (done) done(self, "");
        });
        if (!threw.empty()) return begin_close(websocket::close_code::internal_error, "internal error", threw, false);
        after_open();
    }

    void dial_failed(const std::string& error) {
        log("dial " + host_port(host_, port_) + " failed: " + error);
        auto done = std::move(done_);
        done_ = nullptr;
        shutdown();
        if (!done || st_->stopping) return;
        try {
            done(nullptr, error);
        } catch (...) {
            log("dial callback threw: " + current_exception_text());
        }
    }

    // An inbound handshake that ends before open (empty `why`: refused, already logged).
    void handshake_failed(const std::string& why) {
        if (!why.empty()) log("handshake with " + host_port(remote_address_, remote_port_) + " failed: " + why);
        shutdown();
    }

    // ---- open

    void open() {
        phase_ = phase::open;
        auto now = steady::now();
        last_rx_ = now;
        next_ping_ = now + opts_.ping_interval;
        read_piece_.reset(new std::uint8_t[frame_bytes]);
        // Runs inside our own read operation; `this` is alive while ws_ is.
        ws_.control_callback([this](websocket::frame_type kind, beast::string_view payload) { on_control(kind, payload); });
    }

    // After on_open / dial's done returned: start reading and pinging.
    void after_open() {
        if (phase_ != phase::open) return;
        do_read();
        arm_ping_timer();
    }

    // ---- reading

    void do_read() {
        if (phase_ != phase::open) return;
        ws_.async_read_some(asio::buffer(read_piece_.get(), frame_bytes), step(&ws_link::on_read));
    }

    void on_read(error_code ec, std::size_t n) {
        if (phase_ == phase::finished) return;
        if (ec) return on_read_error(ec);
        last_rx_ = last_data_rx_ = steady::now();
        if (phase_ != phase::open) return; // closing: the close operation reads from here on
        if (ws_.got_text()) {
            return begin_close(websocket::close_code::unknown_data, "text frames are not accepted",
                               "protocol error: text frame", false);
        }
        message_.insert(message_.end(), read_piece_.get(), read_piece_.get() + n);
        if (ws_.is_message_done()) {
            std::vector<std::uint8_t> message = std::move(message_);
            message_ = {};
            auto events = events_; // the callback may replace events_
            auto self = this->shared_from_this();
            std::string threw = call_user("on_message", [&] {
                if (events->on_message) events->on_message(self, std::move(message));
            });
            if (!threw.empty()) return begin_close(websocket::close_code::internal_error, "internal error", threw, false);
        }
        do_read();
    }

    void on_read_error(error_code ec) {
        if (ec == websocket::error::closed) {
            if (phase_ == phase::closing) return finish(close_report_); // the answer to our close
            const auto& r = ws_.reason();
            std::string text = "closed by peer (" + std::to_string(static_cast<unsigned>(r.code)) + ")";
            if (!r.reason.empty()) text += ": " + std::string(r.reason.data(), r.reason.size());
            return finish(text);
        }
        if (ec == websocket::error::message_too_big) {
            // Beast has already sent close code 1009 and torn the connection down.
            return finish("message too big (limit " + std::to_string(opts_.max_message_bytes) + " bytes)");
        }
        if (phase_ == phase::closing) {
            if (close_started_) return; // on_close or the deadline ends it
            return finish(close_report_);
        }
        finish("read: " + ec.message());
    }

    // Any control frame is a sign of life; a pong may answer one of our pings.
    void on_control(websocket::frame_type kind, beast::string_view payload) {
        auto now = steady::now();
        last_rx_ = now;
        if (kind != websocket::frame_type::pong) return;
        std::uint64_t seq = 0;
        auto [end, err] = std::from_chars(payload.data(), payload.data() + payload.size(), seq);
        if (err != std::errc{} || end != payload.data() + payload.size()) return; // not ours
        for (auto it = pings_.begin(); it != pings_.end(); ++it) {
            if (it->first != seq) continue;
            latency_ms_.store(std::chrono::duration<double, std::milli>(now - it->second).count(), std::memory_order_relaxed);
            pings_.erase(pings_.begin(), it + 1);
            return;
        }
    }

    // ---- writing: one write in flight, big messages as several frames

    void do_write() {
        if (writing_ || queue_.empty() || phase_ == phase::finished || phase_ == phase::handshake) return;
        if (phase_ == phase::closing && !flush_) return;
        const auto& message = queue_.front();
        std::size_t n = std::min(frame_bytes, message.size() - write_offset_);
        write_fin_ = write_offset_ + n == message.size();
        writing_ = true;
        ws_.async_write_some(write_fin_, asio::buffer(message.data() + write_offset_, n), step(&ws_link::on_write));
    }

    void on_write(error_code ec, std::size_t n) {
        writing_ = false;
        if (phase_ == phase::finished) return;
        if (ec) {
            if (phase_ == phase::closing) {
                if (!close_started_) start_close(); // fails fast, then finishes
                return;
            }
            return finish("write: " + ec.message());
        }
        write_offset_ += n;
        if (write_fin_ || write_offset_ >= queue_.front().size()) {
            queued_.fetch_sub(queue_.front().size(), std::memory_order_relaxed);
            queue_.pop_front();
            write_offset_ = 0;
            report_room();
        }
        do_write();
        maybe_start_close();
    }

    // Calls on_room once the queue has the room notify_room() asked for.
    void report_room() {
        if (!room_armed_ || phase_ == phase::finished) return;
        const std::size_t queued = queued_.load(std::memory_order_relaxed);
        if (queued > opts_.max_queued_bytes || opts_.max_queued_bytes - queued < room_wanted_) return;
        room_armed_ = false;
        auto events = events_;
        auto self = this->shared_from_this();
        std::string threw = call_user("on_room", [&] {
            if (events->on_room) events->on_room(self);
        });
        if (!threw.empty()) begin_close(websocket::close_code::internal_error, "internal error", threw, false);
    }

    // ---- pinging

    void arm_ping_timer() {
        if (phase_ != phase::open || opts_.ping_interval.count() <= 0) return;
        auto wake = next_ping_;
        if (opts_.ping_timeout.count() > 0) wake = std::min(wake, last_rx_ + opts_.ping_timeout);
        ping_timer_.expires_at(wake);
        ping_timer_.async_wait(step(&ws_link::on_ping_timer));
    }

    void on_ping_timer(error_code ec) {
        if (ec || phase_ != phase::open) return;
        auto now = steady::now();
        if (opts_.ping_timeout.count() > 0 && now - last_rx_ >= opts_.ping_timeout) return finish("ping timeout");
        if (now >= next_ping_) {
            if (!control_in_flight_) { // else the last control frame is still queued behind data
                bool quiet = queue_.empty() && !writing_ && now - last_data_rx_ >= opts_.ping_interval;
                if (quiet)
                    send_ping(now);
                else
                    send_heartbeat();
            }
            next_ping_ = now + opts_.ping_interval;
        }
        arm_ping_timer();
    }

    void send_ping(steady::time_point now) {
        std::uint64_t seq = ++ping_seq_;
        std::string text = std::to_string(seq);
        pings_.emplace_back(seq, now);
        if (pings_.size() > max_tracked_pings) pings_.pop_front();
        control_in_flight_ = true;
        ws_.async_ping(websocket::ping_data(text.data(), text.size()), step(&ws_link::on_control_sent));
    }

    // An unsolicited pong: "still here", without making the peer write an answer.
    void send_heartbeat() {
        control_in_flight_ = true;
        ws_.async_pong(websocket::ping_data(), step(&ws_link::on_control_sent));
    }

    void on_control_sent(error_code ec) {
        control_in_flight_ = false;
        if (phase_ != phase::open) return;
        if (ec && !aborted(ec)) finish("ping: " + ec.message()); // aborted: a close frame went first
    }

    // ---- closing

    // Stop delivering and sending; with `flush`, write what is queued first. `report` is the
    // reason on_closed will get ("" for a local close()).
    void begin_close(websocket::close_code code, const std::string& wire_reason, const std::string& report, bool flush) {
        if (phase_ != phase::open) return;
        phase_ = phase::closing;
        close_code_ = code;
        close_wire_reason_ = close_reason_text(wire_reason);
        close_report_ = report;
        flush_ = flush;
        ping_timer_.cancel();
        if (!flush) {
            while (queue_.size() > (writing_ ? 1u : 0u)) {
                queued_.fetch_sub(queue_.back().size(), std::memory_order_relaxed);
                queue_.pop_back();
            }
        }
        deadline_.expires_after(opts_.handshake_timeout);
        deadline_.async_wait(step(&ws_link::on_close_deadline));
        maybe_start_close();
    }

    void maybe_start_close() {
        if (phase_ != phase::closing || close_started_) return;
        if (flush_ && (writing_ || !queue_.empty())) return;
        start_close();
    }

    void start_close() {
        close_started_ = true;
        ws_.async_close(websocket::close_reason(close_code_, close_wire_reason_), step(&ws_link::on_close));
    }

    void on_close(error_code ec) {
        if (phase_ == phase::finished) return;
        if (ec && !aborted(ec) && ec != websocket::error::closed) log(describe() + ": close handshake: " + ec.message());
        finish(close_report_);
    }

    void on_close_deadline(error_code ec) {
        if (ec || phase_ != phase::closing) return;
        log(describe() + ": close handshake timed out");
        finish(close_report_);
    }

    // ---- the end

    // io thread. The only way an opened link ends (except shutdown()): close the socket, log
    // one line, call on_closed once.
    void finish(const std::string& report) {
        if (phase_ == phase::finished) return;
        bool was_open = phase_ == phase::open || phase_ == phase::closing;
        phase_ = phase::finished;
        hard_close();
        if (report.empty())
            log(describe() + ": closed locally" + (close_wire_reason_.empty() ? "" : " (" + close_wire_reason_ + ")"));
        else
            log(describe() + ": closed: " + report);
        auto events = std::move(events_);
        drop_user_state();
        if (!was_open || !events || !events->on_closed) return;
        auto self = this->shared_from_this();
        std::string threw = call_user("on_closed", [&] { events->on_closed(self, report); });
        if (!threw.empty()) log(describe() + ": " + threw);
    }

    void internal_error(const std::string& what) noexcept {
        try {
            log(describe() + ": internal error: " + what);
            if (phase_ == phase::handshake) {
                if (done_) return dial_failed("internal error: " + what);
                return shutdown();
            }
            finish("internal error: " + what);
        } catch (...) {
            phase_ = phase::finished;
            hard_close();
        }
    }

    void hard_close() noexcept {
        ping_timer_.cancel();
        deadline_.cancel();
        if (resolver_) resolver_->cancel();
        lowest().close();
        slot_.reset(); // the connection has ended: its place under the listener's caps is free
    }

    // Releases user callbacks (they may hold link_ptrs: no cycles survive the end) and buffers.
    void drop_user_state() {
        events_ = std::make_shared<const link_events>();
        done_ = nullptr;
        listener_.reset();
        queue_.clear();
        queued_.store(0, std::memory_order_relaxed);
        message_ = {};
        pings_.clear();
    }

    std::shared_ptr<runtime_state> st_;
    std::shared_ptr<void> keep_;          // outlives ws_ (declared before it)
    websocket::stream<Stream, false> ws_; // no permessage-deflate
    const link_options opts_;
    const bool inbound_;
    phase phase_ = phase::handshake;

    // fixed once open (read by any thread afterwards)
    std::string remote_address_;
    std::uint16_t remote_port_ = 0;
    std::string target_;
    peer_certificate peer_; // TLS: what the peer presented (set on the io thread before open)
    std::atomic<std::size_t> queued_{0};
    std::size_t room_wanted_ = 0; // notify_room(): io thread only
    bool room_armed_ = false;
    std::atomic<double> latency_ms_{-1.0};

    std::shared_ptr<const link_events> events_ = std::make_shared<const link_events>();

    // writing
    std::deque<std::vector<std::uint8_t>> queue_; // front() is being written while writing_
    std::size_t write_offset_ = 0;
    bool writing_ = false;
    bool write_fin_ = false;

    // reading
    std::unique_ptr<std::uint8_t[]> read_piece_;
    std::vector<std::uint8_t> message_;

    // pinging
    asio::steady_timer ping_timer_;
    steady::time_point last_rx_{};      // any frame, data or control
    steady::time_point last_data_rx_{}; // message data (the peer is writing to us)
    steady::time_point next_ping_{};
    bool control_in_flight_ = false;    // Beast allows one ping/pong at a time
    std::uint64_t ping_seq_ = 0;
    std::deque<std::pair<std::uint64_t, steady::time_point>> pings_;

    // closing (deadline_ is also the resolve deadline while dialing)
    asio::steady_timer deadline_;
    websocket::close_code close_code_ = websocket::close_code::normal;
    std::string close_wire_reason_;
    std::string close_report_;
    bool flush_ = false;
    bool close_started_ = false;

    // inbound handshake
    std::shared_ptr<listener_impl> listener_;
    std::unique_ptr<connection_counts::slot> slot_; // until the connection ends (hard_close)
    steady::time_point accept_deadline_{};          // TLS handshake and request read
    bool awaiting_decision_ = false;                // the accept filter has not answered yet
    beast::flat_buffer http_buffer_;
    std::optional<http::request_parser<http::empty_body>> parser_;
    std::string refusal_; // the answer being written to a refused request

    // outbound handshake
    std::string host_;
    std::uint16_t port_ = 0;
    std::string bind_address_;
    done_fn done_;
    std::optional<tcp::resolver> resolver_;
    bool resolving_ = false;
    bool resolve_timed_out_ = false;
    std::vector<tcp::endpoint> endpoints_;
    std::size_t next_endpoint_ = 0;
    tcp::endpoint connecting_;
    std::string last_error_;
    websocket::response_type response_;
    bool verify_server_ = true;
    std::string expected_name_;
    std::string authorization_;
};

using plain_link = ws_link<beast::tcp_stream>;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;
using tls_link = ws_link<tls_stream>;

template <class Link>
void start_dial(io_runtime& rt, const std::string& host, std::uint16_t port, const std::string& bind_address,
                const std::string& target, link_options options, ssl_context_ptr ctx, std::string context_error,
                tls_dial_options tls_options, std::function<void(const link_ptr&, const std::string& error)> done) {
    const auto& st = runtime_access::state(rt);
    if (st->stopping) return;
    // Always posted, also from the io thread, so `done` never runs inside dial(). The raw
    // pointer is safe for the reason given in io_runtime::post().
    runtime_state* stp = st.get();
    asio::post(stp->ioc, [stp, host, port, bind_address, target, options, ctx = std::move(ctx),
                          context_error = std::move(context_error), tls_options = std::move(tls_options),
                          done = std::move(done)]() mutable {
        if (stp->stopping) return;
        try {
            if (!context_error.empty()) {
                std::string error = "TLS: " + context_error;
                log("dial " + host_port(host, port) + " failed: " + error);
                try {
                    if (done) done(nullptr, error);
                } catch (...) {
                    log("dial callback threw: " + current_exception_text());
                }
                return;
            }
            std::shared_ptr<Link> l;
            if constexpr (Link::is_tls)
                l = std::make_shared<Link>(stp->shared_from_this(), tls_stream(beast::tcp_stream(stp->ioc), *ctx), options, false, ctx);
            else
                l = std::make_shared<Link>(stp->shared_from_this(), beast::tcp_stream(stp->ioc), options, false);
            l->set_client_options(tls_options.verify_server, std::move(tls_options.expected_name), std::move(tls_options.authorization));
            l->start_outbound(host, port, bind_address, target, std::move(done));
        } catch (...) {
            log("dial " + host_port(host, port) + ": " + current_exception_text());
        }
    });
}

} // namespace detail
} // namespace hdbrepl::net
