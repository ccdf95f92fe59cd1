// Test fixture implementation (see test_db.hpp).
#include "tests/support/test_db.hpp"

#include "extension/entry.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace hdbrepl::test {

void register_extension() {
    static bool done = [] {
        sqlite3_auto_extension(reinterpret_cast<void (*)()>(hdbrepl_register));
        return true;
    }();
    (void)done;
}

temp_dir::temp_dir() {
    char tmpl[] = "/tmp/hdbrepl-test-XXXXXX";
    char* p = mkdtemp(tmpl);
    if (!p) throw std::runtime_error("mkdtemp failed");
    path_ = p;
}

temp_dir::~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

test_db::test_db(const std::string& path) {
    register_extension();
    int rc = sqlite3_open(path.c_str(), &db_);
    if (rc != SQLITE_OK) FAIL("cannot open " << path << ": " << sqlite3_errmsg(db_));
    sqlite3_busy_timeout(db_, 5000);
    exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
}

test_db::~test_db() { sqlite3_close_v2(db_); }

void test_db::exec(const std::string& sql) {
    std::string err = try_exec(sql);
    if (!err.empty()) FAIL("SQL failed: " << sql << "\n  error: " << err);
}

std::string test_db::try_exec(const std::string& sql) {
    char* msg = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg);
    std::string err = rc == SQLITE_OK ? "" : (msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return err;
}

std::vector<std::string> test_db::rows(const std::string& sql) {
    std::vector<std::string> out;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
        std::string err = sqlite3_errmsg(db_);
        sqlite3_finalize(s);
        FAIL("prepare failed: " << sql << "\n  error: " << err);
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        std::string row;
        for (int i = 0; i < sqlite3_column_count(s); ++i) {
            if (i) row += "|";
            auto* t = sqlite3_column_text(s, i);
            row += t ? reinterpret_cast<const char*>(t) : "NULL";
        }
        out.push_back(row);
    }
    std::string err = rc == SQLITE_DONE ? "" : sqlite3_errmsg(db_);
    sqlite3_finalize(s);
    if (!err.empty()) FAIL("query failed: " << sql << "\n  error: " << err);
    return out;
}

std::vector<std::string> test_db::column(const std::string& sql) {
    std::vector<std::string> out;
    for (auto& r : rows(sql)) out.push_back(r.substr(0, r.find('|')));
    return out;
}

std::string test_db::scalar(const std::string& sql) {
    auto r = rows(sql);
    if (r.size() != 1) FAIL("expected one row from: " << sql << ", got " << r.size());
    return r[0];
}

std::vector<std::string> test_db::plan(const std::string& sql) {
    std::vector<std::string> out;
    for (auto& r : rows("EXPLAIN QUERY PLAN " + sql)) out.push_back(r.substr(r.rfind('|') + 1));
    return out;
}

} // namespace hdbrepl::test
