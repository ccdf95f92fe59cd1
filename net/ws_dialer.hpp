// Internal to net/: ws_dialer, one outbound connection up to its open link — resolve, bind the
// source address, connect, the TLS handshake (TLS links), the WebSocket handshake — ending in a
// ws_session handed to dial's done (net/ws_common.hpp: a link's life). start_dial() is what
// dial() and dial_tls() call.
//
// Threads. Every member runs on the io thread, and so does dial's done: start_dial() posts
// there even when called on it, so done never runs inside dial().
//
// Each step is bounded by handshake_timeout: the resolve by deadline_ (cancelling the
// resolver), connect and TLS handshake by the tcp_stream's own expiry, the WebSocket handshake
// by Beast's handshake timeout. A failure is logged ("dial <host:port> failed: <why>") and given
// to done, never to on_closed (there is no link yet).
//
// TLS: between the connect and the WebSocket handshake, SNI and the expected server name go on
// the SSL object, then the client handshake; a failed verification becomes one of the "TLS:
// server certificate ..." texts of transport.hpp.
#pragma once
#include "net/ws_session.hpp"

#include <optional>
#include <vector>

namespace hdbrepl::net {
namespace detail {

template <class Stream>
class ws_dialer final : public closable, public std::enable_shared_from_this<ws_dialer<Stream>> {
public:
    using done_fn = std::function<void(const link_ptr&, const std::string&)>;
    static constexpr bool is_tls = is_tls_stream<Stream>;

    // `keep` holds what the stream refers to (a TLS link's ssl::context) while the stream lives.
    ws_dialer(std::shared_ptr<runtime_state> st, Stream&& stream, link_options options, std::shared_ptr<void> keep = {})
        : st_(std::move(st)), keep_(std::move(keep)), ws_(std::move(stream)), opts_(options), deadline_(st_->ioc) {}

    // io thread, before start(). How a TLS dial checks the server (ignored by plain links), and
    // the Authorization header of the upgrade request ("" = none).
    void set_client_options(bool verify_server, std::string expected_name, std::string authorization) {
        verify_server_ = verify_server;
        expected_name_ = std::move(expected_name);
        authorization_ = std::move(authorization);
    }

    // io thread. Resolve, connect (source bound to bind_address when given), TLS handshake (TLS
    // links), WebSocket handshake; done is called exactly once unless the runtime stops first.
    void start(std::string host, std::uint16_t port, std::string bind_address, std::string target, done_fn done) {
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
        deadline_.async_wait(step(&ws_dialer::on_resolve_deadline));
        resolver_->async_resolve(host_, std::to_string(port_), step(&ws_dialer::on_resolve));
    }

    // closable (stop_and_join), and the end of every failed dial: no callback. A no-op once the
    // stream has gone to the session.
    void shutdown() override {
        if (finished_) return;
        finished_ = true;
        hard_close();
        done_ = nullptr;
    }

    // io thread (bind_step): an unexpected exception inside this class fails the dial.
    void internal_error(const std::string& what) noexcept {
        try {
            log(link_description(false, remote_address_, remote_port_, target_) + ": internal error: " + what);
            if (done_) return dial_failed("internal error: " + what);
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
    auto step(void (ws_dialer::*member)(Args...)) {
        return bind_step(this->shared_from_this(), member);
    }

    auto& lowest() { return beast::get_lowest_layer(ws_); }

    void on_resolve_deadline(error_code ec) {
        if (ec || !resolving_ || finished_) return;
        resolve_timed_out_ = true;
        resolver_->cancel();
    }

    void on_resolve(error_code ec, tcp::resolver::results_type results) {
        if (finished_) return;
        resolving_ = false;
        deadline_.cancel();
        if (resolve_timed_out_) return dial_failed("resolve " + host_ + ": timeout");
        if (ec) return dial_failed("resolve " + host_ + ": " + ec.message());
        for (const auto& entry : results) endpoints_.push_back(entry.endpoint());
        connect_next();
    }

    // Tries the resolved addresses in order; with a bind address, only those of its family.
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
            lowest().async_connect(ep, step(&ws_dialer::on_connect));
            return;
        }
        dial_failed(!last_error_.empty() ? last_error_
                                         : "no address of " + host_ + " in the family of bind address " + bind_address_);
    }

    void on_connect(error_code ec) {
        if (finished_) return;
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
            return ws_.next_layer().async_handshake(asio::ssl::stream_base::client, step(&ws_dialer::on_tls_handshake));
        }
        start_websocket_handshake();
    }

    void on_tls_handshake(error_code ec) {
        if (finished_) return;
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
        ws_.set_option(websocket::stream_base::timeout{opts_.handshake_timeout, websocket::stream_base::none(), false});
        ws_.read_message_max(opts_.max_message_bytes);
        ws_.binary(true);
        ws_.auto_fragment(false); // the session frames big messages itself (frame_bytes)
        ws_.set_option(websocket::stream_base::decorator([authorization = authorization_](websocket::request_type& req) {
            req.set(http::field::user_agent, "hdbrepl");
            if (!authorization.empty()) req.set(http::field::authorization, authorization);
        }));
        ws_.async_handshake(response_, host_port(host_, port_), target_, step(&ws_dialer::on_handshake));
    }

    // The end of the handshake: a refusal (with the server's reason) or the open link.
    void on_handshake(error_code ec) {
        if (finished_) return;
        if (ec == websocket::error::upgrade_declined) {
            std::string text = "handshake refused: HTTP " + std::to_string(response_.result_int()) + " " +
                               std::string(response_.reason());
            std::string body = refusal_text(response_.body());
            if (!body.empty()) text += ": " + body;
            return dial_failed(text);
        }
        if (ec) return dial_failed("WebSocket handshake with " + host_port(remote_address_, remote_port_) + ": " + ec.message());
        // From here the stream is the session's; this object touches it no more.
        finished_ = true;
        auto done = std::move(done_);
        done_ = nullptr;
        handshake_result r;
        r.inbound = false;
        r.remote_address = remote_address_;
        r.remote_port = remote_port_;
        r.target = target_;
        r.peer = std::move(peer_);
        r.keep = keep_;
        auto session = ws_session<Stream>::start(st_, std::move(ws_), opts_, std::move(r));
        if (!session) return; // the runtime has shut down: no callback
        session->run("dial callback", [&](const link_ptr& l) {
            if (done) done(l, "");
        });
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

    void hard_close() noexcept {
        deadline_.cancel();
        if (resolver_) resolver_->cancel();
        lowest().close();
    }

    std::shared_ptr<runtime_state> st_;
    std::shared_ptr<void> keep_; // outlives ws_ (declared before it)
    ws_stream<Stream> ws_;       // moved to the session when the handshake succeeds
    const link_options opts_;
    bool finished_ = false; // failed, shut down, or handed to the session

    std::string host_;
    std::uint16_t port_ = 0;
    std::string bind_address_;
    std::string target_;
    done_fn done_;
    bool verify_server_ = true;
    std::string expected_name_;
    std::string authorization_;

    asio::steady_timer deadline_; // the resolve's
    std::optional<tcp::resolver> resolver_;
    bool resolving_ = false;
    bool resolve_timed_out_ = false;
    std::vector<tcp::endpoint> endpoints_;
    std::size_t next_endpoint_ = 0;
    tcp::endpoint connecting_;
    std::string last_error_;

    std::string remote_address_; // the address connected to
    std::uint16_t remote_port_ = 0;
    peer_certificate peer_; // TLS: what the server presented
    websocket::response_type response_;
};

// Any thread. What dial() and dial_tls() do: on the io thread, a ws_dialer for a new stream of
// type Stream (TLS: made with ctx, or done gets "TLS: <context_error>" when the client context
// could not be built).
template <class Stream>
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
            std::shared_ptr<ws_dialer<Stream>> d;
            if constexpr (is_tls_stream<Stream>)
                d = std::make_shared<ws_dialer<Stream>>(stp->shared_from_this(), tls_stream(beast::tcp_stream(stp->ioc), *ctx), options, ctx);
            else
                d = std::make_shared<ws_dialer<Stream>>(stp->shared_from_this(), beast::tcp_stream(stp->ioc), options);
            d->set_client_options(tls_options.verify_server, std::move(tls_options.expected_name), std::move(tls_options.authorization));
            d->start(host, port, bind_address, target, std::move(done));
        } catch (...) {
            log("dial " + host_port(host, port) + ": " + current_exception_text());
        }
    });
}

} // namespace detail
} // namespace hdbrepl::net
