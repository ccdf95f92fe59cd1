// Authorization checks for certificate signing (see auth.hpp).
#include "security/auth.hpp"

#include "engine/json.hpp"
#include "security/credentials.hpp"

namespace hdbrepl::ext::auth {

namespace {
constexpr std::int64_t operation_token_s = 24 * 3600;
constexpr std::int64_t refresh_token_s = 30 * 24 * 3600;

outcome refuse(int status, std::string message) {
    outcome o;
    o.http_status = status;
    o.message = std::move(message);
    return o;
}

outcome with_role_check(outcome o) {
    if (o.http_status == 0 && !role_may_join(o.role))
        return refuse(403, "user '" + o.username + "' has role '" + o.role + "', which may not join nodes or have certificates signed "
                           "(needs super_user or cluster_user)");
    return o;
}

outcome check_token(const directory& d, const std::string& token, std::int64_t now_s) {
    if (d.token_secret.empty()) return refuse(401, "invalid token: this node has issued no tokens");
    std::string payload;
    if (std::string e = net::cred::check_jwt(d.token_secret, token, payload); !e.empty()) return refuse(401, "invalid token: " + e);
    json::value v;
    if (!json::parse_object(payload, v).empty()) return refuse(401, "invalid token: its payload is not a JSON object");
    auto& o = v.as_object();
    auto* exp = o.if_contains("exp");
    if (!exp || !exp->is_int64()) return refuse(401, "invalid token: no expiry");
    if (exp->as_int64() <= now_s) return refuse(401, "token expired; create a new one with create_authentication_tokens");
    if (json::get_string(o, "typ") != "operation") return refuse(401, "invalid token: a refresh token cannot authorize operations");
    std::string user = json::get_string(o, "sub");
    auto it = d.users.find(user);
    if (it == d.users.end()) return refuse(401, "token of unknown user '" + user + "' (dropped since it was issued?)");
    // Single use is the caller's to enforce (it remembers ids until they expire): a token
    // without an id could not be remembered, so it is not accepted.
    std::string jti = json::get_string(o, "jti");
    if (jti.empty() || jti.size() > 128) return refuse(401, "invalid token: no token id (jti)");
    outcome ok;
    ok.username = user;
    ok.role = it->second.role;
    ok.token_id = std::move(jti);
    ok.token_expires_s = exp->as_int64();
    return ok;
}
} // namespace

bool role_may_join(const std::string& role) { return role == "super_user" || role == "cluster_user"; }

bool valid_role(const std::string& role) {
    if (role.empty() || role.size() > 64) return false;
    for (char c : role)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
    return true;
}

outcome check_password(const directory& d, const std::string& username, const std::string& password) {
    // Every refusal costs one PBKDF2 of at least the default cost: an unknown user, or a
    // stored hash that cannot be checked, is verified against a dummy hash, so the time of
    // the answer does not tell which user names exist.
    auto it = d.users.find(username);
    const bool usable = it != d.users.end() && net::cred::password_hash_usable(it->second.password_hash);
    const bool matches = net::cred::verify_password(password, usable ? it->second.password_hash : net::cred::dummy_password_hash());
    if (it == d.users.end()) return refuse(401, "unknown user '" + username + "'");
    if (!usable || !matches) return refuse(401, "wrong password for user '" + username + "'");
    outcome ok;
    ok.username = username;
    ok.role = it->second.role;
    return ok;
}

outcome check_header(const directory& d, const std::string& header, std::int64_t now_s) {
    if (header.empty()) return refuse(401, "credentials required: add_node needs 'authorization' to have a certificate signed");
    net::cred::authorization a;
    if (std::string e = net::cred::parse_authorization(header, a); !e.empty()) return refuse(401, "bad authorization: " + e);
    outcome o = a.kind == net::cred::authorization::bearer ? check_token(d, a.token, now_s) : check_password(d, a.username, a.password);
    net::cred::wipe(a.password);
    return with_role_check(std::move(o));
}

std::string make_tokens(const directory& d, const std::string& username, const std::string& role, std::int64_t now_s) {
    auto token = [&](const char* type, std::int64_t ttl) {
        json::object p;
        p["sub"] = username;
        p["role"] = role;
        p["iss"] = d.issuer;
        p["typ"] = type;
        p["iat"] = now_s;
        p["exp"] = now_s + ttl;
        p["jti"] = net::cred::base64url_encode(net::cred::random_bytes(12));
        return net::cred::sign_jwt(d.token_secret, json::serialize(p));
    };
    json::object o;
    o["operation_token"] = token("operation", operation_token_s);
    o["refresh_token"] = token("refresh", refresh_token_s);
    return json::serialize(o);
}

} // namespace hdbrepl::ext::auth
