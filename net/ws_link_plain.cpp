// Plain (ws://) links: the session, dialer and acceptor instantiated for beast::tcp_stream, an
// accepted connection's start, and dial() (net/ws_common.hpp describes how the files divide the
// work).
#include "net/ws_acceptor.hpp"
#include "net/ws_dialer.hpp"

namespace hdbrepl::net {
namespace detail {

template class ws_session<beast::tcp_stream>;
template class ws_dialer<beast::tcp_stream>;
template class ws_acceptor<beast::tcp_stream>;

void start_inbound_plain(std::shared_ptr<listener_impl> from, tcp::socket socket, std::unique_ptr<connection_counts::slot> slot) {
    auto a = std::make_shared<ws_acceptor<beast::tcp_stream>>(from->st, beast::tcp_stream(std::move(socket)), from->options);
    a->start(std::move(from), std::move(slot));
}

} // namespace detail

void dial(io_runtime& rt, const std::string& host, std::uint16_t port, const std::string& bind_address,
          const std::string& target, link_options options,
          std::function<void(const link_ptr&, const std::string& error)> done) {
    detail::start_dial<detail::beast::tcp_stream>(rt, host, port, bind_address, target, options, nullptr, {}, {}, std::move(done));
}

} // namespace hdbrepl::net
