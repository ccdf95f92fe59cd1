// libFuzzer target: the JSON helpers the operation functions parse their bodies with
// (engine/json.cpp: parse_object, parse_time_ms, get_string, parse_or_null).
// Invariants: nothing throws or crashes; an object that parses serializes to text that
// parses to an equal value; a time that parses is not negative, and written back as
// ISO 8601 (UTC, milliseconds) parses to the same instant.
#include "engine/json.hpp"
#include "tests/fuzz/fuzz_common.hpp"

#include <cmath>
#include <ctime>

using namespace hdbrepl;

namespace {

// Equality, except that doubles may differ in the last bits: Boost.JSON 1.81 does not parse
// every decimal to the nearest double (its precise mode came in 1.83), so 2.2666E29 read
// back from its own serialization can move by an ulp. The operations read no doubles.
bool same(const json::value& a, const json::value& b) {
    if (a.is_double() && b.is_double()) {
        const double x = a.as_double(), y = b.as_double();
        return x == y || std::fabs(x - y) <= 1e-15 * std::fmax(std::fabs(x), std::fabs(y));
    }
    if (a.is_object() && b.is_object()) {
        const auto &x = a.as_object(), &y = b.as_object();
        if (x.size() != y.size()) return false;
        for (const auto& kv : x) {
            auto* o = y.if_contains(kv.key());
            if (!o || !same(kv.value(), *o)) return false;
        }
        return true;
    }
    if (a.is_array() && b.is_array()) {
        const auto &x = a.as_array(), &y = b.as_array();
        if (x.size() != y.size()) return false;
        for (std::size_t i = 0; i < x.size(); ++i)
            if (!same(x[i], y[i])) return false;
        return true;
    }
    return a == b;
}

void check_time(const json::value& v) {
    std::int64_t ms = -1;
    const std::string err = json::parse_time_ms(v, ms);
    if (!err.empty()) return;
    FUZZ_CHECK(ms >= 0);
    if (!v.is_string() || ms >= 253402300800000) return; // beyond 9999-12-31 ISO needs 5 digits
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
    std::int64_t again = -1;
    const std::string err2 = json::parse_time_ms(json::value(buf), again);
    if (!err2.empty() || again != ms)
        std::fprintf(stderr, "time %s -> %lld -> %s -> %lld (%s)\n", std::string(v.as_string()).c_str(),
                     static_cast<long long>(ms), buf, static_cast<long long>(again), err2.c_str());
    FUZZ_CHECK(err2.empty() && again == ms);
    // In UTC the date and time of day come back as written (no roll-over of 02-31 or :60).
    const std::string in(v.as_string());
    if (in.back() == 'Z') FUZZ_CHECK(in.compare(0, 19, buf, 19) == 0);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text = fuzz_text(data, size);
    json::value v;
    const std::string err = json::parse_object(text, v);
    json::value loose = json::parse_or_null(text);
    if (!err.empty()) {
        // Not an object: either not JSON at all (null) or some other JSON value.
        if (!loose.is_null()) FUZZ_CHECK(!loose.is_object());
        // The bare text as a time string (the start_time member of repl_add_node).
        check_time(json::value(text));
        return 0;
    }
    FUZZ_CHECK(v.is_object() && loose == v);
    const std::string out = json::serialize(v);
    json::value back;
    FUZZ_CHECK(json::parse_object(out, back).empty());
    FUZZ_CHECK(same(back, v));
    for (const auto& kv : v.as_object()) {
        const std::string key(kv.key());
        const std::string s = json::get_string(v.as_object(), key.c_str());
        if (kv.value().is_string() && key.find('\0') == std::string::npos) FUZZ_CHECK(s == std::string(kv.value().as_string()));
        check_time(kv.value());
    }
    FUZZ_CHECK(!json::message(text).empty());
    return 0;
}
