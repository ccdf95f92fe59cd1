// Who may ask this node to sign a certificate (cross-generated certificates, add_node with
// `authorization`): users with a password hash (add_user) and the JWTs this node issues
// (create_authentication_tokens). Pure apart from the clock passed in: no SQLite, no I/O.
//
// Roles: "super_user" and "cluster_user" may join nodes and have certificates signed;
// any other role authenticates but is refused with "insufficient role". Thread: any.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "engine/security_store.hpp"

namespace hdbrepl::ext::auth {

// A snapshot of the users and the token secret, taken from the database.
struct directory {
    std::map<std::string, engine::user_row> users;
    std::string token_secret; // raw bytes; tokens cannot be checked while empty
    std::string issuer;       // this node's name, in the tokens it issues
};

struct outcome {
    int http_status = 0;   // 0 = allowed; 401 = not authenticated; 403 = authenticated, not allowed
    std::string message;   // why not, in words an operator can act on
    std::string username, role;
    // An accepted operation token: its id (jti) and expiry, which the caller remembers so
    // that the token is used once. Empty / 0 for a password.
    std::string token_id;
    std::int64_t token_expires_s = 0;
};

// Checks an HTTP Authorization header ("Basic ...", "Bearer <jwt>") and the role. Whether a
// token was used before is not checked here (see outcome::token_id).
outcome check_header(const directory& d, const std::string& header, std::int64_t now_s);
// Checks a user name and password (no role check). Costs one PBKDF2 of at least the default
// cost whatever the outcome (unknown users included).
outcome check_password(const directory& d, const std::string& username, const std::string& password);

bool role_may_join(const std::string& role);
bool valid_role(const std::string& role);

// {"operation_token": ..., "refresh_token": ...}: HS256 JWTs for `username`, valid one day
// and thirty days.
std::string make_tokens(const directory& d, const std::string& username, const std::string& role, std::int64_t now_s);

} // namespace hdbrepl::ext::auth
