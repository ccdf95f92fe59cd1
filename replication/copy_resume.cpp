// Persistence of an interrupted copy's resume point (copy_resume.hpp).
#include "replication/copy_resume.hpp"

#include "engine/bytes.hpp"

#include <algorithm>

namespace hdbrepl::engine {
namespace {

constexpr std::uint8_t format = 1;

std::string to_hex(const bytes& b) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(b.size() * 2);
    for (auto c : b) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

bool from_hex(const std::string& s, bytes& out) {
    if (s.size() % 2) return false;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    out.clear();
    for (std::size_t i = 0; i < s.size(); i += 2) {
        int hi = nibble(s[i]), lo = nibble(s[i + 1]);
        if (hi < 0 || lo < 0) return false;
        out.push_back(static_cast<std::uint8_t>(hi << 4 | lo));
    }
    return true;
}

} // namespace

void lower_copy_base(progress_map& base, const progress_map& next) {
    for (auto it = base.begin(); it != base.end();) {
        auto n = next.find(it->first);
        if (n == next.end()) {
            it = base.erase(it);
            continue;
        }
        it->second = std::min(it->second, n->second);
        ++it;
    }
}

std::string encode_copy_resume(const copy_resume_state& s) {
    bytes b;
    byte_writer w(b);
    w.put_u8(format);
    w.put_u8(static_cast<std::uint8_t>((s.has_point ? 1 : 0) | (s.has_base ? 2 : 0)));
    if (s.has_point) {
        w.put_str(s.table);
        w.put_u8(s.phase);
        encode_value(w, s.key);
    }
    w.put_varint(s.rows_done);
    if (s.has_base) {
        w.put_varint(s.base.size());
        for (const auto& [o, h] : s.base) {
            w.put_str(o);
            w.put_u64le(h);
        }
    }
    return to_hex(b);
}

bool decode_copy_resume(const std::string& text, copy_resume_state& out) {
    out = {};
    bytes b;
    if (!from_hex(text, b)) return false;
    byte_reader r(b.data(), b.size());
    if (r.get_u8() != format) return false;
    auto flags = r.get_u8();
    if (!r.ok() || flags > 3) return false;
    out.has_point = flags & 1;
    out.has_base = flags & 2;
    if (out.has_point) {
        out.table.assign(r.get_str(1024));
        out.phase = r.get_u8();
        if (!r.ok() || out.phase > 1 || !decode_value(r, out.key)) return false;
    }
    out.rows_done = r.get_varint();
    if (out.has_base) {
        auto n = r.get_varint();
        if (!r.ok() || n > r.remaining()) return false;
        for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
            std::string o(r.get_str(1024));
            out.base[o] = r.get_u64le();
        }
    }
    return r.ok() && r.at_end();
}

} // namespace hdbrepl::engine
