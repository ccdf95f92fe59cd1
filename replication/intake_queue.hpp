// The hand-off of received items from the io thread to the database thread: a queue in
// arrival order, and whether a drain of it is already scheduled (one job on the db thread
// takes everything queued by then; more items wait for the next one). Items put back, a
// batch that must wait or a held origin retried, go in front, in their order.
// Thread: any (its own lock); the drain itself runs on the db thread.
#pragma once
#include "replication/intake_item.hpp"

#include <deque>
#include <iterator>
#include <mutex>
#include <vector>

namespace hdbrepl::ext::node_detail {

class intake_queue {
public:
    // io thread. True when the caller must schedule a drain (none was pending).
    bool push(received&& r) {
        std::lock_guard lock(m_);
        q_.push_back(std::move(r));
        return claim_drain();
    }
    // db thread. items[from..] back in front, in order; true when the caller must schedule
    // a drain.
    template <class Seq> bool put_back(Seq& items, std::size_t from) {
        std::lock_guard lock(m_);
        for (std::size_t k = items.size(); k > from; --k) q_.push_front(std::move(items[k - 1]));
        return claim_drain();
    }
    // db thread: everything queued, and the next push schedules a drain again.
    std::vector<received> take_all() {
        std::lock_guard lock(m_);
        std::vector<received> items(std::make_move_iterator(q_.begin()), std::make_move_iterator(q_.end()));
        q_.clear();
        drain_scheduled_ = false;
        return items;
    }

private:
    bool claim_drain() {
        if (drain_scheduled_) return false;
        drain_scheduled_ = true;
        return true;
    }
    std::mutex m_;
    std::deque<received> q_;
    bool drain_scheduled_ = false;
};

} // namespace hdbrepl::ext::node_detail
