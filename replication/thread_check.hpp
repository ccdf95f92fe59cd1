// Debug builds: a part of the node owned by one thread binds to the first thread that uses
// it, and every later use asserts it runs there. Release builds: nothing at all.
// (node_impl::assert_on names the thread outright; a part that does not know the node's
// threads, such as row_filter, checks with this instead.)
#pragma once
#include <atomic>
#include <cassert>
#include <thread>

namespace hdbrepl::ext::node_detail {

class thread_check {
public:
    void assert_owner() const {
#ifndef NDEBUG
        const auto me = std::this_thread::get_id();
        std::thread::id unbound;
        owner_.compare_exchange_strong(unbound, me);
        assert(owner_.load() == me && "used from a thread that does not own it");
#endif
    }

private:
    mutable std::atomic<std::thread::id> owner_{};
};

} // namespace hdbrepl::ext::node_detail
