// Certificates and users in the database (see security_store.hpp).
#include "engine/security_store.hpp"

#include "engine/system_tables.hpp"
#include "engine/schema.hpp"
#include "engine/stmt_cache.hpp"
#include "engine/table_def.hpp"

#include <chrono>
#include <memory>

namespace hdbrepl::engine {

namespace {

struct stmt_deleter {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using stmt_ptr = std::unique_ptr<sqlite3_stmt, stmt_deleter>;

// These statements run a few times per operation, never on a hot path: no cache.
int prepare(sqlite3* db, const std::string& sql, stmt_ptr& out) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size()), &s, nullptr);
    out.reset(s);
    return rc;
}

void bind(sqlite3_stmt* s, int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}

std::string col(sqlite3_stmt* s, int i) {
    auto* t = sqlite3_column_text(s, i);
    return t ? std::string(reinterpret_cast<const char*>(t), static_cast<std::size_t>(sqlite3_column_bytes(s, i))) : std::string();
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int step_done(sqlite3_stmt* s) {
    int rc = sqlite3_step(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

} // namespace

int ensure_security_tables(sqlite3* db, const std::string& schema, std::string& err) {
    int rc = ensure_system_tables(db, schema, err);
    if (rc != SQLITE_OK) return rc;
    const std::string s = quote_ident(schema) + ".";
    rc = exec_sql(db,
                  "CREATE TABLE IF NOT EXISTS " + s + "hdbrepl_certificates(name TEXT PRIMARY KEY, uses TEXT NOT NULL, "
                  "certificate TEXT NOT NULL, is_authority INTEGER NOT NULL, key_file TEXT, details TEXT, added_at INTEGER) WITHOUT ROWID;",
                  err);
    if (rc != SQLITE_OK) return rc;
    rc = exec_sql(db, "CREATE TABLE IF NOT EXISTS " + s + "hdbrepl_used_tokens(jti TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;", err);
    if (rc != SQLITE_OK) return rc;
    // Users replicate (with the `system` database): engine/system_tables.hpp.
    return ensure_system_replicated_tables(db, schema, err);
}

std::string security_store::table(const char* name) const { return quote_ident(schema_) + "." + quote_ident(name); }

int security_store::load_certificates(std::vector<certificate_row>& out) {
    stmt_ptr s;
    int rc = prepare(db_, "SELECT name, uses, certificate, is_authority, coalesce(key_file, ''), coalesce(details, '{}') FROM " +
                              table("hdbrepl_certificates") + " ORDER BY added_at, name", s);
    if (rc != SQLITE_OK) return rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        certificate_row c;
        c.name = col(s.get(), 0);
        c.uses_json = col(s.get(), 1);
        c.certificate = col(s.get(), 2);
        c.is_authority = sqlite3_column_int(s.get(), 3) != 0;
        c.key_file = col(s.get(), 4);
        c.details_json = col(s.get(), 5);
        out.push_back(std::move(c));
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int security_store::put_certificate(const certificate_row& c) {
    stmt_ptr s;
    int rc = prepare(db_, "INSERT OR REPLACE INTO " + table("hdbrepl_certificates") +
                              "(name, uses, certificate, is_authority, key_file, details, added_at) VALUES(?1, ?2, ?3, ?4, nullif(?5, ''), ?6, ?7)",
                     s);
    if (rc != SQLITE_OK) return rc;
    bind(s.get(), 1, c.name);
    bind(s.get(), 2, c.uses_json);
    bind(s.get(), 3, c.certificate);
    sqlite3_bind_int(s.get(), 4, c.is_authority ? 1 : 0);
    bind(s.get(), 5, c.key_file);
    bind(s.get(), 6, c.details_json);
    sqlite3_bind_int64(s.get(), 7, now_ms());
    return step_done(s.get());
}

int security_store::remove_certificate(const std::string& name, bool& existed, std::string& key_file) {
    stmt_ptr s;
    int rc = prepare(db_, "DELETE FROM " + table("hdbrepl_certificates") + " WHERE name=?1 RETURNING coalesce(key_file, '')", s);
    if (rc != SQLITE_OK) return rc;
    bind(s.get(), 1, name);
    rc = sqlite3_step(s.get());
    existed = rc == SQLITE_ROW;
    if (existed) key_file = col(s.get(), 0);
    if (rc == SQLITE_ROW) rc = sqlite3_step(s.get());
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int security_store::load_users(std::vector<user_row>& out) {
    stmt_ptr s;
    int rc = prepare(db_, "SELECT username, role, password_hash FROM " + table("hdbrepl_users") + " ORDER BY username", s);
    if (rc != SQLITE_OK) return rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) out.push_back({col(s.get(), 0), col(s.get(), 1), col(s.get(), 2)});
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int security_store::find_user(const std::string& username, user_row& out, bool& found) {
    stmt_ptr s;
    int rc = prepare(db_, "SELECT username, role, password_hash FROM " + table("hdbrepl_users") + " WHERE username=?1", s);
    if (rc != SQLITE_OK) return rc;
    bind(s.get(), 1, username);
    rc = sqlite3_step(s.get());
    found = rc == SQLITE_ROW;
    if (found) out = {col(s.get(), 0), col(s.get(), 1), col(s.get(), 2)};
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int security_store::put_user(const user_row& u) {
    stmt_ptr s;
    int rc = prepare(db_, "INSERT OR REPLACE INTO " + table("hdbrepl_users") + "(username, role, password_hash) VALUES(?1, ?2, ?3)", s);
    if (rc != SQLITE_OK) return rc;
    bind(s.get(), 1, u.username);
    bind(s.get(), 2, u.role);
    bind(s.get(), 3, u.password_hash);
    return step_done(s.get());
}

int security_store::remove_user(const std::string& username, bool& existed) {
    user_row ignored;
    int rc = find_user(username, ignored, existed);
    if (rc != SQLITE_OK || !existed) return rc;
    stmt_ptr s;
    rc = prepare(db_, "DELETE FROM " + table("hdbrepl_users") + " WHERE username=?1", s);
    if (rc != SQLITE_OK) return rc;
    bind(s.get(), 1, username);
    return step_done(s.get());
}

int security_store::use_token(const std::string& jti, std::int64_t expires_s, std::int64_t now_s, std::int64_t max_live, int& outcome) {
    outcome = 2;
    stmt_ptr s;
    int rc = prepare(db_, "DELETE FROM " + table("hdbrepl_used_tokens") + " WHERE expires_at <= ?1", s);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(s.get(), 1, now_s);
    if ((rc = step_done(s.get())) != SQLITE_OK) return rc;
    rc = prepare(db_, "SELECT count(*), coalesce(max(jti = ?1), 0) FROM " + table("hdbrepl_used_tokens"), s);
    if (rc != SQLITE_OK) return rc;
    bind(s.get(), 1, jti);
    if ((rc = sqlite3_step(s.get())) != SQLITE_ROW) return rc == SQLITE_DONE ? SQLITE_ERROR : rc;
    const std::int64_t live = sqlite3_column_int64(s.get(), 0);
    if (sqlite3_column_int(s.get(), 1) != 0) { outcome = 1; return SQLITE_OK; }
    if (live >= max_live) return SQLITE_OK;
    rc = prepare(db_, "INSERT INTO " + table("hdbrepl_used_tokens") + "(jti, expires_at) VALUES(?1, ?2)", s);
    if (rc != SQLITE_OK) return rc;
    bind(s.get(), 1, jti);
    sqlite3_bind_int64(s.get(), 2, expires_s);
    if ((rc = step_done(s.get())) != SQLITE_OK) return rc;
    outcome = 0;
    return SQLITE_OK;
}

int security_store::get_meta(const std::string& key, std::string& value) {
    stmt_ptr s;
    int rc = prepare(db_, "SELECT value FROM " + table("hdbrepl_meta") + " WHERE key=?1", s);
    if (rc != SQLITE_OK) return rc;
    bind(s.get(), 1, key);
    rc = sqlite3_step(s.get());
    value = rc == SQLITE_ROW ? col(s.get(), 0) : std::string();
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int security_store::set_meta(const std::string& key, const std::string& value) {
    stmt_ptr s;
    int rc = prepare(db_, "INSERT OR REPLACE INTO " + table("hdbrepl_meta") + "(key, value) VALUES(?1, ?2)", s);
    if (rc != SQLITE_OK) return rc;
    bind(s.get(), 1, key);
    bind(s.get(), 2, value);
    return step_done(s.get());
}

} // namespace hdbrepl::engine
