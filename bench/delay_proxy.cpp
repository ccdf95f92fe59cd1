// delay_proxy.cpp: the proxy of delay_proxy.hpp. Three pieces, each with one job:
//   delayed_direction   copies one direction of one connection: reads, timestamps, releases
//                       each chunk at read time + delay (a queue, a timer), bounded
//   proxied_connection  one accepted connection: dials the target, runs its two directions,
//                       closes both sockets when either side fails or both have ended
//   proxy_acceptor      accepts connections and keeps a list of the live ones (for stop)
// Everything here runs on the proxy thread, except what delay_proxy's public functions say.
#include "delay_proxy.hpp"

#include <boost/asio.hpp>

#include <array>
#include <atomic>
#include <deque>
#include <map>
#include <stdexcept>
#include <thread>
#include <vector>

namespace hdbrepl::bench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

// What the three pieces share: the io_context, the options, the delay and the counters.
struct delay_proxy::impl {
    explicit impl(delay_proxy_options o) : opts(std::move(o)), delay_us(opts.one_way_delay.count()) {}
    asio::io_context io;
    delay_proxy_options opts;
    std::atomic<std::int64_t> delay_us; // written by any thread, read on the proxy thread
    std::atomic<std::uint64_t> accepted{0}, upstream_failed{0}, open{0}, bytes{0}, pauses{0}, peak_queued{0};
    std::shared_ptr<class proxy_acceptor> acceptor;
    std::thread thread;
    int port = 0;
    bool running = false; // user thread only
};

namespace {

// Told when one direction has ended (its source sent EOF and every byte was delivered) or
// failed. Implemented by proxied_connection.
class direction_owner {
public:
    virtual void direction_ended() = 0;
    virtual void direction_failed() = 0;

protected:
    ~direction_owner() = default;
};

// One direction of a proxied connection. Proxy thread. The handlers hold `keep_alive` (the
// connection that owns this object), so nothing they touch is destroyed under them.
class delayed_direction {
public:
    delayed_direction(tcp::socket& from, tcp::socket& to, delay_proxy::impl& shared, direction_owner& owner)
        : from_(from), to_(to), shared_(shared), owner_(owner), timer_(shared.io) {}

    void start(std::shared_ptr<void> keep_alive) {
        keep_alive_ = std::move(keep_alive);
        read();
    }
    // The owner is closing: no handler acts any more (the pending ones complete as aborted).
    void cancel() {
        done_ = true;
        timer_.cancel();
        keep_alive_.reset(); // the pending handlers still hold their own copy
    }

private:
    struct chunk {
        clock_type::time_point due;
        std::vector<char> bytes;
    };

    void read() {
        if (done_ || reading_ || eof_) return;
        if (queued_ >= shared_.opts.max_queued_bytes) return; // write() resumes reading
        reading_ = true;
        from_.async_read_some(asio::buffer(scratch_), [this, keep = keep_alive_](const boost::system::error_code& ec, std::size_t n) {
            reading_ = false;
            if (done_) return;
            if (ec == asio::error::eof) {
                eof_ = true;
                return write(); // ends the direction once the queue has drained
            }
            if (ec) return owner_.direction_failed();
            // Exact-size copies: the bound counts the bytes held, not 64 KiB per small read.
            const auto due = clock_type::now() + std::chrono::microseconds(shared_.delay_us.load(std::memory_order_relaxed));
            queue_.push_back({due, std::vector<char>(scratch_.data(), scratch_.data() + n)});
            queued_ += n;
            if (queued_ > shared_.peak_queued.load(std::memory_order_relaxed)) shared_.peak_queued.store(queued_, std::memory_order_relaxed);
            if (queued_ >= shared_.opts.max_queued_bytes) shared_.pauses.fetch_add(1, std::memory_order_relaxed);
            write();
            read();
        });
    }

    // Sends every chunk that is due, in order, in one gathered write; arms the timer for the
    // next one otherwise.
    void write() {
        if (done_ || writing_) return;
        if (queue_.empty()) {
            if (eof_) {
                boost::system::error_code ignored;
                to_.shutdown(tcp::socket::shutdown_send, ignored); // pass the half-close on
                done_ = true;
                owner_.direction_ended();
            }
            return;
        }
        const auto now = clock_type::now();
        if (queue_.front().due > now) {
            if (!timer_armed_) {
                timer_armed_ = true;
                timer_.expires_at(queue_.front().due);
                timer_.async_wait([this, keep = keep_alive_](const boost::system::error_code& ec) {
                    timer_armed_ = false;
                    if (!ec && !done_) write();
                });
            }
            return;
        }
        // deque::push_back keeps references to the elements valid, so reads may queue more
        // while these buffers are being written.
        buffers_.clear();
        std::size_t bytes = 0;
        for (const auto& c : queue_) {
            if (c.due > now || buffers_.size() == max_gather || bytes >= max_gather_bytes) break;
            buffers_.emplace_back(c.bytes.data(), c.bytes.size());
            bytes += c.bytes.size();
        }
        writing_ = true;
        asio::async_write(to_, buffers_, [this, keep = keep_alive_, count = buffers_.size()](const boost::system::error_code& ec, std::size_t n) {
            writing_ = false;
            if (done_) return;
            if (ec) return owner_.direction_failed();
            for (std::size_t i = 0; i < count; ++i) queue_.pop_front();
            queued_ -= n;
            shared_.bytes.fetch_add(n, std::memory_order_relaxed);
            read(); // resumes a direction paused at the bound
            write();
        });
    }

    static constexpr std::size_t max_gather = 64, max_gather_bytes = 4u << 20;

    tcp::socket& from_;
    tcp::socket& to_;
    delay_proxy::impl& shared_;
    direction_owner& owner_;
    asio::steady_timer timer_;
    std::shared_ptr<void> keep_alive_;
    std::array<char, 64 * 1024> scratch_{};
    std::deque<chunk> queue_;
    std::vector<asio::const_buffer> buffers_;
    std::size_t queued_ = 0;
    bool reading_ = false, writing_ = false, timer_armed_ = false, eof_ = false, done_ = false;
};

// One accepted connection and its dial to the target. Proxy thread.
class proxied_connection : public std::enable_shared_from_this<proxied_connection>, private direction_owner {
public:
    proxied_connection(tcp::socket client, delay_proxy::impl& shared)
        : shared_(shared), client_(std::move(client)), upstream_(shared.io), to_target_(client_, upstream_, shared, *this),
          to_client_(upstream_, client_, shared, *this) {}

    void start() {
        shared_.open.fetch_add(1, std::memory_order_relaxed);
        boost::system::error_code ec;
        const auto& o = shared_.opts;
        upstream_.open(tcp::v4(), ec);
        if (!ec && !o.dial_from.empty()) upstream_.bind({asio::ip::make_address(o.dial_from, ec), 0}, ec);
        if (ec) return upstream_failed();
        const tcp::endpoint target(asio::ip::make_address(o.target_ip), static_cast<unsigned short>(o.target_port));
        upstream_.async_connect(target, [self = shared_from_this()](const boost::system::error_code& e) {
            if (self->closed_) return;
            if (e) return self->upstream_failed();
            boost::system::error_code ignored;
            // Each chunk goes out when it is due: Nagle would hold small ones back.
            self->client_.set_option(tcp::no_delay(true), ignored);
            self->upstream_.set_option(tcp::no_delay(true), ignored);
            self->to_target_.start(self);
            self->to_client_.start(self);
        });
    }

    // Both sockets closed (a reset for a peer mid-stream, as when a real link is cut).
    void close() {
        if (closed_) return;
        closed_ = true;
        to_target_.cancel();
        to_client_.cancel();
        boost::system::error_code ignored;
        client_.close(ignored);
        upstream_.close(ignored);
        shared_.open.fetch_sub(1, std::memory_order_relaxed);
    }

private:
    void upstream_failed() {
        shared_.upstream_failed.fetch_add(1, std::memory_order_relaxed);
        close();
    }
    void direction_ended() override {
        if (++ended_ == 2) close();
    }
    void direction_failed() override { close(); }

    delay_proxy::impl& shared_;
    tcp::socket client_, upstream_;
    delayed_direction to_target_, to_client_; // after the sockets they use
    int ended_ = 0;
    bool closed_ = false;
};

} // namespace

// Accepts connections for as long as it is open. Proxy thread, except the constructor (user
// thread, before the proxy thread starts).
class proxy_acceptor : public std::enable_shared_from_this<proxy_acceptor> {
public:
    explicit proxy_acceptor(delay_proxy::impl& shared) : shared_(shared), acceptor_(shared.io) {
        const auto& o = shared.opts;
        boost::system::error_code ec;
        const tcp::endpoint at(asio::ip::make_address(o.listen_ip, ec), static_cast<unsigned short>(o.listen_port));
        if (!ec) acceptor_.open(at.protocol(), ec);
        if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec) acceptor_.bind(at, ec);
        if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) throw std::runtime_error("delay proxy: cannot listen on " + o.listen_ip + ":" + std::to_string(o.listen_port) + ": " + ec.message());
        shared.port = acceptor_.local_endpoint().port();
    }

    void accept() {
        acceptor_.async_accept([self = shared_from_this()](const boost::system::error_code& ec, tcp::socket s) {
            if (!self->acceptor_.is_open()) return; // closed by close_all()
            if (ec) return self->accept_later(); // e.g. out of descriptors: no busy loop
            self->shared_.accepted.fetch_add(1, std::memory_order_relaxed);
            auto c = std::make_shared<proxied_connection>(std::move(s), self->shared_);
            std::erase_if(self->live_, [](const auto& w) { return w.expired(); });
            self->live_.push_back(c);
            c->start();
            self->accept();
        });
    }

    // Stops accepting and closes every live connection: afterwards no work is left, so the
    // io_context's run() returns once the aborted handlers have completed.
    void close_all() {
        boost::system::error_code ignored;
        retry_.cancel();
        acceptor_.close(ignored);
        for (auto& w : live_)
            if (auto c = w.lock()) c->close();
        live_.clear();
    }

private:
    void accept_later() {
        retry_.expires_after(std::chrono::milliseconds(50));
        retry_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (!ec && self->acceptor_.is_open()) self->accept();
        });
    }

    delay_proxy::impl& shared_;
    tcp::acceptor acceptor_;
    asio::steady_timer retry_{shared_.io};
    std::vector<std::weak_ptr<proxied_connection>> live_;
};

// ---- the public face (user thread unless said otherwise) -------------------------------------

delay_proxy::delay_proxy(delay_proxy_options o) : impl_(std::make_shared<impl>(std::move(o))) {}

delay_proxy::~delay_proxy() { stop(); }

void delay_proxy::start() {
    if (impl_->running) return;
    impl_->io.restart();
    impl_->acceptor = std::make_shared<proxy_acceptor>(*impl_); // throws when it cannot listen
    impl_->acceptor->accept();
    impl_->running = true;
    // The proxy thread: runs every handler until stop() leaves no work.
    impl_->thread = std::thread([s = impl_] { s->io.run(); });
}

void delay_proxy::stop() {
    if (!impl_->running) return;
    impl_->running = false;
    asio::post(impl_->io, [a = impl_->acceptor] { a->close_all(); });
    impl_->thread.join();
    impl_->acceptor.reset();
}

int delay_proxy::port() const { return impl_->port; }

void delay_proxy::set_delay(std::chrono::microseconds d) { impl_->delay_us.store(d.count(), std::memory_order_relaxed); }

std::chrono::microseconds delay_proxy::delay() const { return std::chrono::microseconds(impl_->delay_us.load(std::memory_order_relaxed)); }

delay_proxy_counters delay_proxy::counters() const {
    const auto& s = *impl_;
    auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    return {get(s.accepted), get(s.upstream_failed), get(s.open), get(s.bytes), get(s.pauses), get(s.peak_queued)};
}

} // namespace hdbrepl::bench
