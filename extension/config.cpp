// Loader for the node configuration (see config.hpp and docs/config.md). It walks the
// yaml-cpp tree by hand rather than with Node::as<T>() so that every rejection can name
// the key path and the line, and so that nothing the user wrote is silently ignored.
#include "extension/config.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>
#include <tuple>

namespace hdbrepl::ext {

namespace fs = std::filesystem;

namespace {

// Thrown inside the loader only; load_node_config turns it into a config_error, so a
// failure deep in the tree needs no error plumbing on the way up.
struct load_failure {
    std::string message;
};

constexpr std::int64_t kib = 1024, mib = 1024 * kib, gib = 1024 * mib;
constexpr std::int64_t second_ms = 1000, minute_ms = 60 * second_ms, hour_ms = 60 * minute_ms,
                       day_ms = 24 * hour_ms;
// A config is a few hundred bytes; the cap keeps `repl_start('/dev/zero')` from eating memory.
constexpr std::size_t max_config_bytes = 1024 * 1024;

// ---------------------------------------------------------------- text helpers

std::string lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

// Lower case without '_' and '-', so `secure_port` and `SecurePort` both suggest `securePort`.
std::string squash(std::string_view s) {
    std::string r;
    for (char c : s)
        if (c != '_' && c != '-') r += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

// Optimal-string-alignment distance (a transposition counts as one edit: `tsl` -> `tls`).
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

// The candidate a misspelt key most likely meant, or "" when none is close.
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

// A scalar as it appears in a message: quoted, one line, bounded.
std::string quote(std::string_view s) {
    std::string r = "'";
    for (char c : s.substr(0, 60)) r += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
    if (s.size() > 60) r += "...";
    return r + "'";
}

std::string describe(const YAML::Node& n) {
    switch (n.Type()) {
    case YAML::NodeType::Scalar: return quote(n.Scalar());
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "an empty value";
    }
}

// ---------------------------------------------------------------- numbers

// Plain decimal only: `0x10` or `1e3` in a port is far more likely a mistake than intent.
std::optional<std::int64_t> parse_integer(std::string_view s) {
    if (!s.empty() && s[0] == '+') s.remove_prefix(1);
    if (s.empty() || s[0] == '+') return std::nullopt;
    std::int64_t v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
    return v;
}

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

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS[.fff]] followed by Z or an offset. A date-time
// without a zone is refused: JavaScript (HarperDB) reads it as local time, so accepting
// it as UTC would silently disagree with the system we reproduce.
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

// The canonical text of an IPv4/IPv6 literal (so `::1` and `0:0::1` compare equal), or
// nullopt when `s` is not one.
std::optional<std::string> ip_text(std::string_view s) {
    const std::string str(s);
    unsigned char buf[16];
    char out[INET6_ADDRSTRLEN];
    for (int family : {AF_INET, AF_INET6})
        if (inet_pton(family, str.c_str(), buf) == 1 && inet_ntop(family, buf, out, sizeof out))
            return std::string(out);
    return std::nullopt;
}

// Why `h` cannot be a hostname, or "" when it can. Phrased to follow "the hostname ".
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

// Comparison key for "is this the same host?": DNS names are case-insensitive.
std::string host_key(std::string_view h) {
    if (auto ip = ip_text(h)) return *ip;
    return lower(h);
}

std::string strip_ipv6_brackets(const std::string& h) {
    if (h.size() > 2 && h.front() == '[' && h.back() == ']' && h.find(':') != std::string::npos)
        return h.substr(1, h.size() - 2);
    return h;
}

// ---------------------------------------------------------------- key sets

// Keys this loader understands under `replication:`. The three certificate keys are the
// same as under `tls:`; HarperDB's documentation says certificate paths may be given in
// the replication section too.
const std::vector<std::string_view> replication_keys = {
    "hostname",       "routes",         "databases",          "shard",          "replicateTo",
    "securePort",     "port",           "bind",               "enableRootCAs",  "certificate",
    "certificateAuthority", "privateKey", "pingInterval",     "pingTimeout",    "logRetention",
    "tombstoneRetention", "maxClockSkew", "maxFrameBytes",    "maxBytesInFlight", "maxDatabaseSize", "readTimeout",
    "reconnectMinDelay", "reconnectMaxDelay"};
const std::vector<std::string_view> tls_keys = {"certificate", "certificateAuthority", "privateKey"};
const std::vector<std::string_view> route_keys = {"hostname", "port", "startTime", "shard"};
const std::vector<std::string_view> database_keys = {"name", "sharded"};

// Keys HarperDB accepts that hdbrepl does not implement, with what to do instead. They
// are errors like any unknown key (silently ignoring `failOver: false` would change
// behaviour behind the user's back), but with a message that does not call them typos.
using hint_table = std::vector<std::pair<std::string_view, std::string_view>>;
const hint_table replication_harper_only = {
    {"url", "set hostname (and securePort) instead"},
    {"mtls", "peer certificates are always verified, against tls.certificateAuthority and, with enableRootCAs, "
             "the system roots"},
    {"blobTimeout", "hdbrepl has no blobs"},
    {"failOver", ""},
    {"logging", "hdbrepl logs through the host's logging"},
    {"copyTimeout", ""},
    {"blobConcurrency", "hdbrepl has no blobs"},
    {"recordConcurrency", ""},
    {"receiveQueueHighWaterMark", "use maxBytesInFlight"},
    {"leadingDuplicateSkip", ""},
    {"blobGapReconnectMs", "hdbrepl has no blobs"}};
const hint_table route_harper_only = {{"revokedCertificates", "use repl_remove_certificate"},
                                      {"replicates", "use repl_add_node subscriptions"},
                                      {"sendsTo", "use repl_add_node subscriptions"},
                                      {"receivesFrom", "use repl_add_node subscriptions"},
                                      {"excludeTables", "declare the table with replicate=false"}};
const hint_table tls_harper_only = {{"ciphers", "hdbrepl uses OpenSSL's defaults for TLS 1.2 and 1.3"}};

bool contains(const std::vector<std::string_view>& v, std::string_view s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

// ---------------------------------------------------------------- the loader

// One value in the tree, with the path that names it in messages and the node whose
// line a message quotes (the key for mapping entries, the item for list entries).
// Copy-construct only, never assign: YAML::Node::operator= writes into the document tree.
struct field {
    std::string path;
    YAML::Node key;
    YAML::Node value;
};
using entries = std::map<std::string, field, std::less<>>;

struct route_defaults {
    std::string scheme; // for routes that give no scheme
    int port = 0;       // for routes that give no port
    int secure_port = 0;
    int plain_port = 0; // 0 = none
};

class loader {
public:
    loader(std::string source, fs::path base_dir) : source_(std::move(source)), base_dir_(std::move(base_dir)) {}

    node_config load(const std::string& text);

private:
    std::string source_; // the file path, or "" for inline text
    fs::path base_dir_;  // where relative certificate paths are resolved

    std::string where(const YAML::Mark& m) const {
        std::string s;
        if (!m.is_null()) s = "line " + std::to_string(m.line + 1);
        if (!source_.empty()) s += (s.empty() ? "in " : " of ") + quote(source_);
        return s;
    }
    std::string at(const std::string& path, const YAML::Node& n) const { return at(path, n.Mark()); }
    std::string at(const std::string& path, const YAML::Mark& m) const {
        const std::string w = where(m);
        return w.empty() ? path : path + " (" + w + ")";
    }
    [[noreturn]] void fail_at(const std::string& path, const YAML::Node& n, const std::string& what) const {
        throw load_failure{at(path, n) + ": " + what};
    }
    // An empty value has no useful position of its own; its key's line is what the user
    // looks for.
    [[noreturn]] void fail(const field& f, const std::string& what) const {
        const YAML::Node& n = f.value.IsDefined() && !f.value.IsNull() ? f.value : f.key;
        fail_at(f.path, n, what);
    }

    entries read_map(const field& f, const std::vector<std::string_view>& known, const hint_table& harper_only) const;

    std::string get_string(const field& f) const;
    std::int64_t get_integer(const field& f, std::int64_t lo, std::int64_t hi) const;
    bool get_bool(const field& f) const;
    std::int64_t get_duration(const field& f, std::int64_t lo, std::int64_t hi) const;
    std::int64_t get_bytes(const field& f, std::int64_t lo, std::int64_t hi) const;
    std::string get_hostname(const field& f) const;
    std::string get_path(const field& f) const;

    std::tuple<std::string, std::string, bool> split_host_port(const field& f, const std::string& text,
                                                               bool allow_bare_ipv6) const;
    int route_port(const field& f, const std::string& text, const std::string& port) const;
    route string_route(const field& f, const route_defaults& d) const;
    route mapping_route(const field& f, const route_defaults& d) const;
    void load_routes(const field& f, node_config& cfg, const route_defaults& d) const;
    void load_databases(const field& f, node_config& cfg, const entries& repl) const;
    void load_tls(const std::optional<field>& tls, const entries& repl, node_config& cfg) const;
    void load_tuning(const entries& repl, node_config& cfg) const;
};

entries loader::read_map(const field& f, const std::vector<std::string_view>& known,
                         const hint_table& harper_only) const {
    entries out;
    for (auto it = f.value.begin(); it != f.value.end(); ++it) {
        const YAML::Node k = it->first;
        if (k.IsNull()) fail_at(f.path, k, "has an empty key (a stray ',' or ':'?)");
        if (!k.IsScalar()) fail_at(f.path, k, "has a key that is " + describe(k) + "; keys must be plain names");
        const std::string name = k.Scalar();
        const std::string path = f.path + "." + name;
        if (auto prev = out.find(name); prev != out.end())
            fail_at(path, k, "is given twice (also at " + where(prev->second.key.Mark()) + ")");
        if (!contains(known, name)) {
            for (const auto& [h, hint] : harper_only)
                if (h == name)
                    fail_at(path, k,
                            "is a HarperDB setting that hdbrepl does not implement" +
                                (hint.empty() ? std::string() : " (" + std::string(hint) + ")") + "; remove it");
            const std::string_view guess = closest(name, known);
            fail_at(path, k,
                    "unknown key" + (guess.empty() ? std::string() : "; did you mean '" + std::string(guess) + "'?") +
                        " (known keys: " + join(known) + ")");
        }
        out.emplace(name, field{path, k, it->second});
    }
    return out;
}

std::string loader::get_string(const field& f) const {
    if (f.value.IsNull()) fail(f, "has no value; it must be a string");
    if (!f.value.IsScalar()) fail(f, "must be a string, not " + describe(f.value));
    return f.value.Scalar();
}

std::int64_t loader::get_integer(const field& f, std::int64_t lo, std::int64_t hi) const {
    const std::string range = "an integer between " + std::to_string(lo) + " and " + std::to_string(hi);
    if (!f.value.IsScalar()) fail(f, "must be " + range + ", not " + describe(f.value));
    const auto v = parse_integer(f.value.Scalar());
    if (!v || *v < lo || *v > hi) fail(f, "must be " + range + ", not " + describe(f.value));
    return *v;
}

bool loader::get_bool(const field& f) const {
    if (f.value.IsScalar()) {
        const std::string s = lower(f.value.Scalar());
        if (s == "true" || s == "yes" || s == "on") return true;
        if (s == "false" || s == "no" || s == "off") return false;
    }
    fail(f, "must be true or false, not " + describe(f.value));
}

std::int64_t loader::get_duration(const field& f, std::int64_t lo, std::int64_t hi) const {
    const std::string range = "between " + format_duration(lo) + " and " + format_duration(hi);
    std::optional<std::int64_t> v;
    if (f.value.IsScalar()) v = parse_duration_ms(f.value.Scalar());
    if (!v)
        fail(f, "must be a duration " + range +
                    ": milliseconds (e.g. 30000) or a number with a unit ms, s, m, h or d (e.g. 30s), not " +
                    describe(f.value));
    if (*v < lo || *v > hi) fail(f, "must be " + range + ", not " + describe(f.value));
    return *v;
}

std::int64_t loader::get_bytes(const field& f, std::int64_t lo, std::int64_t hi) const {
    const std::string range = "between " + format_bytes(lo) + " and " + format_bytes(hi);
    std::optional<std::int64_t> v;
    if (f.value.IsScalar()) v = parse_bytes(f.value.Scalar());
    if (!v)
        fail(f, "must be a size " + range + ": bytes (e.g. 1048576) or a number with a unit KiB, MiB or GiB "
                "(e.g. 16MiB), not " + describe(f.value));
    if (*v < lo || *v > hi) fail(f, "must be " + range + ", not " + describe(f.value));
    return *v;
}

std::string loader::get_hostname(const field& f) const {
    const std::string h = strip_ipv6_brackets(get_string(f));
    if (const std::string p = hostname_problem(h); !p.empty()) fail(f, p);
    return h;
}

// Certificate paths are checked now rather than when TLS starts: at that point the error
// could no longer name the key and line, and the node would already be half up.
std::string loader::get_path(const field& f) const {
    const std::string text = get_string(f);
    if (text.empty()) fail(f, "must not be empty (leave the key out instead)");
    fs::path p(text);
    if (p.is_relative()) p = base_dir_ / p;
    p = p.lexically_normal();
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(f, "cannot read " + quote(p.string()) + ": " + std::strerror(errno));
    struct stat st {};
    const bool is_dir = ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    ::close(fd);
    if (is_dir) fail(f, quote(p.string()) + " is a directory, not a PEM file");
    return p.string();
}

// Splits "host", "host:port", "[v6]", "[v6]:port" (and, outside URLs, a bare IPv6
// literal, whose colons cannot carry a port). Returns host, port text, has_port.
std::tuple<std::string, std::string, bool> loader::split_host_port(const field& f, const std::string& text,
                                                                   bool allow_bare_ipv6) const {
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos) fail(f, quote(text) + ": '[' without a closing ']'");
        const std::string host = text.substr(1, close - 1);
        if (!ip_text(host) || host.find(':') == std::string::npos)
            fail(f, quote(text) + ": brackets are only for IPv6 addresses, and " + quote(host) + " is not one");
        const std::string rest = text.substr(close + 1);
        if (rest.empty()) return {host, "", false};
        if (rest.front() != ':') fail(f, quote(text) + ": expected ':port' after ']'");
        return {host, rest.substr(1), true};
    }
    const auto colons = std::count(text.begin(), text.end(), ':');
    if (colons == 0) return {text, "", false};
    if (colons == 1) {
        const auto c = text.find(':');
        return {text.substr(0, c), text.substr(c + 1), true};
    }
    if (!allow_bare_ipv6)
        fail(f, quote(text) + ": an IPv6 address in a URL must be in brackets, e.g. wss://[::1]:9933");
    return {text, "", false};
}

int loader::route_port(const field& f, const std::string& text, const std::string& port) const {
    const auto v = parse_integer(port);
    if (!v || *v < 1 || *v > 65535)
        fail(f, quote(text) + ": the port must be an integer between 1 and 65535, not " + quote(port));
    return static_cast<int>(*v);
}

route loader::string_route(const field& f, const route_defaults& d) const {
    const std::string s = get_string(f);
    route r;
    std::string authority = s;
    bool url = false;
    if (const auto p = s.find("://"); p != std::string::npos) {
        url = true;
        r.scheme = lower(s.substr(0, p));
        if (r.scheme != "ws" && r.scheme != "wss")
            fail(f, quote(s) + ": the scheme must be ws:// or wss://, not " + quote(r.scheme + "://"));
        authority = s.substr(p + 3);
        if (const auto end = authority.find_first_of("/?#"); end != std::string::npos) {
            if (authority.substr(end) != "/")
                fail(f, quote(s) + ": a route URL has no path, query or fragment (only ws[s]://host:port)");
            authority.resize(end);
        }
        if (authority.find('@') != std::string::npos)
            fail(f, quote(s) + ": a route URL must not carry credentials; pass them to repl_add_node's "
                               "authorization, which never stores them");
    }
    auto [host, port, has_port] = split_host_port(f, authority, !url);
    if (const std::string problem = hostname_problem(host); !problem.empty())
        fail(f, quote(s) + ": the hostname " + problem);
    r.hostname = host;
    if (has_port) {
        r.port = route_port(f, s, port);
    } else if (!url) {
        r.port = d.port;
    } else if (r.scheme == "wss") {
        r.port = d.secure_port;
    } else if (d.plain_port != 0) {
        r.port = d.plain_port;
    } else {
        fail(f, quote(s) + ": a ws:// route needs a port, and this node has no 'port' to default to");
    }
    if (!url) r.scheme = d.scheme;
    return r;
}

route loader::mapping_route(const field& f, const route_defaults& d) const {
    // `- wss://host:` or `- host:` is a one-key mapping to YAML; say what happened rather
    // than report an unknown key named after the URL.
    if (f.value.size() == 1) {
        const auto only = f.value.begin();
        if (only->first.IsScalar() && only->second.IsNull() && !contains(route_keys, only->first.Scalar()))
            fail(f, quote(only->first.Scalar() + ":") + " ends with ':', which YAML reads as a mapping key; "
                    "write the port after the ':' (or leave the ':' out)");
    }
    const entries e = read_map(f, route_keys, route_harper_only);
    route r;
    const auto host = e.find("hostname");
    if (host == e.end()) fail(f, "a route mapping needs 'hostname' (it takes hostname, port, startTime, shard)");
    r.hostname = get_hostname(host->second);
    r.scheme = d.scheme;
    r.port = d.port;
    if (auto it = e.find("port"); it != e.end()) r.port = static_cast<int>(get_integer(it->second, 1, 65535));
    if (auto it = e.find("shard"); it != e.end()) r.shard = static_cast<int>(get_integer(it->second, 0, 65535));
    if (auto it = e.find("startTime"); it != e.end()) {
        const field& st = it->second;
        r.start_time = get_string(st);
        std::optional<std::int64_t> ms = parse_integer(r.start_time);
        if (!ms) ms = parse_iso8601_utc(r.start_time);
        if (!ms || *ms < 0)
            fail(st, "must be an ISO 8601 UTC time such as 2024-06-01T00:00:00Z (a time of day needs 'Z' or an "
                     "offset) or epoch milliseconds, not " + describe(st.value));
        r.start_time_ms = *ms;
    }
    return r;
}

void loader::load_routes(const field& f, node_config& cfg, const route_defaults& d) const {
    if (f.value.IsNull()) return; // `routes:` with nothing under it: no peers
    if (!f.value.IsSequence())
        fail(f, "must be a list of peers (one '- host', '- wss://host:port' or '- hostname: ...' per line), not " +
                    describe(f.value));
    // Where each peer was first listed, by comparison key, to report duplicates.
    std::map<std::string, std::pair<std::size_t, std::string>> seen;
    const std::string self = host_key(cfg.hostname);
    const std::string bind = host_key(cfg.bind);
    const bool specific_bind = cfg.bind != "0.0.0.0" && cfg.bind != "::";
    std::size_t i = 0;
    for (auto it = f.value.begin(); it != f.value.end(); ++it, ++i) {
        const YAML::Node item = *it;
        const field rf{f.path + "[" + std::to_string(i) + "]", item, item};
        route r;
        if (item.IsScalar()) {
            r = string_route(rf, d);
        } else if (item.IsMap()) {
            r = mapping_route(rf, d);
        } else {
            fail(rf, "must be a hostname, a ws:// or wss:// URL, or a mapping with hostname and port, not " +
                         describe(item));
        }
        // IP literals in one spelling, so canonical() and the peer's URL do not depend on
        // how the address was written (`0:0::1` is `::1`).
        if (auto ip = ip_text(r.hostname)) r.hostname = *ip;
        const std::string key = host_key(r.hostname);
        const bool own_port = r.port == cfg.secure_port || (cfg.has_port && r.port == cfg.port);
        if (own_port && (key == self || (specific_bind && key == bind)))
            fail(rf, "points at this node itself (" + r.hostname + " port " + std::to_string(r.port) +
                         "); a node does not dial itself, remove the route");
        const std::string id = key + "|" + std::to_string(r.port);
        if (auto prev = seen.find(id); prev != seen.end())
            fail(rf, "repeats routes[" + std::to_string(prev->second.first) + "] (" + prev->second.second +
                         "): the same peer " + r.hostname + " port " + std::to_string(r.port));
        seen.emplace(id, std::make_pair(i, where(item.Mark())));
        cfg.routes.push_back(std::move(r));
    }
}

void loader::load_databases(const field& f, node_config& cfg, const entries& repl) const {
    if (f.value.IsScalar() && f.value.Scalar() == "*") return; // all, the default
    if (f.value.IsNull()) fail(f, "has no value; leave the key out (or write '*') for all databases, or list them");
    std::vector<field> items;
    if (f.value.IsSequence()) {
        std::size_t i = 0;
        for (auto it = f.value.begin(); it != f.value.end(); ++it, ++i)
            items.push_back(field{f.path + "[" + std::to_string(i) + "]", *it, *it});
        if (items.empty()) fail(f, "is an empty list; list the databases to replicate, or leave the key out for all");
    } else if (f.value.IsScalar() || f.value.IsMap()) {
        items.push_back(f); // one database, written without the list
    } else {
        fail(f, "must be '*' or a list of database names, not " + describe(f.value));
    }
    std::map<std::string, std::string> seen; // lower-case name -> where
    for (const field& item : items) {
        database_entry db;
        // A pointer, not a copy to reassign: YAML::Node::operator= rebinds the node inside
        // the document tree rather than the handle.
        const field* name = &item;
        std::optional<entries> e;
        if (item.value.IsMap()) {
            e.emplace(read_map(item, database_keys, {}));
            const auto n = e->find("name");
            if (n == e->end()) fail(item, "a database mapping needs 'name' (it takes name and sharded)");
            name = &n->second;
            if (auto s = e->find("sharded"); s != e->end()) {
                db.sharded = get_bool(s->second);
                if (db.sharded && !repl.contains("shard"))
                    fail(s->second, "needs replication.shard (this node's shard number) to be set");
            }
        } else if (!item.value.IsScalar()) {
            fail(item, "must be a database name or a mapping {name, sharded}, not " + describe(item.value));
        }
        db.name = get_string(*name);
        if (db.name == "*") {
            // '*' is all databases with no options; in a mapping `sharded` would be lost.
            if (item.value.IsMap()) fail(*name, "'*' (all databases) is written alone, not as a name");
            if (items.size() > 1) fail(*name, "'*' (all databases) cannot be combined with other entries");
            return;
        }
        if (db.name.empty() || db.name.find_first_of(std::string_view("\0\n\r\t", 4)) != std::string::npos ||
            db.name.front() == ' ' || db.name.back() == ' ')
            fail(*name, "must be a database (SQLite schema) name such as main, not " + describe(name->value));
        if (lower(db.name) == "temp")
            fail(*name, "the temp database belongs to one connection and cannot be replicated");
        // SQLite schema names are case-insensitive.
        if (auto prev = seen.find(lower(db.name)); prev != seen.end())
            fail(*name, "lists database " + quote(db.name) + " twice (also at " + prev->second + ")");
        seen.emplace(lower(db.name), where(name->value.Mark()));
        cfg.databases.push_back(std::move(db));
    }
    cfg.all_databases = false;
}

void loader::load_tls(const std::optional<field>& tls, const entries& repl, node_config& cfg) const {
    entries t;
    if (tls) {
        if (tls->value.IsSequence())
            fail(*tls, "must be a mapping with certificate, certificateAuthority and privateKey; hdbrepl takes one "
                       "certificate, not a list");
        if (!tls->value.IsMap()) fail(*tls, "must be a mapping with certificate, certificateAuthority and privateKey, "
                                            "not " + describe(tls->value));
        t = read_map(*tls, tls_keys, tls_harper_only);
    }
    for (auto key : tls_keys) {
        const auto in_repl = repl.find(key);
        if (in_repl == repl.end()) continue;
        if (auto in_tls = t.find(key); in_tls != t.end())
            fail(in_repl->second, "is also set as tls." + std::string(key) + " (" + where(in_tls->second.key.Mark()) +
                                      "); set it in one place");
        t.emplace(std::string(key), in_repl->second);
    }
    std::string* targets[] = {&cfg.tls.certificate, &cfg.tls.certificate_authority, &cfg.tls.private_key};
    for (std::size_t i = 0; i < tls_keys.size(); ++i)
        if (auto it = t.find(tls_keys[i]); it != t.end()) *targets[i] = get_path(it->second);
    // A certificate is useless without its key and a key without its certificate; finding
    // out at the first handshake would leave the node up but unreachable.
    if (auto c = t.find("certificate"); c != t.end() && !t.contains("privateKey"))
        fail(c->second, "needs privateKey too (the key of this certificate)");
    if (auto k = t.find("privateKey"); k != t.end() && !t.contains("certificate"))
        fail(k->second, "needs certificate too (the certificate of this key)");
}

void loader::load_tuning(const entries& repl, node_config& cfg) const {
    auto find = [&](std::string_view k) -> const field* {
        auto it = repl.find(k);
        return it == repl.end() ? nullptr : &it->second;
    };
    if (auto f = find("pingInterval")) cfg.ping_interval_ms = static_cast<int>(get_duration(*f, 10, hour_ms));
    cfg.ping_timeout_ms = 3 * cfg.ping_interval_ms;
    if (auto f = find("pingTimeout")) {
        cfg.ping_timeout_ms = static_cast<int>(get_duration(*f, 20, day_ms));
        if (cfg.ping_timeout_ms <= cfg.ping_interval_ms)
            fail(*f, "must be longer than pingInterval (" + format_duration(cfg.ping_interval_ms) +
                         "), or every link would time out between two pings");
    }
    if (auto f = find("logRetention")) cfg.log_retention_ms = get_duration(*f, second_ms, 3650 * day_ms);
    cfg.tombstone_retention_ms = cfg.log_retention_ms;
    if (auto f = find("tombstoneRetention")) {
        cfg.tombstone_retention_ms = get_duration(*f, second_ms, 3650 * day_ms);
        if (cfg.tombstone_retention_ms < cfg.log_retention_ms)
            fail(*f, "must be at least logRetention (" + format_duration(cfg.log_retention_ms) +
                         "): a tombstone purged while the log still holds older changes of its row would let a "
                         "late stale update resurrect the row");
    }
    if (auto f = find("maxClockSkew")) cfg.max_clock_skew_ms = get_duration(*f, 1, day_ms);
    if (auto f = find("readTimeout")) cfg.read_timeout_ms = get_duration(*f, 10, 10 * minute_ms);
    if (auto f = find("maxFrameBytes")) cfg.max_frame_bytes = get_bytes(*f, 64 * kib, gib);
    if (auto f = find("maxBytesInFlight")) cfg.max_bytes_in_flight = get_bytes(*f, 64 * kib, 16 * gib);
    if (auto f = find("maxDatabaseSize")) cfg.max_database_size = get_bytes(*f, 64 * kib, std::int64_t{1} << 50);
    if (auto f = find("reconnectMinDelay")) cfg.reconnect_min_ms = static_cast<int>(get_duration(*f, 1, hour_ms));
    cfg.reconnect_max_ms = std::max(cfg.reconnect_max_ms, cfg.reconnect_min_ms);
    if (auto f = find("reconnectMaxDelay")) {
        cfg.reconnect_max_ms = static_cast<int>(get_duration(*f, 1, day_ms));
        if (cfg.reconnect_max_ms < cfg.reconnect_min_ms)
            fail(*f, "must be at least reconnectMinDelay (" + format_duration(cfg.reconnect_min_ms) + ")");
    }
}

// Counts the documents of a YAML stream without building them, stopping at the second.
// YAML::LoadAll cannot be used: yaml-cpp 0.7 never consumes a ',' at the top level of a
// document (",a" or "'a' ,b"), so LoadAll adds empty documents until memory runs out.
class document_counter : public YAML::EventHandler {
public:
    int documents = 0;
    YAML::Mark second;      // where the second document starts ('---' or its first token)
    YAML::Mark second_root; // its root node, the line an error names
    void OnDocumentStart(const YAML::Mark& m) override {
        if (++documents == 2) second = second_root = m;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
    void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
    void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string&) override { node(m); }
    void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
        node(m);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
        node(m);
    }
    void OnMapEnd() override {}

private:
    bool root_seen_ = false;
    void node(const YAML::Mark& m) {
        if (documents == 2 && !root_seen_) second_root = m;
        if (documents == 2) root_seen_ = true;
    }
};

node_config loader::load(const std::string& text) {
    YAML::Node root_doc;
    std::optional<YAML::Mark> second_document;
    try {
        std::istringstream in(text);
        YAML::Parser parser(in);
        document_counter counter;
        while (counter.documents < 2 && parser.HandleNextDocument(counter)) {}
        if (counter.documents >= 2 && counter.second.pos >= 0 &&
            static_cast<std::size_t>(counter.second.pos) < text.size() && text[counter.second.pos] == ',')
            throw load_failure{"config (" + where(counter.second) +
                               "): not valid YAML or JSON: a ',' outside a [list] or {mapping}"};
        root_doc = YAML::Load(text);
        if (counter.documents >= 2) second_document = counter.second_root;
    } catch (const YAML::ParserException& e) {
        std::string w;
        if (!e.mark.is_null())
            w = "line " + std::to_string(e.mark.line + 1) + ", column " + std::to_string(e.mark.column + 1);
        if (!source_.empty()) w += (w.empty() ? "in " : " of ") + quote(source_);
        throw load_failure{"config" + (w.empty() ? std::string() : " (" + w + ")") +
                           ": not valid YAML or JSON: " + e.msg};
    }
    const std::string need = "it needs a 'replication:' section with at least 'hostname'";
    if (root_doc.IsNull()) {
        const std::string w = where(YAML::Mark::null_mark());
        throw load_failure{"config" + (w.empty() ? std::string() : " (" + w + ")") + ": is empty; " + need};
    }
    if (second_document)
        throw load_failure{at("config", *second_document) +
                           ": holds more than one YAML document ('---'); put replication and tls in one"};
    const YAML::Node root = root_doc;
    if (!root.IsMap()) fail_at("config", root, "must be a mapping with a 'replication:' section, not " + describe(root));

    // Other top-level keys are ignored so the loader can read a whole harperdb-config.yaml
    // (http:, logging:, components, ...). Two mistakes would then go unnoticed, so they
    // are caught: replication keys that lost their indentation, and misspelt section names.
    std::optional<field> repl_field, tls_field;
    for (auto it = root.begin(); it != root.end(); ++it) {
        const YAML::Node k = it->first;
        if (!k.IsScalar()) fail_at("config", k, "has a top-level key that is " + describe(k));
        const std::string name = k.Scalar();
        if (name == "replication" || name == "tls") {
            auto& slot = name == "tls" ? tls_field : repl_field;
            if (slot) fail_at(name, k, "is given twice (also at " + where(slot->key.Mark()) + ")");
            slot.emplace(field{name, k, it->second});
            continue;
        }
        // HarperDB's own top-level `databases:` is a mapping (storage paths per database).
        const bool harper_databases = name == "databases" && it->second.IsMap();
        if (contains(replication_keys, name) && !contains(tls_keys, name) && !harper_databases)
            fail_at(name, k, "belongs under 'replication:' (check its indentation)");
        if (contains(tls_keys, name)) fail_at(name, k, "belongs under 'tls:' (check its indentation)");
        if (const auto guess = closest(name, {"replication", "tls"}); !guess.empty())
            fail_at(name, k, "unknown section; did you mean '" + std::string(guess) + "'?");
    }
    if (!repl_field) fail_at("replication", root, "is required: " + need);
    if (repl_field->value.IsNull()) fail(*repl_field, "is empty; it needs at least 'hostname'");
    if (!repl_field->value.IsMap())
        fail(*repl_field, "must be a mapping with at least 'hostname', not " + describe(repl_field->value));
    const entries repl = read_map(*repl_field, replication_keys, replication_harper_only);
    auto find = [&](std::string_view k) -> const field* {
        auto it = repl.find(k);
        return it == repl.end() ? nullptr : &it->second;
    };

    node_config cfg;
    const field* hostname = find("hostname");
    if (!hostname)
        fail_at("replication.hostname", repl_field->key,
                "is required: this node's name, which peers see and its TLS certificate must carry");
    cfg.hostname = get_hostname(*hostname);

    if (auto f = find("securePort")) cfg.secure_port = static_cast<int>(get_integer(*f, 1, 65535));
    // The TLS listener runs unless the config asks for the plain port alone (port written,
    // securePort not): that is the development setup of the reference's IP-based mode.
    cfg.serve_secure = find("securePort") || !find("port");
    if (auto f = find("port")) {
        cfg.port = static_cast<int>(get_integer(*f, 1, 65535));
        cfg.has_port = true;
        if (cfg.port == cfg.secure_port)
            fail(*f, "must differ from securePort (" + std::to_string(cfg.secure_port) +
                         "): one port cannot serve both plain and TLS WebSockets");
    }
    if (auto f = find("shard")) cfg.shard = static_cast<int>(get_integer(*f, 0, 65535));
    if (auto f = find("replicateTo")) cfg.replicate_to = static_cast<int>(get_integer(*f, 0, 65535));
    if (auto f = find("enableRootCAs")) cfg.enable_root_cas = get_bool(*f);

    if (auto f = find("bind")) {
        const std::string b = strip_ipv6_brackets(get_string(*f));
        if (!ip_text(b))
            fail(*f, "must be an IP address to listen on and send from (e.g. 0.0.0.0, 127.0.0.2 or ::), not " +
                         describe(f->value));
        cfg.bind = *ip_text(b);
    } else {
        cfg.bind = ip_text(cfg.hostname) ? cfg.hostname : "0.0.0.0";
    }

    load_tls(tls_field, repl, cfg);
    load_tuning(repl, cfg);
    if (auto f = find("databases")) load_databases(*f, cfg, repl);

    // The contract: a bare hostname route goes to the secure port, or to `port` when there
    // is no securePort. securePort always has a default, so "no securePort" means it is
    // not written while `port` is.
    route_defaults d;
    d.secure_port = cfg.secure_port;
    d.plain_port = cfg.has_port ? cfg.port : 0;
    if (cfg.has_port && !find("securePort")) {
        d.scheme = "ws";
        d.port = cfg.port;
    } else {
        d.scheme = "wss";
        d.port = cfg.secure_port;
    }
    if (auto f = find("routes")) load_routes(*f, cfg, d);
    return cfg;
}

bool looks_like_text(const std::string& s) {
    if (s.find('\n') != std::string::npos) return true;
    const auto first = s.find_first_not_of(" \t\r");
    if (first != std::string::npos && s[first] == '{') return true;
    for (auto pos = s.find("replication"); pos != std::string::npos; pos = s.find("replication", pos + 1)) {
        std::size_t i = pos + 11;
        if (i < s.size() && (s[i] == '"' || s[i] == '\'')) ++i;
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        if (i < s.size() && s[i] == ':') return true;
    }
    return false;
}

// Reads the whole file; on failure returns the message for the user.
std::optional<std::string> read_config_file(const std::string& path, std::string& out) {
    auto failed = [&](const std::string& why) {
        std::string m = "cannot read config file " + quote(path) + ": " + why;
        // A one-line YAML snippet without `replication:` is taken for a path; say so.
        if (path.find(": ") != std::string::npos || path.find(':') == path.size() - 1)
            m += " (inline YAML must contain a 'replication:' section)";
        return m;
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return failed(std::strerror(errno));
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            ::close(fd);
            return failed(std::strerror(err));
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() > max_config_bytes) {
            ::close(fd);
            return failed("larger than 1 MiB; is this the right file?");
        }
    }
    ::close(fd);
    return std::nullopt;
}

} // namespace

std::variant<node_config, config_error> load_node_config(const std::string& text_or_path) {
    const std::string usage = "pass the path of a YAML file, or YAML/JSON text with a 'replication:' section";
    try {
        if (text_or_path.find_first_not_of(" \t\r\n") == std::string::npos)
            return config_error{"config is empty: " + usage};
        if (looks_like_text(text_or_path)) {
            if (text_or_path.size() > max_config_bytes) return config_error{"config is larger than 1 MiB"};
            std::error_code ec;
            fs::path cwd = fs::current_path(ec); // on failure relative certificate paths just fail to open
            return loader("", cwd).load(text_or_path);
        }
        std::string text;
        if (auto err = read_config_file(text_or_path, text)) return config_error{*err};
        std::error_code ec;
        fs::path abs = fs::absolute(text_or_path, ec);
        return loader(text_or_path, ec ? fs::path() : abs.parent_path()).load(text);
    } catch (const load_failure& f) {
        return config_error{f.message};
    } catch (const YAML::Exception& e) {
        return config_error{std::string("config: ") + e.what()};
    } catch (const std::bad_alloc&) {
        return config_error{"config: out of memory while reading the configuration"};
    } catch (const std::exception& e) {
        return config_error{std::string("config: ") + e.what()};
    } catch (...) {
        return config_error{"config: unexpected error while reading the configuration"};
    }
}

} // namespace hdbrepl::ext
