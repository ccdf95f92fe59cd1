// Where a node checks the credentials of certificate requests (/hdbrepl/sign): one thread
// of its own with a bounded queue, and a per-address limit on attempts, so that the PBKDF2
// of a password check (tens of milliseconds, more for a stored hash of a higher cost) never
// runs on the io thread that serves every link of the process, and a client that repeats
// requests costs a bounded amount of work.
//
//   attempts   a token bucket per source address: `burst` attempts at once, one more every
//              `refill` (defaults 10 and 1 s); the caller answers 429 over the limit, before
//              any work. The table of addresses is bounded (max_addresses): full buckets
//              carry no state and go first, then the longest idle.
//   queue      at most `max_queued` jobs wait; submit() refuses more (the caller answers 503).
//              A job that waited longer than its `max_wait` is run with run = false instead
//              (the caller answers 503 at once): its client would otherwise be given up on by
//              the listener's handshake timeout before the answer.
//
// Threads: allow() and submit() from any thread (one mutex each); jobs run on the worker
// thread, one at a time, in order. The destructor stops the thread (after the job it is
// running) and runs every job still queued with run = false, so each request is answered.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace hdbrepl::ext {

class attempt_limiter {
public:
    using clock = std::chrono::steady_clock;
    attempt_limiter(int burst, clock::duration refill, std::size_t max_addresses)
        : burst_(burst), refill_(refill), max_addresses_(max_addresses) {}
    // Takes one attempt from `address`'s bucket; false when it is empty.
    bool allow(const std::string& address, clock::time_point now);
    std::size_t addresses() const;

private:
    struct bucket {
        double tokens = 0;
        clock::time_point updated;
    };
    double level(const bucket& b, clock::time_point now) const;
    void make_room(clock::time_point now);
    int burst_;
    clock::duration refill_;
    std::size_t max_addresses_;
    mutable std::mutex m_;
    std::map<std::string, bucket> buckets_;
};

class auth_worker {
public:
    using job = std::function<void(bool run)>;
    explicit auth_worker(std::size_t max_queued = 8, int burst = 10, std::chrono::milliseconds refill = std::chrono::seconds(1),
                         std::size_t max_addresses = 4096);
    ~auth_worker();
    auth_worker(const auth_worker&) = delete;
    auth_worker& operator=(const auth_worker&) = delete;

    // Any thread. One attempt from `address` (see attempt_limiter).
    bool allow(const std::string& address) { return limiter_.allow(address, attempt_limiter::clock::now()); }
    // Any thread. Queues `j` (run later with run = true on the worker thread, or run = false
    // when it waited more than `max_wait`); false, with `j` not kept, when max_queued jobs are
    // waiting or the worker is stopping.
    bool submit(job j, std::chrono::milliseconds max_wait = std::chrono::seconds(2));
    // Any thread. Jobs waiting (not counting the one running).
    std::size_t queued() const;

private:
    void run();
    attempt_limiter limiter_;
    const std::size_t max_queued_;
    mutable std::mutex m_;
    std::condition_variable cv_;
    struct queued_job {
        job fn;
        std::chrono::steady_clock::time_point deadline;
    };
    std::deque<queued_job> jobs_;
    bool stopping_ = false;
    std::thread thread_;
};

} // namespace hdbrepl::ext
