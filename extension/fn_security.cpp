/*
** Certificate and user operations.
**
**   repl_add_certificate(json)    {name, certificate, is_authority, private_key?}
**                                 -> {"message": "Successfully added certificate: <name>"}
**   repl_remove_certificate(json) {name} -> {"message": "Successfully removed <name>"}
**   repl_list_certificates()      -> [{name, uses, certificate, is_authority, details, has_private_key}]
**   repl_add_user(json)           {username, password, role} -> {"message": "<username> successfully added"}
**   repl_drop_user(json)          {username} -> {"message": "<username> successfully deleted"}
**   repl_create_authentication_tokens(json)
**                                 {username, password} -> {"operation_token": ..., "refresh_token": ...}
**
** How it works: these write hdbrepl_certificates / hdbrepl_users on the caller's own
** connection (they work whether or not a node runs; inside the caller's transaction when
** there is one), private keys go to owner-only files (key_files.hpp), passwords only as
** PBKDF2 hashes. A running node is then told to reload its identity and trust, so a new
** certificate is used for the next connections without a restart. All SQLITE_DIRECTONLY.
*/
#include "extension/fn_security.hpp"

#include "engine/security_store.hpp"
#include "security/auth.hpp"
#include "engine/json.hpp"
#include "security/key_files.hpp"
#include "replication/node_security.hpp"
#include "extension/runtime.hpp"
#include "security/credentials.hpp"
#include "security/pki.hpp"
#include "sql/fn_table.hpp"
#include "sql/sql_error.hpp"

#include <chrono>

namespace hdbrepl::ext {
namespace {

sql::connection_state& state_of(sqlite3_context* c) { return *ctx_of(c)->state; }

std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The JSON object argument, or false after setting the error.
bool object_arg(sqlite3_context* c, sqlite3_value* v, const std::string& fn, json::value& out) {
    if (sqlite3_value_type(v) != SQLITE_TEXT) {
        sql::result_error(c, fn + ": 1st argument must be JSON text");
        return false;
    }
    std::string text(reinterpret_cast<const char*>(sqlite3_value_text(v)), static_cast<std::size_t>(sqlite3_value_bytes(v)));
    if (std::string e = json::parse_object(text, out); !e.empty()) {
        sql::result_error(c, fn + ": " + e);
        return false;
    }
    return true;
}

// A required non-empty string member, or false after setting the error.
bool required_string(sqlite3_context* c, const json::object& o, const char* key, const std::string& fn, std::string& out) {
    auto* v = o.if_contains(key);
    if (!v || !v->is_string() || v->as_string().empty()) {
        sql::result_error(c, fn + ": '" + key + "' is required (a non-empty string)");
        return false;
    }
    out = std::string(v->as_string());
    return true;
}

// Opens the security tables on the caller's connection, or false after setting the error.
bool open_store(sqlite3_context* c, const std::string& fn, std::unique_ptr<engine::security_store>& out) {
    auto& st = state_of(c);
    std::string err;
    if (int rc = engine::ensure_security_tables(st.db(), "main", err); rc != SQLITE_OK) {
        sql::result_error(c, fn + ": cannot create hdbrepl's certificate and user tables: " + err, rc);
        return false;
    }
    out = std::make_unique<engine::security_store>(st.db(), "main");
    return true;
}

bool check_rc(sqlite3_context* c, int rc, const std::string& fn, const std::string& what) {
    if (rc == SQLITE_OK) return true;
    sql::result_error(c, fn + ": " + what + ": " + sqlite3_errmsg(state_of(c).db()), rc);
    return false;
}

// A running node picks up the change for its next connections.
std::string reload_node(sqlite3_context* c) {
    const std::string& path = state_of(c).main_path();
    if (path.empty()) return "";
    if (auto n = find_node(path))
        if (auto r = n->reload_security(); !r) return r.error().message;
    return "";
}

// repl_add_certificate(json)
void fn_add_certificate(sqlite3_context* c, int, sqlite3_value** argv) {
    const std::string fn = "repl_add_certificate()";
    json::value v;
    if (!object_arg(c, argv[0], fn, v)) return;
    auto& o = v.as_object();
    std::string name, pem;
    if (!required_string(c, o, "name", fn, name) || !required_string(c, o, "certificate", fn, pem)) return;
    auto* auth = o.if_contains("is_authority");
    if (!auth || !auth->is_bool()) return sql::result_error(c, fn + ": 'is_authority' is required (true or false)");
    if (net::pki::looks_like_private_key(pem) || pem.find("PRIVATE KEY") != std::string::npos)
        return sql::result_error(c, fn + ": 'certificate' holds a private key; pass the key as 'private_key'");
    net::pki::cert_details d;
    if (std::string e = net::pki::parse_certificate(pem, d); !e.empty())
        return sql::result_error(c, fn + ": 'certificate' is not a PEM certificate: " + e);
    if (auth->as_bool() && !d.is_authority)
        return sql::result_error(c, fn + ": 'is_authority' is true but the certificate is not a CA (basicConstraints CA:FALSE)");
    engine::certificate_row row;
    row.name = name;
    row.certificate = pem;
    row.is_authority = auth->as_bool();
    row.details_json = certificate_details_json(d);
    std::unique_ptr<engine::security_store> store;
    if (!open_store(c, fn, store)) return;
    if (auto* key = o.if_contains("private_key"); key && !key->is_null()) {
        if (!key->is_string()) return sql::result_error(c, fn + ": 'private_key' must be PEM text");
        std::string key_pem(key->as_string());
        if (!net::pki::looks_like_private_key(key_pem)) return sql::result_error(c, fn + ": 'private_key' is not a PEM private key");
        if (std::string e = net::pki::check_key_matches(pem, key_pem); !e.empty())
            return sql::result_error(c, fn + ": 'private_key' does not belong to the certificate: " + e);
        std::string path;
        if (std::string e = write_key_file(state_of(c).main_path(), name, key_pem, path); !e.empty())
            return sql::result_error(c, fn + ": " + e);
        net::cred::wipe(key_pem);
        row.key_file = path;
    }
    row.uses_json = row.is_authority ? "[\"authority\"]" : !row.key_file.empty() ? "[\"replication\"]" : "[\"peer\"]";
    if (row.is_authority && !check_rc(c, store->set_meta("distrusted:" + d.sha256_fingerprint, ""), fn, "writing hdbrepl_meta")) return;
    if (!check_rc(c, store->put_certificate(row), fn, "writing hdbrepl_certificates")) return;
    std::string note = reload_node(c);
    result_json(c, json::message("Successfully added certificate: " + name + (note.empty() ? "" : " (" + note + ")")));
}

// repl_remove_certificate(json)
void fn_remove_certificate(sqlite3_context* c, int, sqlite3_value** argv) {
    const std::string fn = "repl_remove_certificate()";
    json::value v;
    if (!object_arg(c, argv[0], fn, v)) return;
    std::string name;
    if (!required_string(c, v.as_object(), "name", fn, name)) return;
    std::unique_ptr<engine::security_store> store;
    if (!open_store(c, fn, store)) return;
    std::vector<engine::certificate_row> rows;
    if (!check_rc(c, store->load_certificates(rows), fn, "reading hdbrepl_certificates")) return;
    for (const auto& r : rows) {
        net::pki::cert_details d;
        // An authority removed here stays untrusted even when a member of the cluster
        // announces it (hdbrepl_members.ca): the local decision wins over gossip.
        if (r.name == name && r.is_authority && net::pki::parse_certificate(r.certificate, d).empty())
            if (!check_rc(c, store->set_meta("distrusted:" + d.sha256_fingerprint, name), fn, "writing hdbrepl_meta")) return;
    }
    bool existed = false;
    std::string key_file;
    if (!check_rc(c, store->remove_certificate(name, existed, key_file), fn, "writing hdbrepl_certificates")) return;
    if (!existed) return sql::result_error(c, fn + ": no certificate named '" + name + "' (see hdb_certificate)");
    if (!key_file.empty()) remove_key_file(state_of(c).main_path(), key_file);
    reload_node(c);
    result_json(c, json::message("Successfully removed " + name));
}

// repl_add_user(json)
void fn_add_user(sqlite3_context* c, int, sqlite3_value** argv) {
    const std::string fn = "repl_add_user()";
    json::value v;
    if (!object_arg(c, argv[0], fn, v)) return;
    auto& o = v.as_object();
    std::string username, password, role;
    if (!required_string(c, o, "username", fn, username) || !required_string(c, o, "password", fn, password) ||
        !required_string(c, o, "role", fn, role))
        return;
    if (!auth::valid_role(role))
        return sql::result_error(c, fn + ": 'role' must be a role name of letters, digits, '_' or '-' (e.g. super_user, cluster_user)");
    std::unique_ptr<engine::security_store> store;
    if (!open_store(c, fn, store)) return;
    engine::user_row existing;
    bool found = false;
    if (!check_rc(c, store->find_user(username, existing, found), fn, "reading hdbrepl_users")) return;
    if (found) return sql::result_error(c, fn + ": User " + username + " already exists; drop_user it first to change it");
    engine::user_row u{username, role, net::cred::hash_password(password)};
    net::cred::wipe(password);
    if (u.password_hash.empty()) return sql::result_error(c, fn + ": could not hash the password (no randomness?)");
    if (!check_rc(c, store->put_user(u), fn, "writing hdbrepl_users")) return;
    reload_node(c);
    result_json(c, json::message(username + " successfully added"));
}

// repl_drop_user(json)
void fn_drop_user(sqlite3_context* c, int, sqlite3_value** argv) {
    const std::string fn = "repl_drop_user()";
    json::value v;
    if (!object_arg(c, argv[0], fn, v)) return;
    std::string username;
    if (!required_string(c, v.as_object(), "username", fn, username)) return;
    std::unique_ptr<engine::security_store> store;
    if (!open_store(c, fn, store)) return;
    bool existed = false;
    if (!check_rc(c, store->remove_user(username, existed), fn, "writing hdbrepl_users")) return;
    if (!existed) return sql::result_error(c, fn + ": User " + username + " does not exist");
    reload_node(c);
    result_json(c, json::message(username + " successfully deleted"));
}

// repl_create_authentication_tokens(json)
void fn_create_tokens(sqlite3_context* c, int, sqlite3_value** argv) {
    const std::string fn = "repl_create_authentication_tokens()";
    json::value v;
    if (!object_arg(c, argv[0], fn, v)) return;
    auto& o = v.as_object();
    std::string username, password;
    if (!required_string(c, o, "username", fn, username) || !required_string(c, o, "password", fn, password)) return;
    std::unique_ptr<engine::security_store> store;
    if (!open_store(c, fn, store)) return;
    auth::directory d;
    std::vector<engine::user_row> users;
    if (!check_rc(c, store->load_users(users), fn, "reading hdbrepl_users")) return;
    for (auto& u : users) d.users[u.username] = u;
    auto checked = auth::check_password(d, username, password);
    net::cred::wipe(password);
    if (checked.http_status != 0) return sql::result_error(c, fn + ": " + checked.message, SQLITE_AUTH);
    std::string secret_b64;
    if (!check_rc(c, store->get_meta("token_secret", secret_b64), fn, "reading hdbrepl_meta")) return;
    if (secret_b64.empty()) {
        secret_b64 = net::cred::base64_encode(net::cred::random_bytes(32));
        if (!check_rc(c, store->set_meta("token_secret", secret_b64), fn, "writing hdbrepl_meta")) return;
        reload_node(c);
    }
    net::cred::base64_decode(secret_b64, d.token_secret);
    store->get_meta("node_name", d.issuer);
    result_json(c, auth::make_tokens(d, checked.username, checked.role, now_s()));
}

// repl_list_certificates()
void fn_list_certificates(sqlite3_context* c, int, sqlite3_value**) {
    std::unique_ptr<engine::security_store> store;
    if (!open_store(c, "repl_list_certificates()", store)) return;
    std::vector<engine::certificate_row> rows;
    if (!check_rc(c, store->load_certificates(rows), "repl_list_certificates()", "reading hdbrepl_certificates")) return;
    json::array out;
    for (const auto& r : rows) {
        json::object o;
        o["name"] = r.name;
        o["uses"] = json::parse_or_null(r.uses_json);
        o["certificate"] = r.certificate;
        o["is_authority"] = r.is_authority;
        o["details"] = json::parse_or_null(r.details_json);
        o["has_private_key"] = !r.key_file.empty();
        out.push_back(std::move(o));
    }
    result_json(c, json::serialize(out));
}

// All change security state, including the two that look like readers:
// repl_list_certificates creates the security tables and shows every certificate, and
// repl_create_authentication_tokens creates the token secret the first time and hands out
// credentials.
using enum sql::fn_kind;
constexpr sql::function_entry functions[] = {
    sql::sql_function<fn_add_certificate>("repl_add_certificate", 1, changes_state),
    sql::sql_function<fn_remove_certificate>("repl_remove_certificate", 1, changes_state),
    sql::sql_function<fn_list_certificates>("repl_list_certificates", 0, changes_state),
    sql::sql_function<fn_add_user>("repl_add_user", 1, changes_state),
    sql::sql_function<fn_drop_user>("repl_drop_user", 1, changes_state),
    sql::sql_function<fn_create_tokens>("repl_create_authentication_tokens", 1, changes_state),
};

} // namespace

bool run_security_operation(sqlite3_context* c, const std::string& op, sqlite3_value** argv) {
    static const std::pair<const char*, const char*> ops[] = {
        {"add_certificate", "repl_add_certificate"}, {"remove_certificate", "repl_remove_certificate"},
        {"list_certificates", "repl_list_certificates"}, {"add_user", "repl_add_user"},
        {"drop_user", "repl_drop_user"}, {"create_authentication_tokens", "repl_create_authentication_tokens"}};
    for (const auto& [name, fn] : ops)
        if (op == name)
            for (const auto& f : functions)
                if (std::string(f.name) == fn) {
                    f.callback(c, f.n_arg, argv);
                    return true;
                }
    return false;
}

std::span<const sql::function_entry> security_functions() { return functions; }

} // namespace hdbrepl::ext
