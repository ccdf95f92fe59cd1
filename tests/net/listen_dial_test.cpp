// [net] tests of net::listen and net::dial on 127.0.0.x: the accept_filter (IP
// authentication: a refused address gets HTTP 403 and never a link), source-address binding,
// failures and timeouts of every step (closed port, a listener that never answers, a client
// that never sends its request), bind errors, name resolution.
#include <catch2/catch.hpp>

#include "tests/net/net_fixture.hpp"

using namespace hdbrepl::net;
using namespace hdbrepl::net::test;

namespace {

struct dial_result {
    link_ptr link;
    std::string error;
    double took_ms = 0;
};

// Dials and waits (bounded) for done; `link` empty and error "no answer" if it never came.
dial_result dial_and_wait(io_runtime& rt, const std::string& host, std::uint16_t port, const std::string& bind_address,
                          const std::string& target, link_options opts = {}) {
    auto p = std::make_shared<std::promise<dial_result>>();
    auto f = p->get_future();
    auto start = steady::now();
    dial(rt, host, port, bind_address, target, opts, [p, start](const link_ptr& l, const std::string& e) {
        p->set_value({l, e, elapsed_ms(start)});
    });
    if (f.wait_for(soon) != std::future_status::ready) return {nullptr, "no answer", elapsed_ms(start)};
    return f.get();
}

} // namespace

TEST_CASE("listen/dial: accept_filter refuses an address with 403 and never opens a link", "[net]") {
    captured_log log;
    std::mutex mu;
    std::vector<std::pair<std::string, std::string>> asked;
    std::atomic<int> opened{0};
    std::vector<link_ptr> server_links;
    std::string error;
    auto rt = make_io_runtime(); // after what its callbacks use: stopped before they go away
    auto l = listen(*rt, "127.0.0.2", 0, {},
                    [&](const std::string& ip, const std::string& target) {
                        std::lock_guard lk(mu);
                        asked.emplace_back(ip, target);
                        return ip == "127.0.0.2";
                    },
                    [&](const link_ptr& link) {
                        ++opened;
                        std::lock_guard lk(mu);
                        server_links.push_back(link);
                    },
                    error);
    REQUIRE(l);
    REQUIRE(error.empty());

    auto refused = dial_and_wait(*rt, "127.0.0.2", l->port(), "127.0.0.3", "/hdbrepl?node=intruder");
    CHECK_FALSE(refused.link);
    CHECK(refused.error == "handshake refused: HTTP 403 Forbidden");
    REQUIRE(drain(*rt));
    CHECK(opened == 0);
    CHECK(log.contains("refused 127.0.0.3:"));
    CHECK(log.contains("/hdbrepl?node=intruder"));
    CHECK(log.contains("dial 127.0.0.2:" + std::to_string(l->port()) + " failed: handshake refused: HTTP 403 Forbidden"));

    auto accepted = dial_and_wait(*rt, "127.0.0.2", l->port(), "127.0.0.2", "/hdbrepl?node=friend");
    REQUIRE(accepted.link);
    CHECK(accepted.error.empty());
    REQUIRE(eventually([&] { return opened == 1; }));
    {
        std::lock_guard lk(mu);
        CHECK(server_links.at(0)->remote_address() == "127.0.0.2");
        CHECK(server_links.at(0)->request_target() == "/hdbrepl?node=friend");
        CHECK(asked == std::vector<std::pair<std::string, std::string>>{{"127.0.0.3", "/hdbrepl?node=intruder"},
                                                                        {"127.0.0.2", "/hdbrepl?node=friend"}});
    }
    rt->stop_and_join();
}

TEST_CASE("listen/dial: what a refused raw client sees is a 403 answer and the end of the stream", "[net]") {
    std::string error;
    std::atomic<int> opened{0};
    auto rt = make_io_runtime();
    auto l = listen(*rt, "127.0.0.1", 0, {}, [](const std::string&, const std::string&) { return false; },
                    [&](const link_ptr&) { ++opened; }, error);
    REQUIRE(l);
    raw_socket peer = raw_connect("127.0.0.1", l->port());
    REQUIRE(peer);
    std::string head = raw_ws_handshake(peer, l->port());
    CHECK(head.rfind("HTTP/1.1 403 Forbidden\r\n", 0) == 0);
    bool eof = false;
    std::string rest = peer.read_for(2s, &eof);
    CHECK(eof);
    CHECK((head + rest).find("Upgrade") == std::string::npos);
    CHECK(opened == 0);
    rt->stop_and_join();
}

TEST_CASE("listen/dial: an accept_filter that throws refuses", "[net]") {
    captured_log log;
    auto rt = make_io_runtime();
    std::string error;
    auto l = listen(*rt, "127.0.0.1", 0, {},
                    [](const std::string&, const std::string&) -> bool { throw std::runtime_error("filter broke"); },
                    [](const link_ptr&) {}, error);
    REQUIRE(l);
    auto r = dial_and_wait(*rt, "127.0.0.1", l->port(), "", "/x");
    CHECK_FALSE(r.link);
    CHECK(r.error == "handshake refused: HTTP 403 Forbidden");
    CHECK(log.contains("accept_filter threw: filter broke"));
    rt->stop_and_join();
}

TEST_CASE("listen/dial: dialing a closed port fails fast", "[net]") {
    auto rt = make_io_runtime();
    std::uint16_t port = 0;
    {
        std::string error;
        auto l = listen(*rt, "127.0.0.1", 0, {}, nullptr, [](const link_ptr&) {}, error);
        REQUIRE(l);
        port = l->port();
    } // closed
    REQUIRE(drain(*rt));
    link_options opts;
    opts.handshake_timeout = 2s;
    auto r = dial_and_wait(*rt, "127.0.0.1", port, "", "/x", opts);
    CHECK_FALSE(r.link);
    CHECK(r.error == "connect 127.0.0.1:" + std::to_string(port) + ": Connection refused");
    CHECK(r.took_ms < 2000);
    rt->stop_and_join();
}

TEST_CASE("listen/dial: a listener that never answers the handshake times out the dial", "[net]") {
    auto rt = make_io_runtime();
    std::uint16_t port = 0;
    raw_socket silent = raw_listen("127.0.0.1", port);
    REQUIRE(silent);
    link_options opts;
    opts.handshake_timeout = 300ms;
    auto r = dial_and_wait(*rt, "127.0.0.1", port, "", "/x", opts);
    CHECK_FALSE(r.link);
    CHECK(r.error.rfind("WebSocket handshake with 127.0.0.1:", 0) == 0);
    CHECK(r.error.find("timeout") != std::string::npos);
    INFO(r.error);
    CHECK(r.took_ms >= 280);
    CHECK(r.took_ms < 300 + 1500);
    rt->stop_and_join();
}

TEST_CASE("listen/dial: a client that never sends its upgrade request is dropped after handshake_timeout", "[net]") {
    captured_log log;
    link_options opts;
    opts.handshake_timeout = 300ms;
    std::string error;
    std::atomic<int> opened{0}, asked{0};
    auto rt = make_io_runtime();
    auto l = listen(*rt, "127.0.0.1", 0, opts,
                    [&](const std::string&, const std::string&) {
                        ++asked;
                        return true;
                    },
                    [&](const link_ptr&) { ++opened; }, error);
    REQUIRE(l);
    raw_socket peer = raw_connect("127.0.0.1", l->port());
    REQUIRE(peer);
    auto start = steady::now();
    bool eof = false;
    peer.read_for(3s, &eof);
    double took = elapsed_ms(start);
    CHECK(eof);
    CHECK(took >= 280);
    CHECK(took < 300 + 1500);
    CHECK(opened == 0);
    CHECK(asked == 0);
    CHECK(eventually([&] { return log.contains("failed: reading the upgrade request"); }));
    rt->stop_and_join();
}

TEST_CASE("listen/dial: a request that is not a WebSocket upgrade is answered 400, no link", "[net]") {
    std::string error;
    std::atomic<int> opened{0};
    auto rt = make_io_runtime();
    auto l = listen(*rt, "127.0.0.1", 0, {}, nullptr, [&](const link_ptr&) { ++opened; }, error);
    REQUIRE(l);
    raw_socket peer = raw_connect("127.0.0.1", l->port());
    REQUIRE(peer);
    REQUIRE(peer.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::string head = peer.read_for(2s, nullptr, "\r\n\r\n");
    CHECK(head.rfind("HTTP/1.1 400", 0) == 0);
    CHECK(opened == 0);
    rt->stop_and_join();
}

TEST_CASE("listen/dial: listen reports bind errors", "[net]") {
    captured_log log;
    auto rt = make_io_runtime();
    std::string error;
    auto first = listen(*rt, "127.0.0.1", 0, {}, nullptr, [](const link_ptr&) {}, error);
    REQUIRE(first);
    auto second = listen(*rt, "127.0.0.1", first->port(), {}, nullptr, [](const link_ptr&) {}, error);
    CHECK_FALSE(second);
    CHECK(error == "listen 127.0.0.1:" + std::to_string(first->port()) + ": bind: Address already in use");
    CHECK(log.contains(error));
    auto bad = listen(*rt, "not an address", 0, {}, nullptr, [](const link_ptr&) {}, error);
    CHECK_FALSE(bad);
    CHECK(error.rfind("listen not an address:0: bad address", 0) == 0);
    rt->stop_and_join();
    auto late = listen(*rt, "127.0.0.1", 0, {}, nullptr, [](const link_ptr&) {}, error);
    CHECK_FALSE(late);
    CHECK(error == "listen 127.0.0.1:0: io runtime stopped");
}

TEST_CASE("listen/dial: dial reports a bad bind address and an unknown host", "[net]") {
    auto rt = make_io_runtime();
    auto r = dial_and_wait(*rt, "127.0.0.1", 9, "not-an-ip", "/x");
    CHECK_FALSE(r.link);
    CHECK(r.error.rfind("bad bind address 'not-an-ip'", 0) == 0);
    link_options opts;
    opts.handshake_timeout = 3s;
    auto u = dial_and_wait(*rt, "no-such-host.invalid", 9, "", "/x", opts);
    CHECK_FALSE(u.link);
    CHECK(u.error.rfind("resolve no-such-host.invalid: ", 0) == 0);
    INFO(u.error);
    rt->stop_and_join();
}

TEST_CASE("listen/dial: dial resolves a host name and tries its addresses in turn", "[net]") {
    std::string error;
    std::atomic<int> opened{0};
    auto rt = make_io_runtime();
    auto l = listen(*rt, "127.0.0.1", 0, {}, nullptr, [&](const link_ptr&) { ++opened; }, error);
    REQUIRE(l);
    // "localhost" may resolve to ::1 first (refused: we listen on IPv4 only), then 127.0.0.1.
    auto r = dial_and_wait(*rt, "localhost", l->port(), "", "/by-name");
    REQUIRE(r.link);
    CHECK(r.link->remote_address() == "127.0.0.1");
    CHECK(eventually([&] { return opened == 1; }));
    // With an IPv4 source address only IPv4 destinations are tried.
    auto v4only = dial_and_wait(*rt, "localhost", l->port(), "127.0.0.5", "/by-name");
    REQUIRE(v4only.link);
    rt->stop_and_join();
}

TEST_CASE("listen/dial: closing a listener stops accepting, open links stay open", "[net]") {
    link_pair p;
    REQUIRE(p.ok());
    auto port = p.server->port();
    p.server->close();
    REQUIRE(drain(*p.rt));
    auto r = dial_and_wait(*p.rt, "127.0.0.1", port, "", "/x");
    CHECK_FALSE(r.link);
    CHECK(r.error.find("Connection refused") != std::string::npos);
    CHECK(p.send(p.client_link, bytes("still here")));
    CHECK(p.server_rec.wait_messages(1));
}

TEST_CASE("listen/dial: on_open and done run on the io thread, and a throwing done closes the link", "[net]") {
    captured_log log;
    std::string error;
    recorder server_rec;
    std::atomic<bool> open_on_io{false};
    std::atomic<bool> done_on_io{false};
    auto rt = make_io_runtime();
    auto l = listen(*rt, "127.0.0.1", 0, {}, nullptr,
                    [&](const link_ptr& link) {
                        open_on_io = rt->in_io_thread();
                        link->set_events(server_rec.events());
                    },
                    error);
    REQUIRE(l);
    dial(*rt, "127.0.0.1", l->port(), "", "/x", {}, [&](const link_ptr&, const std::string&) {
        done_on_io = rt->in_io_thread();
        throw std::runtime_error("done broke");
    });
    CHECK(server_rec.wait_closed().value_or("?") == "closed by peer (1011): internal error");
    CHECK(open_on_io);
    CHECK(done_on_io);
    CHECK(eventually([&] { return log.contains("dial callback threw: done broke"); }));
    rt->stop_and_join();
}
