// Helpers shared by the [sql] tests: typed result dumps (so that 1, 1.0 and '1' differ),
// whole-database snapshots, access to the change log as BLOBs, replay of a log into another
// database with repl_apply(), and capture of the statements the hdbrepl module runs on its
// shadow tables.
#pragma once
#include "tests/support/test_db.hpp"

#include <catch2/catch.hpp>
#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace hdbrepl::test {

// SQL quoting of a name ("a""b") and of a text literal ('it''s').
inline std::string ident(const std::string& name) {
    std::string r = "\"";
    for (char c : name) r += c == '"' ? std::string("\"\"") : std::string(1, c);
    return r + "\"";
}
inline std::string literal(const std::string& text) {
    std::string r = "'";
    for (char c : text) r += c == '\'' ? std::string("''") : std::string(1, c);
    return r + "'";
}

// One value as a type-exact token: NULL, i:1, r:1.0, t:'x', b:x'00ff'.
inline std::string typed_value(sqlite3_stmt* s, int i) {
    switch (sqlite3_column_type(s, i)) {
    case SQLITE_INTEGER: return "i:" + std::to_string(sqlite3_column_int64(s, i));
    case SQLITE_FLOAT: {
        char b[64];
        std::snprintf(b, sizeof b, "%.17g", sqlite3_column_double(s, i));
        return std::string("r:") + b;
    }
    case SQLITE_TEXT: {
        const char* t = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
        return "t:'" + std::string(t, static_cast<std::size_t>(sqlite3_column_bytes(s, i))) + "'";
    }
    case SQLITE_BLOB: {
        static const char* hex = "0123456789abcdef";
        auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(s, i));
        std::string r = "b:x'";
        for (int k = 0; k < sqlite3_column_bytes(s, i); ++k) { r += hex[p[k] >> 4]; r += hex[p[k] & 15]; }
        return r + "'";
    }
    default: return "NULL";
    }
}

// Runs a query and returns every row as typed tokens joined by '|'. Fails the test on error.
inline std::vector<std::string> typed_rows(sqlite3* db, const std::string& sql) {
    std::vector<std::string> out;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
        std::string err = sqlite3_errmsg(db);
        sqlite3_finalize(s);
        FAIL("prepare failed: " << sql << "\n  error: " << err);
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        std::string row;
        for (int i = 0; i < sqlite3_column_count(s); ++i) row += (i ? "|" : "") + typed_value(s, i);
        out.push_back(row);
    }
    std::string err = rc == SQLITE_DONE ? "" : sqlite3_errmsg(db);
    sqlite3_finalize(s);
    if (!err.empty()) FAIL("query failed: " << sql << "\n  error: " << err);
    return out;
}

// Like typed_rows, but returns the error message instead of failing ("" on success).
inline std::string try_typed_rows(sqlite3* db, const std::string& sql, std::vector<std::string>& out) {
    out.clear();
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
        std::string err = sqlite3_errmsg(db);
        sqlite3_finalize(s);
        return err;
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        std::string row;
        for (int i = 0; i < sqlite3_column_count(s); ++i) row += (i ? "|" : "") + typed_value(s, i);
        out.push_back(row);
    }
    std::string err = rc == SQLITE_DONE ? "" : sqlite3_errmsg(db);
    sqlite3_finalize(s);
    return err;
}

// The whole database: its schema and the rows of every real table (virtual tables are
// covered by their shadow tables), for "nothing changed" checks.
inline std::vector<std::string> snapshot(sqlite3* db) {
    std::vector<std::string> out;
    for (auto& r : typed_rows(db, "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")) out.push_back(r);
    std::vector<std::string> tables;
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, "SELECT name FROM sqlite_schema WHERE type='table' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name", -1, &s, nullptr);
    while (sqlite3_step(s) == SQLITE_ROW) tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)));
    sqlite3_finalize(s);
    for (auto& t : tables) {
        out.push_back("-- " + t);
        auto rows = typed_rows(db, "SELECT * FROM " + ident(t));
        std::sort(rows.begin(), rows.end());
        for (auto& r : rows) out.push_back(r);
    }
    return out;
}

// The change log's record bodies, in order.
inline std::vector<std::string> log_bodies(sqlite3* db, std::int64_t after_seq = 0, std::int64_t* last_seq = nullptr) {
    std::vector<std::string> out;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT seq, body FROM hdbrepl_log WHERE seq > ?1 ORDER BY seq", -1, &s, nullptr) != SQLITE_OK) {
        sqlite3_finalize(s);
        return out; // no log yet
    }
    sqlite3_bind_int64(s, 1, after_seq);
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (last_seq) *last_seq = sqlite3_column_int64(s, 0);
        auto* p = static_cast<const char*>(sqlite3_column_blob(s, 1));
        out.emplace_back(p ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(s, 1)));
    }
    sqlite3_finalize(s);
    return out;
}

// SELECT repl_apply(?) with `body` bound as a BLOB. Returns the function's JSON result, or
// "" with `err` set on error.
inline std::string apply_record(sqlite3* db, const std::string& body, std::string& err, const char* sql = "SELECT repl_apply(?1)") {
    err.clear();
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) {
        err = sqlite3_errmsg(db);
        sqlite3_finalize(s);
        return "";
    }
    sqlite3_bind_blob(s, 1, body.data(), static_cast<int>(body.size()), SQLITE_TRANSIENT);
    std::string out;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        auto* t = sqlite3_column_text(s, 0);
        out = t ? reinterpret_cast<const char*>(t) : "NULL";
        rc = sqlite3_step(s);
    }
    if (rc != SQLITE_DONE) err = sqlite3_errmsg(db);
    sqlite3_finalize(s);
    return err.empty() ? out : "";
}

// repl_record_json(body) of one log row.
inline std::string record_json(sqlite3* db, const std::string& body) {
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, "SELECT repl_record_json(?1)", -1, &s, nullptr);
    sqlite3_bind_blob(s, 1, body.data(), static_cast<int>(body.size()), SQLITE_TRANSIENT);
    std::string out;
    if (sqlite3_step(s) == SQLITE_ROW) {
        auto* t = sqlite3_column_text(s, 0);
        out = t ? reinterpret_cast<const char*>(t) : "NULL";
    } else {
        out = std::string("ERROR: ") + sqlite3_errmsg(db);
    }
    sqlite3_finalize(s);
    return out;
}

// The JSON of every log row whose seq is greater than `after`.
inline std::vector<std::string> log_json(test_db& db, std::int64_t after = 0) {
    std::vector<std::string> out;
    for (auto& b : log_bodies(db.handle(), after)) out.push_back(record_json(db.handle(), b));
    return out;
}

inline std::int64_t log_count(test_db& db) {
    if (db.scalar("SELECT count(*) FROM sqlite_schema WHERE name='hdbrepl_log'") == "0") return 0;
    return db.count("SELECT count(*) FROM hdbrepl_log");
}

inline std::int64_t last_seq(test_db& db) {
    if (db.scalar("SELECT count(*) FROM sqlite_schema WHERE name='hdbrepl_log'") == "0") return 0;
    return db.count("SELECT coalesce(max(seq), 0) FROM hdbrepl_log");
}

// Number of non-overlapping occurrences of `needle` in `hay`.
inline int occurrences(const std::string& hay, const std::string& needle) {
    int n = 0;
    for (std::size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + needle.size())) ++n;
    return n;
}

// Applies every record of `from`'s log to `to`, in order; fails the test on an error.
inline void replay_log(test_db& from, test_db& to) {
    for (auto& b : log_bodies(from.handle())) {
        std::string err;
        apply_record(to.handle(), b, err);
        if (!err.empty()) FAIL("repl_apply failed: " << err << "\n  record: " << record_json(from.handle(), b));
    }
}

// Captures the SQL of every statement that starts running on a connection, including the
// ones the hdbrepl module runs on its shadow tables from inside a query.
class sql_trace {
public:
    explicit sql_trace(sqlite3* db) : db_(db) { sqlite3_trace_v2(db, SQLITE_TRACE_STMT, &sql_trace::cb, this); }
    ~sql_trace() { sqlite3_trace_v2(db_, 0, nullptr, nullptr); }
    std::vector<std::string> statements;
    void clear() { statements.clear(); }
    // The traced statements that mention `needle`.
    std::vector<std::string> matching(const std::string& needle) const {
        std::vector<std::string> r;
        for (auto& s : statements)
            if (s.find(needle) != std::string::npos) r.push_back(s);
        return r;
    }
private:
    static int cb(unsigned, void* ctx, void* p, void*) {
        auto* self = static_cast<sql_trace*>(ctx);
        const char* sql = sqlite3_sql(static_cast<sqlite3_stmt*>(p));
        if (sql) self->statements.emplace_back(sql);
        return 0;
    }
    sqlite3* db_;
};

} // namespace hdbrepl::test

#include "engine/txn_record.hpp"

namespace hdbrepl::test {

// An engine value as the same type-exact token typed_value() gives.
inline std::string typed_token(const engine::value& v) {
    switch (v.type) {
    case engine::value_type::integer: return "i:" + std::to_string(v.i);
    case engine::value_type::real: {
        char b[64];
        std::snprintf(b, sizeof b, "%.17g", v.r);
        return std::string("r:") + b;
    }
    case engine::value_type::text: return "t:'" + v.s + "'";
    case engine::value_type::blob: {
        static const char* hex = "0123456789abcdef";
        std::string r = "b:x'";
        for (unsigned char c : v.s) { r += hex[c >> 4]; r += hex[c & 15]; }
        return r + "'";
    }
    default: return "NULL";
    }
}

// A decoded record's changes as "table put i:1|t:'x'" / "table delete i:1" / "table create".
inline std::vector<std::string> record_changes(const std::string& body) {
    std::string err;
    auto rec = engine::decode_record(reinterpret_cast<const std::uint8_t*>(body.data()), body.size(), err);
    if (!rec) FAIL("log record does not decode: " << err);
    std::vector<std::string> out;
    for (auto& c : rec->changes) {
        std::string s = rec->tables[c.table].name;
        switch (c.op) {
        case engine::change_op::put: s += " put "; break;
        case engine::change_op::del: s += " delete "; break;
        case engine::change_op::create_table: s += " create"; break;
        case engine::change_op::drop_table: s += " drop"; break;
        case engine::change_op::rename_table: s += " rename "; break;
        }
        for (std::size_t i = 0; i < c.values.size(); ++i) s += (i ? "|" : "") + typed_token(c.values[i]);
        out.push_back(s);
    }
    return out;
}

inline engine::hlc_t record_hlc(const std::string& body) {
    std::string err;
    auto rec = engine::decode_record(reinterpret_cast<const std::uint8_t*>(body.data()), body.size(), err);
    if (!rec) FAIL("log record does not decode: " << err);
    return rec->hlc;
}

// Replays `src`'s whole log into a fresh database and checks that every listed table has
// the same content there (typed) as in `src`: the log and the data agree.
inline void check_log_matches_data(test_db& src, const std::vector<std::string>& tables) {
    temp_dir d;
    test_db fresh(d.file("replay.db"));
    // The source's clock may have been moved ahead (repl_config('test_clock_ms')): let the
    // replica's clock be at least as late, so no record is refused as too far ahead.
    if (log_count(src) > 0) {
        std::string latest_ms = src.scalar("SELECT max(hlc) >> 16 FROM hdbrepl_log");
        fresh.exec("SELECT repl_config('test_clock_ms', max(" + latest_ms + ", CAST(strftime('%s', 'now') AS INTEGER) * 1000))");
    }
    replay_log(src, fresh);
    for (auto& t : tables) {
        INFO("table " << t << ": content rebuilt from the change log vs the table itself");
        bool exists_src = src.scalar("SELECT count(*) FROM sqlite_schema WHERE name=" + literal(t)) != "0";
        bool exists_fresh = fresh.scalar("SELECT count(*) FROM sqlite_schema WHERE name=" + literal(t)) != "0";
        REQUIRE(exists_fresh == exists_src);
        if (!exists_src) continue;
        CHECK(typed_rows(fresh.handle(), "SELECT * FROM " + ident(t) + " ORDER BY 1") ==
              typed_rows(src.handle(), "SELECT * FROM " + ident(t) + " ORDER BY 1"));
    }
}

} // namespace hdbrepl::test
