// The credential-check thread and the per-address attempt limit (see auth_worker.hpp).
#include "security/auth_worker.hpp"

#include "engine/c_guard.hpp"

#include <algorithm>
#include <cstdio>

namespace hdbrepl::ext {

double attempt_limiter::level(const bucket& b, clock::time_point now) const {
    const double refilled = std::chrono::duration<double>(now - b.updated) / std::chrono::duration<double>(refill_);
    return std::min<double>(burst_, b.tokens + std::max(0.0, refilled));
}

void attempt_limiter::make_room(clock::time_point now) {
    // Full buckets are what a new address starts with: dropping them loses nothing.
    for (auto it = buckets_.begin(); it != buckets_.end();)
        it = level(it->second, now) >= burst_ ? buckets_.erase(it) : std::next(it);
    while (buckets_.size() >= max_addresses_) {
        auto oldest = std::min_element(buckets_.begin(), buckets_.end(),
                                       [](const auto& a, const auto& b) { return a.second.updated < b.second.updated; });
        buckets_.erase(oldest);
    }
}

bool attempt_limiter::allow(const std::string& address, clock::time_point now) {
    std::lock_guard lock(m_);
    auto it = buckets_.find(address);
    if (it == buckets_.end()) {
        if (buckets_.size() >= max_addresses_) make_room(now);
        it = buckets_.emplace(address, bucket{static_cast<double>(burst_), now}).first;
    }
    bucket& b = it->second;
    b.tokens = level(b, now);
    b.updated = now;
    if (b.tokens < 1.0) return false;
    b.tokens -= 1.0;
    return true;
}

std::size_t attempt_limiter::addresses() const {
    std::lock_guard lock(m_);
    return buckets_.size();
}

auth_worker::auth_worker(std::size_t max_queued, int burst, std::chrono::milliseconds refill, std::size_t max_addresses)
    : limiter_(burst, refill, max_addresses), max_queued_(max_queued), thread_([this] { run(); }) {}

auth_worker::~auth_worker() {
    {
        std::lock_guard lock(m_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) {
        if (thread_.get_id() == std::this_thread::get_id()) thread_.detach(); // never: jobs hold no owner of this object
        else thread_.join();
    }
    std::deque<queued_job> left;
    {
        std::lock_guard lock(m_);
        left.swap(jobs_);
    }
    for (auto& j : left) j.fn(false);
}

bool auth_worker::submit(job j, std::chrono::milliseconds max_wait) {
    {
        std::lock_guard lock(m_);
        if (stopping_ || jobs_.size() >= max_queued_) return false;
        jobs_.push_back({std::move(j), std::chrono::steady_clock::now() + max_wait});
    }
    cv_.notify_one();
    return true;
}

std::size_t auth_worker::queued() const {
    std::lock_guard lock(m_);
    return jobs_.size();
}

// Worker thread.
void auth_worker::run() {
    const bool clean = thread_guard(
        [this] {
            for (;;) {
                queued_job j;
                {
                    std::unique_lock lock(m_);
                    cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
                    if (stopping_) return;
                    j = std::move(jobs_.front());
                    jobs_.pop_front();
                }
                // A job answers its request itself; one that throws must not end the thread.
                thread_guard([&] { j.fn(std::chrono::steady_clock::now() <= j.deadline); },
                             [](const error& e) { std::fprintf(stderr, "hdbrepl: auth worker: a job threw: %s\n", e.message.c_str()); });
            }
        },
        [](const error& e) { std::fprintf(stderr, "hdbrepl: auth worker: stopping after an error: %s\n", e.message.c_str()); });
    if (!clean) {
        // The thread ends: refuse new jobs (the destructor answers the queued ones).
        std::lock_guard lock(m_);
        stopping_ = true;
    }
}

} // namespace hdbrepl::ext
