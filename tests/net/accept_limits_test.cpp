// [net] tests of what a listener grants a connecting client: the asynchronous accept filter
// (answered later, from another thread, twice, never, after the listener or the runtime went
// away), the connection caps per address and per listener, and the handshake deadline against
// clients that send nothing or trickle their request.
#include <catch2/catch.hpp>

#include "tests/net/net_fixture.hpp"

#include <algorithm>
#include <deque>

using namespace hdbrepl::net;
using namespace hdbrepl::net::test;

namespace {

struct dial_result {
    link_ptr link;
    std::string error;
    double took_ms = 0;
};

dial_result dial_and_wait(io_runtime& rt, std::uint16_t port, const std::string& bind_address, const std::string& target,
                          link_options opts = {}) {
    auto p = std::make_shared<std::promise<dial_result>>();
    auto f = p->get_future();
    auto start = steady::now();
    dial(rt, "127.0.0.1", port, bind_address, target, opts,
         [p, start](const link_ptr& l, const std::string& e) { p->set_value({l, e, elapsed_ms(start)}); });
    if (f.wait_for(soon) != std::future_status::ready) return {nullptr, "no answer", elapsed_ms(start)};
    return f.get();
}

// The filter's calls, kept for a test thread to answer.
struct pending_calls {
    std::mutex mu;
    std::deque<std::pair<peer_check, respond_fn>> calls;
    std::atomic<int> called{0};
    std::atomic<bool> off_io_thread{false};

    async_accept_filter filter(io_runtime& rt) {
        return [this, &rt](const peer_check& c, respond_fn respond) {
            if (!rt.in_io_thread()) off_io_thread = true;
            std::lock_guard lk(mu);
            calls.emplace_back(c, std::move(respond));
            ++called;
        };
    }
    std::optional<std::pair<peer_check, respond_fn>> next() {
        if (!eventually([&] {
                std::lock_guard lk(mu);
                return !calls.empty();
            }))
            return std::nullopt;
        std::lock_guard lk(mu);
        auto c = std::move(calls.front());
        calls.pop_front();
        return c;
    }
};

bool held_open(raw_socket& s, std::chrono::milliseconds for_ms = 300ms) {
    bool eof = false;
    s.read_for(for_ms, &eof);
    return !eof;
}

bool closed_soon(raw_socket& s) {
    bool eof = false;
    s.read_for(3s, &eof);
    return eof;
}

} // namespace

TEST_CASE("accept: an asynchronous filter answers later from another thread; the io thread is not held", "[net]") {
    captured_log log;
    pending_calls pending;
    std::atomic<int> opened{0};
    std::string error;
    auto rt = make_io_runtime();
    auto l = listen_checked_async(*rt, "127.0.0.1", 0, {}, pending.filter(*rt), [&](const link_ptr&) { ++opened; }, error);
    REQUIRE(l);

    // A worker answers each call 1 s after it came: accept "/good", refuse the rest.
    std::thread worker([&] {
        for (int i = 0; i < 2; ++i) {
            auto c = pending.next();
            if (!c) return;
            std::this_thread::sleep_for(1s);
            if (c->first.target == "/good")
                c->second({});
            else
                c->second({401, "bad password"});
        }
    });
    auto p = std::make_shared<std::promise<dial_result>>();
    auto refused_f = p->get_future();
    dial(*rt, "127.0.0.1", l->port(), "", "/bad", {}, [p](const link_ptr& lk, const std::string& e) { p->set_value({lk, e, 0}); });
    REQUIRE(eventually([&] { return pending.called == 1; }));
    // While the answer is pending the io thread keeps running posts.
    auto t0 = steady::now();
    REQUIRE(drain(*rt));
    CHECK(elapsed_ms(t0) < 500);
    REQUIRE(refused_f.wait_for(soon) == std::future_status::ready);
    auto refused = refused_f.get();
    CHECK_FALSE(refused.link);
    CHECK(refused.error == "handshake refused: HTTP 401 Unauthorized: bad password");
    auto good = dial_and_wait(*rt, l->port(), "", "/good");
    CHECK(good.link);
    CHECK(good.error.empty());
    CHECK(eventually([&] { return opened == 1; }));
    worker.join();
    CHECK(pending.called == 2);
    CHECK_FALSE(pending.off_io_thread);
    CHECK(log.contains("(accept_filter: HTTP 401: bad password)"));
    rt->stop_and_join();
}

TEST_CASE("accept: listen_tls_async and the synchronous forms keep their behaviour", "[net]") {
    // The synchronous listen_checked answers through the same path.
    std::string error;
    auto rt = make_io_runtime();
    std::atomic<int> opened{0};
    auto l = listen_checked(*rt, "127.0.0.1", 0, {},
                            [](const peer_check& c) { return c.target == "/ok" ? accept_decision{} : accept_decision{403, "no"}; },
                            [&](const link_ptr&) { ++opened; }, error);
    REQUIRE(l);
    auto ok = dial_and_wait(*rt, l->port(), "", "/ok");
    CHECK(ok.link);
    auto no = dial_and_wait(*rt, l->port(), "", "/other");
    CHECK(no.error == "handshake refused: HTTP 403 Forbidden: no");
    CHECK(eventually([&] { return opened == 1; }));
    // A null asynchronous filter accepts.
    auto open_all = listen_checked_async(*rt, "127.0.0.1", 0, {}, nullptr, [](const link_ptr&) {}, error);
    REQUIRE(open_all);
    CHECK(dial_and_wait(*rt, open_all->port(), "", "/x").link);
    rt->stop_and_join();
}

TEST_CASE("accept: a filter that answers twice counts once; one that never answers is bounded by handshake_timeout", "[net]") {
    captured_log log;
    pending_calls pending;
    std::atomic<int> opened{0};
    std::string error;
    link_options opts;
    opts.handshake_timeout = 500ms;
    auto rt = make_io_runtime();
    auto l = listen_checked_async(*rt, "127.0.0.1", 0, opts, pending.filter(*rt), [&](const link_ptr&) { ++opened; }, error);
    REQUIRE(l);

    // Twice: accept, then refuse (from two threads at once): the first answer stands.
    auto p = std::make_shared<std::promise<dial_result>>();
    auto f = p->get_future();
    dial(*rt, "127.0.0.1", l->port(), "", "/twice", {}, [p](const link_ptr& lk, const std::string& e) { p->set_value({lk, e, 0}); });
    auto c = pending.next();
    REQUIRE(c);
    c->second({});
    std::thread again([r = c->second] { r({403, "too late"}); });
    again.join();
    REQUIRE(f.wait_for(soon) == std::future_status::ready);
    auto twice = f.get();
    CHECK(twice.link);
    CHECK(twice.error.empty());
    CHECK(eventually([&] { return opened == 1; }));
    CHECK(log.contains("answered twice"));

    // Never: the dialer sees the connection end soon after the server's handshake_timeout.
    auto start = steady::now();
    auto never_f = std::make_shared<std::promise<dial_result>>();
    auto nf = never_f->get_future();
    dial(*rt, "127.0.0.1", l->port(), "", "/never", {}, [never_f](const link_ptr& lk, const std::string& e) { never_f->set_value({lk, e, 0}); });
    auto ignored = pending.next(); // kept, never called
    REQUIRE(ignored);
    REQUIRE(nf.wait_for(soon) == std::future_status::ready);
    auto never = nf.get();
    CHECK_FALSE(never.link);
    double took = elapsed_ms(start);
    CHECK(took >= 450);
    CHECK(took < 500 + 2000);
    CHECK(log.contains("the accept filter did not answer within 500 ms"));
    // Answering after the deadline does nothing.
    ignored->second({});
    REQUIRE(drain(*rt));
    CHECK(opened == 1);
    rt->stop_and_join();
}

TEST_CASE("accept: answers after the listener, the link or the runtime went away are safe", "[net]") {
    pending_calls pending;
    std::atomic<int> opened{0};
    std::string error;
    auto rt = make_io_runtime();
    auto l = listen_checked_async(*rt, "127.0.0.1", 0, {}, pending.filter(*rt), [&](const link_ptr&) { ++opened; }, error);
    REQUIRE(l);
    raw_socket a = raw_connect("127.0.0.1", l->port());
    raw_socket b = raw_connect("127.0.0.1", l->port());
    REQUIRE(a);
    REQUIRE(b);
    std::string req = "GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    REQUIRE(a.send_all(req));
    REQUIRE(b.send_all(req));
    auto ca = pending.next();
    auto cb = pending.next();
    REQUIRE(ca);
    REQUIRE(cb);
    // The listener closes while both wait: an acceptance then opens nothing.
    l.reset();
    REQUIRE(drain(*rt));
    std::thread([r = ca->second] { r({}); }).join();
    CHECK(closed_soon(a));
    CHECK(opened == 0);
    // The runtime stops and goes away; the other answer comes afterwards, from a thread.
    rt->stop_and_join();
    rt.reset();
    std::thread([r = cb->second] { r({}); }).join();
    CHECK(opened == 0);
}

TEST_CASE("accept: connections are capped per address and per listener, and a slot is freed when its connection ends", "[net]") {
    captured_log log;
    std::string error;
    link_options opts;
    opts.max_connections_per_address = 3;
    opts.max_connections = 5;
    auto rt = make_io_runtime();
    std::mutex mu;
    std::vector<link_ptr> server_links;
    auto l = listen(*rt, "127.0.0.1", 0, opts, nullptr,
                    [&](const link_ptr& lk) {
                        std::lock_guard g(mu);
                        server_links.push_back(lk);
                    },
                    error);
    REQUIRE(l);
    const auto port = l->port();
    std::vector<raw_socket> idle;
    for (int i = 0; i < 3; ++i) {
        idle.push_back(raw_connect_from("127.0.0.2", "127.0.0.1", port));
        REQUIRE(idle.back());
    }
    for (auto& s : idle) CHECK(held_open(s, 100ms));
    // The fourth from 127.0.0.2 is closed at once; another address is still served.
    raw_socket over = raw_connect_from("127.0.0.2", "127.0.0.1", port);
    REQUIRE(over);
    CHECK(closed_soon(over));
    CHECK(eventually([&] { return log.contains("connections from 127.0.0.2 (limit 3)"); }));
    auto other = dial_and_wait(*rt, port, "127.0.0.3", "/other");
    REQUIRE(other.link);
    auto refused_dial = dial_and_wait(*rt, port, "127.0.0.2", "/fourth");
    CHECK_FALSE(refused_dial.link);

    // One idle connection goes away: its slot is free once the listener has seen it end.
    idle.pop_back();
    CHECK(eventually([&] { return log.contains("handshake with 127.0.0.2:"); }));
    auto freed = dial_and_wait(*rt, port, "127.0.0.2", "/third");
    CHECK(freed.link);
    CHECK(freed.error.empty());

    // Per listener: 2 idle + 2 links = 4; a fifth from a new address fits, a sixth does not.
    raw_socket fifth = raw_connect_from("127.0.0.4", "127.0.0.1", port);
    REQUIRE(fifth);
    CHECK(held_open(fifth, 100ms));
    raw_socket sixth = raw_connect_from("127.0.0.5", "127.0.0.1", port);
    REQUIRE(sixth);
    CHECK(closed_soon(sixth));
    CHECK(eventually([&] { return log.contains("5 connections on this listener (limit 5)"); }));
    // An open link that closes frees its slot too.
    other.link->close("done");
    CHECK(eventually([&] { return log.contains("inbound link from 127.0.0.3:"); }));
    REQUIRE(eventually([&] {
        raw_socket s = raw_connect_from("127.0.0.5", "127.0.0.1", port);
        return s && held_open(s, 100ms);
    }));
    rt->stop_and_join();
}

TEST_CASE("accept: a client that trickles its request byte by byte is closed within handshake_timeout", "[net]") {
    captured_log log;
    std::string error;
    link_options opts;
    opts.handshake_timeout = 800ms;
    std::atomic<int> asked{0};
    auto rt = make_io_runtime();
    auto l = listen(*rt, "127.0.0.1", 0, opts,
                    [&](const std::string&, const std::string&) {
                        ++asked;
                        return true;
                    },
                    [](const link_ptr&) {}, error);
    REQUIRE(l);
    raw_socket peer = raw_connect("127.0.0.1", l->port());
    REQUIRE(peer);
    std::string req = "GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    auto start = steady::now();
    bool eof = false;
    std::size_t sent = 0;
    while (!eof && sent < req.size() && elapsed_ms(start) < 5000) {
        if (!peer.send_all(&req[sent], 1)) break;
        ++sent;
        peer.read_for(50ms, &eof);
    }
    if (!eof) peer.read_for(3s, &eof);
    double took = elapsed_ms(start);
    CHECK(eof);
    CHECK(sent < req.size());
    CHECK(took < 800 + 1500);
    CHECK(asked == 0);
    CHECK(eventually([&] { return log.contains("failed: reading the upgrade request"); }));
    rt->stop_and_join();
}

TEST_CASE("accept: a flood over the caps is refused with at most 10 log lines a second", "[net]") {
    captured_log log;
    std::string error;
    link_options opts;
    opts.max_connections_per_address = 1;
    auto rt = make_io_runtime();
    auto l = listen(*rt, "127.0.0.1", 0, opts, nullptr, [](const link_ptr&) {}, error);
    REQUIRE(l);
    raw_socket holder = raw_connect_from("127.0.0.6", "127.0.0.1", l->port());
    REQUIRE(holder);
    REQUIRE(held_open(holder, 100ms));
    auto start = steady::now();
    for (int i = 0; i < 40; ++i) {
        raw_socket s = raw_connect_from("127.0.0.6", "127.0.0.1", l->port());
        REQUIRE(s);
        CHECK(closed_soon(s));
    }
    auto count = [&] {
        std::lock_guard lk(log.st->mu);
        return std::count_if(log.st->lines.begin(), log.st->lines.end(),
                             [](const std::string& x) { return x.find("connections from 127.0.0.6 (limit 1)") != std::string::npos; });
    };
    double took_s = elapsed_ms(start) / 1000;
    CHECK(count() >= 10);
    CHECK(count() <= 10 * (static_cast<long>(took_s) + 1));
    if (took_s < 1) {
        // Once a second has passed the next refusal is logged, with the count left out.
        std::this_thread::sleep_for(std::chrono::milliseconds(1100));
        raw_socket s = raw_connect_from("127.0.0.6", "127.0.0.1", l->port());
        CHECK(closed_soon(s));
        CHECK(eventually([&] { return log.contains("(and 30 more refused over the caps before this, not logged)"); }));
    }
    rt->stop_and_join();
}
