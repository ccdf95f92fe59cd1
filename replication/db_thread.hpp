// The node's database thread: one thread, one queue of jobs, run in order. Every SQLite
// connection of the node is used only here (node_impl::assert_on(node_thread::db)).
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace hdbrepl::ext::node_detail {

class db_thread {
public:
    db_thread() : thread_([this] { run(); }) {}
    ~db_thread() { stop_and_join(); }
    // any thread
    void post(std::function<void()> job) {
        {
            std::lock_guard lock(m_);
            if (stopping_) return;
            jobs_.push_back(std::move(job));
        }
        cv_.notify_one();
    }
    void stop_and_join() {
        {
            std::lock_guard lock(m_);
            stopping_ = true;
        }
        cv_.notify_one();
        if (thread_.joinable()) thread_.join();
    }
    bool on_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

private:
    void run(); // the thread itself (node.cpp)
    std::mutex m_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    std::thread thread_;
};

} // namespace hdbrepl::ext::node_detail
