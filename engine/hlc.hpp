// Hybrid logical clock and the version order of rows. Pure: time is passed in, so tests
// run the clock under virtual time.
//
// An HLC timestamp is one uint64: the high 48 bits are physical milliseconds since the Unix
// epoch, the low 16 bits a logical counter. Comparing the integers compares the timestamps.
// The clock's state (the highest timestamp this database has issued or seen) lives in the
// database itself (see schema.hpp, read_clock), so it survives restarts and is shared by
// every connection and process writing the file: a new timestamp is always taken while the
// SQLite write lock is held.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace hdbrepl::engine {

using hlc_t = std::uint64_t;

constexpr int hlc_logical_bits = 16;
constexpr std::uint64_t hlc_logical_mask = (1u << hlc_logical_bits) - 1;

constexpr hlc_t hlc_from_ms(std::uint64_t ms) { return ms << hlc_logical_bits; }
constexpr std::uint64_t hlc_ms(hlc_t t) { return t >> hlc_logical_bits; }
constexpr std::uint32_t hlc_logical(hlc_t t) { return static_cast<std::uint32_t>(t & hlc_logical_mask); }

// The timestamp for a new local event: later than everything seen (`last`) and, when the
// wall clock is ahead, equal to the wall clock. A wall clock that stepped backwards only
// makes the logical counter advance; a full counter carries into the millisecond part.
constexpr hlc_t hlc_next(hlc_t last, std::uint64_t now_ms) {
    hlc_t wall = hlc_from_ms(now_ms);
    return wall > last ? wall : last + 1;
}

// The clock after receiving a remote timestamp: never goes backwards.
constexpr hlc_t hlc_observe(hlc_t last, hlc_t remote) { return remote > last ? remote : last; }

// Whether a remote timestamp is too far ahead of our wall clock to be accepted now.
constexpr bool hlc_too_far_ahead(hlc_t remote, std::uint64_t now_ms, std::uint64_t max_skew_ms) {
    return hlc_ms(remote) > now_ms + max_skew_ms;
}

// "2026-11-26T10:03:25.123Z+5" (ISO time and logical counter), for status and messages.
std::string hlc_to_string(hlc_t t);

// Wall clock in milliseconds (the only impure function here; callers inject it).
std::uint64_t wall_clock_ms();

// A row version: the HLC of the transaction that wrote it and the name of its origin node.
// Last writer wins: the greater HLC wins; on equal HLCs the alphabetically greater node
// name wins (as HarperDB does); equal HLC and node means the same write (a duplicate).
struct version {
    hlc_t hlc = 0;
    std::string_view node;
};

// <0: a is older than b, 0: same write, >0: a is newer.
inline int compare_versions(const version& a, const version& b) {
    if (a.hlc != b.hlc) return a.hlc < b.hlc ? -1 : 1;
    int c = a.node.compare(b.node);
    return c < 0 ? -1 : c > 0 ? 1 : 0;
}

} // namespace hdbrepl::engine
