// What the io thread hands the database thread for each message that carries data (a
// streamed transaction, a copy's start, rows and end), the credit each holds against its
// link's input bound, and an origin whose intake is held back. Thread: made on the io
// thread, consumed on the db thread (node_receiving.cpp, node_copy_receiving.cpp).
#pragma once
#include "replication/node_common.hpp"
#include "replication/wire.hpp"

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace hdbrepl::ext::node_detail {

// Bytes of one link's received items not yet done with on the db thread. The io thread adds
// when it queues an item; the item gives its bytes back when it is destroyed (applied or
// dropped; moving it on, to a retry or a held origin, keeps them counted). A peer that
// ignores flow control is cut off when its count passes the bound (node_links.cpp).
class queue_credit {
public:
    queue_credit() = default;
    queue_credit(std::shared_ptr<std::atomic<std::size_t>> counter, std::size_t n) : c_(std::move(counter)), n_(n) { *c_ += n_; }
    queue_credit(queue_credit&& o) noexcept : c_(std::move(o.c_)), n_(std::exchange(o.n_, 0)) {}
    queue_credit& operator=(queue_credit&& o) noexcept {
        if (this != &o) {
            release();
            c_ = std::move(o.c_);
            n_ = std::exchange(o.n_, 0);
        }
        return *this;
    }
    queue_credit(const queue_credit&) = delete;
    queue_credit& operator=(const queue_credit&) = delete;
    ~queue_credit() { release(); }

private:
    void release() {
        if (c_) *c_ -= n_;
        c_.reset();
        n_ = 0;
    }
    std::shared_ptr<std::atomic<std::size_t>> c_;
    std::size_t n_ = 0;
};

// An item received from a peer, waiting for the database thread.
struct received {
    enum kind { txn, copy_begin, copy_rows, copy_end } what = txn;
    std::string peer;
    std::uint64_t seq = 0;
    bytes record;
    w::copy_rows rows;
    w::copy_end end; // copy_begin: its progress is the copy_start's
    std::vector<w::copy_table> tables;
    std::uint64_t link_id = 0;
    bool resumed = false; // copy_end: of a copy this node asked to resume (rows after a point only)
    // txn: the record's head, read once (the record itself may be filtered down to nothing
    // before a batch is replayed). head_ok false: not read yet.
    bool head_ok = false;
    hlc_t head_hlc = 0;
    std::string head_origin;
    bool secure = false;  // arrived on a mutually authenticated TLS link (record_entitlement.hpp)
    bool resync = false;  // copy_*: a full resync of a synced node, not its initial copy
    std::set<std::string> excluded; // copy_end of a resync: origins this node hears from others
    // Counts this item's bytes against its link's bound of queued input until it is gone.
    queue_credit credit;
};

// Intake of one origin held back on the db thread: a record too far ahead of the clock, or one
// that failed to apply, waits with everything after it from that origin, and is retried with
// backoff; other origins go on. Acks of a link stop below its first held record.
struct parked_origin {
    std::deque<received> items;
    std::string reason;       // for cluster_status (lastError)
    std::uint64_t seq = 0;    // the first held record's sender seq
    std::string peer;         // and the peer it came from
    std::int64_t retry_ms = 0; // current backoff
    std::uint64_t since = 0;  // ms
    std::uint64_t attempts = 0;
    bool retrying = false;    // its items went back to the queue for another try
};

} // namespace hdbrepl::ext::node_detail
