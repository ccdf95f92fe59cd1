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

} // namespace hdbrepl::engine
