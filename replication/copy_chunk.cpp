// Copy chunk sizes (see copy_chunk.hpp for the rule).
#include "replication/copy_chunk.hpp"

#include <algorithm>

namespace hdbrepl::engine {

namespace {
std::size_t varint_bytes(std::uint64_t v) {
    std::size_t n = 1;
    while (v >= 0x80) { v >>= 7; ++n; }
    return n;
}
} // namespace

copy_chunk_budget copy_chunk_budget_for(std::size_t max_frame_bytes, std::size_t max_bytes_in_flight) {
    copy_chunk_budget b;
    b.wire_bytes = std::max<std::size_t>(1, std::min({std::size_t{512} << 10, max_frame_bytes / 4, max_bytes_in_flight / 4}));
    b.charge_bytes = std::max<std::size_t>(1, std::min(4 * b.wire_bytes, max_frame_bytes));
    b.max_rows = wire::max_rows_per_chunk;
    return b;
}

std::size_t encoded_value_bytes(const value& v) {
    switch (v.type) {
    case value_type::null: return 1;
    case value_type::integer: {
        const auto zz = (static_cast<std::uint64_t>(v.i) << 1) ^ static_cast<std::uint64_t>(v.i >> 63);
        return 1 + varint_bytes(zz);
    }
    case value_type::real: return 1 + 8;
    case value_type::text:
    case value_type::blob: return 1 + varint_bytes(v.s.size()) + v.s.size();
    }
    return 1;
}

std::size_t copy_row_wire_bytes(bool deleted, const std::string& origin, const std::vector<value>& values) {
    std::size_t n = 1 + 8 + varint_bytes(origin.size()) + origin.size(); // kind, hlc, origin
    if (deleted) return n + (values.empty() ? 1 : encoded_value_bytes(values[0]));
    n += varint_bytes(values.size());
    for (const auto& v : values) n += encoded_value_bytes(v);
    return n;
}

std::size_t copy_rows_wire_bytes(const wire::copy_rows& c) {
    std::size_t n = copy_rows_wire_overhead;
    for (const auto& r : c.rows) n += copy_row_wire_bytes(r.deleted, r.origin, r.values);
    return n;
}

std::size_t copy_row_charge(const std::string& origin, const std::vector<value>& values) {
    std::size_t n = 32 + origin.size();
    for (const auto& v : values) n += sizeof(value) + v.s.size();
    return n;
}

std::size_t copy_rows_charge(const wire::copy_rows& c) {
    std::size_t n = copy_rows_charge_base;
    for (const auto& r : c.rows) n += copy_row_charge(r.origin, r.values);
    return n;
}

} // namespace hdbrepl::engine
