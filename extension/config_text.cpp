// Generic text helpers of the config loader (see config_text.hpp).
#include "extension/config_text.hpp"

#include <algorithm>
#include <cctype>
#include <limits>

namespace hdbrepl::ext::config_detail {

std::string lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

std::string squash(std::string_view s) {
    std::string r;
    for (char c : s)
        if (c != '_' && c != '-') r += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    const std::size_t n = a.size(), m = b.size();
    std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
    for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= n; ++i)
        for (std::size_t j = 1; j <= m; ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[n][m];
}

std::string_view closest(std::string_view name, const std::vector<std::string_view>& candidates) {
    const std::string s = squash(name);
    std::string_view best;
    std::size_t best_d = std::numeric_limits<std::size_t>::max();
    for (auto c : candidates) {
        const std::size_t d = edit_distance(s, squash(c));
        if (d < best_d) best_d = d, best = c;
    }
    // Short keys need a tighter bound, or every 3-letter word would "look like" `tls`.
    const std::size_t limit = std::min(name.size(), best.size()) <= 4 ? 1 : 2;
    return best_d <= limit ? best : std::string_view{};
}

std::string join(const std::vector<std::string_view>& v) {
    std::string r;
    for (auto s : v) {
        if (!r.empty()) r += ", ";
        r += s;
    }
    return r;
}

bool contains(const std::vector<std::string_view>& v, std::string_view s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

std::string quote(std::string_view s) {
    std::string r = "'";
    for (char c : s.substr(0, 60)) r += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
    if (s.size() > 60) r += "...";
    return r + "'";
}

} // namespace hdbrepl::ext::config_detail
