// [net] tests of net::cred: base64 codecs (RFC 4648 vectors, strictness), random bytes,
// PBKDF2 password hashes, HMAC-SHA256 (RFC 4231), HS256 JWTs (the well-known jwt.io token,
// tampering, "alg":"none" and other algorithms) and Authorization header parsing.
#include <catch2/catch.hpp>

#include "security/credentials.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <set>

using namespace hdbrepl::net::cred;

namespace {

std::string hex(const std::string& bytes) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::string decoded64(const std::string& text) {
    std::string out;
    REQUIRE(base64_decode(text, out));
    return out;
}

} // namespace

TEST_CASE("cred: base64 and base64url follow RFC 4648", "[net]") {
    const std::pair<const char*, const char*> vectors[] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (auto [plain, coded] : vectors) {
        CHECK(base64_encode(plain) == coded);
        CHECK(decoded64(coded) == plain);
        std::string url = coded;
        while (!url.empty() && url.back() == '=') url.pop_back();
        CHECK(base64url_encode(plain) == url);
        std::string out;
        CHECK(base64url_decode(url, out));
        CHECK(out == plain);
    }
    // The two alphabets differ in 62 and 63.
    const std::string bytes("\xfb\xff\xbf", 3);
    CHECK(base64_encode(bytes) == "+/+/");
    CHECK(base64url_encode(bytes) == "-_-_");

    // Every byte value and length round-trips.
    std::string all;
    for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
    for (std::size_t n = 0; n < all.size(); n += 37) {
        std::string part = all.substr(n), out;
        CHECK(decoded64(base64_encode(part)) == part);
        CHECK(base64url_decode(base64url_encode(part), out));
        CHECK(out == part);
    }
}

TEST_CASE("cred: base64 decoders are strict", "[net]") {
    std::string out = "left over";
    for (const char* bad : {"Zg=", "Zg", "Z===", "Zh==", "Zm9v\n", "Zm=v", "Zm9v====", "====", "Zm9-", "Zm 9v", "Zm8==="}) {
        INFO(bad);
        CHECK_FALSE(base64_decode(bad, out));
        CHECK(out.empty());
    }
    for (const char* bad : {"Zg==", "Z", "Zh", "Zm9v+", "Zm9/", "Zm9v.", "Zm9v\n"}) {
        INFO(bad);
        CHECK_FALSE(base64url_decode(bad, out));
        CHECK(out.empty());
    }
    CHECK(base64_decode("", out));
    CHECK(out.empty());
}

TEST_CASE("cred: random_bytes", "[net]") {
    CHECK(random_bytes(0).empty());
    CHECK(random_bytes(1).size() == 1);
    std::set<std::string> seen;
    for (int i = 0; i < 20; ++i) {
        std::string r = random_bytes(32);
        REQUIRE(r.size() == 32);
        seen.insert(r);
    }
    CHECK(seen.size() == 20);
}

TEST_CASE("cred: password hashes", "[net]") {
    const std::string stored = hash_password("correct horse");
    INFO(stored);
    REQUIRE(stored.rfind("pbkdf2-sha256$120000$", 0) == 0);
    CHECK(verify_password("correct horse", stored));
    CHECK_FALSE(verify_password("correct horsf", stored));
    CHECK_FALSE(verify_password("", stored));
    CHECK_FALSE(verify_password("correct horse ", stored));

    SECTION("the salt is 16 bytes, the hash 32, and both differ between hashes of one password") {
        const std::string again = hash_password("correct horse");
        CHECK(again != stored);
        CHECK(verify_password("correct horse", again));
        auto salt_of = [](const std::string& s) { return s.substr(0, s.rfind('$')); };
        CHECK(salt_of(again) != salt_of(stored));
        auto field = [](const std::string& s, int k) {
            std::size_t b = 0;
            for (int i = 0; i < k; ++i) b = s.find('$', b) + 1;
            return s.substr(b, s.find('$', b) - b);
        };
        CHECK(decoded64(field(stored, 2)).size() == 16);
        CHECK(decoded64(field(stored, 3)).size() == 32);
    }
    SECTION("the iteration count is embedded and never below 100000") {
        const std::string low = hash_password("pw", 1000);
        CHECK(low.rfind("pbkdf2-sha256$100000$", 0) == 0);
        CHECK(verify_password("pw", low));
        const std::string higher = hash_password("pw", 150000);
        CHECK(higher.rfind("pbkdf2-sha256$150000$", 0) == 0);
        CHECK(verify_password("pw", higher));
        // The same salt and hash under another count do not verify.
        std::string moved = higher;
        moved.replace(0, std::string("pbkdf2-sha256$150000").size(), "pbkdf2-sha256$150001");
        CHECK_FALSE(verify_password("pw", moved));
    }
    SECTION("empty and binary passwords") {
        const std::string empty = hash_password("");
        CHECK(verify_password("", empty));
        CHECK_FALSE(verify_password("x", empty));
        const std::string bin("a\0b", 3);
        const std::string h = hash_password(bin);
        CHECK(verify_password(bin, h));
        CHECK_FALSE(verify_password("a", h));
    }
    SECTION("malformed stored text is refused") {
        const std::string salt_and_hash = stored.substr(std::string("pbkdf2-sha256$120000").size());
        for (const std::string& bad : {
                 std::string(), std::string("correct horse"), std::string("$$$"),
                 "pbkdf2-sha1$120000" + salt_and_hash, "PBKDF2-SHA256$120000" + salt_and_hash,
                 "pbkdf2-sha256$99999" + salt_and_hash, "pbkdf2-sha256$0120000" + salt_and_hash,
                 "pbkdf2-sha256$-120000" + salt_and_hash, "pbkdf2-sha256$12e4" + salt_and_hash,
                 "pbkdf2-sha256$999999999" + salt_and_hash, "pbkdf2-sha256$" + salt_and_hash,
                 "pbkdf2-sha256$120000$$" + stored.substr(stored.rfind('$') + 1),
                 stored.substr(0, stored.rfind('$')) + "$", stored.substr(0, stored.size() - 4) + "AAA=",
                 stored.substr(0, stored.size() - 1), stored + "$x", stored + "=",
                 stored.substr(0, stored.rfind('$')) + "$" + std::string(44, '!')}) {
            INFO(bad);
            CHECK_FALSE(verify_password("correct horse", bad));
        }
    }
}

// A genuine stored hash of `password` at any iteration count (hash_password clamps).
std::string raw_hash(const std::string& password, int iterations) {
    const std::string salt = random_bytes(16);
    std::string out(32, '\0');
    REQUIRE(PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), reinterpret_cast<const unsigned char*>(salt.data()),
                              static_cast<int>(salt.size()), iterations, EVP_sha256(), 32, reinterpret_cast<unsigned char*>(out.data())) == 1);
    return "pbkdf2-sha256$" + std::to_string(iterations) + "$" + base64_encode(salt) + "$" + base64_encode(out);
}

TEST_CASE("cred: the cost of a password check is bounded and the same for unknown users", "[net]") {
    SECTION("hash_password never creates above 1000000 iterations") {
        CHECK(hash_password("pw", 2000000).rfind("pbkdf2-sha256$1000000$", 0) == 0);
        CHECK(hash_password("pw").rfind("pbkdf2-sha256$" + std::to_string(default_password_iterations) + "$", 0) == 0);
    }
    SECTION("a genuine stored hash above the cap is refused without computing it") {
        const std::string at_cap = raw_hash("pw", max_password_iterations);
        CHECK(password_hash_usable(at_cap));
        CHECK(verify_password("pw", at_cap));
        const std::string over = raw_hash("pw", 2000000); // what a hostile member could replicate
        CHECK_FALSE(password_hash_usable(over));
        auto t0 = std::chrono::steady_clock::now();
        CHECK_FALSE(verify_password("pw", over));
        CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(20));
        CHECK_FALSE(password_hash_usable(raw_hash("pw", 1000001)));
        CHECK_FALSE(password_hash_usable("pbkdf2-sha256$10000000$AAAA$AAAA"));
        CHECK_FALSE(password_hash_usable(""));
    }
    SECTION("the dummy hash has the default cost and matches nothing") {
        const std::string& d = dummy_password_hash();
        CHECK(d.rfind("pbkdf2-sha256$" + std::to_string(default_password_iterations) + "$", 0) == 0);
        CHECK(&d == &dummy_password_hash());
        CHECK(password_hash_usable(d));
        CHECK_FALSE(verify_password("", d));
        CHECK_FALSE(verify_password("pw", d));
    }
}

TEST_CASE("cred: hmac_sha256 matches RFC 4231", "[net]") {
    CHECK(hex(hmac_sha256("Jefe", "what do ya want for nothing?")) ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    CHECK(hex(hmac_sha256(std::string(20, '\x0b'), "Hi There")) ==
          "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    CHECK(hmac_sha256("", "").size() == 32); // an empty key is a key
    CHECK(hmac_sha256("", "") != hmac_sha256("k", ""));
}

TEST_CASE("cred: JWT HS256 sign and check", "[net]") {
    const std::string secret = "s3cret-key";
    const std::string payload = R"({"sub":"admin","exp":1900000000})";
    const std::string token = sign_jwt(secret, payload);
    REQUIRE(std::count(token.begin(), token.end(), '.') == 2);
    CHECK(token.rfind("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 0) == 0);
    std::string got = "stale";
    CHECK(check_jwt(secret, token, got) == "");
    CHECK(got == payload);

    SECTION("the well-known jwt.io token verifies (interoperability)") {
        const std::string io =
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
            "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        CHECK(check_jwt("your-256-bit-secret", io, got) == "");
        CHECK(got == R"({"sub":"1234567890","name":"John Doe","iat":1516239022})");
        CHECK(sign_jwt("your-256-bit-secret", got) == io);
        // A header with whitespace and other members is fine as long as alg is HS256.
        const std::string h = base64url_encode("{ \"typ\" : \"JWT\", \"kid\": [1, {\"a\": null}],\n \"alg\": \"HS\\u0032\\u00356\" }");
        const std::string p = base64url_encode(payload);
        const std::string t = h + "." + p + "." + base64url_encode(hmac_sha256(secret, h + "." + p));
        CHECK(check_jwt(secret, t, got) == "");
        CHECK(got == payload);
    }
    SECTION("wrong secret, tampered payload, tampered signature") {
        CHECK(check_jwt("other", token, got) == "bad token signature");
        CHECK(got.empty());
        CHECK(check_jwt("", token, got) == "bad token signature");
        const std::size_t d1 = token.find('.'), d2 = token.rfind('.');
        const std::string forged = token.substr(0, d1 + 1) + base64url_encode(R"({"sub":"admin","exp":9900000000})") +
                                   token.substr(d2);
        CHECK(check_jwt(secret, forged, got) == "bad token signature");
        std::string sig;
        REQUIRE(base64url_decode(token.substr(d2 + 1), sig));
        sig[5] ^= 1;
        CHECK(check_jwt(secret, token.substr(0, d2 + 1) + base64url_encode(sig), got) == "bad token signature");
        CHECK(check_jwt(secret, token.substr(0, d2 + 1), got) == "bad token signature"); // no signature
        CHECK(check_jwt(secret, token.substr(0, d2 + 1) + base64url_encode(sig.substr(0, 31)), got) ==
              "bad token signature");
        CHECK(got.empty());
    }
    SECTION("only HS256 is accepted") {
        const std::string p = base64url_encode(payload);
        auto with_header = [&](const std::string& header, bool signed_) {
            const std::string h = base64url_encode(header);
            return h + "." + p + "." + (signed_ ? base64url_encode(hmac_sha256(secret, h + "." + p)) : "");
        };
        CHECK(check_jwt(secret, with_header(R"({"alg":"none","typ":"JWT"})", false), got) == "unsupported token algorithm");
        CHECK(check_jwt(secret, with_header(R"({"alg":"none"})", true), got) == "unsupported token algorithm");
        CHECK(check_jwt(secret, with_header(R"({"alg":"None"})", true), got) == "unsupported token algorithm");
        CHECK(check_jwt(secret, with_header(R"({"alg":"HS512"})", true), got) == "unsupported token algorithm");
        CHECK(check_jwt(secret, with_header(R"({"alg":"hs256"})", true), got) == "unsupported token algorithm");
        CHECK(check_jwt(secret, with_header(R"({"alg":"RS256"})", true), got) == "unsupported token algorithm");
        CHECK(check_jwt(secret, with_header(R"({"alg":256})", true), got) == "unsupported token algorithm");
        CHECK(check_jwt(secret, with_header(R"({"alg":"HS256","crit":["exp"]})", true), got) ==
              "unsupported token algorithm");
        CHECK(check_jwt(secret, with_header(R"({"typ":"JWT"})", true), got) == "malformed token");
        CHECK(check_jwt(secret, with_header(R"({"alg":"HS256","alg":"none"})", true), got) == "malformed token");
        CHECK(check_jwt(secret, with_header(R"({"alg":"HS256")", true), got) == "malformed token");
        CHECK(check_jwt(secret, with_header(R"(["alg","HS256"])", true), got) == "malformed token");
        CHECK(check_jwt(secret, with_header(R"({"alg":"HS256"} x)", true), got) == "malformed token");
        CHECK(check_jwt(secret, with_header(R"({"alg":"HS256"})", true), got) == "");
        CHECK(got.empty() == false);
    }
    SECTION("malformed tokens") {
        for (const std::string& bad : {std::string(), std::string("abc"), std::string("a.b"), std::string(".."),
                                       token + ".x", "." + token, token.substr(0, token.find('.')) + "..x",
                                       "e30." + base64url_encode(payload) + ".a", "!!!." + token.substr(token.find('.') + 1),
                                       "e30=." + token.substr(token.find('.') + 1), std::string(70000, 'a') + ".b.c"}) {
            INFO(bad);
            CHECK(check_jwt(secret, bad, got) == "malformed token");
            CHECK(got.empty());
        }
        // A correctly signed token whose payload is not a JSON object.
        const std::string h = base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
        const std::string p = base64url_encode("not json");
        CHECK(check_jwt(secret, h + "." + p + "." + base64url_encode(hmac_sha256(secret, h + "." + p)), got) ==
              "malformed token");
    }
    CHECK(sign_jwt("", payload).empty());
}

TEST_CASE("cred: parse_authorization", "[net]") {
    authorization a;
    SECTION("Basic, any case of the scheme, passwords with colons") {
        for (const char* scheme : {"Basic", "basic", "BASIC", "bAsIc"}) {
            INFO(scheme);
            CHECK(parse_authorization(std::string(scheme) + " " + base64_encode("admin:pa:ss word"), a) == "");
            CHECK(a.kind == authorization::basic);
            CHECK(a.username == "admin");
            CHECK(a.password == "pa:ss word");
            CHECK(a.token.empty());
        }
        CHECK(parse_authorization("  Basic \t " + base64_encode("u:") + "  ", a) == "");
        CHECK(a.username == "u");
        CHECK(a.password.empty());
        CHECK(parse_authorization("Basic " + base64_encode(":p"), a) == "");
        CHECK(a.username.empty());
        CHECK(a.password == "p");
    }
    SECTION("Bearer, any case of the scheme") {
        const std::string token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.abc-_~+/=";
        for (const char* scheme : {"Bearer", "bearer", "BEARER"}) {
            CHECK(parse_authorization(std::string(scheme) + " " + token, a) == "");
            CHECK(a.kind == authorization::bearer);
            CHECK(a.token == token);
            CHECK(a.username.empty());
        }
    }
    SECTION("errors") {
        CHECK(parse_authorization("", a) != "");
        CHECK(parse_authorization("   ", a) != "");
        CHECK(parse_authorization("Basic", a) != "");
        CHECK(parse_authorization("Basic   ", a) != "");
        CHECK(parse_authorization("Bearer", a) != "");
        CHECK(parse_authorization("Basic !!!!", a).find("malformed Basic credentials") == 0);
        CHECK(parse_authorization("Basic Zm9v", a) == "malformed Basic credentials: no ':' between user name and password");
        CHECK(parse_authorization("Basic Zm9vOmJhcg", a) == "malformed Basic credentials: not base64"); // unpadded
        CHECK(parse_authorization("Basic " + base64_encode(std::string("u\0:p", 4)), a) != "");
        CHECK(parse_authorization("Basic " + base64_encode("a:b") + " extra", a) != "");
        CHECK(parse_authorization("Bearer two tokens", a) != "");
        CHECK(parse_authorization("Bearer =abc", a) != "");
        CHECK(parse_authorization("Digest username=\"x\"", a).find("unsupported authorization scheme 'Digest'") == 0);
        CHECK(parse_authorization("Basic" + base64_encode("a:b"), a) != ""); // no space: scheme "BasicYTpi"
        CHECK(a.username.empty());
        CHECK(a.password.empty());
        CHECK(a.token.empty());
    }
}

TEST_CASE("cred: wipe clears the string", "[net]") {
    std::string s = "a secret that is longer than the small-string buffer";
    wipe(s);
    CHECK(s.empty());
    std::string small = "pw";
    wipe(small);
    CHECK(small.empty());
    std::string empty;
    wipe(empty);
    CHECK(empty.empty());
}
