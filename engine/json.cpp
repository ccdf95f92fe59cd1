// JSON helpers (see json.hpp); also the one translation unit that compiles Boost.JSON.
#include <boost/json/src.hpp>

#include "engine/json.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <initializer_list>

namespace hdbrepl::json {

namespace {
// Boost.JSON 1.81 reads a number whose exponent overflows (1e999) as infinity, and would
// serialize it as `Infinity`, which is not JSON: such text is refused as input.
bool all_finite(const value& v) {
    if (v.is_double()) return std::isfinite(v.as_double());
    if (v.is_array()) {
        for (const auto& e : v.as_array())
            if (!all_finite(e)) return false;
    } else if (v.is_object()) {
        for (const auto& kv : v.as_object())
            if (!all_finite(kv.value())) return false;
    }
    return true;
}
} // namespace

std::string parse_object(const std::string& text, value& out) {
    boost::system::error_code ec;
    out = boost::json::parse(text, ec);
    if (ec) return "the argument is not valid JSON (" + ec.message() + ")";
    if (!all_finite(out)) {
        out = nullptr;
        return "the argument is not valid JSON (a number is out of range)";
    }
    if (!out.is_object()) return "the argument must be a JSON object";
    return "";
}

std::string get_string(const object& o, const char* key) {
    auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::string message(const std::string& text) {
    object o;
    o["message"] = text;
    return serialize(o);
}

std::string parse_time_ms(const value& v, std::int64_t& out) {
    if (v.is_int64()) {
        if (v.as_int64() < 0) return "must not be negative";
        out = v.as_int64();
        return "";
    }
    // Boost.JSON only makes a uint64 of a number above INT64_MAX: far beyond any time.
    if (v.is_uint64()) return "is too large for epoch milliseconds";
    if (!v.is_string()) return "must be an ISO 8601 UTC time or epoch milliseconds";
    std::string s(v.as_string());
    int y, mo, d, h, mi, sec, n = 0;
    // sscanf alone would also take signs and spaces ("2026- 1-+1T..."): every field is digits.
    auto digits_at = [&](std::initializer_list<std::size_t> at) {
        for (auto k : at)
            if (k >= s.size() || !std::isdigit(static_cast<unsigned char>(s[k]))) return false;
        return true;
    };
    if (!digits_at({0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18}) ||
        std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
        return "must look like YYYY-MM-DDTHH:MM:SS(.sss)?(Z|+HH:MM), not '" + s + "'";
    std::size_t i = 19;
    int ms = 0;
    if (i < s.size() && s[i] == '.') {
        int digits = 0;
        ++i;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
            if (digits < 3) ms = ms * 10 + (s[i] - '0');
            ++digits;
            ++i;
        }
        if (digits == 0) return "has a '.' without digits";
        for (int k = digits; k < 3; ++k) ms *= 10;
    }
    int offset_min = 0;
    if (i < s.size() && s[i] == 'Z') {
        ++i;
    } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':' &&
               digits_at({i + 1, i + 2, i + 4, i + 5})) {
        int oh = std::atoi(s.substr(i + 1, 2).c_str()), om = std::atoi(s.substr(i + 4, 2).c_str());
        offset_min = (s[i] == '-' ? -1 : 1) * (oh * 60 + om);
        i += 6;
    } else {
        return "needs a time zone (Z or +HH:MM): '" + s + "'";
    }
    if (i != s.size()) return "has trailing characters: '" + s + "'";
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    // timegm would quietly roll 2026-02-31 over into March.
    if (mo < 1 || mo > 12 || d < 1 || d > month_days[mo - 1] + (mo == 2 && leap ? 1 : 0) || h > 23 || mi > 59 ||
        sec > 59)
        return "is not a valid date and time: '" + s + "'";
    std::int64_t secs = static_cast<std::int64_t>(timegm(&tm)) - offset_min * 60;
    if (secs < 0) return "must not be before 1970: '" + s + "'";
    out = secs * 1000 + ms;
    return "";
}

value parse_or_null(const std::string& text) {
    boost::system::error_code ec;
    auto v = boost::json::parse(text, ec);
    return ec || !all_finite(v) ? value(nullptr) : v;
}

std::string quoted(std::string_view s) { return boost::json::serialize(boost::json::string_view(s.data(), s.size())); }

} // namespace hdbrepl::json
