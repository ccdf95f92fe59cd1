// How large an initial copy's chunks are (copy_rows messages), and what one costs: its
// encoded size on the wire and what its receiver charges against the link's flow-control
// bound for it while it waits to be applied. Pure: no I/O, no SQLite.
//
// The budget rule (docs/protocol.md, "Initial copy"): a chunk is one receiver transaction,
// so it should be large enough that a commit's fixed cost is small against its rows and
// small enough that it interleaves with streamed transactions and never nears a frame:
//     wire bytes   = min(512 KiB, maxFrameBytes / 4, maxBytesInFlight / 4)
//     charge bytes = min(4 x wire bytes, maxFrameBytes)
//     rows         <= wire::max_rows_per_chunk (the decoder's limit)
// A chunk is closed before the row that would take it past either byte budget, so it keeps
// within both unless its first row alone is larger: that row travels alone. (The charge,
// about the decoded size, is what bounds a chunk of many tiny values: a NULL is one byte on
// the wire and a whole value object once decoded.)
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "engine/value.hpp"
#include "replication/wire.hpp"

namespace hdbrepl::engine {

struct copy_chunk_budget {
    std::size_t wire_bytes = 0;   // encoded copy_rows message
    std::size_t charge_bytes = 0; // copy_rows_charge of it
    std::size_t max_rows = 0;
};

copy_chunk_budget copy_chunk_budget_for(std::size_t max_frame_bytes, std::size_t max_bytes_in_flight);

// Bytes of a copy_rows message besides its rows (type, table index, row count; at most).
inline constexpr std::size_t copy_rows_wire_overhead = 1 + 5 + 10;

// The encoded size of a value (value.hpp) and of one copy row (wire.cpp, copy_rows).
std::size_t encoded_value_bytes(const value& v);
std::size_t copy_row_wire_bytes(bool deleted, const std::string& origin, const std::vector<value>& values);
std::size_t copy_rows_wire_bytes(const wire::copy_rows& c);

// What a receiver counts for a copy chunk until it is applied (its queue bound per link is
// maxBytesInFlight + 6 x maxFrameBytes): every value object and payload, a fixed cost per row
// and per chunk. The sender counts the same to keep its unacknowledged chunks under it.
inline constexpr std::size_t copy_rows_charge_base = 64;
std::size_t copy_row_charge(const std::string& origin, const std::vector<value>& values);
std::size_t copy_rows_charge(const wire::copy_rows& c);

} // namespace hdbrepl::engine
