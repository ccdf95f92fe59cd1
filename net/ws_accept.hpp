// Internal to net/: the listener's internals — the TCP accept loop, the connection caps taken
// at the accept (connection_caps.hpp), the rate-limited log of refusals over them, and the TLS
// context for the next connection. Each accepted connection is handed, through
// start_inbound_plain/start_inbound_tls, to a ws_acceptor (net/ws_acceptor.hpp) for its
// handshake (net/ws_common.hpp: a link's life).
// Everything here runs on the io thread, except tls_context()/set_tls_context() (any thread).
#pragma once
#include "net/ws_common.hpp"

#include <mutex>

namespace hdbrepl::net {
namespace detail {

// io thread. A ws_acceptor for an accepted connection, started; each is defined with its stream
// type's code (ws_link_plain.cpp, ws_link_tls.cpp), so that the listener's own code instantiates
// neither.
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

} // namespace detail
} // namespace hdbrepl::net
