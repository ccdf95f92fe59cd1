// Internal to net/: ws_acceptor, one accepted TCP connection up to its open link — the TLS
// handshake (TLS listeners), the HTTP upgrade request, the accept filter, then the refusal or
// the WebSocket accept — ending in a ws_session handed to the listener's on_open
// (net/ws_common.hpp: a link's life). The listener that accepts the TCP connections and
// applies the connection caps is in net/ws_accept.hpp.
//
// Threads. Every member runs on the io thread, and so does the accept filter and on_open. The
// one exception is the filter's `respond`, which may be called on any thread and posts the
// decision to the io thread.
//
// Deadlines: one, from the accept, for the TLS handshake and the whole request however it
// trickles in (the tcp_stream's expiry); then handshake_timeout for the filter's answer
// (deadline_); then handshake_timeout for writing a refusal (the tcp_stream's expiry) or for the
// WebSocket accept (Beast's handshake timeout). A failure is logged ("handshake with <ip:port>
// failed: <why>") and the connection closed; the user hears nothing (there is no link yet).
//
// TLS: the server asks for a client certificate but never fails the handshake over it
// (net/tls_context.cpp records the first verification error), so the accept filter gets the
// whole picture in a peer_check and can refuse with a status and a reason.
#pragma once
#include "net/ws_accept.hpp"
#include "net/ws_session.hpp"

#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

#include <atomic>
#include <optional>

namespace hdbrepl::net {
namespace detail {

template <class Stream>
class ws_acceptor final : public closable, public std::enable_shared_from_this<ws_acceptor<Stream>> {
public:
    static constexpr bool is_tls = is_tls_stream<Stream>;

    // `keep` holds what the stream refers to (a TLS link's ssl::context) while the stream lives.
    ws_acceptor(std::shared_ptr<runtime_state> st, Stream&& stream, link_options options, std::shared_ptr<void> keep = {})
        : st_(std::move(st)), keep_(std::move(keep)), ws_(std::move(stream)), opts_(options), deadline_(st_->ioc) {}

    // io thread. Starts the handshake of a connection `from` accepted. `slot` is its place under
    // the listener's connection caps, held until the connection ends (by the session, if it
    // opens).
    void start(std::shared_ptr<listener_impl> from, std::unique_ptr<connection_counts::slot> slot) {
        listener_ = std::move(from);
        slot_ = std::move(slot);
        accept_deadline_ = steady::now() + opts_.handshake_timeout;
        if (st_->stopping || !st_->enroll(this->weak_from_this())) return shutdown();
        error_code ec;
        auto ep = lowest().socket().remote_endpoint(ec);
        if (ec) return shutdown(); // already gone
        remote_address_ = address_text(ep.address());
        remote_port_ = ep.port();
        lowest().socket().set_option(tcp::no_delay(true), ec);
        if constexpr (is_tls) {
            lowest().expires_at(accept_deadline_);
            return ws_.next_layer().async_handshake(asio::ssl::stream_base::server, step(&ws_acceptor::on_tls_accept));
        }
        read_request();
    }

    // closable (stop_and_join), and the end of every failed handshake: no callback. A no-op once
    // the stream has gone to the session.
    void shutdown() override {
        if (finished_) return;
        finished_ = true;
        hard_close();
        listener_.reset();
    }

    // io thread (bind_step, and a posted decision): an unexpected exception inside this class
    // drops the connection.
    void internal_error(const std::string& what) noexcept {
        try {
            log(link_description(true, remote_address_, remote_port_, target_) + ": internal error: " + what);
            shutdown();
        } catch (...) {
            if (!finished_) {
                finished_ = true;
                hard_close();
            }
        }
    }

private:
    template <class... Args>
    auto step(void (ws_acceptor::*member)(Args...)) {
        return bind_step(this->shared_from_this(), member);
    }

    auto& lowest() { return beast::get_lowest_layer(ws_); }

    void on_tls_accept(error_code ec) {
        if (finished_) return;
        if (ec) return handshake_failed("TLS handshake: " + ec.message());
        if constexpr (is_tls) peer_ = inspect_peer(ws_.next_layer().native_handle());
        read_request();
    }

    void read_request() {
        parser_.emplace();
        parser_->header_limit(max_request_header);
        // One deadline from the accept for the TLS handshake and the whole request, however it
        // trickles in.
        lowest().expires_at(accept_deadline_);
        http::async_read(ws_.next_layer(), http_buffer_, *parser_, step(&ws_acceptor::on_request));
    }

    // The request is in: ask the filter, whose answer may come later and from any thread.
    void on_request(error_code ec, std::size_t) {
        if (finished_) return;
        if (ec) return handshake_failed("reading the upgrade request: " + ec.message());
        if (listener_->closed || st_->stopping) return shutdown();
        lowest().expires_never(); // the decision has its own deadline, then the refusal or the accept theirs
        const auto& req = parser_->get();
        target_ = std::string(req.target());
        peer_check check;
        check.remote_ip = remote_address_;
        check.target = target_;
        check.authorization = std::string(req[http::field::authorization]);
        check.tls = is_tls;
        check.certificate_presented = peer_.presented;
        check.certificate_verified = peer_.verified;
        check.verify_error = peer_.verify_error;
        check.certificate_names = peer_.names;
        check.certificate_pem = peer_.pem;
        awaiting_decision_ = true;
        deadline_.expires_after(opts_.handshake_timeout);
        deadline_.async_wait(step(&ws_acceptor::on_decision_deadline));
        // Any thread: the first answer is posted to the io thread; neither this object nor the
        // runtime is kept alive by `respond`.
        auto answered = std::make_shared<std::atomic<bool>>(false);
        respond_fn respond = [rt = std::weak_ptr<runtime_state>(st_), self = this->weak_from_this(), answered,
                              who = host_port(remote_address_, remote_port_)](accept_decision decision) {
            if (answered->exchange(true)) {
                log("accept filter answered twice for " + who + ": the later answer is ignored");
                return;
            }
            auto st = rt.lock();
            if (!st || st->stopping) return;
            asio::post(st->ioc, [self, decision = std::move(decision)]() mutable {
                auto a = self.lock();
                if (!a) return;
                try {
                    a->on_decision(std::move(decision));
                } catch (...) {
                    a->internal_error(current_exception_text());
                }
            });
        };
        std::string threw = call_user(*st_, "accept_filter", [&] { listener_->filter(check, respond); });
        if (!threw.empty()) {
            log(threw);
            if (!answered->exchange(true)) on_decision({403, {}});
        }
    }

    void on_decision(accept_decision decision) {
        if (finished_ || !awaiting_decision_) return; // timed out, or the connection is gone
        awaiting_decision_ = false;
        deadline_.cancel();
        if (listener_->closed || st_->stopping) return shutdown();
        if (decision.http_status != 0) {
            log("refused " + host_port(remote_address_, remote_port_) + " " + target_ + " on " + listener_->where +
                " (accept_filter" +
                (decision.http_status == 403 && decision.reason.empty()
                     ? std::string()
                     : ": HTTP " + std::to_string(decision.http_status) + (decision.reason.empty() ? "" : ": " + decision.reason)) +
                ")");
            refusal_ = refusal_response(decision.http_status, decision.reason);
            lowest().expires_after(opts_.handshake_timeout);
            return asio::async_write(ws_.next_layer(), asio::buffer(refusal_), step(&ws_acceptor::on_refused));
        }
        ws_.set_option(websocket::stream_base::timeout{opts_.handshake_timeout, websocket::stream_base::none(), false});
        ws_.read_message_max(opts_.max_message_bytes);
        ws_.binary(true);
        ws_.auto_fragment(false); // the session frames big messages itself (frame_bytes)
        ws_.set_option(websocket::stream_base::decorator(
            [](websocket::response_type& res) { res.set(http::field::server, "hdbrepl"); }));
        ws_.async_accept(parser_->get(), step(&ws_acceptor::on_accept));
    }

    void on_decision_deadline(error_code ec) {
        if (ec || finished_ || !awaiting_decision_) return;
        awaiting_decision_ = false;
        handshake_failed("the accept filter did not answer within " + std::to_string(opts_.handshake_timeout.count()) + " ms");
    }

    // The refusal is written: end our side, then close (the dialer reads the body first).
    void on_refused(error_code, std::size_t) {
        if (finished_) return;
        error_code ignored;
        lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
        handshake_failed({});
    }

    // The WebSocket accept is done: the connection becomes a session, handed to on_open.
    void on_accept(error_code ec) {
        if (finished_) return;
        if (ec) return handshake_failed("WebSocket accept: " + ec.message());
        auto from = std::move(listener_);
        listener_.reset();
        if (from->closed || st_->stopping) return shutdown();
        // From here the stream is the session's; this object touches it no more.
        finished_ = true;
        handshake_result r;
        r.inbound = true;
        r.remote_address = remote_address_;
        r.remote_port = remote_port_;
        r.target = target_;
        r.peer = std::move(peer_);
        r.keep = keep_;
        r.slot = std::move(slot_);
        parser_.reset();
        http_buffer_ = {};
        auto session = ws_session<Stream>::start(st_, std::move(ws_), opts_, std::move(r));
        if (!session) return; // the runtime has shut down: no callback
        session->run("on_open", [&](const link_ptr& l) {
            if (from->on_open) from->on_open(l);
        });
    }

    // A handshake that ends before open (empty `why`: refused, already logged).
    void handshake_failed(const std::string& why) {
        if (!why.empty()) log("handshake with " + host_port(remote_address_, remote_port_) + " failed: " + why);
        shutdown();
    }

    void hard_close() noexcept {
        deadline_.cancel();
        lowest().close();
        slot_.reset(); // the connection has ended: its place under the listener's caps is free
    }

    std::shared_ptr<runtime_state> st_;
    std::shared_ptr<void> keep_; // outlives ws_ (declared before it)
    ws_stream<Stream> ws_;       // moved to the session when the handshake succeeds
    const link_options opts_;
    bool finished_ = false; // failed, shut down, or handed to the session

    std::shared_ptr<listener_impl> listener_;
    std::unique_ptr<connection_counts::slot> slot_; // until the connection ends, or the session's
    steady::time_point accept_deadline_{};          // TLS handshake and request read
    asio::steady_timer deadline_;                   // the accept filter's answer
    bool awaiting_decision_ = false;                // the accept filter has not answered yet
    beast::flat_buffer http_buffer_;
    std::optional<http::request_parser<http::empty_body>> parser_;
    std::string refusal_; // the answer being written to a refused request

    std::string remote_address_;
    std::uint16_t remote_port_ = 0;
    std::string target_;    // the upgrade request's
    peer_certificate peer_; // TLS: what the client presented
};

} // namespace detail
} // namespace hdbrepl::net
