// JSON helpers (see json.hpp); also the one translation unit that compiles Boost.JSON.
#include <boost/json/src.hpp>

#include "engine/json.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <limits>

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

std::string parse(std::string_view text, value& out) {
    boost::system::error_code ec;
    out = boost::json::parse(boost::json::string_view(text.data(), text.size()), ec);
    if (ec) {
        out = nullptr;
        return ec.message();
    }
    if (!all_finite(out)) {
        out = nullptr;
        return "a number is out of range";
    }
    return "";
}

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

// ---- reading one JSON text exactly one way ----------------------------------------------
// Both readers are Boost.JSON's basic_parser with an event handler (no DOM is built): the
// parser validates and decodes, the handler checks the shape and keeps what is asked for.

namespace {

using boost::json::error_code;
using sv = boost::json::string_view;

// The members and limits basic_parser asks of every handler; each event refuses by default.
struct handler_base {
    static constexpr std::size_t max_object_size = std::numeric_limits<std::size_t>::max();
    static constexpr std::size_t max_array_size = std::numeric_limits<std::size_t>::max();
    static constexpr std::size_t max_key_size = std::numeric_limits<std::size_t>::max();
    static constexpr std::size_t max_string_size = std::numeric_limits<std::size_t>::max();
    static bool refuse(error_code& ec) {
        ec = boost::json::error::exception; // any error: the handler knows why
        return false;
    }
    bool on_document_begin(error_code&) { return true; }
    bool on_document_end(error_code&) { return true; }
    bool on_number_part(sv, error_code&) { return true; }
    bool on_comment_part(sv, error_code& ec) { return refuse(ec); }
    bool on_comment(sv, error_code& ec) { return refuse(ec); }
};

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
std::size_t skip_blanks(std::string_view s, std::size_t i) {
    while (i < s.size() && is_blank(s[i])) ++i;
    return i;
}

struct members_handler : handler_base {
    explicit members_handler(object_members& o) : out(o) {}
    object_members& out;
    int depth = 0;
    std::string key_part, key, str; // key: the top-level member whose value comes next
    bool on_object_begin(error_code&) { return ++depth, true; }
    bool on_object_end(std::size_t, error_code&) { return --depth, true; }
    bool on_array_begin(error_code& ec) { return depth == 0 ? refuse(ec) : (++depth, true); }
    bool on_array_end(std::size_t, error_code&) { return --depth, true; }
    bool on_key_part(sv s, std::size_t, error_code&) {
        if (depth == 1) key_part.append(s.data(), s.size());
        return true;
    }
    bool on_key(sv s, std::size_t, error_code&) {
        if (depth != 1) return true;
        key = std::move(key_part.append(s.data(), s.size()));
        key_part.clear();
        ++out.key_count[key];
        return true;
    }
    bool on_string_part(sv s, std::size_t, error_code& ec) {
        if (depth == 0) return refuse(ec);
        if (depth == 1) str.append(s.data(), s.size());
        return true;
    }
    bool on_string(sv s, std::size_t, error_code& ec) {
        if (depth == 0) return refuse(ec);
        if (depth == 1) {
            out.strings[key] = std::move(str.append(s.data(), s.size()));
            str.clear();
        }
        return true;
    }
    bool scalar(error_code& ec) { return depth == 0 ? refuse(ec) : true; }
    bool on_int64(std::int64_t, sv, error_code& ec) { return scalar(ec); }
    bool on_uint64(std::uint64_t, sv, error_code& ec) { return scalar(ec); }
    bool on_double(double, sv, error_code& ec) { return scalar(ec); }
    bool on_bool(bool, error_code& ec) { return scalar(ec); }
    bool on_null(error_code& ec) { return scalar(ec); }
};

struct string_array_handler : handler_base {
    string_array_handler(std::vector<std::string>& o, bool empty_array, bool empty_strings)
        : out(o), allow_empty_array(empty_array), allow_empty_strings(empty_strings) {}
    std::vector<std::string>& out;
    const bool allow_empty_array, allow_empty_strings;
    bool began = false;
    string_array_error::kind_t why = string_array_error::none;
    std::string str;
    bool no(string_array_error::kind_t k, error_code& ec) {
        why = k;
        return refuse(ec);
    }
    bool not_string(error_code& ec) { return no(began ? string_array_error::not_string : string_array_error::not_array, ec); }
    bool on_array_begin(error_code& ec) { return began ? not_string(ec) : (began = true); }
    bool on_array_end(std::size_t n, error_code& ec) {
        return n == 0 && !allow_empty_array ? no(string_array_error::empty_array, ec) : true;
    }
    bool on_object_begin(error_code& ec) { return not_string(ec); }
    bool on_object_end(std::size_t, error_code& ec) { return not_string(ec); }
    bool on_key_part(sv, std::size_t, error_code& ec) { return not_string(ec); }
    bool on_key(sv, std::size_t, error_code& ec) { return not_string(ec); }
    bool on_string_part(sv s, std::size_t, error_code& ec) {
        if (!began) return not_string(ec);
        str.append(s.data(), s.size());
        return true;
    }
    bool on_string(sv s, std::size_t, error_code& ec) {
        if (!began) return not_string(ec);
        str.append(s.data(), s.size());
        if (str.empty() && !allow_empty_strings) return no(string_array_error::empty_string, ec);
        out.push_back(std::move(str));
        str.clear();
        return true;
    }
    bool on_int64(std::int64_t, sv, error_code& ec) { return not_string(ec); }
    bool on_uint64(std::uint64_t, sv, error_code& ec) { return not_string(ec); }
    bool on_double(double, sv, error_code& ec) { return not_string(ec); }
    bool on_bool(bool, error_code& ec) { return not_string(ec); }
    bool on_null(error_code& ec) { return not_string(ec); }
};

// Where the string holding offset `at` opened, if `at` is inside one. Only for a text that
// Boost.JSON has read without error up to `at`: there, backslashes occur only inside strings
// and every escape is complete, so a quote opens or closes a string exactly when an even
// number of backslashes precedes it.
bool inside_string(std::string_view s, std::size_t at, std::size_t& open) {
    bool in = false;
    for (std::size_t i = 0; i < at && i < s.size(); ++i) {
        if (s[i] == '\\' && in) {
            ++i; // the escaped byte ('u' of \uXXXX: its hex digits are not quotes)
        } else if (s[i] == '"') {
            in = !in;
            if (in) open = i;
        }
    }
    return in;
}

// The value of a hex digit, or -1.
int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
bool one_of(char c, std::string_view set) { return set.find(c) != std::string_view::npos; }

// Names the error Boost.JSON reported at `at` inside the string opening at `open`: the
// string up to `at` was accepted, so only its last escape or sequence can be at fault.
void string_error(std::string_view s, std::size_t open, std::size_t at, const error_code& ec, string_array_error& err) {
    using k = string_array_error;
    std::size_t high = std::string_view::npos; // a \uD800..\uDBFF escape still waiting for its pair
    for (std::size_t i = open + 1; i < at && i < s.size();) {
        const auto b = static_cast<unsigned char>(s[i]);
        if (b != '\\') {
            const std::size_t len = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
            if (i + len > s.size()) return void((err.kind = k::invalid_utf8, err.offset = i)); // cut short
            i += len;
            continue;
        }
        const bool is_u = i + 1 < s.size() && s[i + 1] == 'u';
        if (!is_u) {
            if (high != std::string_view::npos) break; // the high half is not followed by \u
            if (i + 1 >= s.size() || !one_of(s[i + 1], "\"\\/bfnrt"))
                return void((err.kind = k::invalid_escape, err.offset = i));
            i += 2;
            continue;
        }
        std::size_t d = i + 2;
        unsigned cp = 0;
        for (; d < i + 6 && d < s.size() && hex_value(s[d]) >= 0; ++d) cp = cp << 4 | static_cast<unsigned>(hex_value(s[d]));
        if (d < i + 6) return void((err.kind = k::bad_hex_digit, err.offset = d));
        if (high != std::string_view::npos) {
            if (cp < 0xdc00 || cp > 0xdfff) break; // not the low half: the pair is what is wrong
            high = std::string_view::npos;
        } else if (cp >= 0xd800 && cp <= 0xdbff) {
            high = i;
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            return void((err.kind = k::unpaired_surrogate, err.offset = i));
        }
        i += 6;
    }
    if (ec == boost::json::error::expected_hex_digit) return void((err.kind = k::bad_hex_digit, err.offset = at));
    if (high != std::string_view::npos) return void((err.kind = k::unpaired_surrogate, err.offset = high));
    if (at >= s.size()) return void((err.kind = k::unterminated_string, err.offset = s.size()));
    const auto b = static_cast<unsigned char>(s[at]);
    if (b < 0x20) return void((err.kind = k::control_character, err.offset = at));
    if (b >= 0x80) return void((err.kind = k::invalid_utf8, err.offset = at));
    err.kind = k::other;
    err.offset = at;
    err.detail = ec.message();
}

} // namespace

bool read_object_members(std::string_view text, object_members& out, unsigned max_depth, bool allow_invalid_utf8) {
    out = {};
    const std::size_t first = skip_blanks(text, 0);
    if (first == text.size() || text[first] != '{') return false;
    boost::json::parse_options opt;
    opt.max_depth = max_depth;
    opt.allow_invalid_utf8 = allow_invalid_utf8;
    boost::json::basic_parser<members_handler> p(opt, out);
    error_code ec;
    const std::size_t end = p.write_some(false, text.data(), text.size(), ec);
    return !ec && skip_blanks(text, end) == text.size();
}

bool parse_string_array(std::string_view text, std::vector<std::string>& out, string_array_error& err,
                        bool allow_empty_array, bool allow_empty_strings) {
    using k = string_array_error;
    out.clear();
    err = {};
    boost::json::parse_options opt;
    opt.max_depth = 2; // deep enough for the handler to see, and refuse, a nested container
    boost::json::basic_parser<string_array_handler> p(opt, out, allow_empty_array, allow_empty_strings);
    error_code ec;
    std::size_t at = p.write_some(false, text.data(), text.size(), ec);
    const string_array_handler& h = p.handler();
    std::size_t open = 0;
    if (!h.began) {
        err.kind = k::not_array;
        err.offset = skip_blanks(text, 0);
    } else if (h.why == k::empty_string) {
        inside_string(text, at, open); // `at` is the closing quote
        err.kind = h.why;
        err.offset = open;
    } else if (h.why == k::not_string) {
        // A number is reported after its last digit, any other value at its first byte.
        while (at > 0 && one_of(text[at - 1], "0123456789+-.eE")) --at;
        err.kind = h.why;
        err.offset = at;
    } else if (h.why != k::none) {
        err.kind = h.why;
        err.offset = at;
    } else if (!ec) {
        at = skip_blanks(text, at);
        if (at == text.size()) return true;
        err.kind = k::trailing_text;
        err.offset = at;
    } else if (inside_string(text, at, open)) {
        string_error(text, open, at, ec, err);
    } else {
        // Outside strings: after a string, ',' or ']' must come; anywhere else a string.
        std::size_t b = at;
        while (b > 0 && is_blank(text[b - 1])) --b;
        if (b > 0 && text[b - 1] == '"') {
            err.kind = k::expected_comma_or_end;
        } else {
            // Within a misspelt literal or number: report where it starts.
            while (at > 0 && at == b && (std::isalnum(static_cast<unsigned char>(text[at - 1])) || one_of(text[at - 1], "+-.")))
                b = --at;
            err.kind = k::not_string;
        }
        err.offset = std::min(at, text.size());
    }
    out.clear();
    return false;
}

} // namespace hdbrepl::json
