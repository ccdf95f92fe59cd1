// HLC formatting and the wall clock (see hlc.hpp).
#include "engine/hlc.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace hdbrepl::engine {

std::string hlc_to_string(hlc_t t) {
    std::uint64_t ms = hlc_ms(t);
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ+%u", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<unsigned>(ms % 1000),
                  static_cast<unsigned>(hlc_logical(t)));
    return buf;
}

namespace {

// Fault-injection hook for the chaos harness (tests/chaos): HDBREPL_CLOCK_SKEW_MS, a signed
// number of milliseconds added to this process's wall clock, read once. Unset, empty or not
// a whole number (garbage, trailing text, out of range, more than a day either way) means 0.
// It lets one node process of a test cluster run with a clock that is seconds off.
std::int64_t clock_skew_ms() {
    static const std::int64_t skew = [] {
        const char* s = std::getenv("HDBREPL_CLOCK_SKEW_MS");
        if (!s || !*s) return std::int64_t{0};
        char* end = nullptr;
        errno = 0;
        long long v = std::strtoll(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0') return std::int64_t{0};
        constexpr long long day_ms = 24LL * 3600 * 1000;
        if (v > day_ms || v < -day_ms) return std::int64_t{0};
        return static_cast<std::int64_t>(v);
    }();
    return skew;
}

} // namespace

std::uint64_t wall_clock_ms() {
    using namespace std::chrono;
    auto ms = static_cast<std::int64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
    ms += clock_skew_ms();
    return static_cast<std::uint64_t>(ms < 0 ? 0 : ms);
}

} // namespace hdbrepl::engine
