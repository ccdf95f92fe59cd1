// Credentials for the HTTP/WebSocket surface: random bytes, base64, password hashes, HS256
// JSON Web Tokens and the Authorization header.
//
// Formats:
//   password hash  "pbkdf2-sha256$<iterations>$<salt, base64>$<hash, base64>"
//                  PBKDF2-HMAC-SHA256, 16-byte random salt, 32-byte hash, iterations in
//                  100000..1000000 (hash_password clamps into that range; verify_password
//                  refuses stored text outside it before any work: user rows replicate, so
//                  the stored text may come from another node, and this bounds the work one
//                  check can cost to ~8x the default).
//   JWT            base64url(header) "." base64url(payload) "." base64url(HMAC-SHA256),
//                  no padding, header {"alg":"HS256","typ":"JWT"}. Claims such as "exp" are
//                  not interpreted here: check_jwt returns the payload JSON to the caller.
//
// Nothing throws; every function may be called from any thread, concurrently (no shared
// mutable state). This header includes no OpenSSL or Boost header: extension/ includes it.
#pragma once
#include <cstddef>
#include <string>

namespace hdbrepl::net::cred {

// n cryptographically random bytes (RAND_bytes); empty on failure or when n is 0.
std::string random_bytes(std::size_t n);

// base64url (RFC 4648 §5) without padding.
std::string base64url_encode(const std::string& bytes);
// Strict: only the base64url alphabet, no padding, no whitespace, canonical trailing bits.
// Returns false (and leaves `out` empty) on bad input. "" decodes to "".
bool base64url_decode(const std::string& text, std::string& out);

// Standard base64 (RFC 4648 §4), padded.
std::string base64_encode(const std::string& bytes);
// Strict: length a multiple of 4, '=' only as the final padding, no whitespace, canonical
// trailing bits. Returns false (and leaves `out` empty) on bad input.
bool base64_decode(const std::string& text, std::string& out);

constexpr int default_password_iterations = 120000;
constexpr int max_password_iterations = 1000000;

// A salted password hash in the format above; iterations are clamped to 100000..1000000.
// Empty on failure (no random bytes).
std::string hash_password(const std::string& password, int iterations = default_password_iterations);
// True if `password` matches the stored hash (constant-time compare of the hashes); false for
// a wrong password and for malformed stored text (or a count over 1000000: no work is done).
bool verify_password(const std::string& password, const std::string& stored);
// Whether verify_password would compute anything for this stored text (well formed, count in range).
bool password_hash_usable(const std::string& stored);
// A hash of the default cost that no password matches: verifying against it when there is no
// usable stored hash (unknown user) makes a refusal cost what a wrong password costs.
const std::string& dummy_password_hash();

// HMAC-SHA256 of data under key: the raw 32 bytes (empty on failure).
std::string hmac_sha256(const std::string& key, const std::string& data);

// A compact HS256 JWT: the fixed header above and payload_json (used as given, not parsed).
// Returns "" when secret is empty (an empty secret would sign nothing).
std::string sign_jwt(const std::string& secret, const std::string& payload_json);

// Checks a compact HS256 JWT: three base64url parts (header and payload non-empty), a
// header that is a JSON object whose "alg" is exactly "HS256" and that has no "crit", a
// signature that matches (constant-time), and a payload that is a JSON object. On success
// sets payload_json and returns ""; otherwise leaves payload_json empty and returns
// "malformed token", "unsupported token algorithm" (also for "none") or "bad token
// signature" (also for an empty secret).
std::string check_jwt(const std::string& secret, const std::string& token,
                      std::string& payload_json);

// An HTTP Authorization header value (RFC 9110 §11.6.2): the scheme is case-insensitive.
//   "Basic <base64 of user:pass>" -> kind basic, username, password (split at the first ':',
//                                    so passwords may contain ':'; NUL bytes are refused)
//   "Bearer <token68>"           -> kind bearer, token
struct authorization {
    enum kind_t { basic, bearer } kind = basic;
    std::string username, password, token;
};
// Fills `out` (reset first) and returns "", or returns an error text for anything else.
std::string parse_authorization(const std::string& header, authorization& out);

// Best effort: overwrite a string's whole buffer (OPENSSL_cleanse) and clear it, before it is
// freed. Copies made earlier (reallocation, other strings) are not reached.
void wipe(std::string& s);

} // namespace hdbrepl::net::cred
