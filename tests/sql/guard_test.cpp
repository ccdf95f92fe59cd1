// The exception guard at the C boundary (engine/c_guard.hpp, sql/sql_error.hpp,
// sql/vtab_module.hpp): every slot shape of a module built by guarded_module() turns an
// exception into an SQLite code (std::bad_alloc -> SQLITE_NOMEM, anything else ->
// SQLITE_ERROR with its message on the vtab or in *pzErr), a result<void> error into its
// code and message, and the slots that cannot report (xEof, xShadowName, xFindFunction)
// into their safe answer. Then the same through SQLite: a COMMIT whose confirmation wait
// throws inside xCommit, once an unguarded slot.
#include "tests/sql/sql_test_util.hpp"

#include "engine/c_guard.hpp"
#include "sql/node_hooks.hpp"
#include "sql/vtab_module.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>

using namespace hdbrepl::test;
namespace sql = hdbrepl::sql;

namespace {

// How the next call of a fake slot fails.
enum class failure { none, runtime_error, bad_alloc, other, result_error };
failure next_failure = failure::none;

int fail_or(int rc) {
    switch (next_failure) {
    case failure::none: return rc;
    case failure::runtime_error: throw std::runtime_error("boom");
    case failure::bad_alloc: throw std::bad_alloc();
    case failure::other: throw 42;
    case failure::result_error: break;
    }
    return rc;
}

hdbrepl::result<void> result_or_ok() {
    if (next_failure == failure::result_error) return hdbrepl::error{SQLITE_CONSTRAINT, "refused: reason"};
    fail_or(SQLITE_OK);
    return hdbrepl::ok();
}

int f_create(sqlite3*, void*, int, const char* const*, sqlite3_vtab**, char**) { return fail_or(SQLITE_OK); }
int f_vtab(sqlite3_vtab*) { return fail_or(SQLITE_OK); }
hdbrepl::result<void> f_vtab_result(sqlite3_vtab*) { return result_or_ok(); }
int f_vtab_int(sqlite3_vtab*, int) { return fail_or(SQLITE_OK); }
int f_best_index(sqlite3_vtab*, sqlite3_index_info*) { return fail_or(SQLITE_OK); }
int f_open(sqlite3_vtab*, sqlite3_vtab_cursor**) { return fail_or(SQLITE_OK); }
int f_update(sqlite3_vtab*, int, sqlite3_value**, sqlite3_int64*) { return fail_or(SQLITE_OK); }
int f_rename(sqlite3_vtab*, const char*) { return fail_or(SQLITE_OK); }
int f_find(sqlite3_vtab*, int, const char*, void (**)(sqlite3_context*, int, sqlite3_value**), void**) { return fail_or(1); }
int f_cursor(sqlite3_vtab_cursor*) { return fail_or(SQLITE_OK); }
int f_eof(sqlite3_vtab_cursor*) { return fail_or(0); }
int f_filter(sqlite3_vtab_cursor*, int, const char*, int, sqlite3_value**) { return fail_or(SQLITE_OK); }
int f_column(sqlite3_vtab_cursor*, sqlite3_context*, int) { return fail_or(SQLITE_OK); }
int f_rowid(sqlite3_vtab_cursor*, sqlite3_int64*) { return fail_or(SQLITE_OK); }
int f_shadow(const char*) { return fail_or(1); }

struct fake_methods {
    static constexpr auto xCreate = &f_create;
    static constexpr auto xConnect = &f_create;
    static constexpr auto xBestIndex = &f_best_index;
    static constexpr auto xDisconnect = &f_vtab;
    static constexpr auto xDestroy = &f_vtab;
    static constexpr auto xOpen = &f_open;
    static constexpr auto xClose = &f_cursor;
    static constexpr auto xFilter = &f_filter;
    static constexpr auto xNext = &f_cursor;
    static constexpr auto xEof = &f_eof;
    static constexpr auto xColumn = &f_column;
    static constexpr auto xRowid = &f_rowid;
    static constexpr auto xUpdate = &f_update;
    static constexpr auto xBegin = &f_vtab;
    static constexpr auto xSync = &f_vtab;
    static constexpr auto xCommit = &f_vtab_result;
    static constexpr auto xRollback = &f_vtab;
    static constexpr auto xFindFunction = &f_find;
    static constexpr auto xRename = &f_rename;
    static constexpr auto xSavepoint = &f_vtab_int;
    static constexpr auto xRelease = &f_vtab_int;
    static constexpr auto xRollbackTo = &f_vtab_int;
    static constexpr auto xShadowName = &f_shadow;
};

struct fake_vtab {
    sqlite3_vtab base{};
    sqlite3_vtab_cursor cursor{};
    fake_vtab() { cursor.pVtab = &base; }
    ~fake_vtab() { sqlite3_free(base.zErrMsg); }
    std::string message() {
        std::string m = base.zErrMsg ? base.zErrMsg : "";
        sqlite3_free(base.zErrMsg);
        base.zErrMsg = nullptr;
        return m;
    }
};

// The code each slot returns under `f`, and the message it left ("" for none), by slot.
std::vector<std::string> outcomes(failure f) {
    static const sqlite3_module m = sql::guarded_module<fake_methods>(3);
    fake_vtab t;
    std::vector<std::string> out;
    auto note = [&](const char* slot, int rc, std::string msg) { out.push_back(std::string(slot) + "=" + std::to_string(rc) + (msg.empty() ? "" : ":" + msg)); };
    next_failure = f;
    {
        char* err = nullptr;
        sqlite3_vtab* v = nullptr;
        int rc = m.xCreate(nullptr, nullptr, 0, nullptr, &v, &err);
        note("xCreate", rc, err ? err : "");
        sqlite3_free(err);
        err = nullptr;
        rc = m.xConnect(nullptr, nullptr, 0, nullptr, &v, &err);
        note("xConnect", rc, err ? err : "");
        sqlite3_free(err);
    }
    sqlite3_vtab* v = &t.base;
    sqlite3_vtab_cursor* c = &t.cursor;
    sqlite3_vtab_cursor* opened = nullptr;
    sqlite3_int64 rowid = 0;
    void (*fn)(sqlite3_context*, int, sqlite3_value**) = nullptr;
    void* arg = nullptr;
    int rc;
    rc = m.xBestIndex(v, nullptr); note("xBestIndex", rc, t.message());
    rc = m.xOpen(v, &opened); note("xOpen", rc, t.message());
    rc = m.xFilter(c, 0, nullptr, 0, nullptr); note("xFilter", rc, t.message());
    rc = m.xNext(c); note("xNext", rc, t.message());
    rc = m.xEof(c); note("xEof", rc, t.message());
    rc = m.xColumn(c, nullptr, 0); note("xColumn", rc, t.message());
    rc = m.xRowid(c, &rowid); note("xRowid", rc, t.message());
    rc = m.xClose(c); note("xClose", rc, t.message());
    rc = m.xUpdate(v, 0, nullptr, &rowid); note("xUpdate", rc, t.message());
    rc = m.xBegin(v); note("xBegin", rc, t.message());
    rc = m.xSync(v); note("xSync", rc, t.message());
    rc = m.xCommit(v); note("xCommit", rc, t.message());
    rc = m.xRollback(v); note("xRollback", rc, t.message());
    rc = m.xFindFunction(v, 1, "f", &fn, &arg); note("xFindFunction", rc, t.message());
    rc = m.xRename(v, "x"); note("xRename", rc, t.message());
    rc = m.xSavepoint(v, 1); note("xSavepoint", rc, t.message());
    rc = m.xRelease(v, 1); note("xRelease", rc, t.message());
    rc = m.xRollbackTo(v, 1); note("xRollbackTo", rc, t.message());
    rc = m.xShadowName("data"); note("xShadowName", rc, "");
    rc = m.xDisconnect(v); note("xDisconnect", rc, t.message());
    rc = m.xDestroy(v); note("xDestroy", rc, t.message());
    next_failure = failure::none;
    return out;
}

// The expected outcomes when every slot fails with code `rc` and message `msg`.
std::vector<std::string> failed(int rc, const std::string& msg) {
    std::vector<std::string> out;
    std::string with = std::to_string(rc) + (msg.empty() ? "" : ":" + msg), code = std::to_string(rc);
    for (const char* s : {"xCreate", "xConnect", "xBestIndex", "xOpen", "xFilter", "xNext"}) out.push_back(std::string(s) + "=" + with);
    out.push_back("xEof=1"); // the end of the scan: xEof has no way to report an error
    for (const char* s : {"xColumn", "xRowid", "xClose", "xUpdate", "xBegin", "xSync", "xCommit", "xRollback"}) out.push_back(std::string(s) + "=" + with);
    out.push_back("xFindFunction=0"); // not overloaded
    for (const char* s : {"xRename", "xSavepoint", "xRelease", "xRollbackTo"}) out.push_back(std::string(s) + "=" + with);
    out.push_back("xShadowName=0"); // not a shadow table
    // The vtab may be freed by xDisconnect and xDestroy: the code only.
    out.push_back("xDisconnect=" + code);
    out.push_back("xDestroy=" + code);
    return out;
}

} // namespace

TEST_CASE("every slot of a guarded module turns an exception into an SQLite code and message", "[sql]") {
    temp_dir d;
    test_db db(d.file("guard.db")); // sets the SQLite API table the guards reach SQLite through
    std::vector<std::string> fine = {"xCreate=0", "xConnect=0", "xBestIndex=0", "xOpen=0", "xFilter=0", "xNext=0", "xEof=0",
                                     "xColumn=0", "xRowid=0", "xClose=0", "xUpdate=0", "xBegin=0", "xSync=0", "xCommit=0",
                                     "xRollback=0", "xFindFunction=1", "xRename=0", "xSavepoint=0", "xRelease=0", "xRollbackTo=0",
                                     "xShadowName=1", "xDisconnect=0", "xDestroy=0"};
    CHECK(outcomes(failure::none) == fine);
    CHECK(outcomes(failure::runtime_error) == failed(SQLITE_ERROR, "hdbrepl internal error: boom"));
    CHECK(outcomes(failure::other) == failed(SQLITE_ERROR, "hdbrepl internal error: unknown exception"));
    CHECK(outcomes(failure::bad_alloc) == failed(SQLITE_NOMEM, ""));
    // A result<void> error is reported like an exception, with its own code and message.
    auto r = outcomes(failure::result_error);
    CHECK(r[13] == "xCommit=" + std::to_string(SQLITE_CONSTRAINT) + ":refused: reason");
}

TEST_CASE("thread_guard reports what escapes a thread's body and lets the caller carry on", "[sql]") {
    std::string seen;
    auto report = [&](const hdbrepl::error& e) { seen = std::to_string(e.code) + ":" + e.message; };
    CHECK(hdbrepl::thread_guard([] {}, report));
    CHECK(seen.empty());
    CHECK_FALSE(hdbrepl::thread_guard([] { throw std::runtime_error("lost"); }, report));
    CHECK(seen == std::to_string(SQLITE_ERROR) + ":lost");
    CHECK_FALSE(hdbrepl::thread_guard([] { throw std::bad_alloc(); }, report));
    CHECK(seen == std::to_string(SQLITE_NOMEM) + ":out of memory");
    // A report that throws itself is contained too.
    CHECK_FALSE(hdbrepl::thread_guard([] { throw 1; }, [](const hdbrepl::error&) { throw std::runtime_error("again"); }));
}

namespace {
int throwing_waiter(const std::string&, hdbrepl::engine::hlc_t, int, const std::set<std::string>&, int) {
    throw std::runtime_error("the confirmation wait failed");
}
} // namespace

TEST_CASE("an exception in xCommit does not escape into SQLite, and the next transaction starts clean", "[sql]") {
    temp_dir d;
    test_db db(d.file("commit.db"));
    db.exec("CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT)");
    auto saved = sql::confirm_hook.get(); // set when the extension registered on the connection
    sql::confirm_hook.set(&throwing_waiter);
    db.exec("SELECT repl_replicate_to(NULL, 1)"); // every node, one confirmation
    const auto before = log_count(db);
    // SQLite ignores what xCommit returns: the COMMIT stands (the transaction is durable).
    CHECK(db.try_exec("BEGIN; INSERT INTO dog VALUES (1, 'rex'); COMMIT;") == "");
    sql::confirm_hook.set(saved);
    CHECK(db.scalar("SELECT json_extract(repl_last_commit(), '$.status')") == "confirmation wait failed");
    CHECK(log_count(db) == before + 1);
    CHECK(sqlite3_get_autocommit(db.handle()) != 0);
    // The next transaction is logged as usual: the failed commit left no pending state behind.
    db.exec("SELECT repl_replicate_to(NULL)");
    db.exec("INSERT INTO dog VALUES (2, 'fido')");
    CHECK(log_count(db) == before + 2);
    CHECK(db.scalar("SELECT json_extract(repl_last_commit(), '$.status')") == "not asked");
    CHECK(db.rows("SELECT id, name FROM dog ORDER BY id") == std::vector<std::string>{"1|rex", "2|fido"});
}
