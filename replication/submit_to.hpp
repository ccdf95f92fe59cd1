// One shape for "run this on that thread and wait, with a timeout".
//
// The node's work is split between its io thread (links, timers) and its db thread (its own
// SQLite connections). A caller on another thread (the user's, inside a SQL function) that
// needs an answer from one of them hands over a job and waits a bounded time. Written by hand
// each time, that step went wrong in one of two ways: a promise on the waiter's stack that
// the job fulfilled after the waiter had given up (a write to freed memory), or two callbacks
// racing to fulfil one promise (an exception in the loser). reply<R> removes both:
//   - its state is shared (the job holds a copy), never on the waiter's stack, so answering
//     after the waiter gave up is harmless;
//   - it is answered at most once: the first answer wins, later ones are dropped, so several
//     paths (a message, a close, a timer) may race to answer;
//   - it is copyable, so a job on one thread can hand it on to a step on the other (db -> io).
// node_impl::submit_to(thread, timeout, job) is the way in (start uses it too); reply<R>
// alone serves stop, whose jobs must run although the node is stopping (submit_to drops
// jobs of a stopped node) and which runs from the destructor, when the node can no longer
// be shared.
#pragma once
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <utility>

namespace hdbrepl::ext::node_detail {

// Which of the node's threads runs a job.
enum class node_thread { io, db };

template <class R> class reply {
public:
    reply() : s_(std::make_shared<state>()) {}

    // Any thread. The first call answers; later calls do nothing.
    void operator()(R value) const {
        if (!s_->answered.exchange(true)) s_->promise.set_value(std::move(value));
    }

    // The waiting thread, once: the answer, or nothing when none came within `timeout`.
    std::optional<R> wait(std::chrono::milliseconds timeout) const {
        if (s_->future.wait_for(timeout) != std::future_status::ready) return std::nullopt;
        return s_->future.get();
    }

private:
    struct state {
        std::promise<R> promise;
        std::future<R> future = promise.get_future();
        std::atomic<bool> answered{false};
    };
    std::shared_ptr<state> s_;
};

// For jobs that answer "done" and nothing else.
struct done_t {};
inline constexpr done_t done{};

} // namespace hdbrepl::ext::node_detail
