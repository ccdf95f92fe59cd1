// Credentials (see credentials.hpp): random bytes, base64 and base64url, PBKDF2 password
// hashes, HMAC-SHA256, HS256 JSON Web Tokens and Authorization header parsing.
//
// How it works: the codecs are written out here (strict decoders that accept exactly one
// encoding of each byte string, so a token or hash has no second spelling); the cryptography
// is OpenSSL's (RAND_bytes, PKCS5_PBKDF2_HMAC, HMAC, CRYPTO_memcmp, OPENSSL_cleanse). A JWT
// header is read with engine/json (json::read_object_members: Boost.JSON validates the whole
// text and the top-level members are collected), so "alg" is decided on the decoded value
// (escapes included) and a header with a key twice is refused rather than read one way here
// and another way elsewhere. OpenSSL's per-thread error queue is left as it was found.
#include "security/credentials.hpp"
#include "engine/json.hpp"
#include "security/openssl_util.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <climits>
#include <cstdint>
#include <vector>

namespace hdbrepl::net::cred {
namespace {

using ossl::error_mark;

// Wipes a string when the scope ends (for intermediate copies of secrets).
class wipe_on_exit {
public:
    explicit wipe_on_exit(std::string& s) : s_(s) {}
    ~wipe_on_exit() { wipe(s_); }
    wipe_on_exit(const wipe_on_exit&) = delete;
    wipe_on_exit& operator=(const wipe_on_exit&) = delete;
private:
    std::string& s_;
};

// ---- base64 ---------------------------------------------------------------------------------

constexpr char std_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string encode(const std::string& bytes, const char* alphabet, bool pad) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    auto at = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k])); };
    for (; i + 3 <= bytes.size(); i += 3) {
        std::uint32_t v = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
        out += alphabet[v >> 18 & 63];
        out += alphabet[v >> 12 & 63];
        out += alphabet[v >> 6 & 63];
        out += alphabet[v & 63];
    }
    std::size_t rest = bytes.size() - i;
    if (rest == 1) {
        std::uint32_t v = at(i) << 16;
        out += alphabet[v >> 18 & 63];
        out += alphabet[v >> 12 & 63];
        if (pad) out += "==";
    } else if (rest == 2) {
        std::uint32_t v = at(i) << 16 | at(i + 1) << 8;
        out += alphabet[v >> 18 & 63];
        out += alphabet[v >> 12 & 63];
        out += alphabet[v >> 6 & 63];
        if (pad) out += '=';
    }
    return out;
}

int sextet(char c, bool url) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == (url ? '-' : '+')) return 62;
    if (c == (url ? '_' : '/')) return 63;
    return -1;
}

// Decodes unpadded text (length % 4 != 1), rejecting non-canonical trailing bits.
bool decode_unpadded(const char* p, std::size_t n, bool url, std::string& out) {
    if (n % 4 == 1) return false;
    std::string r;
    r.reserve(n / 4 * 3 + 2);
    std::uint32_t acc = 0;
    int bits = 0;
    for (std::size_t i = 0; i < n; ++i) {
        int v = sextet(p[i], url);
        if (v < 0) return false;
        acc = (acc << 6 | static_cast<std::uint32_t>(v)) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            r += static_cast<char>(acc >> bits & 0xFF);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return false; // leftover bits must be zero
    out = std::move(r);
    return true;
}

// ---- token JSON ---------------------------------------------------------------------------

// JSON nesting a token's header or payload may have (the top object counting as one level).
constexpr unsigned max_token_json_depth = 32;

// Reads a token part that must be one JSON object, each top-level key once (a header with two
// "alg" members could be read one way here and another way elsewhere). Raw string bytes are
// not checked as UTF-8 (escapes are): a payload is passed on as signed, for the caller's own
// parse to judge.
bool read_token_object(const std::string& text, json::object_members& out) {
    if (!json::read_object_members(text, out, max_token_json_depth, true)) return false;
    for (const auto& [key, count] : out.key_count)
        if (count > 1) return false;
    return true;
}

// ---- passwords --------------------------------------------------------------------------------

constexpr int min_iterations = 100000;
constexpr int max_iterations = max_password_iterations;
constexpr std::size_t salt_size = 16;
constexpr std::size_t hash_size = 32;
constexpr char hash_scheme[] = "pbkdf2-sha256";

bool pbkdf2(const std::string& password, const std::string& salt, int iterations, std::size_t n, std::string& out) {
    if (password.size() > INT_MAX || salt.size() > INT_MAX) return false;
    out.assign(n, '\0');
    if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                          reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                          iterations, EVP_sha256(), static_cast<int>(n),
                          reinterpret_cast<unsigned char*>(out.data())) != 1) {
        wipe(out);
        return false;
    }
    return true;
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
        std::size_t p = s.find(sep, start);
        parts.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
        if (p == std::string::npos) return parts;
        start = p + 1;
    }
}

bool iequals(const std::string& a, const char* b) {
    std::string lb(b);
    if (a.size() != lb.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = lb[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

bool is_token68(const std::string& t) {
    std::size_t i = 0;
    for (; i < t.size(); ++i) {
        char c = t[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                  c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
        if (!ok) break;
    }
    if (i == 0) return false;
    for (; i < t.size(); ++i)
        if (t[i] != '=') return false;
    return true;
}

constexpr std::size_t max_token_size = 64 * 1024;
constexpr char jwt_header[] = R"({"alg":"HS256","typ":"JWT"})";

} // namespace

std::string random_bytes(std::size_t n) {
    error_mark mark;
    if (n == 0 || n > INT_MAX) return {};
    std::string out(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) return {};
    return out;
}

std::string base64url_encode(const std::string& bytes) { return encode(bytes, url_alphabet, false); }

bool base64url_decode(const std::string& text, std::string& out) {
    out.clear();
    return decode_unpadded(text.data(), text.size(), true, out);
}

std::string base64_encode(const std::string& bytes) { return encode(bytes, std_alphabet, true); }

bool base64_decode(const std::string& text, std::string& out) {
    out.clear();
    if (text.size() % 4 != 0) return false;
    std::size_t n = text.size();
    std::size_t pad = 0;
    while (pad < 2 && n > 0 && text[n - 1] == '=') { --n; ++pad; }
    return decode_unpadded(text.data(), n, false, out);
}

std::string hash_password(const std::string& password, int iterations) {
    error_mark mark;
    if (iterations < min_iterations) iterations = min_iterations;
    if (iterations > max_iterations) iterations = max_iterations;
    std::string salt = random_bytes(salt_size);
    if (salt.size() != salt_size) return {};
    std::string hash;
    if (!pbkdf2(password, salt, iterations, hash_size, hash)) return {};
    wipe_on_exit w(hash);
    return std::string(hash_scheme) + "$" + std::to_string(iterations) + "$" + base64_encode(salt) + "$" +
           base64_encode(hash);
}

namespace {
// The parts of a stored hash; false for malformed text or a count outside the range, which
// is refused before any work (the stored text may come from another node).
bool parse_stored(const std::string& stored, long& iterations, std::string& salt, std::string& expected) {
    std::vector<std::string> parts = split(stored, '$');
    if (parts.size() != 4 || parts[0] != hash_scheme) return false;
    const std::string& iter = parts[1];
    if (iter.empty() || iter.size() > 8 || iter[0] == '0') return false;
    iterations = 0;
    for (char c : iter) {
        if (c < '0' || c > '9') return false;
        iterations = iterations * 10 + (c - '0');
    }
    if (iterations < min_iterations || iterations > max_iterations) return false;
    return base64_decode(parts[2], salt) && !salt.empty() && base64_decode(parts[3], expected) && expected.size() == hash_size;
}
} // namespace

bool password_hash_usable(const std::string& stored) {
    long iterations = 0;
    std::string salt, expected;
    return parse_stored(stored, iterations, salt, expected);
}

const std::string& dummy_password_hash() {
    // A hash of random bytes nobody knows, at the default cost; made once (thread-safe static).
    static const std::string dummy = hash_password(random_bytes(32), default_password_iterations);
    return dummy;
}

bool verify_password(const std::string& password, const std::string& stored) {
    error_mark mark;
    long iterations = 0;
    std::string salt, expected, actual;
    if (!parse_stored(stored, iterations, salt, expected)) return false;
    if (!pbkdf2(password, salt, static_cast<int>(iterations), hash_size, actual)) return false;
    wipe_on_exit w(actual);
    return CRYPTO_memcmp(actual.data(), expected.data(), hash_size) == 0;
}

std::string hmac_sha256(const std::string& key, const std::string& data) {
    error_mark mark;
    if (key.size() > INT_MAX) return {};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    // key.data() is never null, even for an empty key (a null key would mean "reuse").
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
              reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &n) ||
        n != 32)
        return {};
    return std::string(reinterpret_cast<char*>(md), n);
}

std::string sign_jwt(const std::string& secret, const std::string& payload_json) {
    if (secret.empty()) return {};
    std::string input = base64url_encode(jwt_header) + "." + base64url_encode(payload_json);
    std::string mac = hmac_sha256(secret, input);
    if (mac.size() != 32) return {};
    return input + "." + base64url_encode(mac);
}

std::string check_jwt(const std::string& secret, const std::string& token, std::string& payload_json) {
    payload_json.clear();
    if (token.empty() || token.size() > max_token_size) return "malformed token";
    std::vector<std::string> parts = split(token, '.');
    // An empty signature is let through to the algorithm check, so the classic unsigned
    // "alg":"none" token is reported as what it is.
    if (parts.size() != 3 || parts[0].empty() || parts[1].empty()) return "malformed token";
    std::string header, payload, signature;
    if (!base64url_decode(parts[0], header) || !base64url_decode(parts[1], payload) ||
        !base64url_decode(parts[2], signature))
        return "malformed token";
    json::object_members h;
    if (!read_token_object(header, h)) return "malformed token";
    auto alg = h.strings.find("alg");
    if (alg == h.strings.end()) {
        // "alg" missing or not a string.
        return h.key_count.count("alg") ? "unsupported token algorithm" : "malformed token";
    }
    if (alg->second != "HS256") return "unsupported token algorithm";
    if (h.key_count.count("crit")) return "unsupported token algorithm"; // extensions we do not understand
    if (secret.empty() || signature.size() != 32) return "bad token signature";
    std::string mac = hmac_sha256(secret, parts[0] + "." + parts[1]);
    if (mac.size() != 32 || CRYPTO_memcmp(mac.data(), signature.data(), 32) != 0) return "bad token signature";
    json::object_members p;
    if (!read_token_object(payload, p)) return "malformed token";
    payload_json = std::move(payload);
    return {};
}

std::string parse_authorization(const std::string& header, authorization& out) {
    out = authorization{};
    auto is_ws = [](char c) { return c == ' ' || c == '\t'; };
    std::size_t b = 0, e = header.size();
    while (b < e && is_ws(header[b])) ++b;
    while (e > b && is_ws(header[e - 1])) --e;
    if (b == e) return "empty Authorization header";
    std::size_t sp = b;
    while (sp < e && !is_ws(header[sp])) ++sp;
    std::string scheme = header.substr(b, sp - b);
    std::size_t c = sp;
    while (c < e && is_ws(header[c])) ++c;
    std::string credentials = header.substr(c, e - c);
    bool basic = iequals(scheme, "basic"), bearer = iequals(scheme, "bearer");
    if (!basic && !bearer) {
        std::string shown = scheme.size() > 32 ? scheme.substr(0, 32) + "..." : scheme;
        for (char& ch : shown)
            if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) >= 0x7f) ch = '?';
        return "unsupported authorization scheme '" + shown + "' (expected Basic or Bearer)";
    }
    if (credentials.empty()) return std::string("missing credentials after ") + (basic ? "Basic" : "Bearer");
    if (!is_token68(credentials)) {
        wipe(credentials);
        return std::string("malformed ") + (basic ? "Basic" : "Bearer") + " credentials";
    }
    if (bearer) {
        out.kind = authorization::bearer;
        out.token = std::move(credentials);
        return {};
    }
    wipe_on_exit w1(credentials);
    std::string decoded;
    wipe_on_exit w2(decoded);
    if (!base64_decode(credentials, decoded)) return "malformed Basic credentials: not base64";
    std::size_t colon = decoded.find(':');
    if (colon == std::string::npos) return "malformed Basic credentials: no ':' between user name and password";
    if (decoded.find('\0') != std::string::npos) return "malformed Basic credentials: NUL byte";
    out.kind = authorization::basic;
    out.username = decoded.substr(0, colon);
    out.password = decoded.substr(colon + 1);
    return {};
}

void wipe(std::string& s) {
    s.resize(s.capacity()); // stays inside the current buffer: no reallocation
    if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
    s.clear();
}

} // namespace hdbrepl::net::cred
