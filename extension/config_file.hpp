// Where the config text comes from: telling inline YAML/JSON text from a file path, and
// reading the file with a size cap and messages fit for the user. Kept apart from the
// YAML walker, which only ever sees text.
#pragma once
#include <cstddef>
#include <optional>
#include <string>

namespace hdbrepl::ext::config_detail {

// A config is a few hundred bytes; the cap keeps `repl_start('/dev/zero')` from eating memory.
inline constexpr std::size_t max_config_bytes = 1024 * 1024;

// True when `s` is YAML or JSON text rather than a path: it contains a newline, starts
// with '{', or contains "replication" (optionally quoted) followed by ':'.
bool looks_like_text(const std::string& s);

// Reads the whole file into `out` (up to max_config_bytes); on failure returns the
// message for the user.
std::optional<std::string> read_config_file(const std::string& path, std::string& out);

} // namespace hdbrepl::ext::config_detail
