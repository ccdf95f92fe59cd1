// TLS (wss://) links: the session, dialer and acceptor instantiated for tls_stream, an accepted
// connection's start, and dial_tls() (net/ws_common.hpp describes how the files divide the
// work).
#include "net/ws_acceptor.hpp"
#include "net/ws_dialer.hpp"

namespace hdbrepl::net {
namespace detail {

template class ws_session<tls_stream>;
template class ws_dialer<tls_stream>;
template class ws_acceptor<tls_stream>;

void start_inbound_tls(std::shared_ptr<listener_impl> from, tcp::socket socket, std::unique_ptr<connection_counts::slot> slot) {
    // The context of this moment: set_tls_identity() may swap the listener's for later connections.
    auto ctx = from->tls_context();
    auto a = std::make_shared<ws_acceptor<tls_stream>>(from->st, tls_stream(beast::tcp_stream(std::move(socket)), *ctx),
                                                       from->options, ctx);
    a->start(std::move(from), std::move(slot));
}

} // namespace detail

void dial_tls(io_runtime& rt, const std::string& host, std::uint16_t port, const std::string& bind_address,
              const std::string& target, link_options options, std::shared_ptr<const tls_identity> identity,
              tls_dial_options tls_options, std::function<void(const link_ptr&, const std::string& error)> done) {
    if (detail::runtime_access::state(rt)->stopping) return;
    auto made = detail::make_client_context(identity.get(), tls_options.verify_server);
    detail::start_dial<detail::tls_stream>(rt, host, port, bind_address, target, options, std::move(made.context),
                                           std::move(made.error), std::move(tls_options), std::move(done));
}

} // namespace hdbrepl::net
