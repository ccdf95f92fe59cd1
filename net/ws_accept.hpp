// Internal to net/: the listener's internals and the inbound handshake of ws_link (see
// net/ws_link_impl.hpp for a link's life): the connection caps taken at the accept
// (connection_caps.hpp), one deadline for the TLS handshake and the upgrade request, the accept
// filter whose answer may come later from any thread, then the refusal or the WebSocket accept.
// Everything here runs on the io thread, except a filter's `respond`, which posts to it.
#pragma once
#include "net/ws_link_impl.hpp"

namespace hdbrepl::net {
namespace detail {

// A link for an accepted connection, started; each is defined with its link type's code
// (ws_link_plain.cpp, ws_link_tls.cpp), so that the listener's own code instantiates neither.
void start_inbound_plain(std::shared_ptr<listener_impl> from, tcp::socket socket, std::unique_ptr<connection_counts::slot> slot);
void start_inbound_tls(std::shared_ptr<listener_impl> from, tcp::socket socket, std::unique_ptr<connection_counts::slot> slot);

// ---- listener

struct listener_impl : closable, std::enable_shared_from_this<listener_impl> {
    using filter_fn = async_accept_filter; // never null (listen*() supply the default)
    using open_fn = std::function<void(const link_ptr&)>;

    // `tls_context` null: a plain listener.
    listener_impl(std::shared_ptr<runtime_state> st, link_options options, filter_fn filter, open_fn on_open,
                  ssl_context_ptr tls_context)
        : st(std::move(st)), acceptor(this->st->ioc), retry(this->st->ioc), options(options), filter(std::move(filter)),
          on_open(std::move(on_open)), tls(tls_context != nullptr),
          counts(std::make_shared<connection_counts>(options.max_connections_per_address, options.max_connections)),
          tls_context_(std::move(tls_context)) {}

    // Any thread. The TLS context for the next accepted connection.
    ssl_context_ptr tls_context() const {
        std::lock_guard lk(tls_mu_);
        return tls_context_;
    }
    void set_tls_context(ssl_context_ptr c) {
        std::lock_guard lk(tls_mu_);
        tls_context_ = std::move(c);
    }

    // io thread.
    void start() {
        if (closed || st->stopping || !st->enroll(weak_from_this())) return close_now();
        do_accept();
    }

    void do_accept() {
        acceptor.async_accept([self = shared_from_this()](error_code ec, tcp::socket socket) {
            try {
                self->on_accept(ec, std::move(socket));
            } catch (...) {
                log("listener " + self->where + ": " + current_exception_text());
                self->retry_later();
            }
        });
    }

    void on_accept(error_code ec, tcp::socket socket) {
        if (closed) return;
        if (ec) {
            if (aborted(ec)) return;
            log("listener " + where + ": accept: " + ec.message());
            return retry_later(); // e.g. out of file descriptors: do not spin
        }
        // The caps are checked before anything is read or any TLS is done: a refused
        // connection costs one accept and one close.
        error_code peer_ec;
        auto peer = socket.remote_endpoint(peer_ec);
        if (peer_ec) return do_accept(); // already gone
        std::string why;
        auto slot = counts->take(address_text(peer.address()), why);
        if (!slot) {
            log_refusal("refused " + host_port(address_text(peer.address()), peer.port()) + " on " + where + ": " + why);
            socket.close(peer_ec);
            return do_accept();
        }
        if (tls)
            start_inbound_tls(shared_from_this(), std::move(socket), std::move(slot));
        else
            start_inbound_plain(shared_from_this(), std::move(socket), std::move(slot));
        do_accept();
    }

    // io thread. A refusal over the caps is logged, at most refusal_lines_per_second a second
    // (a flood of connections must not become a flood of log lines); the ones left out are
    // counted in the next line logged.
    void log_refusal(const std::string& line) {
        static constexpr int refusal_lines_per_second = 10;
        auto now = steady::now();
        if (now - refusal_window_ >= std::chrono::seconds(1)) {
            refusal_window_ = now;
            refusal_lines_ = 0;
        }
        if (refusal_lines_ >= refusal_lines_per_second) {
            ++refusals_unlogged_;
            return;
        }
        ++refusal_lines_;
        std::string more;
        if (refusals_unlogged_ != 0)
            more = " (and " + std::to_string(refusals_unlogged_) + " more refused over the caps before this, not logged)";
        refusals_unlogged_ = 0;
        log(line + more);
    }

    void retry_later() {
        retry.expires_after(std::chrono::milliseconds(100));
        retry.async_wait([self = shared_from_this()](error_code ec) {
            if (!ec && !self->closed) self->do_accept();
        });
    }

    // io thread.
    void close_now() {
        closed = true;
        error_code ignored;
        acceptor.close(ignored);
        retry.cancel();
    }

    void shutdown() override { close_now(); }

    std::shared_ptr<runtime_state> st;
    tcp::acceptor acceptor;
    asio::steady_timer retry;
    const link_options options;
    const filter_fn filter;
    const open_fn on_open;
    std::uint16_t port = 0;
    std::string where; // "address:port", for log lines
    bool closed = false; // io thread
    const bool tls;
    const std::shared_ptr<connection_counts> counts;
    steady::time_point refusal_window_{}; // log_refusal (io thread)
    int refusal_lines_ = 0;
    std::size_t refusals_unlogged_ = 0;

private:
    mutable std::mutex tls_mu_;
    ssl_context_ptr tls_context_;
};

template <class Stream>
void ws_link<Stream>::start_inbound(std::shared_ptr<listener_impl> from, std::unique_ptr<connection_counts::slot> slot) {
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
        return ws_.next_layer().async_handshake(asio::ssl::stream_base::server, step(&ws_link::on_tls_accept));
    }
    read_request();
}

template <class Stream>
void ws_link<Stream>::read_request() {
    parser_.emplace();
    parser_->header_limit(max_request_header);
    // One deadline from the accept for the TLS handshake and the whole request, however it
    // trickles in.
    lowest().expires_at(accept_deadline_);
    http::async_read(ws_.next_layer(), http_buffer_, *parser_, step(&ws_link::on_request));
}

template <class Stream>
void ws_link<Stream>::on_request(error_code ec, std::size_t) {
    if (phase_ == phase::finished) return;
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
    deadline_.async_wait(step(&ws_link::on_decision_deadline));
    // Any thread: the first answer is posted to the io thread; neither the link nor the
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
            auto l = self.lock();
            if (!l) return;
            try {
                l->on_decision(std::move(decision));
            } catch (...) {
                l->internal_error(current_exception_text());
            }
        });
    };
    std::string threw = call_user("accept_filter", [&] { listener_->filter(check, respond); });
    if (!threw.empty()) {
        log(threw);
        if (!answered->exchange(true)) on_decision({403, {}});
    }
}

template <class Stream>
void ws_link<Stream>::on_decision(accept_decision decision) {
    if (phase_ != phase::handshake || !awaiting_decision_) return; // timed out, or the link is gone
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
        return asio::async_write(ws_.next_layer(), asio::buffer(refusal_), step(&ws_link::on_refused));
    }
    configure_websocket();
    ws_.async_accept(parser_->get(), step(&ws_link::on_accept));
}

template <class Stream>
void ws_link<Stream>::on_accept(error_code ec) {
    if (phase_ == phase::finished) return;
    if (ec) return handshake_failed("WebSocket accept: " + ec.message());
    auto from = std::move(listener_);
    listener_.reset();
    if (from->closed || st_->stopping) return shutdown();
    parser_.reset();
    http_buffer_ = {};
    open();
    auto self = this->shared_from_this();
    std::string threw = call_user("on_open", [&] {
        if (from->on_open) from->on_open(self);
    });
    if (!threw.empty()) return begin_close(websocket::close_code::internal_error, "internal error", threw, false);
    after_open();
}

} // namespace detail
} // namespace hdbrepl::net
