// The fault-injecting relay (relay.hpp). Everything below the public functions runs on the
// relay thread; the public functions post to it and wait.
#include "tests/inproc/relay.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <deque>
#include <future>
#include <set>
#include <stdexcept>
#include <thread>

namespace hdbrepl::test::inproc {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

enum class pair_mode { open, cut, blackhole };

// A direction stops reading while this much is waiting to be delivered (TCP flow control
// then pushes back on the sender).
constexpr std::size_t max_queued = 8u << 20;

struct chunk {
    clock_type::time_point due;
    std::vector<std::uint8_t> data;
};

} // namespace

struct relay_session;

struct relay::impl : std::enable_shared_from_this<relay::impl> {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(io);
    std::vector<relay_endpoint> nodes;
    int port = 0;
    std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
    std::vector<std::vector<std::chrono::milliseconds>> latency; // [from][to]
    std::vector<std::vector<pair_mode>> mode;                    // symmetric
    std::vector<std::vector<relay_counters>> stats;              // [from][to]
    std::vector<bool> down;
    std::set<std::shared_ptr<relay_session>> sessions;
    std::thread thread;
    bool closing = false;

    template <class F> void run_sync(F f) {
        std::promise<void> done;
        auto fut = done.get_future();
        asio::post(io, [&] {
            f();
            done.set_value();
        });
        fut.wait();
    }
    void accept(int j);
    void on_accept(int j, tcp::socket s);
    void close_pair(int a, int b, bool only_lossy);
};

// One relayed connection: `down` was accepted from node `from`, `up` dials node `to`.
struct relay_session : std::enable_shared_from_this<relay_session> {
    struct direction {
        int from = 0, to = 0;
        tcp::socket* src = nullptr;
        tcp::socket* dst = nullptr;
        std::array<std::uint8_t, 64 * 1024> buf{};
        std::deque<chunk> q;
        std::size_t queued = 0;
        clock_type::time_point last_due{};
        bool reading = false, writing = false, timer_armed = false, eof = false, shut = false;
        std::unique_ptr<asio::steady_timer> timer;
    };

    relay_session(relay::impl& r, int from, int to, tcp::socket s) : r(r), from(from), to(to), down(std::move(s)), up(r.io) {
        d[0].from = from, d[0].to = to, d[0].src = &down, d[0].dst = &up;
        d[1].from = to, d[1].to = from, d[1].src = &up, d[1].dst = &down;
        for (auto& x : d) x.timer = std::make_unique<asio::steady_timer>(r.io);
    }

    relay::impl& r;
    int from, to;
    tcp::socket down, up;
    direction d[2];
    bool closed = false;
    bool lossy = false; // bytes were dropped: the stream is broken for good

    bool blackholed() const { return r.mode[from][to] == pair_mode::blackhole; }

    void start_blackholed() { // never connected onwards: only the dialer's side exists
        lossy = true;
        d[1].eof = true;
        read(d[0]);
    }

    void start() {
        auto self = shared_from_this();
        boost::system::error_code ec;
        up.open(tcp::v4(), ec);
        if (!ec) up.bind(tcp::endpoint(asio::ip::make_address(r.nodes[from].public_ip), 0), ec);
        if (ec) return refuse();
        tcp::endpoint target(asio::ip::make_address(r.nodes[to].private_ip), static_cast<unsigned short>(r.port));
        up.async_connect(target, [self](const boost::system::error_code& e) {
            if (self->closed) return;
            if (e) return self->refuse();
            if (self->blackholed()) { // blackholed while connecting
                self->lossy = true;
            }
            boost::system::error_code ignored;
            self->up.set_option(tcp::no_delay(true), ignored);
            self->read(self->d[0]);
            self->read(self->d[1]);
        });
    }

    void refuse() {
        ++r.stats[from][to].refused;
        close();
    }

    void read(direction& x) {
        if (closed || x.reading || x.eof) return;
        x.reading = true;
        auto self = shared_from_this();
        x.src->async_read_some(asio::buffer(x.buf), [self, &x](const boost::system::error_code& e, std::size_t n) {
            x.reading = false;
            if (self->closed) return;
            if (e) {
                if (self->lossy) return self->lose_side(x);
                // The end of one side goes on to the other once what is queued is delivered
                // (a half close, as TCP does); errors close both.
                if (e != asio::error::eof) return self->close();
                x.eof = true;
                return self->kick(x);
            }
            auto& st = self->r.stats[x.from][x.to];
            if (self->blackholed() || self->lossy) {
                self->lossy = true;
                st.bytes_dropped += n;
                return self->read(x);
            }
            const auto now = clock_type::now();
            chunk c{std::max(now + self->r.latency[x.from][x.to], x.last_due), {x.buf.begin(), x.buf.begin() + static_cast<std::ptrdiff_t>(n)}};
            x.last_due = c.due;
            x.queued += n;
            st.bytes_pending += n;
            x.q.push_back(std::move(c));
            self->kick(x);
            if (x.queued < max_queued) self->read(x);
        });
    }

    void kick(direction& x) {
        if (closed || x.writing || x.timer_armed) return;
        if (x.q.empty()) {
            if (x.eof && !x.shut) {
                x.shut = true;
                boost::system::error_code ignored;
                x.dst->shutdown(tcp::socket::shutdown_send, ignored);
                if (d[0].shut && d[1].shut) close();
            }
            return;
        }
        auto self = shared_from_this();
        if (x.q.front().due > clock_type::now()) {
            x.timer_armed = true;
            x.timer->expires_at(x.q.front().due);
            x.timer->async_wait([self, &x](const boost::system::error_code& e) {
                x.timer_armed = false;
                if (self->closed || e) return;
                self->kick(x);
            });
            return;
        }
        x.writing = true;
        asio::async_write(*x.dst, asio::buffer(x.q.front().data), [self, &x](const boost::system::error_code& e, std::size_t n) {
            x.writing = false;
            if (self->closed) return;
            if (e) return self->close();
            auto& st = self->r.stats[x.from][x.to];
            st.bytes_delivered += n;
            st.bytes_pending -= n;
            x.queued -= n;
            x.q.pop_front();
            if (x.queued < max_queued) self->read(x);
            self->kick(x);
        });
    }

    // A broken stream (blackholed) delivers no end either: the side that ended is closed, the
    // other is left to notice by itself (ping timeout), still read and never answered.
    void lose_side(direction& x) {
        x.eof = true;
        boost::system::error_code ignored;
        x.src->close(ignored);
        if (d[0].eof && d[1].eof) close();
    }

    // Drops what waits (a pair just blackholed delivers nothing more).
    void drop_queued() {
        lossy = true;
        for (auto& x : d) {
            std::size_t keep = x.writing && !x.q.empty() ? 1 : 0; // the write under way owns its buffer
            while (x.q.size() > keep) {
                r.stats[x.from][x.to].bytes_dropped += x.q.back().data.size();
                r.stats[x.from][x.to].bytes_pending -= x.q.back().data.size();
                x.queued -= x.q.back().data.size();
                x.q.pop_back();
            }
            read(x);
        }
    }

    void close() {
        if (closed) return;
        closed = true;
        boost::system::error_code ignored;
        for (auto& x : d) {
            x.timer->cancel();
            for (auto& c : x.q) r.stats[x.from][x.to].bytes_pending -= c.data.size();
            // A write under way keeps its chunk (its buffer) until it completes, aborted.
            while (x.q.size() > (x.writing ? 1u : 0u)) x.q.pop_back();
        }
        down.close(ignored);
        up.close(ignored);
        r.sessions.erase(shared_from_this());
    }
};

void relay::impl::accept(int j) {
    auto self = shared_from_this();
    acceptors[j]->async_accept([self, j](const boost::system::error_code& e, tcp::socket s) {
        if (self->closing) return;
        if (!e) self->on_accept(j, std::move(s));
        if (e != asio::error::operation_aborted) self->accept(j);
    });
}

void relay::impl::on_accept(int j, tcp::socket s) {
    boost::system::error_code ec;
    auto remote = s.remote_endpoint(ec);
    int from = -1;
    if (!ec)
        for (std::size_t k = 0; k < nodes.size(); ++k)
            if (remote.address().to_string() == nodes[k].private_ip) from = static_cast<int>(k);
    if (from < 0 || from == j) { // not one of ours: nothing to relay
        s.close(ec);
        return;
    }
    s.set_option(tcp::no_delay(true), ec);
    ++stats[from][j].connections;
    auto x = std::make_shared<relay_session>(*this, from, j, std::move(s));
    sessions.insert(x);
    if (down[from] || down[j] || mode[from][j] == pair_mode::cut) return x->refuse();
    if (mode[from][j] == pair_mode::blackhole) return x->start_blackholed();
    x->start();
}

void relay::impl::close_pair(int a, int b, bool only_lossy) {
    std::vector<std::shared_ptr<relay_session>> hit;
    for (auto& x : sessions)
        if (((x->from == a && x->to == b) || (x->from == b && x->to == a)) && (!only_lossy || x->lossy)) hit.push_back(x);
    for (auto& x : hit) x->close();
}

relay::relay(std::vector<relay_endpoint> nodes, int port) : impl_(std::make_shared<impl>()) {
    auto& m = *impl_;
    const std::size_t n = nodes.size();
    m.nodes = std::move(nodes);
    m.port = port;
    m.latency.assign(n, std::vector<std::chrono::milliseconds>(n, std::chrono::milliseconds(0)));
    m.mode.assign(n, std::vector<pair_mode>(n, pair_mode::open));
    m.stats.assign(n, std::vector<relay_counters>(n));
    m.down.assign(n, false);
    for (const auto& e : m.nodes) {
        auto a = std::make_unique<tcp::acceptor>(m.io);
        boost::system::error_code ec;
        tcp::endpoint ep(asio::ip::make_address(e.public_ip, ec), static_cast<unsigned short>(port));
        if (!ec) a->open(ep.protocol(), ec);
        if (!ec) a->set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec) a->bind(ep, ec);
        if (!ec) a->listen(asio::socket_base::max_listen_connections, ec);
        if (ec) throw std::runtime_error("relay: cannot listen on " + e.public_ip + ":" + std::to_string(port) + ": " + ec.message());
        m.acceptors.push_back(std::move(a));
    }
    for (std::size_t j = 0; j < n; ++j) m.accept(static_cast<int>(j));
    m.thread = std::thread([p = impl_] { p->io.run(); });
}

relay::~relay() {
    auto& m = *impl_;
    m.run_sync([&m] {
        m.closing = true;
        boost::system::error_code ignored;
        for (auto& a : m.acceptors) a->close(ignored);
        auto all = m.sessions;
        for (auto& x : all) x->close();
    });
    // Every operation left was cancelled above: the thread's run() ends once their handlers
    // have run (none starts another), which also frees what they hold.
    m.guard.reset();
    m.thread.join();
}

void relay::set_latency(int from, int to, std::chrono::milliseconds delay) {
    impl_->run_sync([&] { impl_->latency[from][to] = delay; });
}

void relay::cut(int a, int b) {
    impl_->run_sync([&] {
        impl_->mode[a][b] = impl_->mode[b][a] = pair_mode::cut;
        impl_->close_pair(a, b, false);
    });
}

void relay::blackhole(int a, int b) {
    impl_->run_sync([&] {
        impl_->mode[a][b] = impl_->mode[b][a] = pair_mode::blackhole;
        for (auto& x : impl_->sessions)
            if ((x->from == a && x->to == b) || (x->from == b && x->to == a)) x->drop_queued();
    });
}

void relay::heal(int a, int b) {
    impl_->run_sync([&] {
        impl_->mode[a][b] = impl_->mode[b][a] = pair_mode::open;
        impl_->latency[a][b] = impl_->latency[b][a] = std::chrono::milliseconds(0);
        impl_->close_pair(a, b, true);
    });
}

void relay::set_down(int node, bool down) {
    impl_->run_sync([&] {
        impl_->down[node] = down;
        if (!down) return;
        std::vector<std::shared_ptr<relay_session>> hit;
        for (auto& x : impl_->sessions)
            if (x->from == node || x->to == node) hit.push_back(x);
        for (auto& x : hit) x->close();
    });
}

relay_counters relay::counters(int from, int to) {
    relay_counters c;
    impl_->run_sync([&] { c = impl_->stats[from][to]; });
    return c;
}

} // namespace hdbrepl::test::inproc
