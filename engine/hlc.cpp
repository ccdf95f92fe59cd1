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

std::uint64_t wall_clock_ms() {
    using namespace std::chrono;
    auto ms = static_cast<std::int64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
    return static_cast<std::uint64_t>(ms < 0 ? 0 : ms);
}

} // namespace hdbrepl::engine
