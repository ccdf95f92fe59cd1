// JSON helpers (see json.hpp); also the one translation unit that compiles Boost.JSON.
#include <boost/json/src.hpp>

#include "extension/json.hpp"

#include <cstdio>
#include <ctime>

namespace hdbrepl::ext::json {

std::string parse_object(const std::string& text, value& out) {
    boost::system::error_code ec;
    out = boost::json::parse(text, ec);
    if (ec) return "the argument is not valid JSON (" + ec.message() + ")";
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
    if (v.is_uint64()) { out = static_cast<std::int64_t>(v.as_uint64()); return ""; }
    if (!v.is_string()) return "must be an ISO 8601 UTC time or epoch milliseconds";
    std::string s(v.as_string());
    int y, mo, d, h, mi, sec, n = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
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
    } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
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
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return "is not a valid date and time: '" + s + "'";
    std::int64_t secs = static_cast<std::int64_t>(timegm(&tm)) - offset_min * 60;
    out = secs * 1000 + ms;
    return "";
}

value parse_or_null(const std::string& text) {
    boost::system::error_code ec;
    auto v = boost::json::parse(text, ec);
    return ec ? value(nullptr) : v;
}

} // namespace hdbrepl::ext::json
