// libFuzzer target: what a peer's HTTP request puts in front of the credential code
// (security/credentials.cpp): the Authorization header, base64/base64url, HS256 JWTs with the
// small JSON reader behind them.
// Invariants: nothing crashes; strict base64 decoding is canonical (what decodes re-encodes
// to the same text); a parsed Basic header re-built from its user and password parses to
// the same; a JWT that checks returns a JSON payload which, signed again, checks again.
// verify_password is not fuzzed: PBKDF2 at >= 100000 iterations per input is too slow.
#include "security/credentials.hpp"
#include "tests/fuzz/fuzz_common.hpp"

using namespace hdbrepl::net;

namespace {

const std::string secret = "fuzz-secret";

void check_token(const std::string& token) {
    std::string payload;
    const std::string err = cred::check_jwt(secret, token, payload);
    if (!err.empty()) {
        FUZZ_CHECK(payload.empty());
        return;
    }
    FUZZ_CHECK(!payload.empty() && payload.front() != '\0');
    std::string payload2;
    FUZZ_CHECK(cred::check_jwt(secret, cred::sign_jwt(secret, payload), payload2).empty());
    FUZZ_CHECK(payload2 == payload);
    FUZZ_CHECK(!cred::check_jwt("other-secret", token, payload2).empty() && payload2.empty());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text = fuzz_text(data, size);

    std::string out;
    if (cred::base64url_decode(text, out)) FUZZ_CHECK(cred::base64url_encode(out) == text);
    else FUZZ_CHECK(out.empty());
    if (cred::base64_decode(text, out)) FUZZ_CHECK(cred::base64_encode(out) == text);
    else FUZZ_CHECK(out.empty());

    cred::authorization a;
    const std::string err = cred::parse_authorization(text, a);
    if (err.empty()) {
        if (a.kind == cred::authorization::basic) {
            FUZZ_CHECK(a.username.find('\0') == std::string::npos && a.password.find('\0') == std::string::npos);
            cred::authorization b;
            FUZZ_CHECK(cred::parse_authorization("Basic " + cred::base64_encode(a.username + ":" + a.password), b).empty());
            FUZZ_CHECK(b.kind == a.kind && b.username == a.username && b.password == a.password);
        } else {
            FUZZ_CHECK(!a.token.empty() && text.find(a.token) != std::string::npos);
            check_token(a.token);
        }
    }

    // The text as a token, and (so the fuzzer gets past the signature) as header.payload
    // signed with the secret.
    check_token(text);
    if (size <= 64 * 1024) check_token(text + "." + cred::base64url_encode(cred::hmac_sha256(secret, text)));
    return 0;
}
