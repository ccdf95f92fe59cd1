// Generic text helpers for the config loader's messages: case folding, the
// closest-name suggestion behind "did you mean ...?", and quoting a user's value so a
// message stays on one bounded line. Kept apart from the YAML walker because none of it
// knows about YAML or about which keys exist.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace hdbrepl::ext::config_detail {

std::string lower(std::string_view s);

// Lower case without '_' and '-', so `secure_port` and `SecurePort` both suggest `securePort`.
std::string squash(std::string_view s);

// Optimal-string-alignment distance (a transposition counts as one edit: `tsl` -> `tls`).
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate a misspelt key most likely meant, or "" when none is close.
std::string_view closest(std::string_view name, const std::vector<std::string_view>& candidates);

// "a, b, c"
std::string join(const std::vector<std::string_view>& v);

bool contains(const std::vector<std::string_view>& v, std::string_view s);

// A scalar as it appears in a message: quoted, one line, bounded.
std::string quote(std::string_view s);

} // namespace hdbrepl::ext::config_detail
