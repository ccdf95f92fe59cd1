// Test fixture: a database file in a fresh temporary directory, opened with hdbrepl
// registered (statically linked, through sqlite3_auto_extension), and helpers that run SQL
// and return results as text.
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <vector>

namespace hdbrepl::test {

// A temporary directory removed (with its files) at destruction.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }
private:
    std::string path_;
};

class test_db {
public:
    // Opens `path` (WAL mode) with hdbrepl registered.
    explicit test_db(const std::string& path);
    ~test_db();
    test_db(const test_db&) = delete;
    test_db& operator=(const test_db&) = delete;

    sqlite3* handle() const { return db_; }
    // Runs SQL; fails the test (with the SQL and the message) on error.
    void exec(const std::string& sql);
    // Runs SQL and returns the error message ("" on success).
    std::string try_exec(const std::string& sql);
    // First column of every row, as text ("NULL" for NULL).
    std::vector<std::string> column(const std::string& sql);
    // Every row as "a|b|c" (NULL as "NULL").
    std::vector<std::string> rows(const std::string& sql);
    // The single value of a one-row, one-column query.
    std::string scalar(const std::string& sql);
    std::int64_t count(const std::string& sql) { return std::stoll(scalar(sql)); }
    // The query plan's detail lines.
    std::vector<std::string> plan(const std::string& sql);

private:
    sqlite3* db_ = nullptr;
};

// Registers hdbrepl for every connection opened after this call (idempotent).
void register_extension();

} // namespace hdbrepl::test
