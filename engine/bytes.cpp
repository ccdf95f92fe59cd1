// Implementation of the bounds-checked byte writer/reader (see bytes.hpp).
#include "engine/bytes.hpp"

#include <cstring>

namespace hdbrepl::engine {

void byte_writer::put_u64le(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void byte_writer::put_varint(std::uint64_t v) {
    while (v >= 0x80) {
        out_.push_back(static_cast<std::uint8_t>(v | 0x80));
        v >>= 7;
    }
    out_.push_back(static_cast<std::uint8_t>(v));
}

void byte_writer::put_raw(const void* p, std::size_t n) {
    if (n == 0) return;
    const auto* b = static_cast<const std::uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
}

std::uint8_t byte_reader::get_u8() {
    if (p_ == end_) { fail(); return 0; }
    return *p_++;
}

std::uint64_t byte_reader::get_u64le() {
    if (remaining() < 8) { fail(); return 0; }
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(p_[i]) << (8 * i);
    p_ += 8;
    return v;
}

std::uint64_t byte_reader::get_varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (p_ == end_) { fail(); return 0; }
        std::uint8_t b = *p_++;
        // The 10th byte may only carry the top bit of a 64-bit value.
        if (shift == 63 && b > 1) { fail(); return 0; }
        v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
        if ((b & 0x80) == 0) return v;
    }
    fail();
    return 0;
}

std::string_view byte_reader::get_str(std::size_t max_len) {
    auto n = get_varint();
    if (!ok_ || n > remaining() || n > max_len) { fail(); return {}; }
    std::string_view s(reinterpret_cast<const char*>(p_), static_cast<std::size_t>(n));
    p_ += n;
    return s;
}

const std::uint8_t* byte_reader::get_raw(std::size_t n) {
    if (n > remaining()) { fail(); return nullptr; }
    const auto* r = p_;
    p_ += n;
    return r;
}

} // namespace hdbrepl::engine
