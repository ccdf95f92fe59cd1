// The io runtime (one io_context run by one thread), its timers, posting, the orderly stop,
// and the log sink. See transport.hpp for the contract.
//
// How stop_and_join() ends everything without a callback afterwards: it sets `stopping`
// (checked before every user callback and before anything new starts), posts
// shutdown_all() — which, on the io thread, shuts down every enrolled object (links,
// listeners, dials, timers: sockets closed, timers cancelled) and releases the work guard —
// and joins. The cancelled operations complete with operation_aborted (not logged), their
// handlers drop the last references, and run() returns when nothing is left. Handlers that
// were queued but never run would hold references in a cycle (io_context -> handler ->
// object -> runtime_state -> io_context); the normal path runs them all, and the fallback
// (ioc.stop() after 2 s) accepts that leak rather than destroy live objects.
#include "net/runtime_state.hpp"

#include "engine/c_guard.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <future>
#include <mutex>

#ifdef __linux__
#include <pthread.h>
#endif

namespace hdbrepl::net {

namespace detail {

namespace {

// The sink is leaked on purpose: a late log line during static destruction must not touch a
// destroyed mutex.
struct sink_holder {
    std::mutex mu;
    std::shared_ptr<const std::function<void(const std::string&)>> sink;
};
sink_holder& sinks() {
    static sink_holder* h = new sink_holder;
    return *h;
}

constexpr std::chrono::seconds stop_grace{2};

} // namespace

void log(const std::string& line) noexcept {
    try {
        std::shared_ptr<const std::function<void(const std::string&)>> s;
        {
            std::lock_guard lk(sinks().mu);
            s = sinks().sink;
        }
        if (s) (*s)("net: " + line);
    } catch (...) {
        // a failing sink must not take the io thread down
    }
}

std::string current_exception_text() {
    try {
        throw;
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "non-standard exception";
    }
}

bool runtime_state::enroll(std::weak_ptr<closable> c) {
    if (shut_down_) return false;
    if (enrolled_.size() >= prune_at_) {
        std::erase_if(enrolled_, [](const std::weak_ptr<closable>& w) { return w.expired(); });
        prune_at_ = std::max<std::size_t>(64, enrolled_.size() * 2);
    }
    enrolled_.push_back(std::move(c));
    return true;
}

void runtime_state::shutdown_all() {
    shut_down_ = true;
    auto all = std::move(enrolled_);
    enrolled_.clear();
    for (auto& w : all) {
        if (auto c = w.lock()) {
            try {
                c->shutdown();
            } catch (...) {
                log("shutdown: " + current_exception_text());
            }
        }
    }
    work.reset();
}

// A pending one-shot timer. The wait handler holds it; the public handle only holds it too.
struct timer_impl : closable, std::enable_shared_from_this<timer_impl> {
    timer_impl(std::shared_ptr<runtime_state> st, std::function<void()> fn)
        : st_(std::move(st)), timer_(st_->ioc), fn_(std::move(fn)) {}

    // io thread.
    void start(std::chrono::milliseconds delay) {
        if (cancelled_ || st_->stopping || !st_->enroll(weak_from_this())) {
            fn_ = nullptr;
            return;
        }
        timer_.expires_after(delay);
        timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) { self->on_fire(ec); });
    }

    // io thread.
    void on_fire(const boost::system::error_code& ec) {
        auto fn = std::move(fn_);
        fn_ = nullptr;
        if (ec || cancelled_ || st_->stopping || !fn) return;
        try {
            fn();
        } catch (...) {
            log("timer callback threw: " + current_exception_text());
        }
    }

    // Any thread.
    void cancel() {
        cancelled_ = true;
        if (st_->in_io_thread()) {
            cancel_now();
        } else if (!st_->stopping) {
            // Only a weak reference travels: if the timer is gone there is nothing to cancel,
            // and a post that is never run (after the io thread ended) holds no cycle.
            asio::post(st_->ioc, [w = weak_from_this()] {
                if (auto t = w.lock()) t->cancel_now();
            });
        }
    }

    void shutdown() override { cancel_now(); }

private:
    void cancel_now() {
        cancelled_ = true;
        timer_.cancel();
    }

    std::shared_ptr<runtime_state> st_;
    asio::steady_timer timer_;
    std::function<void()> fn_; // io thread (set before start)
    std::atomic<bool> cancelled_{false};
};

} // namespace detail

using detail::log;
namespace asio = boost::asio;

void set_log_sink(std::function<void(const std::string&)> sink) {
    auto p = sink ? std::make_shared<const std::function<void(const std::string&)>>(std::move(sink)) : nullptr;
    std::lock_guard lk(detail::sinks().mu);
    detail::sinks().sink = std::move(p);
}

// ---- timer

timer::timer(std::shared_ptr<detail::timer_impl> impl) : impl_(std::move(impl)) {}

timer::~timer() { cancel(); }

void timer::cancel() {
    if (impl_) impl_->cancel();
}

// ---- io_runtime

struct io_runtime::thread_state {
    std::thread thread;
    std::future<void> finished;
    std::mutex mu; // serialises stop_and_join()
    bool joined = false;
};

io_runtime::io_runtime() : state_(std::make_shared<detail::runtime_state>()), thread_(std::make_unique<thread_state>()) {
    std::promise<void> finished;
    thread_->finished = finished.get_future();
    // The thread holds the state, so the io_context outlives run() whatever else lets go.
    thread_->thread = std::thread([st = state_, finished = std::move(finished)]() mutable {
#ifdef __linux__
        pthread_setname_np(pthread_self(), "hdbrepl-io");
#endif
        st->io_thread.store(std::this_thread::get_id());
        // Handlers catch their own exceptions; this is the last line of defence: the loop
        // carries on after one escapes run() (engine/c_guard.hpp).
        while (!thread_guard([&] { st->ioc.run(); },
                             [](const error& e) { log("io thread: unexpected exception from a handler: " + e.message); })) {
        }
        thread_guard([&] { finished.set_value(); }, [](const error& e) { log("io thread: at exit: " + e.message); });
    });
}

io_runtime::~io_runtime() {
    if (in_io_thread()) {
        // Cannot join ourselves: stop, and let the thread finish on its own (it holds the state).
        stop_and_join();
        if (thread_->thread.joinable()) thread_->thread.detach();
        return;
    }
    stop_and_join();
}

std::shared_ptr<io_runtime> make_io_runtime() { return std::shared_ptr<io_runtime>(new io_runtime()); }

bool io_runtime::in_io_thread() const { return state_->in_io_thread(); }

void io_runtime::post(std::function<void()> fn) {
    if (!fn || state_->stopping) return;
    // The raw pointer is safe: the handler runs inside run() (the thread holds the state) or
    // is destroyed with the io_context, which is part of the state.
    detail::runtime_state* st = state_.get();
    asio::post(st->ioc, [st, fn = std::move(fn)] {
        if (st->stopping) return;
        try {
            fn();
        } catch (...) {
            log("posted function threw: " + detail::current_exception_text());
        }
    });
}

std::shared_ptr<timer> io_runtime::after(std::chrono::milliseconds delay, std::function<void()> fn) {
    auto impl = std::make_shared<detail::timer_impl>(state_, std::move(fn));
    if (!state_->stopping) {
        if (in_io_thread()) {
            impl->start(delay);
        } else {
            // Armed on the io thread, where enrolment and shutdown_all() are ordered.
            asio::post(state_->ioc, [w = std::weak_ptr<detail::timer_impl>(impl), delay] {
                if (auto t = w.lock()) t->start(delay);
            });
        }
    }
    return std::make_shared<timer>(std::move(impl));
}

void io_runtime::stop_and_join() {
    auto begin_stop = [this] {
        if (!state_->stopping.exchange(true)) {
            detail::runtime_state* st = state_.get();
            asio::post(st->ioc, [st] { st->shutdown_all(); });
        }
    };
    if (in_io_thread()) {
        begin_stop();
        log("stop_and_join() called on the io thread: stopping without joining");
        return;
    }
    std::lock_guard lk(thread_->mu);
    if (thread_->joined) return;
    begin_stop();
    if (thread_->finished.wait_for(detail::stop_grace) != std::future_status::ready) {
        log("io thread still busy 2 s after stop (a blocked name lookup?): stopping the io_context");
        state_->ioc.stop();
    }
    if (thread_->thread.joinable()) thread_->thread.join();
    thread_->joined = true;
}

} // namespace hdbrepl::net
