// The copy window (replication/copy_window.hpp) against a simulated pipe: a receiver that
// applies one chunk at a time at a given rate, behind a given round trip.
#include <catch2/catch.hpp>

#include "replication/copy_chunk.hpp"
#include "replication/copy_window.hpp"

#include <algorithm>
#include <cstdint>
#include <deque>

using hdbrepl::engine::copy_window;

namespace {

constexpr std::size_t kib = 1024, mib = 1024 * 1024;

// Chunks of `chunk` bytes go whenever the window allows; each arrives rtt/2 later, waits for
// the receiver, takes chunk / rate to apply, and its ack arrives rtt/2 after that.
struct pipe_sim {
    copy_window w;
    std::size_t chunk;
    double rate;        // bytes per second the receiver applies
    std::int64_t rtt;   // us
    std::int64_t now = 0, receiver_free = 0;
    std::uint64_t sent = 0;
    std::deque<std::pair<std::int64_t, std::uint64_t>> acks; // (time, cumulative count)
    std::size_t max_in_flight = 0;
    std::uint64_t acked_bytes = 0;

    pipe_sim(copy_window::limits l, double rate_, std::int64_t rtt_us) : w(l), chunk(l.chunk_bytes), rate(rate_), rtt(rtt_us) {}

    // Runs until `until` us; returns the bytes acked in that span.
    std::uint64_t run(std::int64_t until) {
        const std::uint64_t before = acked_bytes;
        for (int guard = 0; guard < 10'000'000; ++guard) {
            while (w.may_send()) {
                w.sent(chunk, chunk, now);
                const std::int64_t arrive = now + rtt / 2;
                const std::int64_t start = std::max(arrive, receiver_free);
                receiver_free = start + static_cast<std::int64_t>(static_cast<double>(chunk) * 1e6 / rate);
                acks.emplace_back(receiver_free + rtt / 2, ++sent);
                max_in_flight = std::max(max_in_flight, w.in_flight());
            }
            if (acks.empty() || acks.front().first > until) break;
            now = acks.front().first;
            w.acked(acks.front().second, now);
            acked_bytes += chunk;
            acks.pop_front();
        }
        now = until;
        return acked_bytes - before;
    }
};

copy_window::limits limits_of(std::size_t chunk, std::size_t max_bytes) {
    copy_window::limits l;
    l.chunk_bytes = chunk;
    l.chunk_charge = chunk;
    l.max_bytes = max_bytes;
    l.max_charge = 1u << 30;
    l.max_chunks = 1000;
    return l;
}

} // namespace

TEST_CASE("copy window: grows to the bandwidth-delay product within a few round trips", "[unit][copy_window]") {
    // 50 MB/s behind 100 ms: 5 MB in flight keep the receiver busy.
    const double rate = 50e6;
    pipe_sim s(limits_of(512 * kib, 64 * mib), rate, 100'000);
    const double bdp = rate * 0.1;
    // Slow start: past the BDP within 0.6 s (6 round trips) of a copy's start.
    s.run(600'000);
    CHECK(static_cast<double>(s.w.window()) >= bdp);
    // In the steady state the receiver never waits: the rate is the receiver's.
    s.run(3'000'000);
    const auto bytes = s.run(5'000'000);
    CHECK(static_cast<double>(bytes) / 2.0 >= 0.95 * rate);
    CHECK_FALSE(s.w.starting());
    // About twice the BDP (the round trip measured includes applying one chunk, 10.5 ms).
    CHECK(static_cast<double>(s.w.window()) >= 1.5 * bdp);
    CHECK(static_cast<double>(s.w.window()) <= 3.0 * bdp);
    CHECK(s.w.min_rtt_us() >= 100'000);
    CHECK(s.w.min_rtt_us() <= 112'000);
    CHECK(s.w.rate_bytes_per_s() == Approx(rate).epsilon(0.1));
}

TEST_CASE("copy window: never passes maxBytesInFlight", "[unit][copy_window]") {
    // The BDP (5 MB) is above the cap (2 MiB): the window stays at the cap, and so does what
    // is in flight, from the first chunk on.
    pipe_sim s(limits_of(256 * kib, 2 * mib), 50e6, 100'000);
    const auto bytes = s.run(2'000'000);
    CHECK(s.w.window() == 2 * mib);
    CHECK(s.max_in_flight <= 2 * mib);
    // Window-bound: about a cap per round trip (100 ms + 5 ms applying a chunk).
    CHECK(static_cast<double>(bytes) / 2.0 <= 2.0 * mib / 0.1);
    CHECK(static_cast<double>(bytes) / 2.0 >= 0.8 * 2.0 * mib / 0.105);
}

TEST_CASE("copy window: a slow receiver brings it down to a few chunks", "[unit][copy_window]") {
    const double fast = 100e6, slow = 1e6;
    pipe_sim s(limits_of(256 * kib, 64 * mib), fast, 20'000);
    s.run(2'000'000);
    const auto fast_window = s.w.window();
    CHECK(fast_window >= 4 * mib); // 2 x 100 MB/s x ~22 ms
    // The receiver slows to 1 MB/s (acks come 100 times less often).
    s.rate = slow;
    const auto queued_before = s.w.in_flight();
    s.run(60'000'000);
    // Within the rate filter's rounds the window follows: 2 x 1 MB/s x ~22 ms is below the
    // floor of 4 chunks, so the floor it is.
    CHECK(s.w.window() == s.w.floor_bytes());
    CHECK(s.w.window() == 4 * 256 * kib);
    CHECK(s.w.in_flight() <= s.w.window());
    CHECK(s.w.in_flight() < queued_before);
    CHECK(s.w.rate_bytes_per_s() == Approx(slow).epsilon(0.2));
}

TEST_CASE("copy window: a receiver slow from the start holds it near the floor", "[unit][copy_window]") {
    pipe_sim s(limits_of(256 * kib, 64 * mib), 2e6, 10'000);
    s.run(30'000'000);
    CHECK_FALSE(s.w.starting());
    CHECK(s.w.window() <= 2 * s.w.floor_bytes());
    CHECK(s.w.window() >= s.w.floor_bytes());
    // Startup grew it while the rate was unknown, but never far: about a doubling per round,
    // for the three rounds that showed no growth, beyond the 8 chunks it starts with.
    CHECK(s.max_in_flight <= 64 * 256 * kib);
}

TEST_CASE("copy window: times that do not advance divide by nothing", "[unit][copy_window]") {
    copy_window w(limits_of(64 * kib, 8 * mib));
    const auto start = w.window();
    w.sent(1000, 1000, 5'000);
    w.sent(1000, 1000, 5'000);
    w.acked(1, 5'000); // acked when sent: no round-trip or rate sample
    CHECK(w.min_rtt_us() == -1);
    CHECK(w.rate_bytes_per_s() == 0);
    CHECK(w.chunks_acked() == 1);
    w.acked(2, 4'000); // the clock went back
    CHECK(w.min_rtt_us() == -1);
    CHECK(w.rate_bytes_per_s() == 0);
    CHECK(w.in_flight() == 0);
    CHECK(w.window() >= start);
    CHECK(w.window() <= 8 * mib);
    CHECK(w.may_send());
    // A later real sample is used.
    w.sent(1000, 1000, 10'000);
    w.acked(3, 12'000);
    CHECK(w.min_rtt_us() == 2'000);
    CHECK(w.rate_bytes_per_s() == Approx(1000 * 1e6 / 2000));
}

TEST_CASE("copy window: acks it cannot use change nothing", "[unit][copy_window]") {
    copy_window w(limits_of(64 * kib, 8 * mib));
    w.sent(100, 100, 0);
    w.sent(200, 200, 0);
    w.acked(5, 1'000); // past what was sent (an earlier copy's count): what was sent
    CHECK(w.chunks_acked() == 2);
    CHECK(w.in_flight() == 0);
    w.sent(300, 300, 2'000);
    w.acked(1, 3'000); // at or below what was acked
    CHECK(w.chunks_acked() == 2);
    CHECK(w.in_flight() == 300);
}

TEST_CASE("copy window: the receiver's count and the number of chunks bound it too", "[unit][copy_window]") {
    copy_window::limits l = limits_of(64 * kib, 64 * mib);
    l.chunk_charge = 1 * mib;
    l.max_charge = 3 * mib;
    copy_window w(l);
    // Nothing in flight: a chunk may go whatever its size (a row larger than any budget).
    REQUIRE(w.may_send());
    w.sent(100 * mib, 200 * mib, 0);
    CHECK_FALSE(w.may_send());
    w.acked(1, 1'000);
    CHECK(w.may_send());
    w.sent(1000, 1 * mib, 1'000);
    w.sent(1000, 1 * mib, 1'000);
    CHECK(w.may_send()); // 2 MiB of charge + 1 MiB fits in 3 MiB
    w.sent(1000, 1 * mib, 1'000);
    CHECK_FALSE(w.may_send());

    l.max_charge = 1u << 30;
    l.max_chunks = 3;
    copy_window c(l);
    for (int i = 0; i < 3; ++i) {
        REQUIRE(c.may_send());
        c.sent(10, 10, 0);
    }
    CHECK_FALSE(c.may_send()); // 30 bytes in flight, but three chunks
}

TEST_CASE("copy chunk budget: the rule", "[unit][copy_window]") {
    using hdbrepl::engine::copy_chunk_budget_for;
    auto b = copy_chunk_budget_for(16 * mib, 8 * mib); // the defaults
    CHECK(b.wire_bytes == 512 * kib);
    CHECK(b.charge_bytes == 2 * mib);
    CHECK(b.max_rows == hdbrepl::engine::wire::max_rows_per_chunk);
    b = copy_chunk_budget_for(1 * mib, 8 * mib);
    CHECK(b.wire_bytes == 256 * kib); // a quarter of a frame
    CHECK(b.charge_bytes == 1 * mib);
    b = copy_chunk_budget_for(64 * kib, 64 * kib); // the smallest settings
    CHECK(b.wire_bytes == 16 * kib);
    CHECK(b.charge_bytes == 64 * kib);
    b = copy_chunk_budget_for(64 * mib, 256 * kib);
    CHECK(b.wire_bytes == 64 * kib); // a quarter of what may be in flight
}

TEST_CASE("copy chunk sizes: the estimate is the encoded size, the charge the receiver's count", "[unit][copy_window]") {
    namespace w = hdbrepl::engine::wire;
    using hdbrepl::engine::value;
    w::copy_rows c;
    c.table = 300; // a two-byte index
    c.rows.push_back({false, 1, "n1", {value::of_int(0), value::of_int(-1), value::of_int(INT64_MIN), value::null()}});
    c.rows.push_back({false, ~0ull >> 1, std::string(200, 'o'), {value::of_real(2.5), value::of_text(std::string(130, 't'))}});
    c.rows.push_back({false, 7, "n1", {value::of_blob(std::string(70'000, 'b')), value::of_text("")}});
    c.rows.push_back({true, 9, "n2", {value::of_int(1234567)}});
    const auto encoded = w::encode(c).size();
    // The estimate may exceed the encoding only by the header's slack (varints at their widest).
    CHECK(hdbrepl::engine::copy_rows_wire_bytes(c) >= encoded);
    CHECK(hdbrepl::engine::copy_rows_wire_bytes(c) <= encoded + hdbrepl::engine::copy_rows_wire_overhead);
    std::size_t rows = 0;
    for (const auto& r : c.rows) rows += hdbrepl::engine::copy_row_wire_bytes(r.deleted, r.origin, r.values);
    CHECK(rows == encoded - 1 - 2 - 1); // type byte, table index, row count
    std::size_t charge = 64;
    for (const auto& r : c.rows) {
        charge += 32 + r.origin.size();
        for (const auto& v : r.values) charge += sizeof(v) + v.s.size();
    }
    CHECK(hdbrepl::engine::copy_rows_charge(c) == charge);
}
