// Unit tests for engine/hlc.hpp: the hybrid logical clock under virtual time and the
// last-writer-wins version order.
#include <catch2/catch.hpp>

#include "engine/hlc.hpp"

#include <string>

using namespace hdbrepl::engine;

namespace {
constexpr std::uint64_t t0 = 1'795'687'405'123; // 2026-11-26T10:03:25.123Z
}

TEST_CASE("hlc: layout of the timestamp", "[unit][hlc]") {
    static_assert(hlc_from_ms(1) == 65536);
    hlc_t t = hlc_from_ms(t0) | 7;
    CHECK(hlc_ms(t) == t0);
    CHECK(hlc_logical(t) == 7);
    CHECK(hlc_logical_mask == 0xffff);
}

TEST_CASE("hlc: a wall clock that moves forward gives the wall clock", "[unit][hlc]") {
    hlc_t last = 0;
    for (std::uint64_t ms = t0; ms < t0 + 100; ms += 3) {
        hlc_t next = hlc_next(last, ms);
        CHECK(next > last);
        CHECK(next == hlc_from_ms(ms));
        CHECK(hlc_logical(next) == 0);
        last = next;
    }
}

TEST_CASE("hlc: a wall clock that stands still advances the logical counter", "[unit][hlc]") {
    hlc_t last = hlc_next(0, t0);
    for (std::uint32_t i = 1; i <= 1000; ++i) {
        hlc_t next = hlc_next(last, t0);
        CHECK(next == last + 1);
        CHECK(hlc_ms(next) == t0);
        CHECK(hlc_logical(next) == i);
        last = next;
    }
    // When the wall clock moves on, the counter resets.
    hlc_t later = hlc_next(last, t0 + 1);
    CHECK(later == hlc_from_ms(t0 + 1));
}

TEST_CASE("hlc: a wall clock that steps backwards never moves the clock back", "[unit][hlc]") {
    hlc_t last = hlc_next(0, t0 + 10'000);
    std::uint64_t wall[] = {t0 + 5'000, t0, t0 - 60'000, t0 + 9'999, t0 + 10'000};
    for (auto ms : wall) {
        INFO("wall " << ms);
        hlc_t next = hlc_next(last, ms);
        CHECK(next == last + 1);
        CHECK(hlc_ms(next) == t0 + 10'000);
        last = next;
    }
    CHECK(hlc_logical(last) == 5);
    // The wall clock catching up takes over again.
    CHECK(hlc_next(last, t0 + 10'001) == hlc_from_ms(t0 + 10'001));
}

TEST_CASE("hlc: a full logical counter carries into the milliseconds", "[unit][hlc]") {
    hlc_t full = hlc_from_ms(t0) | hlc_logical_mask;
    hlc_t next = hlc_next(full, t0);
    CHECK(next > full);
    CHECK(hlc_ms(next) == t0 + 1);
    CHECK(hlc_logical(next) == 0);
    // ... and the clock stays ahead of a wall clock that has not got there yet.
    CHECK(hlc_next(next, t0) == next + 1);
    CHECK(hlc_next(next, t0 + 1) == next + 1);
    CHECK(hlc_next(next, t0 + 2) == hlc_from_ms(t0 + 2));
}

TEST_CASE("hlc: observe never goes backwards", "[unit][hlc]") {
    hlc_t last = hlc_from_ms(t0) | 3;
    CHECK(hlc_observe(last, last - 1) == last);
    CHECK(hlc_observe(last, 0) == last);
    CHECK(hlc_observe(last, last) == last);
    CHECK(hlc_observe(last, last + 1) == last + 1);
    CHECK(hlc_observe(0, hlc_from_ms(t0)) == hlc_from_ms(t0));
    // A local event after observing a remote timestamp from the future is later than it.
    hlc_t remote = hlc_from_ms(t0 + 30'000) | 9;
    hlc_t seen = hlc_observe(hlc_next(0, t0), remote);
    hlc_t local = hlc_next(seen, t0);
    CHECK(local > remote);
}

TEST_CASE("hlc: too far ahead of the wall clock", "[unit][hlc]") {
    const std::uint64_t skew = 60'000;
    CHECK_FALSE(hlc_too_far_ahead(hlc_from_ms(t0), t0, skew));
    CHECK_FALSE(hlc_too_far_ahead(hlc_from_ms(t0 + skew), t0, skew));
    CHECK_FALSE(hlc_too_far_ahead(hlc_from_ms(t0 + skew) | hlc_logical_mask, t0, skew)); // same millisecond
    CHECK(hlc_too_far_ahead(hlc_from_ms(t0 + skew + 1), t0, skew));
    CHECK_FALSE(hlc_too_far_ahead(hlc_from_ms(t0 - 1'000'000), t0, skew)); // the past is fine
    CHECK(hlc_too_far_ahead(hlc_from_ms(t0 + 1), t0, 0));
    CHECK_FALSE(hlc_too_far_ahead(hlc_from_ms(t0), t0, 0));
}

TEST_CASE("hlc: compare_versions orders by HLC, then by node name", "[unit][hlc]") {
    CHECK(compare_versions({5, "a"}, {6, "a"}) < 0);
    CHECK(compare_versions({6, "a"}, {5, "z"}) > 0);  // HLC first: the name does not matter
    CHECK(compare_versions({5, "n2"}, {5, "n1"}) > 0); // tie: the greater name wins
    CHECK(compare_versions({5, "n1"}, {5, "n2"}) < 0);
    CHECK(compare_versions({5, "n1"}, {5, "n1"}) == 0); // same write
    CHECK(compare_versions({5, "n10"}, {5, "n2"}) < 0); // names compare as bytes
    CHECK(compare_versions({5, "N1"}, {5, "n1"}) < 0);  // case-sensitive
    CHECK(compare_versions({5, ""}, {5, "a"}) < 0);
    // Antisymmetric.
    version a{hlc_from_ms(t0), "node-a"}, b{hlc_from_ms(t0), "node-b"};
    CHECK(compare_versions(a, b) == -compare_versions(b, a));
    // Large timestamps compare as unsigned integers.
    CHECK(compare_versions({~0ull, "a"}, {1ull << 63, "b"}) > 0);
}

TEST_CASE("hlc: hlc_to_string is ISO time plus the logical counter", "[unit][hlc]") {
    CHECK(hlc_to_string(hlc_from_ms(t0) | 5) == "2026-11-26T10:03:25.123Z+5");
    CHECK(hlc_to_string(0) == "1970-01-01T00:00:00.000Z+0");
    CHECK(hlc_to_string(hlc_from_ms(1'000) | hlc_logical_mask) == "1970-01-01T00:00:01.000Z+65535");
    CHECK(hlc_to_string(hlc_from_ms(951'782'400'007)) == "2000-02-29T00:00:00.007Z+0");
}

TEST_CASE("hlc: the wall clock is plausible", "[unit][hlc]") {
    auto now = wall_clock_ms();
    CHECK(now > 1'600'000'000'000ull);
    CHECK(now < 5'000'000'000'000ull);
    CHECK(wall_clock_ms() >= now - 1000); // may step, but not by much in a test
}
