// Value comparison and encoding (see value.hpp for the format).
#include "engine/value.hpp"

#include <cmath>
#include <cstring>
#include <sstream>

namespace hdbrepl::engine {

namespace {
int storage_rank(value_type t) {
    switch (t) {
    case value_type::null: return 0;
    case value_type::integer:
    case value_type::real: return 1;
    case value_type::text: return 2;
    case value_type::blob: return 3;
    }
    return 4;
}

std::weak_ordering compare_numbers(const value& a, const value& b) {
    if (a.type == value_type::integer && b.type == value_type::integer) return a.i <=> b.i;
    auto int_real = [](std::int64_t i, double r) -> std::weak_ordering {
        if (r < -9223372036854775808.0) return std::weak_ordering::greater;
        if (r >= 9223372036854775808.0) return std::weak_ordering::less;
        auto y = static_cast<std::int64_t>(r);
        if (i != y) return i <=> y;
        double s = static_cast<double>(i);
        return s < r ? std::weak_ordering::less : s > r ? std::weak_ordering::greater : std::weak_ordering::equivalent;
    };
    if (a.type == value_type::integer && b.type == value_type::real && !std::isnan(b.r)) return int_real(a.i, b.r);
    if (a.type == value_type::real && b.type == value_type::integer && !std::isnan(a.r)) return 0 <=> int_real(b.i, a.r);
    double x = a.type == value_type::integer ? static_cast<double>(a.i) : a.r;
    double y = b.type == value_type::integer ? static_cast<double>(b.i) : b.r;
    if (x < y) return std::weak_ordering::less;
    if (x > y) return std::weak_ordering::greater;
    return std::weak_ordering::equivalent;
}
} // namespace

bool value::operator==(const value& o) const {
    if (type != o.type) return false;
    switch (type) {
    case value_type::null: return true;
    case value_type::integer: return i == o.i;
    case value_type::real: return std::memcmp(&r, &o.r, sizeof r) == 0 || r == o.r;
    default: return s == o.s;
    }
}

std::weak_ordering value::operator<=>(const value& o) const {
    int ra = storage_rank(type), rb = storage_rank(o.type);
    if (ra != rb) return ra <=> rb;
    if (ra == 0) return std::weak_ordering::equivalent;
    if (ra == 1) return compare_numbers(*this, o);
    int c = s.compare(o.s);
    return c < 0 ? std::weak_ordering::less : c > 0 ? std::weak_ordering::greater : std::weak_ordering::equivalent;
}

std::string value::to_string() const {
    switch (type) {
    case value_type::null: return "NULL";
    case value_type::integer: return std::to_string(i);
    case value_type::real: { std::ostringstream o; o.precision(17); o << r; return o.str(); }
    case value_type::text: return "'" + s + "'";
    case value_type::blob: return "x'<" + std::to_string(s.size()) + " bytes>'";
    }
    return "?";
}

void encode_value(byte_writer& w, const value& v) {
    w.put_u8(static_cast<std::uint8_t>(v.type));
    switch (v.type) {
    case value_type::null: break;
    case value_type::integer: w.put_svarint(v.i); break;
    case value_type::real: { std::uint64_t u; std::memcpy(&u, &v.r, 8); w.put_u64le(u); break; }
    case value_type::text:
    case value_type::blob: w.put_str(v.s); break;
    }
}

bool decode_value(byte_reader& r, value& out) {
    auto tag = r.get_u8();
    if (!r.ok()) return false;
    out = value{};
    switch (tag) {
    case 0: out.type = value_type::null; return true;
    case 1: out.type = value_type::integer; out.i = r.get_svarint(); return r.ok();
    case 2: {
        out.type = value_type::real;
        std::uint64_t u = r.get_u64le();
        std::memcpy(&out.r, &u, 8);
        return r.ok();
    }
    case 3:
    case 4: {
        out.type = static_cast<value_type>(tag);
        auto sv = r.get_str();
        if (!r.ok()) return false;
        out.s.assign(sv);
        return true;
    }
    default: r.fail(); return false;
    }
}

bool decode_value(byte_reader& r, value& out, decode_budget& budget) {
    if (!decode_value(r, out)) return false;
    // Checked after the copy: a payload's length is already bounded by the input it came in.
    if ((out.type == value_type::text || out.type == value_type::blob) && !budget.take_string(out.s.size())) {
        out = value{};
        r.fail();
        return false;
    }
    return true;
}

std::string normalized_key(std::string_view encoded) {
    if (encoded.size() == 9 && static_cast<std::uint8_t>(encoded[0]) == static_cast<std::uint8_t>(value_type::real)) {
        byte_reader r(reinterpret_cast<const std::uint8_t*>(encoded.data()), encoded.size());
        value v;
        if (decode_value(r, v) && v.r >= -9223372036854775808.0 && v.r < 9223372036854775808.0) {
            auto i = static_cast<std::int64_t>(v.r);
            if (static_cast<double>(i) == v.r) {
                bytes out;
                byte_writer w(out);
                encode_value(w, value::of_int(i));
                return std::string(out.begin(), out.end());
            }
        }
    }
    return std::string(encoded);
}

bool skip_value(byte_reader& r) {
    auto tag = r.get_u8();
    if (!r.ok()) return false;
    switch (tag) {
    case 0: return true;
    case 1: r.get_varint(); return r.ok();
    case 2: r.get_raw(8); return r.ok();
    case 3:
    case 4: r.get_str(); return r.ok();
    default: r.fail(); return false;
    }
}

} // namespace hdbrepl::engine
