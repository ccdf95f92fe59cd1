// The copy window: how many bytes of an initial copy's chunks may be sent and not yet
// acknowledged (copy_ack), sized from what the copy itself measures. Pure: no I/O, no clock
// of its own (times are passed in, in microseconds of a monotonic clock).
//
// The pipe a copy must fill runs from the sender's queue through the network and the
// receiver's queue to its database thread, and back as an ack. So the round trip used is the
// time from a chunk's send to its ack (which includes applying it), not the link's ping
// (which is measured only while the link is quiet, so it is stale during a bulk transfer and
// misses the receiver's work). Per ack:
//   round trip    the least send->ack time seen in this copy (queueing only adds to it);
//   delivery rate bytes acked while the newest acked chunk was under way, over its send->ack
//                 time; the rate used is the highest of the last `rate_rounds` rounds (a
//                 round: until the chunks in flight at its start are all acked);
//   window        gain (2) x round trip x rate, at least `floor` (4 chunks), at most
//                 `max_bytes` (maxBytesInFlight).
// Start: the window begins at 8 chunks and grows by every acked byte (doubling each round)
// until three rounds in a row raise the rate by less than a quarter, then follows the rule
// above. A slow receiver acks slowly: the rate falls, and within `rate_rounds` rounds so
// does the window, down to the floor.
// Besides bytes: the receiver's own count of what waits there (copy_chunk.hpp, charge) stays
// within `max_charge`, and at most `max_chunks` chunks are in flight. One chunk may always
// go when none is in flight (a row larger than any budget travels alone).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>

namespace hdbrepl::engine {

class copy_window {
public:
    struct limits {
        std::size_t chunk_bytes = 512 << 10;  // the chunk budget (wire bytes)
        std::size_t chunk_charge = 2 << 20;   // the chunk budget (receiver's charge)
        std::size_t max_bytes = 8 << 20;      // maxBytesInFlight
        std::size_t max_charge = 72 << 20;    // under the receiver's queue bound
        std::size_t max_chunks = 64;
    };
    static constexpr double gain = 2.0;
    static constexpr int rate_rounds = 10;

    copy_window() : copy_window(limits{}) {}
    explicit copy_window(const limits& l);

    // A chunk of `bytes` on the wire (`charge` as its receiver counts it) was sent at `t_us`.
    void sent(std::size_t bytes, std::size_t charge, std::int64_t t_us);
    // The receiver has applied `chunks` chunks of this copy (cumulative), as heard at `t_us`.
    // A count at or below what was already acked changes nothing; one past what was sent
    // counts what was sent.
    void acked(std::uint64_t chunks, std::int64_t t_us);

    // Whether the next chunk (at most the chunk budget) may go now.
    bool may_send() const;

    std::size_t window() const { return window_; }
    std::size_t in_flight() const { return in_flight_; }
    std::size_t charge_in_flight() const { return charge_in_flight_; }
    std::size_t chunks_in_flight() const { return chunks_.size(); }
    std::uint64_t chunks_sent() const { return sent_count_; }
    std::uint64_t chunks_acked() const { return acked_count_; }
    bool starting() const { return starting_; }
    std::int64_t min_rtt_us() const { return min_rtt_us_; } // -1: no sample yet
    double rate_bytes_per_s() const;                       // 0: no sample yet
    std::size_t floor_bytes() const { return floor_; }

private:
    struct chunk {
        std::size_t bytes = 0, charge = 0;
        std::int64_t t_sent = 0;
        std::uint64_t delivered_at_send = 0; // bytes acked when it was sent
    };
    void end_round();
    std::size_t target() const;

    limits lim_;
    std::size_t floor_ = 0, window_ = 0;
    std::deque<chunk> chunks_; // sent, not yet acked, oldest first
    std::size_t in_flight_ = 0, charge_in_flight_ = 0;
    std::uint64_t sent_count_ = 0, acked_count_ = 0, delivered_ = 0;
    std::int64_t min_rtt_us_ = -1;
    // The rate filter: per round, its highest sample (bytes per second).
    std::array<double, rate_rounds> round_max_{};
    int round_ = 0;
    std::uint64_t round_end_ = 0; // the round ends when this many chunks are acked
    bool starting_ = true;
    double full_rate_ = 0; // start: the rate that the last growth reached
    int flat_rounds_ = 0;
};

} // namespace hdbrepl::engine
