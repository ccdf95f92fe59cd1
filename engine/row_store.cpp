// Shadow-table storage of a replicated table (see row_store.hpp).
#include "engine/row_store.hpp"

#include "engine/placement_store.hpp"

#include <cstring>
#include <random>

namespace hdbrepl::engine {

int bind_arg(sqlite3_stmt* s, int i, const value& v) {
    switch (v.type) {
    case value_type::null: return sqlite3_bind_null(s, i);
    case value_type::integer: return sqlite3_bind_int64(s, i, v.i);
    case value_type::real: return sqlite3_bind_double(s, i, v.r);
    case value_type::text: return sqlite3_bind_text64(s, i, v.s.data(), v.s.size(), SQLITE_STATIC, SQLITE_UTF8);
    case value_type::blob: return sqlite3_bind_blob64(s, i, v.s.data(), v.s.size(), SQLITE_STATIC);
    }
    return SQLITE_MISUSE;
}

value column_value(sqlite3_stmt* s, int i) {
    switch (sqlite3_column_type(s, i)) {
    case SQLITE_INTEGER: return value::of_int(sqlite3_column_int64(s, i));
    case SQLITE_FLOAT: return value::of_real(sqlite3_column_double(s, i));
    case SQLITE_TEXT: {
        auto* t = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
        return value::of_text(std::string(t, static_cast<std::size_t>(sqlite3_column_bytes(s, i))));
    }
    case SQLITE_BLOB: {
        auto* b = static_cast<const char*>(sqlite3_column_blob(s, i));
        return value::of_blob(std::string(b ? b : "", static_cast<std::size_t>(sqlite3_column_bytes(s, i))));
    }
    default: return value::null();
    }
}

value sql_value(sqlite3_value* v) {
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER: return value::of_int(sqlite3_value_int64(v));
    case SQLITE_FLOAT: return value::of_real(sqlite3_value_double(v));
    case SQLITE_TEXT: {
        auto* t = reinterpret_cast<const char*>(sqlite3_value_text(v));
        return value::of_text(std::string(t ? t : "", static_cast<std::size_t>(sqlite3_value_bytes(v))));
    }
    case SQLITE_BLOB: {
        auto* b = static_cast<const char*>(sqlite3_value_blob(v));
        return value::of_blob(std::string(b ? b : "", static_cast<std::size_t>(sqlite3_value_bytes(v))));
    }
    default: return value::null();
    }
}

void result_value(sqlite3_context* ctx, const value& v) {
    switch (v.type) {
    case value_type::integer: sqlite3_result_int64(ctx, v.i); break;
    case value_type::real: sqlite3_result_double(ctx, v.r); break;
    case value_type::text: sqlite3_result_text(ctx, v.s.data(), static_cast<int>(v.s.size()), SQLITE_TRANSIENT); break;
    case value_type::blob: sqlite3_result_blob(ctx, v.s.data(), static_cast<int>(v.s.size()), SQLITE_TRANSIENT); break;
    case value_type::null: sqlite3_result_null(ctx); break;
    }
}

namespace {
std::string qualified(const std::string& schema, const std::string& name) { return quote_ident(schema) + "." + quote_ident(name); }

std::string random_suffix() {
    static thread_local std::mt19937 gen(std::random_device{}());
    static const char* hex = "0123456789abcdef";
    std::string s;
    for (int i = 0; i < 8; ++i) s += hex[gen() & 15];
    return s;
}
} // namespace

row_store::row_store(sqlite3* db, std::string schema, std::string name, table_def def)
    : schema_(std::move(schema)), name_(std::move(name)), def_(std::move(def)), cache_(db) {
    build_sql();
}

bool row_store::is_shadow_suffix(const char* suffix) {
    return std::strcmp(suffix, "data") == 0 || std::strcmp(suffix, "tomb") == 0;
}

std::string row_store::data_table() const { return qualified(schema_, name_ + "_data"); }
std::string row_store::tomb_table() const { return qualified(schema_, name_ + "_tomb"); }

int row_store::create_shadows(sqlite3* db, const std::string& schema, const std::string& name, const table_def& def, std::string& err) {
    const auto& key = def.columns[def.pk];
    bool int_key = def.integer_key();
    std::string cols;
    for (std::size_t i = 0; i < def.columns.size(); ++i) {
        const auto& c = def.columns[i];
        cols += quote_ident(c.name);
        if (!c.decl_type.empty()) cols += " " + c.decl_type;
        if (i == def.pk && int_key) cols += " PRIMARY KEY";
        else if (c.not_null) cols += " NOT NULL";
        cols += ", ";
    }
    cols += std::string(version_column) + " INTEGER NOT NULL, " + origin_column + " INTEGER NOT NULL";
    std::string key_type = key.decl_type.empty() ? "" : " " + key.decl_type;
    std::string sql = "CREATE TABLE " + qualified(schema, name + "_data") + "(" + cols +
                      (int_key ? ")" : ", PRIMARY KEY(" + quote_ident(key.name) + ")) WITHOUT ROWID") + ";";
    sql += "CREATE TABLE " + qualified(schema, name + "_tomb") + "(" + quote_ident(key.name) + key_type +
           (int_key ? " PRIMARY KEY, " : " NOT NULL, ") + version_column + " INTEGER NOT NULL, " + origin_column +
           " INTEGER NOT NULL" + (int_key ? ")" : ", PRIMARY KEY(" + quote_ident(key.name) + ")) WITHOUT ROWID") + ";";
    for (std::size_t i = 0; i < def.columns.size(); ++i) {
        if (!def.columns[i].indexed) continue;
        sql += "CREATE INDEX " + qualified(schema, name + "_i" + std::to_string(i) + "_" + random_suffix()) + " ON " +
               quote_ident(name + "_data") + "(" + quote_ident(def.columns[i].name) + ");";
    }
    return exec_sql(db, sql, err);
}

int row_store::drop_shadows(sqlite3* db, const std::string& schema, const std::string& name, std::string& err) {
    int rc = exec_sql(db, "DROP TABLE IF EXISTS " + qualified(schema, name + "_data") + "; DROP TABLE IF EXISTS " +
                              qualified(schema, name + "_tomb") + ";", err);
    return rc == SQLITE_OK ? forget_placements(db, schema, name, err) : rc;
}

int row_store::rename_shadows(sqlite3* db, const std::string& schema, const std::string& from, const std::string& to, std::string& err) {
    int rc = exec_sql(db, "ALTER TABLE " + qualified(schema, from + "_data") + " RENAME TO " + quote_ident(to + "_data") +
                              "; ALTER TABLE " + qualified(schema, from + "_tomb") + " RENAME TO " + quote_ident(to + "_tomb") + ";",
                      err);
    return rc == SQLITE_OK ? rename_placements(db, schema, from, to, err) : rc;
}

void row_store::renamed(std::string new_name) {
    name_ = std::move(new_name);
    build_sql();
}

void row_store::release_statements() {
    cache_.clear();
    build_sql();
}

void row_store::build_sql() {
    std::string key = quote_ident(def_.columns[def_.pk].name);
    std::string v = version_column, o = origin_column;
    cache_.clear();
    find_live_.reset_sql("SELECT " + v + ", " + o + " FROM " + data_table() + " WHERE " + key + "=?1");
    find_tomb_.reset_sql("SELECT " + v + ", " + o + " FROM " + tomb_table() + " WHERE " + key + "=?1");
    insert_.reset_sql(sql_insert(false));
    replace_.reset_sql(sql_insert(true));
    update_.reset_sql(sql_update());
    delete_.reset_sql("DELETE FROM " + data_table() + " WHERE " + key + "=?1");
    tomb_.reset_sql("INSERT OR REPLACE INTO " + tomb_table() + " VALUES(?1, ?2, ?3)");
    {
        std::string sets;
        for (const auto& c : def_.columns) sets += quote_ident(c.name) + "=excluded." + quote_ident(c.name) + ", ";
        std::string origins = quote_ident(schema_) + ".hdbrepl_origins";
        put_newer_.reset_sql(sql_insert(false) + " ON CONFLICT(" + key + ") DO UPDATE SET " + sets + v + "=excluded." + v + ", " + o +
                             "=excluded." + o + " WHERE excluded." + v + " > " + v + " OR (excluded." + v + " = " + v +
                             " AND (SELECT name FROM " + origins + " WHERE id = excluded." + o + ") > (SELECT name FROM " + origins +
                             " WHERE id = " + o + "))");
    }
}

std::string row_store::sql_insert(bool replace) const {
    std::string names, params;
    std::size_t n = def_.columns.size();
    // Appended piece by piece: GCC 12's -Wrestrict misfires on `"?" + std::to_string(...)`
    // temporaries at -O2 and above (a false positive, but the build stays warning-free).
    for (std::size_t i = 0; i < n; ++i) {
        names.append(quote_ident(def_.columns[i].name)).append(", ");
        params.append("?").append(std::to_string(i + 1)).append(", ");
    }
    names.append(version_column).append(", ").append(origin_column);
    params.append("?").append(std::to_string(n + 1)).append(", ?").append(std::to_string(n + 2));
    return std::string(replace ? "INSERT OR REPLACE INTO " : "INSERT INTO ") + data_table() + "(" + names + ") VALUES(" + params + ")";
}

std::string row_store::sql_update() const {
    std::size_t n = def_.columns.size();
    std::string sets;
    for (std::size_t i = 0; i < n; ++i) sets += quote_ident(def_.columns[i].name) + "=?" + std::to_string(i + 1) + ", ";
    sets += std::string(version_column) + "=?" + std::to_string(n + 1) + ", " + origin_column + "=?" + std::to_string(n + 2);
    return "UPDATE " + data_table() + " SET " + sets + " WHERE " + quote_ident(def_.columns[def_.pk].name) + "=?" + std::to_string(n + 3);
}

int row_store::step_done(sqlite3_stmt* s) {
    int rc = sqlite3_step(s);
    // The extended code (e.g. SQLITE_CONSTRAINT_PRIMARYKEY) is only valid before reset.
    int ext = rc == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(db());
    sqlite3_reset(s);
    return ext;
}

int row_store::has_tombstones(bool& out) {
    cached_stmt s(cache_, "SELECT EXISTS(SELECT 1 FROM " + tomb_table() + ")");
    if (!s) return s.prepare_rc();
    int rc = sqlite3_step(s.get());
    out = rc == SQLITE_ROW && sqlite3_column_int(s.get(), 0) != 0;
    return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

int row_store::prune_tombstones(hlc_t before, std::int64_t& removed) {
    cached_stmt s(cache_, "DELETE FROM " + tomb_table() + " WHERE " + version_column + " < ?1");
    if (!s) return s.prepare_rc();
    sqlite3_bind_int64(s.get(), 1, static_cast<sqlite3_int64>(before));
    int rc = step_done(s.get());
    removed = rc == SQLITE_OK ? sqlite3_changes(db()) : 0;
    return rc;
}

} // namespace hdbrepl::engine
