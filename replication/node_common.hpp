// What every part of the node shares: the namespaces it speaks in, its clock and log line,
// and two judgements of errors and versions. Thread: any.
#pragma once
#include "engine/hlc.hpp"

#include "engine/sqlite_api.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace hdbrepl::engine::wire {} // replication/wire.hpp

namespace hdbrepl::ext::node_detail {

using namespace hdbrepl::engine;
namespace w = hdbrepl::engine::wire;
using clock_ms = std::chrono::milliseconds;

inline std::uint64_t now_ms() { return wall_clock_ms(); }

inline void log_line(const std::string& node, const std::string& text) {
    // One line per event on stderr; the node's name makes interleaved output readable.
    std::fprintf(stderr, "hdbrepl[%s]: %s\n", node.c_str(), text.c_str());
}

// Errors of this node's storage rather than of the data: wait and retry, never refuse.
inline bool is_resource_error(int rc) {
    const int primary = rc & 0xff;
    return primary == SQLITE_FULL || primary == SQLITE_IOERR || primary == SQLITE_NOMEM;
}

// A version no honest peer can hold: beyond the 63 bits of the HLC, or further ahead of this
// node's clock than maxClockSkew. Copies are checked as streams are: one such row raised the
// clock of every later local write to its time.
inline bool hlc_out_of_range(hlc_t h, std::int64_t max_skew_ms) {
    return h >= (hlc_t{1} << 63) || hlc_too_far_ahead(h, wall_clock_ms(), static_cast<std::uint64_t>(max_skew_ms));
}

} // namespace hdbrepl::ext::node_detail
