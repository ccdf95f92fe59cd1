// Byte buffers for the binary formats (change-log records, and later the wire protocol).
// Pure: no SQLite, no I/O. The reader never trusts its input: every read is bounds-checked
// and a failed read leaves the reader in a sticky error state instead of throwing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hdbrepl::engine {

using bytes = std::vector<std::uint8_t>;

// Appends fixed-width little-endian integers, LEB128 varints and length-prefixed strings.
class byte_writer {
public:
    explicit byte_writer(bytes& out) : out_(out) {}
    void put_u8(std::uint8_t v) { out_.push_back(v); }
    void put_u64le(std::uint64_t v);
    void put_varint(std::uint64_t v);
    // Zig-zag so that small negative numbers stay small.
    void put_svarint(std::int64_t v) { put_varint((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63)); }
    void put_raw(const void* p, std::size_t n);
    void put_str(std::string_view s) { put_varint(s.size()); put_raw(s.data(), s.size()); }
    std::size_t size() const { return out_.size(); }
private:
    bytes& out_;
};

class byte_reader {
public:
    byte_reader(const std::uint8_t* p, std::size_t n) : p_(p), end_(p + n) {}
    explicit byte_reader(const bytes& b) : byte_reader(b.data(), b.size()) {}
    bool ok() const { return ok_; }
    bool at_end() const { return p_ == end_; }
    std::size_t remaining() const { return static_cast<std::size_t>(end_ - p_); }
    std::uint8_t get_u8();
    std::uint64_t get_u64le();
    std::uint64_t get_varint();
    std::int64_t get_svarint() { auto u = get_varint(); return static_cast<std::int64_t>((u >> 1) ^ (~(u & 1) + 1)); }
    // Returns a view into the underlying buffer; empty and !ok() when truncated.
    std::string_view get_str(std::size_t max_len = SIZE_MAX);
    const std::uint8_t* get_raw(std::size_t n);
    const std::uint8_t* position() const { return p_; }
    void fail() { ok_ = false; p_ = end_; }
private:
    const std::uint8_t* p_;
    const std::uint8_t* end_;
    bool ok_ = true;
};

// The memory a decoder may spend on what it builds from `input_bytes` of hostile input: the
// decoded objects (sizeof of each element of every vector, strings' heap payload) may take at
// most decode_ratio times the input plus decode_slack. Decoders charge a count before they
// reserve or resize for it, so a lying count is refused before anything is allocated. Every
// value takes at least one byte on the wire and 56 in memory, so without this a frame of
// NULLs decodes to ~56 times its size. Small messages are never refused (the slack), and
// ordinary rows (a few short values each) decode to 5-20 times their encoding.
inline constexpr std::size_t decode_ratio = 16;
inline constexpr std::size_t decode_slack = std::size_t{64} << 20;

constexpr std::size_t decoded_bytes_limit(std::size_t input_bytes) {
    return input_bytes > (SIZE_MAX - decode_slack) / decode_ratio ? SIZE_MAX : input_bytes * decode_ratio + decode_slack;
}

// The heap bytes a std::string of `len` characters owns beyond its own object (no short-string
// buffer counted; libstdc++ keeps up to 15 characters inline).
constexpr std::size_t string_heap_bytes(std::size_t len) { return len > 15 ? len + 1 : 0; }

// What a decoder has left to spend (see decoded_bytes_limit). One per decoded message; the
// decoding thread only.
class decode_budget {
public:
    explicit decode_budget(std::size_t input_bytes) : left_(decoded_bytes_limit(input_bytes)) {}
    // Charges `count` objects of `each` bytes; false (charging nothing) when they do not fit.
    bool take(std::uint64_t count, std::size_t each) {
        if (each != 0 && count > left_ / each) return !(spent_ = true);
        left_ -= static_cast<std::size_t>(count) * each;
        return true;
    }
    bool take_string(std::size_t len) { return take(1, string_heap_bytes(len)); }
    std::size_t left() const { return left_; }
    bool spent() const { return spent_; } // a take() was refused
private:
    std::size_t left_;
    bool spent_ = false;
};

} // namespace hdbrepl::engine
