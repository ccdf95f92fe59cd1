// What the node's threads publish for the others to read: the cluster_status document (built
// on the io thread, read by users' threads), the progress per origin (written by the db
// thread after each commit, read by the io thread for subscriptions), and the newest own
// version each peer confirmed (io thread), which repl_confirm waits on (users' threads).
// Thread: any (its own lock); each member says who writes.
#pragma once
#include "engine/hlc.hpp"
#include "replication/replication_store.hpp"

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>

namespace hdbrepl::ext::node_detail {

class status_board {
public:
    // io thread writes; any thread reads.
    void set_status(std::string json) {
        std::lock_guard lock(m_);
        status_json_ = std::move(json);
    }
    std::string status() const {
        std::lock_guard lock(m_);
        return status_json_;
    }
    // db thread writes; any thread reads.
    void set_progress(const engine::progress_map& p) {
        std::lock_guard lock(m_);
        progress_ = p;
    }
    engine::progress_map progress() const {
        std::lock_guard lock(m_);
        return progress_;
    }
    // io thread: the newest own version each peer confirmed (peers not named keep theirs);
    // wakes repl_confirm's waiters.
    void merge_confirmed(const std::map<std::string, engine::hlc_t>& confirmed) {
        {
            std::lock_guard lock(m_);
            for (const auto& [peer, h] : confirmed) confirmed_[peer] = h;
        }
        cv_.notify_all();
    }
    // Users' threads: waits up to `timeout` for `n` peers (of `only`, when given) to have
    // confirmed `hlc`, or for `stopped`; returns how many have.
    template <class Stopped>
    int wait_confirmed(engine::hlc_t hlc, int n, std::chrono::milliseconds timeout, const std::set<std::string>& only, Stopped stopped) {
        std::unique_lock lock(m_);
        auto count = [&] {
            int c = 0;
            for (auto& [name, h] : confirmed_) c += h >= hlc && (only.empty() || only.count(name)) ? 1 : 0;
            return c;
        };
        cv_.wait_for(lock, timeout, [&] { return stopped() || count() >= n; });
        return count();
    }
    // Any thread, after the stop condition became true: waiters look at it again. Taking the
    // lock first means no waiter is between checking the condition and sleeping.
    void wake_waiters() {
        { std::lock_guard lock(m_); }
        cv_.notify_all();
    }

private:
    mutable std::mutex m_;
    std::condition_variable cv_;
    std::string status_json_;
    engine::progress_map progress_;
    std::map<std::string, engine::hlc_t> confirmed_; // peer -> newest own HLC it confirmed
};

} // namespace hdbrepl::ext::node_detail
