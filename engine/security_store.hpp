// Certificates and users, kept in the database file next to the data they protect, so a
// node that restarts keeps its identity and its trust:
//
//   hdbrepl_certificates(name PRIMARY KEY, uses, certificate, is_authority, key_file, details, added_at)
//       uses:      JSON array, e.g. ["replication"] for the certificate this node presents
//       key_file:  path of the private key's PEM file (owner-only permissions) when this
//                  node holds the key; the key itself is never stored in the database
//       details:   JSON (issuer, subject, subject_alt_name, serial_number, valid_from, valid_to)
//   hdbrepl_used_tokens(jti PRIMARY KEY, expires_at)
//       operation tokens this node accepted (they are single use), kept until they expire;
//       a plain local table: never replicated (tokens are checked by the node that issued them)
//   hdbrepl_users(username PRIMARY KEY, role, password_hash)
//       a replicated (hdbrepl) table, so users reach every node that replicates the
//       `system` database, with last-writer-wins per user and tombstones for drop_user;
//       password_hash: "pbkdf2-sha256$<iterations>$<salt>$<hash>"; never the password.
//       The connection must have the hdbrepl module (any connection that loaded hdbrepl).
//
// hdb_certificate and hdb_user (sql/vtab_system_tables.cpp) show these without key_file's
// content or password_hash. Thread: whichever thread owns `db` (a user's connection for the
// repl_* functions, the node's database thread for the node).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/sqlite_api.hpp"

namespace hdbrepl::engine {

struct certificate_row {
    std::string name, uses_json, certificate, key_file, details_json;
    bool is_authority = false;
};

struct user_row {
    std::string username, role, password_hash;
};

int ensure_security_tables(sqlite3* db, const std::string& schema, std::string& err);

class security_store {
public:
    security_store(sqlite3* db, std::string schema) : db_(db), schema_(std::move(schema)) {}

    int load_certificates(std::vector<certificate_row>& out);
    int put_certificate(const certificate_row& c);
    int remove_certificate(const std::string& name, bool& existed, std::string& key_file);

    int load_users(std::vector<user_row>& out);
    int find_user(const std::string& username, user_row& out, bool& found);
    int put_user(const user_row& u);
    int remove_user(const std::string& username, bool& existed);

    // Records an accepted operation token's id until `expires_s` (epoch seconds), after
    // pruning the expired ones. `outcome`: 0 recorded, 1 already used, 2 refused because
    // `max_live` unexpired ids are held (the table stays bounded; nothing is evicted early,
    // which would let an id be used again).
    int use_token(const std::string& jti, std::int64_t expires_s, std::int64_t now_s, std::int64_t max_live, int& outcome);

    // A value of hdbrepl_meta (e.g. the token signing secret); "" when absent.
    int get_meta(const std::string& key, std::string& value);
    int set_meta(const std::string& key, const std::string& value);

private:
    std::string table(const char* name) const;
    sqlite3* db_;
    std::string schema_;
};

} // namespace hdbrepl::engine
