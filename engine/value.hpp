// A SQLite-shaped value (NULL, INTEGER, REAL, TEXT, BLOB) for the engine's pure parts, and
// its binary encoding inside change-log records. Pure: no SQLite types.
//
// Encoding: one tag byte, then
//   0 NULL        (nothing)
//   1 INTEGER     zig-zag varint
//   2 REAL        8 bytes, IEEE-754 little endian
//   3 TEXT        varint length + UTF-8 bytes
//   4 BLOB        varint length + bytes
#pragma once
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/bytes.hpp"

namespace hdbrepl::engine {

enum class value_type : std::uint8_t { null = 0, integer = 1, real = 2, text = 3, blob = 4 };

struct value {
    value_type type = value_type::null;
    std::int64_t i = 0;
    double r = 0;
    std::string s; // TEXT and BLOB payload

    static value null() { return {}; }
    static value of_int(std::int64_t v) { value x; x.type = value_type::integer; x.i = v; return x; }
    static value of_real(double v) { value x; x.type = value_type::real; x.r = v; return x; }
    static value of_text(std::string v) { value x; x.type = value_type::text; x.s = std::move(v); return x; }
    static value of_blob(std::string v) { value x; x.type = value_type::blob; x.s = std::move(v); return x; }

    bool operator==(const value& o) const;
    // SQLite's order for values of different storage classes: NULL < numbers < TEXT < BLOB;
    // numbers compare by value, TEXT and BLOB by memcmp (BINARY collation).
    std::weak_ordering operator<=>(const value& o) const;
    std::string to_string() const; // for messages and test output
};

void encode_value(byte_writer& w, const value& v);
// Returns false (and leaves r failed) on a malformed or truncated value.
bool decode_value(byte_reader& r, value& out);
// The same, charging a TEXT or BLOB payload's heap bytes to `budget` (the value object itself
// is charged by whoever holds it); false when the budget is spent.
bool decode_value(byte_reader& r, value& out, decode_budget& budget);
// The encoding of a key as SQLite compares keys: a REAL with an exact integer value is the
// same key as that INTEGER (1.0 = 1), so it is rewritten as the INTEGER. Other encodings
// are returned unchanged.
std::string normalized_key(std::string_view encoded);

// Skips one encoded value; false when malformed.
bool skip_value(byte_reader& r);

} // namespace hdbrepl::engine
