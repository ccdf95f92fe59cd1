// TLS (wss://) links: the instantiation of ws_link for them, an accepted connection's start, and
// dial_tls() (net/ws_link_impl.hpp, net/ws_accept.hpp).
#include "net/ws_accept.hpp"

namespace hdbrepl::net {
namespace detail {

template class ws_link<tls_stream>;

void start_inbound_tls(std::shared_ptr<listener_impl> from, tcp::socket socket, std::unique_ptr<connection_counts::slot> slot) {
    auto ctx = from->tls_context();
    auto l = std::make_shared<tls_link>(from->st, tls_stream(beast::tcp_stream(std::move(socket)), *ctx), from->options, true, ctx);
    l->start_inbound(std::move(from), std::move(slot));
}

} // namespace detail

void dial_tls(io_runtime& rt, const std::string& host, std::uint16_t port, const std::string& bind_address,
              const std::string& target, link_options options, std::shared_ptr<const tls_identity> identity,
              tls_dial_options tls_options, std::function<void(const link_ptr&, const std::string& error)> done) {
    if (detail::runtime_access::state(rt)->stopping) return;
    auto made = detail::make_client_context(identity.get(), tls_options.verify_server);
    detail::start_dial<detail::tls_link>(rt, host, port, bind_address, target, options, std::move(made.context),
                                         std::move(made.error), std::move(tls_options), std::move(done));
}

} // namespace hdbrepl::net
