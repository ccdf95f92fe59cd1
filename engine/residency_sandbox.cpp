// Sandboxed residency expressions (see residency_sandbox.hpp).
#include "engine/residency_sandbox.hpp"

#include <algorithm>
#include <cctype>
#include <vector>

namespace hdbrepl::engine {

namespace {

// The calling thread's sandbox: an in-memory connection with nothing in it.
struct sandbox {
    sqlite3* db = nullptr;
    std::string error;
    sandbox() {
        if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_MEMORY, nullptr) != SQLITE_OK) {
            error = db ? sqlite3_errmsg(db) : "out of memory";
            sqlite3_close_v2(db);
            db = nullptr;
            return;
        }
        sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
        sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
        sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr);
        sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
        // One value at most 64 MiB: a row larger than that is not evaluated (fail closed).
        sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 64 << 20);
        sqlite3_limit(db, SQLITE_LIMIT_EXPR_DEPTH, 100);
        sqlite3_limit(db, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, 1000);
        sqlite3_limit(db, SQLITE_LIMIT_FUNCTION_ARG, 100);
    }
    ~sandbox() { sqlite3_close_v2(db); } // a zombie until the last statement is finalized
};

sqlite3* thread_sandbox(std::string& err) {
    thread_local sandbox s;
    if (!s.db) err = "cannot open the residency sandbox: " + s.error;
    return s.db;
}

struct auth_state {
    int selects_allowed = 0; // the wrapper's own SELECTs
    int selects = 0;
    std::string denied;
};

int authorize(void* p, int action, const char* a1, const char* a2, const char*, const char*) {
    auto* st = static_cast<auth_state*>(p);
    switch (action) {
    case SQLITE_SELECT:
        if (++st->selects <= st->selects_allowed) return SQLITE_OK;
        st->denied = "a subquery";
        return SQLITE_DENY;
    case SQLITE_FUNCTION: {
        std::string name = a2 ? a2 : "";
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        const auto& allowed = residency_functions();
        if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) return SQLITE_OK;
        st->denied = "function " + name + "()";
        return SQLITE_DENY;
    }
    case SQLITE_READ: st->denied = std::string("reading table ") + (a1 ? a1 : "?"); return SQLITE_DENY;
    default: st->denied = "action " + std::to_string(action); return SQLITE_DENY;
    }
}

// Prepares `sql` under the authorizer; the authorizer is removed again before returning.
int prepare_guarded(sqlite3* db, const std::string& sql, auth_state& st, sqlite3_stmt** out, std::string& err) {
    sqlite3_set_authorizer(db, authorize, &st);
    int rc = sqlite3_prepare_v3(db, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, out, nullptr);
    sqlite3_set_authorizer(db, nullptr, nullptr);
    if (rc != SQLITE_OK) {
        err = st.denied.empty() ? std::string(sqlite3_errmsg(db)) : st.denied + " is not allowed in a residency expression";
        sqlite3_finalize(*out);
        *out = nullptr;
    }
    return rc;
}

int progress(void* p) { return ++*static_cast<int*>(p) > residency_max_vm_steps / 1000 ? 1 : 0; }

} // namespace

int prepare_residency(const table_def& def, sqlite3_stmt** out, std::string& err) {
    *out = nullptr;
    if (std::string why = residency_subset_error(def.residency); !why.empty()) {
        err = why;
        return SQLITE_AUTH;
    }
    sqlite3* db = thread_sandbox(err);
    if (!db) return SQLITE_CANTOPEN;
    // How many SELECTs the wrapper itself is made of (SQLite may or may not flatten it):
    // the expression may add none.
    table_def probe = def;
    probe.residency = "NULL";
    auth_state calibrate;
    calibrate.selects_allowed = 1 << 20;
    sqlite3_stmt* s = nullptr;
    int rc = prepare_guarded(db, residency_query(probe), calibrate, &s, err);
    sqlite3_finalize(s);
    if (rc != SQLITE_OK) return rc;
    auth_state st;
    st.selects_allowed = calibrate.selects;
    return prepare_guarded(db, residency_query(def), st, out, err);
}

int step_residency(sqlite3_stmt* st, std::string& err) {
    sqlite3* db = sqlite3_db_handle(st);
    int ticks = 0;
    sqlite3_progress_handler(db, 1000, progress, &ticks);
    int rc = sqlite3_step(st);
    sqlite3_progress_handler(db, 0, nullptr, nullptr);
    if (rc == SQLITE_ROW) return rc;
    err = rc == SQLITE_INTERRUPT ? "stopped after " + std::to_string(residency_max_vm_steps) + " steps" : std::string(sqlite3_errmsg(db));
    if (rc == SQLITE_DONE) err = "no result";
    return rc == SQLITE_DONE ? SQLITE_ERROR : rc;
}

} // namespace hdbrepl::engine
