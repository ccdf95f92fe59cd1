// Plain (ws://) links: the instantiation of ws_link for them, an accepted connection's start, and
// dial() (net/ws_link_impl.hpp, net/ws_accept.hpp).
#include "net/ws_accept.hpp"

namespace hdbrepl::net {
namespace detail {

template class ws_link<beast::tcp_stream>;

void start_inbound_plain(std::shared_ptr<listener_impl> from, tcp::socket socket, std::unique_ptr<connection_counts::slot> slot) {
    auto l = std::make_shared<plain_link>(from->st, beast::tcp_stream(std::move(socket)), from->options, true);
    l->start_inbound(std::move(from), std::move(slot));
}

} // namespace detail

void dial(io_runtime& rt, const std::string& host, std::uint16_t port, const std::string& bind_address,
          const std::string& target, link_options options,
          std::function<void(const link_ptr&, const std::string& error)> done) {
    detail::start_dial<detail::plain_link>(rt, host, port, bind_address, target, options, nullptr, {}, {}, std::move(done));
}

} // namespace hdbrepl::net
