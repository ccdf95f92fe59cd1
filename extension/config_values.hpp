// The value parsers of the node configuration: integers, durations, byte sizes, ISO 8601
// times, host names and IP literals, and the formatting of durations and sizes in
// messages. Pure functions of their text (no YAML, no files), apart from the key path and
// line, which the loader adds, so each rule can be tested on its own.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hdbrepl::ext::config_detail {

inline constexpr std::int64_t kib = 1024, mib = 1024 * kib, gib = 1024 * mib;
inline constexpr std::int64_t second_ms = 1000, minute_ms = 60 * second_ms, hour_ms = 60 * minute_ms,
                              day_ms = 24 * hour_ms;

// ---------------------------------------------------------------- numbers

// Plain decimal with an optional sign: `0x10` or `1e3` in a port is far more likely a
// mistake than intent. nullopt on any other text or on overflow.
std::optional<std::int64_t> parse_integer(std::string_view s);

// Milliseconds, or a number with a unit ms, s, m, h or d (`30s`, `5 m`; units in any case).
std::optional<std::int64_t> parse_duration_ms(std::string_view s);

// Bytes, or a number with a unit b, KiB, MiB or GiB (`16MiB`, `64 kib`).
std::optional<std::int64_t> parse_bytes(std::string_view s);

// The largest whole unit: 30000 -> "30s", 1500 -> "1500ms".
std::string format_duration(std::int64_t ms);
// The largest whole unit: 16777216 -> "16MiB", 1000 -> "1000 bytes".
std::string format_bytes(std::int64_t b);

// ---------------------------------------------------------------- time

// Epoch milliseconds of YYYY-MM-DD, or of YYYY-MM-DDTHH:MM[:SS[.fff]] followed by Z or an
// offset; nullopt for other text, impossible dates and times before 1970. A date-time
// without a zone is refused: JavaScript (HarperDB) reads it as local time, so accepting
// it as UTC would silently disagree with the system we reproduce.
std::optional<std::int64_t> parse_iso8601_utc(std::string_view s);

// ---------------------------------------------------------------- addresses

// The canonical text of an IPv4/IPv6 literal (so `::1` and `0:0::1` compare equal), or
// nullopt when `s` is not one.
std::optional<std::string> ip_text(std::string_view s);

// Why `h` cannot be a hostname, or "" when it can. Phrased to follow "the hostname ".
std::string hostname_problem(std::string_view h);

// Comparison key for "is this the same host?": DNS names are case-insensitive.
std::string host_key(std::string_view h);

// "[::1]" -> "::1"; anything else unchanged.
std::string strip_ipv6_brackets(const std::string& h);

} // namespace hdbrepl::ext::config_detail
