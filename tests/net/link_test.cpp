// [net] tests of net::link over real sockets on 127.0.0.1: echo both ways, order of many
// messages, the send-queue bound, the message size limit, ping latency, dead-peer detection
// (a raw peer that goes silent after the handshake, and a peer whose io thread is blocked),
// text frames, local and remote close, exceptions from callbacks.
#include <catch2/catch.hpp>

#include "tests/net/net_fixture.hpp"

#include <set>

using namespace hdbrepl::net;
using namespace hdbrepl::net::test;

TEST_CASE("link: echo round trip in both directions on one link", "[net]") {
    link_pair p;
    REQUIRE(p.ok());
    INFO(p.error);

    // Both sides echo whatever they receive once, tagged, so each direction is checked.
    auto echo_events = [](recorder& rec) {
        link_events ev = rec.events();
        auto record = ev.on_message;
        ev.on_message = [record](const link_ptr& l, std::vector<std::uint8_t>&& m) {
            if (text(m).rfind("echo:", 0) != 0) l->send(bytes("echo:" + text(m)));
            record(l, std::move(m));
        };
        return ev;
    };
    REQUIRE(on_io(*p.rt, [&] {
        p.client_link->set_events(echo_events(p.client_rec));
        p.server_link->set_events(echo_events(p.server_rec));
        return true;
    }));

    CHECK(p.send(p.client_link, bytes("from client")));
    CHECK(p.send(p.server_link, bytes("from server")));
    REQUIRE(p.client_rec.wait_messages(2));
    REQUIRE(p.server_rec.wait_messages(2));
    std::set<std::string> at_client, at_server;
    {
        std::lock_guard lk(p.client_rec.mu);
        for (auto& m : p.client_rec.messages) at_client.insert(text(m));
        CHECK(p.client_rec.callback_thread != std::this_thread::get_id());
    }
    {
        std::lock_guard lk(p.server_rec.mu);
        for (auto& m : p.server_rec.messages) at_server.insert(text(m));
    }
    CHECK(at_client == std::set<std::string>{"from server", "echo:from client"});
    CHECK(at_server == std::set<std::string>{"from client", "echo:from server"});

    // What each side knows about the other.
    CHECK_FALSE(p.client_link->inbound());
    CHECK(p.server_link->inbound());
    CHECK(p.client_link->remote_address() == "127.0.0.1");
    CHECK(p.server_link->remote_address() == "127.0.0.1");
    CHECK(p.client_link->remote_port() == p.server->port());
    CHECK(p.server_link->remote_port() != 0);
    CHECK(p.client_link->request_target() == "/hdbrepl?node=a&db=main");
    CHECK(p.server_link->request_target() == "/hdbrepl?node=a&db=main");
}

TEST_CASE("link: many messages arrive complete and in order, including empty and multi-frame ones", "[net]") {
    captured_log log;
    link_options big;
    big.max_queued_bytes = 256u << 20;
    link_pair p(big, big);
    REQUIRE(p.ok());

    // Sizes cycle through empty, small, exactly one frame, just over, and several frames.
    const std::vector<std::size_t> sizes = {0, 1, 100, 4096, 65535, 65536, 65537, 200000, 700000, 17};
    // 300 messages (~31 MB) pass each size 30 times; 1,000 took 66 s under TSan in CI.
    const std::uint32_t count = 300;
    std::size_t total = 0;
    std::vector<std::vector<std::uint8_t>> out;
    for (std::uint32_t i = 0; i < count; ++i) {
        out.push_back(patterned(i, sizes[i % sizes.size()]));
        total += out.back().size();
    }
    auto sent = on_io(*p.rt, [&] {
        bool all = true;
        for (auto& m : out) all = p.client_link->send(std::move(m)) && all;
        return all;
    });
    REQUIRE(sent.has_value());
    CHECK(*sent);
    bool all_arrived = p.server_rec.wait_messages(count, 60s);
    INFO("server closed: " << p.server_rec.closed_reason.value_or("no") << ", client closed: "
                           << p.client_rec.closed_reason.value_or("no") << ", received " << p.server_rec.message_count()
                           << "\n" << log.all());
    REQUIRE(all_arrived);
    std::lock_guard lk(p.server_rec.mu);
    REQUIRE(p.server_rec.messages.size() == count);
    std::size_t bad = 0, received = 0;
    for (std::uint32_t i = 0; i < count; ++i) {
        auto expect = patterned(i, sizes[i % sizes.size()]);
        received += p.server_rec.messages[i].size();
        if (p.server_rec.messages[i] != expect) ++bad;
    }
    CHECK(bad == 0);
    CHECK(received == total);
    CHECK(eventually([&] { return p.client_link->queued_bytes() == 0; }));
}

TEST_CASE("link: send refuses what would exceed max_queued_bytes, and accepts again once drained", "[net]") {
    link_options small;
    small.max_queued_bytes = 1 << 20;
    link_pair p({}, small);
    REQUIRE(p.ok());
    auto l = p.client_link;
    struct result {
        std::vector<bool> accepted;
        std::size_t queued = 0;
        bool too_big = true;
    };
    auto r = on_io(*p.rt, [&] {
        result r;
        // All on the io thread: nothing is written in between, so the queue only grows.
        for (int i = 0; i < 5; ++i) r.accepted.push_back(l->send(std::vector<std::uint8_t>(256 * 1024, 1)));
        r.queued = l->queued_bytes();
        r.too_big = l->send(std::vector<std::uint8_t>((1 << 20) + 1, 2));
        return r;
    });
    REQUIRE(r.has_value());
    CHECK(r->accepted == std::vector<bool>{true, true, true, true, false});
    CHECK(r->queued == (1u << 20));
    CHECK_FALSE(r->too_big);

    REQUIRE(p.server_rec.wait_messages(4));
    CHECK(eventually([&] { return l->queued_bytes() == 0; }));
    CHECK(p.send(l, std::vector<std::uint8_t>(1 << 20, 3))); // exactly the bound, into an empty queue
    REQUIRE(p.server_rec.wait_messages(5));

    // Closed links refuse everything.
    REQUIRE(on_io(*p.rt, [&] {
        l->close("done");
        return true;
    }));
    CHECK_FALSE(p.send(l, bytes("after close")));
    CHECK(p.client_rec.wait_closed().value_or("?") == "");
}

TEST_CASE("link: notify_room calls on_room once, when the send queue has room again", "[net]") {
    link_options small;
    small.max_queued_bytes = 1 << 20;
    link_pair p({}, small);
    REQUIRE(p.ok());
    auto l = p.client_link;
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::size_t> queued_at_call; // queued_bytes() seen inside each on_room
    link_events ev = p.client_rec.events();
    ev.on_room = [&](const link_ptr& x) {
        std::lock_guard lk(mu);
        queued_at_call.push_back(x->queued_bytes());
        cv.notify_all();
    };
    auto armed = on_io(*p.rt, [&] {
        l->set_events(ev);
        // Fill the queue, then ask for room for half of it: nothing is written in between,
        // so on_room cannot have been called yet when this returns.
        for (int i = 0; i < 4; ++i) l->send(std::vector<std::uint8_t>(256 * 1024, 1));
        l->notify_room(512 * 1024);
        return l->queued_bytes();
    });
    REQUIRE(armed.has_value());
    CHECK(*armed == (1u << 20));
    {
        std::unique_lock lk(mu);
        REQUIRE(cv.wait_for(lk, 5s, [&] { return !queued_at_call.empty(); }));
        CHECK(queued_at_call[0] <= 512u * 1024); // room for what was asked
    }
    REQUIRE(p.server_rec.wait_messages(4));
    std::this_thread::sleep_for(100ms);
    {
        std::lock_guard lk(mu);
        CHECK(queued_at_call.size() == 1); // once per request
    }
    // A request the queue can already take is answered too, after the call returns.
    REQUIRE(on_io(*p.rt, [&] {
        l->notify_room(1000);
        std::lock_guard lk(mu);
        return queued_at_call.size() == 1; // not from inside notify_room
    }).value_or(false));
    std::unique_lock lk(mu);
    CHECK(cv.wait_for(lk, 5s, [&] { return queued_at_call.size() == 2; }));
}

TEST_CASE("link: a message over max_message_bytes closes the link with a reason", "[net]") {
    captured_log log;
    link_options server_opts;
    server_opts.max_message_bytes = 1 << 20;
    link_pair p(server_opts);
    REQUIRE(p.ok());
    CHECK(p.send(p.client_link, std::vector<std::uint8_t>(1 << 20, 7))); // exactly the limit: fine
    REQUIRE(p.server_rec.wait_messages(1));
    CHECK(p.send(p.client_link, std::vector<std::uint8_t>((1 << 20) + 1, 8)));
    CHECK(p.server_rec.wait_closed().value_or("?") == "message too big (limit 1048576 bytes)");
    CHECK(p.client_rec.wait_closed().value_or("?") == "closed by peer (1009)");
    CHECK(p.server_rec.message_count() == 1);
    CHECK(log.contains("closed: message too big"));
    std::this_thread::sleep_for(50ms);
    std::lock_guard lk(p.server_rec.mu);
    CHECK(p.server_rec.closed_count == 1);
}

TEST_CASE("link: ping latency is measured on both sides", "[net]") {
    link_options fast;
    fast.ping_interval = 30ms;
    link_pair p(fast, fast);
    REQUIRE(p.ok());
    CHECK(p.client_link->latency_ms() == -1.0);
    CHECK(eventually([&] { return p.client_link->latency_ms() >= 0 && p.server_link->latency_ms() >= 0; }));
    CHECK(p.client_link->latency_ms() < 1000);
    // An idle link stays open well past ping_timeout: the pongs keep it alive.
    std::this_thread::sleep_for(fast.ping_timeout + 300ms);
    std::lock_guard lk(p.client_rec.mu);
    CHECK_FALSE(p.client_rec.closed_reason.has_value());
}

TEST_CASE("link: a peer that goes silent after the handshake is closed by ping timeout", "[net]") {
    captured_log log;
    link_options opts;
    opts.ping_interval = 50ms;
    opts.ping_timeout = 400ms;
    recorder rec;
    std::string error;
    std::atomic<steady::time_point::rep> opened_at{0};
    auto rt = make_io_runtime(); // after what its callbacks use: stopped before they go away
    auto l = listen(*rt, "127.0.0.1", 0, opts, nullptr,
                    [&](const link_ptr& link) {
                        opened_at = steady::now().time_since_epoch().count();
                        link->set_events(rec.events());
                    },
                    error);
    REQUIRE(l);
    raw_socket peer = raw_connect("127.0.0.1", l->port());
    REQUIRE(peer);
    std::string head = raw_ws_handshake(peer, l->port(), "/silent");
    REQUIRE(head.rfind("HTTP/1.1 101", 0) == 0);
    // From here the raw peer never reads or answers (its kernel still ACKs).
    auto reason = rec.wait_closed();
    auto open_time = steady::time_point(steady::duration(opened_at.load()));
    double after_ms = std::chrono::duration<double, std::milli>(steady::now() - open_time).count();
    CHECK(reason.value_or("?") == "ping timeout");
    CHECK(after_ms >= 390);
    CHECK(after_ms < 400 + 50 + 1000);
    // The TCP connection is gone too.
    bool eof = false;
    peer.read_for(2s, &eof);
    CHECK(eof);
    CHECK(log.contains("closed: ping timeout"));
    rt->stop_and_join();
}

TEST_CASE("link: a peer whose io thread is blocked is detected by ping timeout", "[net]") {
    link_options opts;
    opts.ping_interval = 50ms;
    opts.ping_timeout = 500ms;
    std::string error;
    recorder rec;
    std::promise<link_ptr> dialed;
    auto dialed_f = dialed.get_future();
    auto client_rt = make_io_runtime();
    auto server_rt = make_io_runtime();
    auto l = listen(*server_rt, "127.0.0.1", 0, opts, nullptr, [](const link_ptr&) {}, error);
    REQUIRE(l);
    dial(*client_rt, "127.0.0.1", l->port(), "", "/pause", opts, [&](const link_ptr& link, const std::string&) {
        if (link) link->set_events(rec.events());
        dialed.set_value(link);
    });
    REQUIRE(dialed_f.wait_for(soon) == std::future_status::ready);
    auto link = dialed_f.get();
    REQUIRE(link);
    CHECK(eventually([&] { return link->latency_ms() >= 0; })); // alive to begin with

    // Block the server's io thread (bounded), as if the remote process hung.
    std::promise<void> release;
    auto released = release.get_future().share();
    server_rt->post([released] { released.wait_for(std::chrono::duration_cast<ms>(soon)); });
    auto start = steady::now();
    auto reason = rec.wait_closed();
    double took = elapsed_ms(start);
    release.set_value();
    CHECK(reason.value_or("?") == "ping timeout");
    CHECK(took >= 200); // ping_timeout counts from the last byte received, shortly before the block
    CHECK(took < 500 + 50 + 1000);
    client_rt->stop_and_join();
    server_rt->stop_and_join();
}

TEST_CASE("link: a text frame is a protocol error that closes the link", "[net]") {
    recorder rec;
    std::string error;
    link_options opts;
    opts.handshake_timeout = 500ms; // the raw peer never answers our close frame
    auto rt = make_io_runtime();
    auto l = listen(*rt, "127.0.0.1", 0, opts, nullptr, [&](const link_ptr& link) { link->set_events(rec.events()); }, error);
    REQUIRE(l);
    raw_socket peer = raw_connect("127.0.0.1", l->port());
    REQUIRE(peer);
    REQUIRE(raw_ws_handshake(peer, l->port()).rfind("HTTP/1.1 101", 0) == 0);
    REQUIRE(peer.send_all(raw_client_frame(0x2, "binary is fine")));
    REQUIRE(rec.wait_messages(1));
    REQUIRE(peer.send_all(raw_client_frame(0x1, "text is not")));
    CHECK(rec.wait_closed().value_or("?") == "protocol error: text frame");
    CHECK(rec.message_count() == 1);
    // The peer got a close frame with code 1003 (unknown data): 0x88, length, 0x03 0xEB.
    std::string got = peer.read_for(2s, nullptr, std::string("\x03\xEB", 2));
    CHECK(got.find(std::string("\x03\xEB", 2)) != std::string::npos);
    rt->stop_and_join();
}

TEST_CASE("link: close() flushes queued messages, sends the reason, and both sides learn it once", "[net]") {
    captured_log log;
    link_pair p;
    REQUIRE(p.ok());
    REQUIRE(on_io(*p.rt, [&] {
        for (int i = 0; i < 3; ++i) p.client_link->send(patterned(i, 300000));
        p.client_link->close("node stopping");
        p.client_link->close("twice is harmless");
        return true;
    }));
    CHECK(p.client_rec.wait_closed().value_or("?") == "");
    CHECK(p.server_rec.wait_closed().value_or("?") == "closed by peer (1000): node stopping");
    CHECK(p.server_rec.message_count() == 3);
    std::this_thread::sleep_for(50ms);
    {
        std::lock_guard lk(p.client_rec.mu);
        CHECK(p.client_rec.closed_count == 1);
    }
    {
        std::lock_guard lk(p.server_rec.mu);
        CHECK(p.server_rec.closed_count == 1);
    }
    CHECK(log.contains("closed locally (node stopping)"));
    CHECK(log.contains("closed: closed by peer (1000): node stopping"));
}

TEST_CASE("link: a long close reason is cut to 123 bytes at a UTF-8 character boundary", "[net]") {
    link_pair p;
    REQUIRE(p.ok());
    std::string reason;
    for (int i = 0; i < 100; ++i) reason += "\xC3\xA9"; // "é", two bytes each
    p.client_link->close(reason);
    auto got = p.server_rec.wait_closed();
    REQUIRE(got);
    CHECK(*got == "closed by peer (1000): " + reason.substr(0, 122));
}

TEST_CASE("link: close() from another thread is posted to the io thread", "[net]") {
    link_pair p;
    REQUIRE(p.ok());
    p.server_link->close("bye from a foreign thread");
    CHECK(p.server_rec.wait_closed().value_or("?") == "");
    CHECK(p.client_rec.wait_closed().value_or("?") == "closed by peer (1000): bye from a foreign thread");
}

TEST_CASE("link: a peer that drops the TCP connection is reported as a read error", "[net]") {
    recorder rec;
    std::string error;
    auto rt = make_io_runtime();
    auto l = listen(*rt, "127.0.0.1", 0, {}, nullptr, [&](const link_ptr& link) { link->set_events(rec.events()); }, error);
    REQUIRE(l);
    {
        raw_socket peer = raw_connect("127.0.0.1", l->port());
        REQUIRE(peer);
        REQUIRE(raw_ws_handshake(peer, l->port()).rfind("HTTP/1.1 101", 0) == 0);
    } // closed without a close frame
    auto reason = rec.wait_closed();
    REQUIRE(reason);
    WARN("reason for a dropped TCP connection: " << *reason);
    CHECK(reason->rfind("read: ", 0) == 0);
    rt->stop_and_join();
}

TEST_CASE("link: an exception from on_message closes the link with the exception text", "[net]") {
    captured_log log;
    std::atomic<int> closed{0};
    std::string reason;
    link_pair p;
    REQUIRE(p.ok());
    REQUIRE(on_io(*p.rt, [&] {
        link_events ev;
        ev.on_message = [](const link_ptr&, std::vector<std::uint8_t>&&) { throw std::runtime_error("boom"); };
        ev.on_closed = [&](const link_ptr&, const std::string& r) {
            reason = r;
            ++closed;
        };
        p.server_link->set_events(std::move(ev));
        return true;
    }));
    CHECK(p.send(p.client_link, bytes("explode")));
    CHECK(p.client_rec.wait_closed().value_or("?") == "closed by peer (1011): internal error");
    REQUIRE(eventually([&] { return closed == 1; }));
    REQUIRE(drain(*p.rt));
    CHECK(reason == "on_message threw: boom");
}

TEST_CASE("link: events set inside on_message take effect for the next message", "[net]") {
    recorder second;
    std::atomic<int> first_count{0};
    link_pair p;
    REQUIRE(p.ok());
    REQUIRE(on_io(*p.rt, [&] {
        link_events ev;
        ev.on_message = [&](const link_ptr& l, std::vector<std::uint8_t>&&) {
            ++first_count;
            l->set_events(second.events()); // replaces the function that is running
        };
        p.server_link->set_events(std::move(ev));
        return true;
    }));
    REQUIRE(on_io(*p.rt, [&] {
        p.client_link->send(bytes("one"));
        p.client_link->send(bytes("two"));
        return true;
    }));
    REQUIRE(second.wait_messages(1));
    CHECK(first_count == 1);
    std::lock_guard lk(second.mu);
    CHECK(text(second.messages.at(0)) == "two");
}

namespace {

// One link between two runtimes whose io threads are kept busy (each sleeps 2 ms between any
// two other handlers), so 8 MiB messages take several ping timeouts to get through. With
// `both_ways` both sides send at the same time. Neither side may mistake the slow transfer for
// a dead peer: heartbeats and data count as signs of life, and no side is pinged while it is
// streaming (a ping would make its reads wait behind its writes; both ways, a deadlock).
void slow_transfer(bool both_ways) {
    captured_log log;
    link_options opts;
    opts.ping_interval = 50ms;
    opts.ping_timeout = 400ms;
    std::string error;
    recorder a_rec, b_rec;
    std::promise<link_ptr> dialed, accepted;
    auto dialed_f = dialed.get_future();
    auto accepted_f = accepted.get_future();
    std::atomic<bool> busy{true};
    std::function<void()> tick_a, tick_b;
    const std::size_t size = 8u << 20;
    auto to_b = patterned(1, size), to_a = patterned(2, size); // made here, not on an io thread
    auto a_rt = make_io_runtime();
    auto b_rt = make_io_runtime();
    auto l = listen(*b_rt, "127.0.0.1", 0, opts, nullptr,
                    [&](const link_ptr& link) {
                        link->set_events(b_rec.events());
                        accepted.set_value(link);
                    },
                    error);
    REQUIRE(l);
    dial(*a_rt, "127.0.0.1", l->port(), "", "/big", opts, [&](const link_ptr& link, const std::string&) {
        if (link) link->set_events(a_rec.events());
        dialed.set_value(link);
    });
    REQUIRE(dialed_f.wait_for(soon) == std::future_status::ready);
    REQUIRE(accepted_f.wait_for(soon) == std::future_status::ready);
    auto a = dialed_f.get();
    auto b = accepted_f.get();
    REQUIRE(a);
    REQUIRE(b);

    tick_a = [&] {
        std::this_thread::sleep_for(2ms);
        if (busy) a_rt->post(tick_a);
    };
    tick_b = [&] {
        std::this_thread::sleep_for(2ms);
        if (busy) b_rt->post(tick_b);
    };
    a_rt->post(tick_a);
    b_rt->post(tick_b);

    auto start = steady::now();
    CHECK(on_io(*a_rt, [&] { return a->send(std::move(to_b)); }).value_or(false));
    if (both_ways) CHECK(on_io(*b_rt, [&] { return b->send(std::move(to_a)); }).value_or(false));
    bool arrived = b_rec.wait_messages(1, 90s) && (!both_ways || a_rec.wait_messages(1, 90s));
    double took = elapsed_ms(start);
    busy = false;
    INFO("a closed: " << a_rec.wait_closed(0ms).value_or("no") << ", b closed: " << b_rec.wait_closed(0ms).value_or("no")
                      << "\n" << log.all());
    REQUIRE(arrived);
    INFO("transfer took " << took << " ms");
    CHECK(took > opts.ping_timeout.count()); // the test is only meaningful if it was slow
    {
        std::lock_guard lk(b_rec.mu);
        CHECK(b_rec.messages.at(0) == patterned(1, size));
        CHECK_FALSE(b_rec.closed_reason.has_value());
    }
    {
        std::lock_guard lk(a_rec.mu);
        if (both_ways) CHECK(a_rec.messages.at(0) == patterned(2, size));
        CHECK_FALSE(a_rec.closed_reason.has_value());
    }
    REQUIRE(drain(*a_rt));
    REQUIRE(drain(*b_rt));
    a_rt->stop_and_join();
    b_rt->stop_and_join();
}

} // namespace

TEST_CASE("link: a slow one-way transfer longer than ping_timeout is not a dead peer", "[net]") {
    slow_transfer(false);
}

TEST_CASE("link: slow transfers both ways at once neither deadlock nor time out", "[net]") {
    slow_transfer(true);
}
