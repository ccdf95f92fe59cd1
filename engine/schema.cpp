// System tables of an hdbrepl database (see schema.hpp).
#include "engine/schema.hpp"

#include <atomic>

#include "engine/table_def.hpp"

#include <random>

namespace hdbrepl::engine {

namespace {
// Bumped whenever any connection of the process renames its node (repl_start): every other
// connection's cached name is stale then (a user connection that wrote before repl_start
// kept the generated name as the origin of its later writes).
std::atomic<std::uint64_t> node_name_generation{0};
} // namespace


namespace {
std::string qualified(const std::string& schema, const char* name) {
    return quote_ident(schema) + "." + quote_ident(name);
}

std::string random_hex(int n) {
    std::random_device rd;
    std::mt19937_64 gen((static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^ wall_clock_ms());
    static const char* hex = "0123456789abcdef";
    std::string s;
    for (int i = 0; i < n; ++i) s += hex[gen() & 15];
    return s;
}
} // namespace

bool system_tables_exist(sqlite3* db, const std::string& schema) {
    std::string sql = "SELECT 1 FROM " + qualified(schema, "sqlite_schema") + " WHERE type='table' AND name='hdbrepl_log'";
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) { sqlite3_finalize(s); return false; }
    bool found = sqlite3_step(s) == SQLITE_ROW;
    sqlite3_finalize(s);
    return found;
}

int ensure_system_tables(sqlite3* db, const std::string& schema, std::string& err) {
    if (system_tables_exist(db, schema)) return SQLITE_OK;
    std::string sql =
        "CREATE TABLE IF NOT EXISTS " + qualified(schema, "hdbrepl_meta") + "(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS " + qualified(schema, "hdbrepl_origins") + "(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
        "CREATE TABLE IF NOT EXISTS " + qualified(schema, "hdbrepl_tables") +
        "(name TEXT PRIMARY KEY, definition TEXT NOT NULL, replicate INTEGER NOT NULL, created_hlc INTEGER NOT NULL,"
        " dropped_hlc INTEGER NOT NULL DEFAULT 0, renamed_to TEXT, renamed_hlc INTEGER NOT NULL DEFAULT 0,"
        " live INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS " + qualified(schema, "hdbrepl_log") +
        "(seq INTEGER PRIMARY KEY, hlc INTEGER NOT NULL, origin INTEGER NOT NULL, clock INTEGER NOT NULL, body BLOB NOT NULL);"
        "INSERT OR IGNORE INTO " + qualified(schema, "hdbrepl_meta") + " VALUES('format', " + std::to_string(schema_format) + ");"
        "INSERT OR IGNORE INTO " + qualified(schema, "hdbrepl_meta") + " VALUES('node_name', 'node-" + random_hex(12) + "');"
        "INSERT OR IGNORE INTO " + qualified(schema, "hdbrepl_meta") + " VALUES('db_id', '" + random_hex(32) + "');";
    return exec_sql(db, sql, err);
}

system_store::system_store(sqlite3* db, std::string schema) : schema_(std::move(schema)), cache_(db) {}

std::string system_store::table(const char* name) const { return qualified(schema_, name); }

int system_store::read_clock(hlc_t& out) {
    out = 0;
    cached_stmt s(cache_, "SELECT max(coalesce((SELECT clock FROM " + table("hdbrepl_log") +
                              " ORDER BY seq DESC LIMIT 1), 0), coalesce((SELECT value FROM " + table("hdbrepl_meta") +
                              " WHERE key='clock_floor'), 0))");
    if (!s) return s.prepare_rc();
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) {
        out = static_cast<hlc_t>(sqlite3_column_int64(s.get(), 0));
        return SQLITE_OK;
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int system_store::raise_clock_floor(hlc_t t) {
    cached_stmt s(cache_, "INSERT INTO " + table("hdbrepl_meta") +
                              " VALUES('clock_floor', ?1) ON CONFLICT(key) DO UPDATE SET value=max(value, excluded.value)");
    if (!s) return s.prepare_rc();
    sqlite3_bind_int64(s.get(), 1, static_cast<sqlite3_int64>(t));
    int rc = sqlite3_step(s.get());
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int system_store::mark_partial_origin(const std::string& origin) {
    cached_stmt s(cache_, "INSERT OR IGNORE INTO " + table("hdbrepl_meta") + " VALUES('partial:' || ?1, 1)");
    if (!s) return s.prepare_rc();
    sqlite3_bind_text(s.get(), 1, origin.data(), static_cast<int>(origin.size()), SQLITE_TRANSIENT);
    int rc = sqlite3_step(s.get());
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int system_store::load_partial_origins(std::set<std::string>& out) {
    cached_stmt s(cache_, "SELECT substr(key, 9) FROM " + table("hdbrepl_meta") + " WHERE key GLOB 'partial:*'");
    if (!s) return s.prepare_rc();
    int rc;
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        const unsigned char* t = sqlite3_column_text(s.get(), 0);
        out.insert(t ? reinterpret_cast<const char*>(t) : "");
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

std::optional<std::string> system_store::get_meta(const std::string& key) {
    cached_stmt s(cache_, "SELECT value FROM " + table("hdbrepl_meta") + " WHERE key=?1");
    if (!s) return std::nullopt;
    sqlite3_bind_text(s.get(), 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(s.get()) != SQLITE_ROW) return std::nullopt;
    const unsigned char* t = sqlite3_column_text(s.get(), 0);
    return std::string(t ? reinterpret_cast<const char*>(t) : "");
}

int system_store::set_meta(const std::string& key, const std::string& value) {
    cached_stmt s(cache_, "INSERT OR REPLACE INTO " + table("hdbrepl_meta") + " VALUES(?1, ?2)");
    if (!s) return s.prepare_rc();
    sqlite3_bind_text(s.get(), 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(s.get(), 2, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
    int rc = sqlite3_step(s.get());
    if (key == "node_name") {
        node_name_.reset();
        node_name_generation.fetch_add(1, std::memory_order_acq_rel);
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

std::string system_store::node_name() {
    const auto gen = node_name_generation.load(std::memory_order_acquire);
    if (!node_name_ || node_name_seen_ != gen) {
        node_name_ = get_meta("node_name").value_or("");
        node_name_seen_ = gen;
    }
    return *node_name_;
}

int system_store::origin_id(const std::string& name, std::int64_t& id) {
    if (auto it = origin_ids_.find(name); it != origin_ids_.end()) { id = it->second; return SQLITE_OK; }
    {
        cached_stmt s(cache_, "SELECT id FROM " + table("hdbrepl_origins") + " WHERE name=?1");
        if (!s) return s.prepare_rc();
        sqlite3_bind_text(s.get(), 1, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
        int rc = sqlite3_step(s.get());
        if (rc == SQLITE_ROW) {
            id = sqlite3_column_int64(s.get(), 0);
            origin_ids_[name] = id;
            origin_names_[id] = name;
            return SQLITE_OK;
        }
        if (rc != SQLITE_DONE) return rc;
    }
    cached_stmt ins(cache_, "INSERT INTO " + table("hdbrepl_origins") + "(name) VALUES(?1) RETURNING id");
    if (!ins) return ins.prepare_rc();
    sqlite3_bind_text(ins.get(), 1, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
    int rc = sqlite3_step(ins.get());
    if (rc != SQLITE_ROW) return rc;
    id = sqlite3_column_int64(ins.get(), 0);
    while ((rc = sqlite3_step(ins.get())) == SQLITE_ROW) {}
    if (rc != SQLITE_DONE) return rc;
    origin_ids_[name] = id;
    origin_names_[id] = name;
    return SQLITE_OK;
}

std::string system_store::origin_name(std::int64_t id) {
    if (auto it = origin_names_.find(id); it != origin_names_.end()) return it->second;
    cached_stmt s(cache_, "SELECT name FROM " + table("hdbrepl_origins") + " WHERE id=?1");
    if (!s) return {};
    sqlite3_bind_int64(s.get(), 1, id);
    if (sqlite3_step(s.get()) != SQLITE_ROW) return {};
    std::string name(reinterpret_cast<const char*>(sqlite3_column_text(s.get(), 0)));
    origin_names_[id] = name;
    origin_ids_[name] = id;
    return name;
}

int system_store::append_log(hlc_t hlc, std::int64_t origin, hlc_t clock, const void* body, std::size_t size, std::int64_t* seq) {
    cached_stmt s(cache_, "INSERT INTO " + table("hdbrepl_log") + "(hlc, origin, clock, body) VALUES(?1, ?2, ?3, ?4)");
    if (!s) return s.prepare_rc();
    sqlite3_bind_int64(s.get(), 1, static_cast<sqlite3_int64>(hlc));
    sqlite3_bind_int64(s.get(), 2, origin);
    sqlite3_bind_int64(s.get(), 3, static_cast<sqlite3_int64>(clock));
    sqlite3_bind_blob64(s.get(), 4, body, size, SQLITE_STATIC);
    int rc = sqlite3_step(s.get());
    if (rc != SQLITE_DONE) return rc;
    if (seq) *seq = sqlite3_last_insert_rowid(db());
    return SQLITE_OK;
}

std::optional<system_store::table_entry> system_store::get_table(const std::string& name) {
    cached_stmt s(cache_, "SELECT name, definition, replicate, created_hlc, dropped_hlc, renamed_to, renamed_hlc, live FROM " +
                              table("hdbrepl_tables") + " WHERE name=?1");
    if (!s) return std::nullopt;
    sqlite3_bind_text(s.get(), 1, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
    if (sqlite3_step(s.get()) != SQLITE_ROW) return std::nullopt;
    table_entry e;
    auto text = [&](int i) {
        auto* t = sqlite3_column_text(s.get(), i);
        return std::string(t ? reinterpret_cast<const char*>(t) : "");
    };
    e.name = text(0);
    e.definition = text(1);
    e.replicate = sqlite3_column_int(s.get(), 2) != 0;
    e.created_hlc = static_cast<hlc_t>(sqlite3_column_int64(s.get(), 3));
    e.dropped_hlc = static_cast<hlc_t>(sqlite3_column_int64(s.get(), 4));
    e.renamed_to = text(5);
    e.renamed_hlc = static_cast<hlc_t>(sqlite3_column_int64(s.get(), 6));
    e.live = sqlite3_column_int(s.get(), 7) != 0;
    return e;
}

int system_store::put_table(const table_entry& e) {
    cached_stmt s(cache_, "INSERT OR REPLACE INTO " + table("hdbrepl_tables") +
                              " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    if (!s) return s.prepare_rc();
    auto* st = s.get();
    sqlite3_bind_text(st, 1, e.name.data(), static_cast<int>(e.name.size()), SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, e.definition.data(), static_cast<int>(e.definition.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, e.replicate ? 1 : 0);
    sqlite3_bind_int64(st, 4, static_cast<sqlite3_int64>(e.created_hlc));
    sqlite3_bind_int64(st, 5, static_cast<sqlite3_int64>(e.dropped_hlc));
    if (e.renamed_to.empty()) sqlite3_bind_null(st, 6);
    else sqlite3_bind_text(st, 6, e.renamed_to.data(), static_cast<int>(e.renamed_to.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 7, static_cast<sqlite3_int64>(e.renamed_hlc));
    sqlite3_bind_int(st, 8, e.live ? 1 : 0);
    int rc = sqlite3_step(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

} // namespace hdbrepl::engine
