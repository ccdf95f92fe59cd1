// [net] tests of net::io_runtime: posting, timers, and the orderly stop with open links,
// pending dials and timers (stop_and_join returns promptly and no callback runs afterwards).
#include <catch2/catch.hpp>

#include "tests/net/net_fixture.hpp"

#include <set>

using namespace hdbrepl::net;
using namespace hdbrepl::net::test;

TEST_CASE("io_runtime: posted functions run on the io thread, in order", "[net]") {
    std::mutex mu;
    std::vector<int> order;
    std::set<std::thread::id> threads;
    auto rt = make_io_runtime(); // after what its callbacks use: stopped before they go away
    CHECK_FALSE(rt->in_io_thread());
    for (int i = 0; i < 200; ++i) {
        rt->post([&, i] {
            std::lock_guard lk(mu);
            order.push_back(i);
            threads.insert(std::this_thread::get_id());
        });
    }
    auto in_io = on_io(*rt, [&] { return rt->in_io_thread(); });
    REQUIRE(in_io.has_value());
    CHECK(*in_io);
    std::lock_guard lk(mu);
    REQUIRE(order.size() == 200);
    for (int i = 0; i < 200; ++i) CHECK(order[i] == i);
    CHECK(threads.size() == 1);
    CHECK(threads.count(std::this_thread::get_id()) == 0);
}

TEST_CASE("io_runtime: an exception from a posted function is logged and the thread goes on", "[net]") {
    captured_log log;
    auto rt = make_io_runtime();
    rt->post([] { throw std::runtime_error("boom"); });
    CHECK(drain(*rt));
    CHECK(log.contains("posted function threw: boom"));
}

TEST_CASE("io_runtime: timers fire, and not after cancel() or when the handle is dropped", "[net]") {
    std::atomic<int> fired{0}, cancelled_fired{0}, dropped_fired{0}, io_cancelled_fired{0};
    auto start = steady::now();
    std::promise<double> when;
    auto when_f = when.get_future();
    auto rt = make_io_runtime();
    auto t1 = rt->after(50ms, [&] {
        ++fired;
        when.set_value(elapsed_ms(start));
    });
    auto t2 = rt->after(50ms, [&] { ++cancelled_fired; });
    t2->cancel();
    { auto t3 = rt->after(50ms, [&] { ++dropped_fired; }); } // handle dropped at once
    // cancelled from the io thread just before it would fire
    std::shared_ptr<timer> t4;
    REQUIRE(on_io(*rt, [&] {
        t4 = rt->after(30ms, [&] { ++io_cancelled_fired; });
        return true;
    }));
    std::this_thread::sleep_for(20ms);
    REQUIRE(on_io(*rt, [&] {
        t4->cancel();
        return true;
    }));
    REQUIRE(when_f.wait_for(soon) == std::future_status::ready);
    CHECK(when_f.get() >= 45.0);
    std::this_thread::sleep_for(100ms);
    CHECK(fired == 1);
    CHECK(cancelled_fired == 0);
    CHECK(dropped_fired == 0);
    CHECK(io_cancelled_fired == 0);
}

TEST_CASE("io_runtime: stop_and_join is safe twice, and post and after do nothing afterwards", "[net]") {
    std::atomic<int> ran{0};
    auto rt = make_io_runtime();
    auto t = rt->after(10s, [&] { ++ran; });
    auto start = steady::now();
    rt->stop_and_join();
    CHECK(elapsed_ms(start) < 1000);
    rt->stop_and_join();
    rt->post([&] { ++ran; });
    auto t2 = rt->after(1ms, [&] { ++ran; });
    t2->cancel();
    t.reset();
    std::this_thread::sleep_for(50ms);
    CHECK(ran == 0);
}

TEST_CASE("io_runtime: stop_and_join with open links, pending dials and timers is prompt and final", "[net]") {
    captured_log log;
    std::atomic<bool> stopped{false};
    std::atomic<int> after_stop{0}, callbacks{0};
    auto count = [&] {
        ++callbacks;
        if (stopped) ++after_stop;
    };

    link_options opts;
    opts.ping_interval = 20ms; // keeps the io thread busy with pings
    opts.handshake_timeout = 10s;
    std::string error;
    std::vector<link_ptr> server_links;
    std::mutex mu;
    std::atomic<int> open_clients{0};
    std::vector<link_ptr> clients;
    auto rt = make_io_runtime();
    auto l = listen(*rt, "127.0.0.1", 0, opts, nullptr,
                    [&](const link_ptr& link) {
                        count();
                        link_events ev;
                        ev.on_message = [&](const link_ptr& self, std::vector<std::uint8_t>&& m) {
                            count();
                            self->send(std::move(m)); // echo, forever
                        };
                        ev.on_closed = [&](const link_ptr&, const std::string&) { count(); };
                        link->set_events(std::move(ev));
                        std::lock_guard lk(mu);
                        server_links.push_back(link);
                    },
                    error);
    REQUIRE(l);

    // Two open links that keep messages going in both directions.
    for (int i = 0; i < 2; ++i) {
        dial(*rt, "127.0.0.1", l->port(), "", "/busy", opts, [&](const link_ptr& link, const std::string&) {
            count();
            if (!link) return;
            link_events ev;
            ev.on_message = [&](const link_ptr& self, std::vector<std::uint8_t>&& m) {
                count();
                self->send(std::move(m));
            };
            ev.on_closed = [&](const link_ptr&, const std::string&) { count(); };
            link->set_events(std::move(ev));
            link->send(bytes("ping-pong"));
            std::lock_guard lk(mu);
            clients.push_back(link);
            ++open_clients;
        });
    }
    REQUIRE(eventually([&] { return open_clients == 2; }));

    // Pending dials: to a listener that never answers the handshake, and a name lookup.
    std::uint16_t silent_port = 0;
    raw_socket silent = raw_listen("127.0.0.1", silent_port);
    REQUIRE(silent);
    for (int i = 0; i < 3; ++i) dial(*rt, "127.0.0.1", silent_port, "", "/never", opts, [&](const link_ptr&, const std::string&) { count(); });
    dial(*rt, "localhost", silent_port, "", "/never", opts, [&](const link_ptr&, const std::string&) { count(); });
    // Timers and posts.
    std::vector<std::shared_ptr<timer>> timers;
    for (int i = 0; i < 5; ++i) timers.push_back(rt->after(ms(30 * i), count));
    for (int i = 0; i < 100; ++i) rt->post(count);
    std::this_thread::sleep_for(100ms); // let traffic flow

    auto start = steady::now();
    rt->stop_and_join();
    double took = elapsed_ms(start);
    stopped = true;
    WARN("stop_and_join with 4 open links, 4 pending dials, timers and posts took " << took << " ms");
    CHECK(took < 1000);

    // Nothing runs any more: no callbacks, and the handles are inert.
    std::this_thread::sleep_for(300ms);
    for (auto& c : clients) {
        CHECK_FALSE(c->send(bytes("late"))); // off the io thread, and closed
        c->close("late");
        c->set_events({});
    }
    l->close();
    timers.clear();
    rt->post(count);
    std::this_thread::sleep_for(100ms);
    CHECK(after_stop == 0);
    CHECK(callbacks > 0);
    CHECK_FALSE(log.contains("Operation canceled"));
    CHECK_FALSE(log.contains("operation_aborted"));
    INFO(log.all());

    // Handles outlive the runtime safely.
    rt.reset();
    clients.clear();
    server_links.clear();
    l.reset();
}

TEST_CASE("io_runtime: a runtime destroyed with open links stops cleanly", "[net]") {
    std::shared_ptr<link_pair> p = std::make_shared<link_pair>();
    REQUIRE(p->ok());
    link_ptr keep = p->client_link;
    p.reset(); // stop_and_join in the destructor, with the link still open
    CHECK_FALSE(keep->send(bytes("x")));
    CHECK(keep->remote_address() == "127.0.0.1");
}
