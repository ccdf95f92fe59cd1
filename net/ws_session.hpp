// Internal to net/: ws_session, an established WebSocket link — the link_ptr the user holds.
// Made by a handshake (net/ws_dialer.hpp, net/ws_acceptor.hpp) once the WebSocket handshake has
// completed; it takes over the stream and runs the read loop, the bounded write queue, the
// keepalive pings, the on_room events and the close (net/ws_common.hpp: a link's life).
//
// Threads. Every member runs on the io thread, and so does every user callback it makes
// (on_message, on_room, on_closed). The link methods that may be called from any thread
// (close, set_events, and the getters) either post to the io thread or read values fixed before
// the link was handed out, or atomics.
//
// Reading: async_read_some in 64 KiB pieces, so every received byte counts as liveness even
// inside a long message. Writing: one write in flight, messages sent as 64 KiB frames, so control
// frames interleave with big messages. Nothing received for ping_timeout -> "ping timeout", TCP
// closed at once.
//
// Keepalive. Every ping_interval each side sends one control frame, so the other side always
// hears from it: a ping (its pong gives latency_ms) when the link is quiet — nothing of ours
// queued or being written, no data from the peer during the last interval — otherwise an
// unsolicited pong (RFC 6455 5.5.3: a one-way heartbeat that needs no answer). Why not always
// ping: Beast's read operation answers a ping by waiting for its own write side, so a peer that
// is streaming stops reading until its current frame is out; if both sides stream and both
// ping, both reads can wait on writes that wait on the other's read (broken only by the ping
// timeout). And a ping behind our own bulk data is answered only after the peer has read all of
// it, a long round trip on a slow link that would look like a dead peer. Liveness is "received
// anything": the peer's data, pings and heartbeats all count, never our pings' answers alone.
#pragma once
#include "net/ws_common.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <deque>
#include <vector>

namespace hdbrepl::net {
namespace detail {

template <class Stream>
class ws_session final : public link, public closable, public std::enable_shared_from_this<ws_session<Stream>> {
public:
    static constexpr bool is_tls = is_tls_stream<Stream>;

    // io thread. The session for a stream whose WebSocket handshake has just completed, open
    // (sending allowed) but not yet reading or pinging: the caller hands it to the user, then
    // calls run(). Null when the runtime has already shut everything down (the socket is then
    // closed and nothing more happens).
    static std::shared_ptr<ws_session> start(std::shared_ptr<runtime_state> st, ws_stream<Stream>&& ws, link_options options,
                                             handshake_result from) {
        auto s = std::make_shared<ws_session>(std::move(st), std::move(ws), options, std::move(from));
        if (!s->st_->enroll(s->weak_from_this())) {
            s->shutdown();
            return nullptr;
        }
        return s;
    }

    // Use start().
    ws_session(std::shared_ptr<runtime_state> st, ws_stream<Stream>&& ws, link_options options, handshake_result from)
        : st_(std::move(st)),
          keep_(std::move(from.keep)),
          ws_(std::move(ws)),
          opts_(options),
          inbound_(from.inbound),
          remote_address_(std::move(from.remote_address)),
          remote_port_(from.remote_port),
          target_(std::move(from.target)),
          peer_(std::move(from.peer)),
          slot_(std::move(from.slot)),
          ping_timer_(st_->ioc),
          deadline_(st_->ioc) {
        auto now = steady::now();
        last_rx_ = now;
        next_ping_ = now + opts_.ping_interval;
        read_piece_.reset(new std::uint8_t[frame_bytes]);
        // Runs inside our own read operation; `this` is alive while ws_ is.
        ws_.control_callback([this](websocket::frame_type kind, beast::string_view payload) { on_control(kind, payload); });
    }

    // io thread. Hands the link to the user through `announce` (on_open or dial's done, named
    // `name` in the "<name> threw" reason), then starts reading and pinging; if `announce`
    // throws, the link closes with 1011 "internal error".
    template <class F>
    void run(const char* name, F&& announce) {
        auto self = this->shared_from_this();
        std::string threw = call_user(*st_, name, [&] { announce(link_ptr(self)); });
        if (!threw.empty()) return begin_close(websocket::close_code::internal_error, "internal error", threw, false);
        if (phase_ != phase::open) return; // the user closed it already
        do_read();
        arm_ping_timer();
    }

    // ---- link (see transport.hpp)

    bool send(std::vector<std::uint8_t> message) override {
        if (!st_->in_io_thread()) {
            log(describe() + ": send() called off the io thread; message refused");
            return false;
        }
        if (phase_ != phase::open) return false;
        std::size_t queued = queued_.load(std::memory_order_relaxed);
        if (message.size() > opts_.max_queued_bytes || queued > opts_.max_queued_bytes - message.size()) return false;
        queued_.store(queued + message.size(), std::memory_order_relaxed);
        queue_.push_back(std::move(message));
        do_write();
        return true;
    }

    std::size_t queued_bytes() const override { return queued_.load(std::memory_order_relaxed); }

    void notify_room(std::size_t bytes) override {
        if (!st_->in_io_thread() || phase_ == phase::finished) return;
        room_wanted_ = bytes;
        room_armed_ = true;
        // Room already: reported from the io_context, not from inside this call (the caller
        // is in the middle of its own sending).
        asio::post(st_->ioc, [w = this->weak_from_this()] {
            if (auto self = w.lock()) self->report_room();
        });
    }

    void close(const std::string& reason) override {
        if (!st_->in_io_thread()) {
            if (st_->stopping) return;
            asio::post(st_->ioc, [w = this->weak_from_this(), reason] {
                if (auto self = w.lock()) self->close(reason);
            });
            return;
        }
        begin_close(websocket::close_code::normal, reason, "", true);
    }

    std::string remote_address() const override { return remote_address_; }
    std::uint16_t remote_port() const override { return remote_port_; }
    bool inbound() const override { return inbound_; }
    std::string request_target() const override { return target_; }
    double latency_ms() const override { return latency_ms_.load(std::memory_order_relaxed); }

    void set_events(link_events events) override {
        if (!st_->in_io_thread()) {
            if (st_->stopping) return;
            asio::post(st_->ioc, [w = this->weak_from_this(), events = std::move(events)]() mutable {
                if (auto self = w.lock()) self->set_events(std::move(events));
            });
            return;
        }
        if (phase_ == phase::finished) return; // would only keep the callbacks alive
        events_ = std::make_shared<const link_events>(std::move(events));
    }

    bool secure() const override { return is_tls; }
    std::vector<std::string> peer_certificate_names() const override { return peer_.names; }

    // ---- closable (stop_and_join: no callback)

    void shutdown() override {
        if (phase_ == phase::finished) return;
        phase_ = phase::finished;
        hard_close();
        drop_user_state();
    }

    // io thread (bind_step): an unexpected exception inside this class ends the link.
    void internal_error(const std::string& what) noexcept {
        try {
            log(describe() + ": internal error: " + what);
            finish("internal error: " + what);
        } catch (...) {
            phase_ = phase::finished;
            hard_close();
        }
    }

private:
    enum class phase { open, closing, finished };

    template <class... Args>
    auto step(void (ws_session::*member)(Args...)) {
        return bind_step(this->shared_from_this(), member);
    }

    auto& lowest() { return beast::get_lowest_layer(ws_); }

    std::string describe() const { return link_description(inbound_, remote_address_, remote_port_, target_); }

    // ---- reading

    void do_read() {
        if (phase_ != phase::open) return;
        ws_.async_read_some(asio::buffer(read_piece_.get(), frame_bytes), step(&ws_session::on_read));
    }

    void on_read(error_code ec, std::size_t n) {
        if (phase_ == phase::finished) return;
        if (ec) return on_read_error(ec);
        last_rx_ = last_data_rx_ = steady::now();
        if (phase_ != phase::open) return; // closing: the close operation reads from here on
        if (ws_.got_text()) {
            return begin_close(websocket::close_code::unknown_data, "text frames are not accepted",
                               "protocol error: text frame", false);
        }
        message_.insert(message_.end(), read_piece_.get(), read_piece_.get() + n);
        if (ws_.is_message_done()) {
            std::vector<std::uint8_t> message = std::move(message_);
            message_ = {};
            auto events = events_; // the callback may replace events_
            auto self = this->shared_from_this();
            std::string threw = call_user(*st_, "on_message", [&] {
                if (events->on_message) events->on_message(self, std::move(message));
            });
            if (!threw.empty()) return begin_close(websocket::close_code::internal_error, "internal error", threw, false);
        }
        do_read();
    }

    void on_read_error(error_code ec) {
        if (ec == websocket::error::closed) {
            if (phase_ == phase::closing) return finish(close_report_); // the answer to our close
            const auto& r = ws_.reason();
            std::string text = "closed by peer (" + std::to_string(static_cast<unsigned>(r.code)) + ")";
            if (!r.reason.empty()) text += ": " + std::string(r.reason.data(), r.reason.size());
            return finish(text);
        }
        if (ec == websocket::error::message_too_big) {
            // Beast has already sent close code 1009 and torn the connection down.
            return finish("message too big (limit " + std::to_string(opts_.max_message_bytes) + " bytes)");
        }
        if (phase_ == phase::closing) {
            if (close_started_) return; // on_close or the deadline ends it
            return finish(close_report_);
        }
        finish("read: " + ec.message());
    }

    // Inside our read operation. Any control frame is a sign of life; a pong may answer one of
    // our pings.
    void on_control(websocket::frame_type kind, beast::string_view payload) {
        auto now = steady::now();
        last_rx_ = now;
        if (kind != websocket::frame_type::pong) return;
        std::uint64_t seq = 0;
        auto [end, err] = std::from_chars(payload.data(), payload.data() + payload.size(), seq);
        if (err != std::errc{} || end != payload.data() + payload.size()) return; // not ours
        for (auto it = pings_.begin(); it != pings_.end(); ++it) {
            if (it->first != seq) continue;
            latency_ms_.store(std::chrono::duration<double, std::milli>(now - it->second).count(), std::memory_order_relaxed);
            pings_.erase(pings_.begin(), it + 1);
            return;
        }
    }

    // ---- writing: one write in flight, big messages as several frames

    void do_write() {
        if (writing_ || queue_.empty() || phase_ == phase::finished) return;
        if (phase_ == phase::closing && !flush_) return;
        const auto& message = queue_.front();
        std::size_t n = std::min(frame_bytes, message.size() - write_offset_);
        write_fin_ = write_offset_ + n == message.size();
        writing_ = true;
        ws_.async_write_some(write_fin_, asio::buffer(message.data() + write_offset_, n), step(&ws_session::on_write));
    }

    void on_write(error_code ec, std::size_t n) {
        writing_ = false;
        if (phase_ == phase::finished) return;
        if (ec) {
            if (phase_ == phase::closing) {
                if (!close_started_) start_close(); // fails fast, then finishes
                return;
            }
            return finish("write: " + ec.message());
        }
        write_offset_ += n;
        if (write_fin_ || write_offset_ >= queue_.front().size()) {
            queued_.fetch_sub(queue_.front().size(), std::memory_order_relaxed);
            queue_.pop_front();
            write_offset_ = 0;
            report_room();
        }
        do_write();
        maybe_start_close();
    }

    // Calls on_room once the queue has the room notify_room() asked for.
    void report_room() {
        if (!room_armed_ || phase_ == phase::finished) return;
        const std::size_t queued = queued_.load(std::memory_order_relaxed);
        if (queued > opts_.max_queued_bytes || opts_.max_queued_bytes - queued < room_wanted_) return;
        room_armed_ = false;
        auto events = events_;
        auto self = this->shared_from_this();
        std::string threw = call_user(*st_, "on_room", [&] {
            if (events->on_room) events->on_room(self);
        });
        if (!threw.empty()) begin_close(websocket::close_code::internal_error, "internal error", threw, false);
    }

    // ---- pinging

    void arm_ping_timer() {
        if (phase_ != phase::open || opts_.ping_interval.count() <= 0) return;
        auto wake = next_ping_;
        if (opts_.ping_timeout.count() > 0) wake = std::min(wake, last_rx_ + opts_.ping_timeout);
        ping_timer_.expires_at(wake);
        ping_timer_.async_wait(step(&ws_session::on_ping_timer));
    }

    void on_ping_timer(error_code ec) {
        if (ec || phase_ != phase::open) return;
        auto now = steady::now();
        if (opts_.ping_timeout.count() > 0 && now - last_rx_ >= opts_.ping_timeout) return finish("ping timeout");
        if (now >= next_ping_) {
            if (!control_in_flight_) { // else the last control frame is still queued behind data
                bool quiet = queue_.empty() && !writing_ && now - last_data_rx_ >= opts_.ping_interval;
                if (quiet)
                    send_ping(now);
                else
                    send_heartbeat();
            }
            next_ping_ = now + opts_.ping_interval;
        }
        arm_ping_timer();
    }

    void send_ping(steady::time_point now) {
        std::uint64_t seq = ++ping_seq_;
        std::string text = std::to_string(seq);
        pings_.emplace_back(seq, now);
        if (pings_.size() > max_tracked_pings) pings_.pop_front();
        control_in_flight_ = true;
        ws_.async_ping(websocket::ping_data(text.data(), text.size()), step(&ws_session::on_control_sent));
    }

    // An unsolicited pong: "still here", without making the peer write an answer.
    void send_heartbeat() {
        control_in_flight_ = true;
        ws_.async_pong(websocket::ping_data(), step(&ws_session::on_control_sent));
    }

    void on_control_sent(error_code ec) {
        control_in_flight_ = false;
        if (phase_ != phase::open) return;
        if (ec && !aborted(ec)) finish("ping: " + ec.message()); // aborted: a close frame went first
    }

    // ---- closing

    // Stop delivering and sending; with `flush`, write what is queued first. `report` is the
    // reason on_closed will get ("" for a local close()).
    void begin_close(websocket::close_code code, const std::string& wire_reason, const std::string& report, bool flush) {
        if (phase_ != phase::open) return;
        phase_ = phase::closing;
        close_code_ = code;
        close_wire_reason_ = close_reason_text(wire_reason);
        close_report_ = report;
        flush_ = flush;
        ping_timer_.cancel();
        if (!flush) {
            while (queue_.size() > (writing_ ? 1u : 0u)) {
                queued_.fetch_sub(queue_.back().size(), std::memory_order_relaxed);
                queue_.pop_back();
            }
        }
        deadline_.expires_after(opts_.handshake_timeout);
        deadline_.async_wait(step(&ws_session::on_close_deadline));
        maybe_start_close();
    }

    void maybe_start_close() {
        if (phase_ != phase::closing || close_started_) return;
        if (flush_ && (writing_ || !queue_.empty())) return;
        start_close();
    }

    void start_close() {
        close_started_ = true;
        ws_.async_close(websocket::close_reason(close_code_, close_wire_reason_), step(&ws_session::on_close));
    }

    void on_close(error_code ec) {
        if (phase_ == phase::finished) return;
        if (ec && !aborted(ec) && ec != websocket::error::closed) log(describe() + ": close handshake: " + ec.message());
        finish(close_report_);
    }

    void on_close_deadline(error_code ec) {
        if (ec || phase_ != phase::closing) return;
        log(describe() + ": close handshake timed out");
        finish(close_report_);
    }

    // ---- the end

    // The only way the link ends (except shutdown()): close the socket, log one line, call
    // on_closed once.
    void finish(const std::string& report) {
        if (phase_ == phase::finished) return;
        phase_ = phase::finished;
        hard_close();
        if (report.empty())
            log(describe() + ": closed locally" + (close_wire_reason_.empty() ? "" : " (" + close_wire_reason_ + ")"));
        else
            log(describe() + ": closed: " + report);
        auto events = std::move(events_);
        drop_user_state();
        if (!events || !events->on_closed) return;
        auto self = this->shared_from_this();
        std::string threw = call_user(*st_, "on_closed", [&] { events->on_closed(self, report); });
        if (!threw.empty()) log(describe() + ": " + threw);
    }

    void hard_close() noexcept {
        ping_timer_.cancel();
        deadline_.cancel();
        lowest().close();
        slot_.reset(); // the connection has ended: its place under the listener's caps is free
    }

    // Releases user callbacks (they may hold link_ptrs: no cycles survive the end) and buffers.
    void drop_user_state() {
        events_ = std::make_shared<const link_events>();
        queue_.clear();
        queued_.store(0, std::memory_order_relaxed);
        message_ = {};
        pings_.clear();
    }

    std::shared_ptr<runtime_state> st_;
    std::shared_ptr<void> keep_; // outlives ws_ (declared before it)
    ws_stream<Stream> ws_;
    const link_options opts_;
    const bool inbound_;
    phase phase_ = phase::open;

    // fixed before the link is handed out (read by any thread afterwards)
    const std::string remote_address_;
    const std::uint16_t remote_port_;
    const std::string target_;
    const peer_certificate peer_; // TLS: what the peer presented

    std::unique_ptr<connection_counts::slot> slot_; // inbound: until the connection ends (hard_close)
    std::atomic<std::size_t> queued_{0};
    std::size_t room_wanted_ = 0; // notify_room(): io thread only
    bool room_armed_ = false;
    std::atomic<double> latency_ms_{-1.0};

    std::shared_ptr<const link_events> events_ = std::make_shared<const link_events>();

    // writing
    std::deque<std::vector<std::uint8_t>> queue_; // front() is being written while writing_
    std::size_t write_offset_ = 0;
    bool writing_ = false;
    bool write_fin_ = false;

    // reading
    std::unique_ptr<std::uint8_t[]> read_piece_;
    std::vector<std::uint8_t> message_;

    // pinging
    asio::steady_timer ping_timer_;
    steady::time_point last_rx_{};      // any frame, data or control
    steady::time_point last_data_rx_{}; // message data (the peer is writing to us)
    steady::time_point next_ping_{};
    bool control_in_flight_ = false;    // Beast allows one ping/pong at a time
    std::uint64_t ping_seq_ = 0;
    std::deque<std::pair<std::uint64_t, steady::time_point>> pings_;

    // closing
    asio::steady_timer deadline_;
    websocket::close_code close_code_ = websocket::close_code::normal;
    std::string close_wire_reason_;
    std::string close_report_;
    bool flush_ = false;
    bool close_started_ = false;
};

} // namespace detail
} // namespace hdbrepl::net
