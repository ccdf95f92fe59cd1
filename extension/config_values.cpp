// Value parsers of the node configuration (see config_values.hpp).
#include "extension/config_values.hpp"

#include "extension/config_text.hpp"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>
#include <limits>
#include <utility>
#include <vector>

namespace hdbrepl::ext::config_detail {

namespace {

// "<digits>[ ]<unit>" with the unit looked up in `units`; nullopt on any other shape or
// on overflow.
std::optional<std::int64_t> parse_with_unit(std::string_view s,
                                            const std::vector<std::pair<std::string_view, std::int64_t>>& units) {
    std::size_t i = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == 0) return std::nullopt;
    const auto number = parse_integer(s.substr(0, i));
    if (!number) return std::nullopt;
    while (i < s.size() && s[i] == ' ') ++i;
    const std::string unit = lower(s.substr(i));
    for (const auto& [name, factor] : units)
        if (unit == name) {
            if (*number > std::numeric_limits<std::int64_t>::max() / factor) return std::nullopt;
            return *number * factor;
        }
    return std::nullopt;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

} // namespace

// ---------------------------------------------------------------- numbers

std::optional<std::int64_t> parse_integer(std::string_view s) {
    if (!s.empty() && s[0] == '+') s.remove_prefix(1);
    if (s.empty() || s[0] == '+') return std::nullopt;
    std::int64_t v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
    return v;
}

std::optional<std::int64_t> parse_duration_ms(std::string_view s) {
    if (auto v = parse_integer(s)) return v;
    return parse_with_unit(s, {{"ms", 1}, {"s", second_ms}, {"m", minute_ms}, {"h", hour_ms}, {"d", day_ms}});
}

std::optional<std::int64_t> parse_bytes(std::string_view s) {
    if (auto v = parse_integer(s)) return v;
    return parse_with_unit(s, {{"b", 1}, {"kib", kib}, {"mib", mib}, {"gib", gib}});
}

std::string format_duration(std::int64_t ms) {
    if (ms != 0) {
        if (ms % day_ms == 0) return std::to_string(ms / day_ms) + "d";
        if (ms % hour_ms == 0) return std::to_string(ms / hour_ms) + "h";
        if (ms % minute_ms == 0) return std::to_string(ms / minute_ms) + "m";
        if (ms % second_ms == 0) return std::to_string(ms / second_ms) + "s";
    }
    return std::to_string(ms) + "ms";
}

std::string format_bytes(std::int64_t b) {
    if (b != 0) {
        if (b % gib == 0) return std::to_string(b / gib) + "GiB";
        if (b % mib == 0) return std::to_string(b / mib) + "MiB";
        if (b % kib == 0) return std::to_string(b / kib) + "KiB";
    }
    return std::to_string(b) + " bytes";
}

// ---------------------------------------------------------------- time

std::optional<std::int64_t> parse_iso8601_utc(std::string_view s) {
    auto digits = [&](std::size_t pos, std::size_t n, int& out) {
        if (pos + n > s.size()) return false;
        out = 0;
        for (std::size_t i = pos; i < pos + n; ++i) {
            if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
            out = out * 10 + (s[i] - '0');
        }
        return true;
    };
    int y = 0, mo = 0, d = 0;
    if (!digits(0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' || !digits(8, 2, d))
        return std::nullopt;
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > month_days[mo - 1] + (mo == 2 && leap ? 1 : 0)) return std::nullopt;
    std::int64_t ms = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * day_ms;
    std::size_t i = 10;
    if (i == s.size()) return ms >= 0 ? std::optional<std::int64_t>(ms) : std::nullopt;
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return std::nullopt;
    ++i;
    int hh = 0, mi = 0, ss = 0;
    if (!digits(i, 2, hh) || i + 2 >= s.size() || s[i + 2] != ':' || !digits(i + 3, 2, mi)) return std::nullopt;
    i += 5;
    std::int64_t frac_ms = 0;
    if (i < s.size() && s[i] == ':') {
        if (!digits(i + 1, 2, ss)) return std::nullopt;
        i += 3;
        if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
            ++i;
            const std::size_t start = i;
            while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
                if (i - start < 3) frac_ms = frac_ms * 10 + (s[i] - '0');
                ++i;
            }
            if (i == start) return std::nullopt;
            for (std::size_t k = i - start; k < 3; ++k) frac_ms *= 10;
        }
    }
    if (hh > 23 || mi > 59 || ss > 59) return std::nullopt;
    ms += hh * hour_ms + mi * minute_ms + ss * second_ms + frac_ms;
    if (i == s.size()) return std::nullopt; // no zone
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == s.size()) return ms >= 0 ? std::optional<std::int64_t>(ms) : std::nullopt;
    if (s[i] != '+' && s[i] != '-') return std::nullopt;
    const int sign = s[i] == '-' ? -1 : 1;
    int oh = 0, om = 0;
    if (!digits(i + 1, 2, oh)) return std::nullopt;
    std::size_t j = i + 3;
    if (j < s.size() && s[j] == ':') ++j;
    if (!digits(j, 2, om) || j + 2 != s.size() || oh > 23 || om > 59) return std::nullopt;
    ms -= sign * (oh * hour_ms + om * minute_ms);
    return ms >= 0 ? std::optional<std::int64_t>(ms) : std::nullopt;
}

// ---------------------------------------------------------------- addresses

std::optional<std::string> ip_text(std::string_view s) {
    const std::string str(s);
    unsigned char buf[16];
    char out[INET6_ADDRSTRLEN];
    for (int family : {AF_INET, AF_INET6})
        if (inet_pton(family, str.c_str(), buf) == 1 && inet_ntop(family, buf, out, sizeof out))
            return std::string(out);
    return std::nullopt;
}

std::string hostname_problem(std::string_view h) {
    if (h.empty()) return "must not be empty";
    if (h.find("://") != std::string_view::npos)
        return "is a URL; a hostname is only the name or IP address (write URLs as route entries)";
    if (h.find(':') != std::string_view::npos) {
        if (ip_text(h)) return "";
        return "contains ':' but is not an IPv6 address (give a port separately, not as host:port)";
    }
    if (h.size() > 253) return "is longer than 253 characters";
    for (char c : h) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || c == '-' || c == '.' || c == '_') continue;
        if (u < 0x21 || u == 0x7f) return "contains a space or control character";
        return std::string("contains '") + c + "', which a hostname cannot contain";
    }
    if (h.front() == '.' || h.back() == '.' || h.find("..") != std::string_view::npos)
        return "has an empty label (a leading, trailing or doubled '.')";
    if (h.find_first_not_of("0123456789.") == std::string_view::npos && !ip_text(h))
        return "looks like an IPv4 address but is not a valid one";
    return "";
}

std::string host_key(std::string_view h) {
    if (auto ip = ip_text(h)) return *ip;
    return lower(h);
}

std::string strip_ipv6_brackets(const std::string& h) {
    if (h.size() > 2 && h.front() == '[' && h.back() == ']' && h.find(':') != std::string::npos)
        return h.substr(1, h.size() - 2);
    return h;
}

} // namespace hdbrepl::ext::config_detail
