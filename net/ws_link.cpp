// WebSocket listeners: the listener handle and listen*() (net/ws_common.hpp describes a
// link's life and how these files divide the work).
#include "net/ws_accept.hpp"

namespace hdbrepl::net {

using detail::log;

// ---- listener handle

listener::listener(std::shared_ptr<detail::listener_impl> impl) : impl_(std::move(impl)) {}

listener::~listener() { close(); }

void listener::close() {
    if (!impl_) return;
    auto& st = impl_->st;
    if (st->in_io_thread()) {
        impl_->close_now();
    } else if (!st->stopping) {
        detail::asio::post(st->ioc, [w = std::weak_ptr<detail::listener_impl>(impl_)] {
            if (auto l = w.lock()) l->close_now();
        });
    }
}

std::uint16_t listener::port() const { return impl_ ? impl_->port : 0; }

std::string listener::set_tls_identity(std::shared_ptr<const tls_identity> identity) {
    if (!impl_ || !impl_->tls) return "not a TLS listener";
    if (!identity) return "no identity";
    auto made = detail::make_server_context(*identity);
    if (!made.context) {
        log("listener " + impl_->where + ": new TLS identity refused: " + made.error);
        return made.error;
    }
    impl_->set_tls_context(std::move(made.context));
    log("listener " + impl_->where + ": new TLS identity in use");
    return {};
}

namespace detail {
namespace {

std::shared_ptr<listener> start_listener(io_runtime& rt, const char* what, const std::string& bind_address, std::uint16_t port,
                                         link_options options, listener_impl::filter_fn filter,
                                         std::function<void(const link_ptr&)> on_open, std::shared_ptr<const tls_identity> identity,
                                         std::string& error) {
    const auto& st = runtime_access::state(rt);
    error.clear();
    std::string where = host_port(bind_address, port);
    auto fail = [&](const std::string& why) -> std::shared_ptr<listener> {
        error = std::string(what) + " " + where + ": " + why;
        log(error);
        return nullptr;
    };
    if (st->stopping) return fail("io runtime stopped");
    try {
        ssl_context_ptr ctx;
        if (identity) {
            auto made = make_server_context(*identity);
            if (!made.context) return fail(made.error);
            ctx = std::move(made.context);
        } else if (std::string(what) == "listen_tls") {
            return fail("no TLS identity");
        }
        error_code ec;
        auto address = asio::ip::make_address(bind_address, ec);
        if (ec) return fail("bad address: " + ec.message());
        auto impl = std::make_shared<listener_impl>(st, options, std::move(filter), std::move(on_open), std::move(ctx));
        tcp::endpoint ep(address, port);
        auto& acceptor = impl->acceptor;
        acceptor.open(ep.protocol(), ec);
        if (ec) return fail("open: " + ec.message());
        acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
        if (ec) return fail("reuse_address: " + ec.message());
        acceptor.bind(ep, ec);
        if (ec) return fail("bind: " + ec.message());
        acceptor.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) return fail("listen: " + ec.message());
        impl->port = acceptor.local_endpoint(ec).port();
        impl->where = host_port(address_text(address), impl->port);
        if (st->in_io_thread()) {
            impl->start();
        } else {
            asio::post(st->ioc, [w = std::weak_ptr<listener_impl>(impl)] {
                if (auto l = w.lock()) l->start();
            });
        }
        return std::make_shared<listener>(std::move(impl));
    } catch (...) {
        return fail(current_exception_text());
    }
}

} // namespace
} // namespace detail

namespace {

// The synchronous filters as asynchronous ones that answer during the call.
async_accept_filter answering_now(std::function<accept_decision(const peer_check&)> f) {
    if (!f) return nullptr;
    return [f = std::move(f)](const peer_check& c, respond_fn respond) { respond(f(c)); };
}

accept_decision verified_only(const peer_check& c) {
    if (c.certificate_verified) return accept_decision{};
    return accept_decision{403, "client certificate not verified: " + c.verify_error};
}

} // namespace

std::shared_ptr<listener> listen(io_runtime& rt, const std::string& bind_address, std::uint16_t port, link_options options,
                                 std::function<bool(const std::string&, const std::string&)> accept_filter,
                                 std::function<void(const link_ptr&)> on_open, std::string& error) {
    std::function<accept_decision(const peer_check&)> filter;
    if (accept_filter) {
        filter = [f = std::move(accept_filter)](const peer_check& c) {
            return f(c.remote_ip, c.target) ? accept_decision{} : accept_decision{403, {}};
        };
    }
    return listen_checked(rt, bind_address, port, options, std::move(filter), std::move(on_open), error);
}

std::shared_ptr<listener> listen_checked(io_runtime& rt, const std::string& bind_address, std::uint16_t port,
                                         link_options options, std::function<accept_decision(const peer_check&)> filter,
                                         std::function<void(const link_ptr&)> on_open, std::string& error) {
    return listen_checked_async(rt, bind_address, port, options, answering_now(std::move(filter)), std::move(on_open), error);
}

std::shared_ptr<listener> listen_tls(io_runtime& rt, const std::string& bind_address, std::uint16_t port,
                                     link_options options, std::shared_ptr<const tls_identity> identity,
                                     std::function<accept_decision(const peer_check&)> filter,
                                     std::function<void(const link_ptr&)> on_open, std::string& error) {
    return listen_tls_async(rt, bind_address, port, options, std::move(identity), answering_now(std::move(filter)),
                            std::move(on_open), error);
}

std::shared_ptr<listener> listen_checked_async(io_runtime& rt, const std::string& bind_address, std::uint16_t port,
                                               link_options options, async_accept_filter filter,
                                               std::function<void(const link_ptr&)> on_open, std::string& error) {
    if (!filter) filter = [](const peer_check&, respond_fn respond) { respond({}); };
    return detail::start_listener(rt, "listen", bind_address, port, options, std::move(filter), std::move(on_open), nullptr, error);
}

std::shared_ptr<listener> listen_tls_async(io_runtime& rt, const std::string& bind_address, std::uint16_t port,
                                           link_options options, std::shared_ptr<const tls_identity> identity,
                                           async_accept_filter filter, std::function<void(const link_ptr&)> on_open,
                                           std::string& error) {
    if (!filter) filter = answering_now(verified_only);
    return detail::start_listener(rt, "listen_tls", bind_address, port, options, std::move(filter), std::move(on_open),
                                  std::move(identity), error);
}

} // namespace hdbrepl::net
