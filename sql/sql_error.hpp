// The one place where errors become SQLite result codes and messages: for scalar
// functions (sqlite3_result_error then _code, in that order), for virtual-table methods
// (zErrMsg) and for xCreate/xConnect (*pzErr).
#pragma once
#include <exception>
#include <string>

#include "engine/sqlite_api.hpp"

namespace hdbrepl::sql {

void set_vtab_error(sqlite3_vtab* vtab, const std::string& msg);
char* error_string(const std::string& msg); // sqlite3_malloc'ed copy, for *pzErr
void result_error(sqlite3_context* ctx, const std::string& msg, int code = SQLITE_ERROR);

// Runs a callback body that must not throw across the C ABI; converts any exception into
// an error code (and message, where the callback has a place for one).
template <class F> int guarded(sqlite3_vtab* vtab, F&& body) noexcept {
    try {
        return body();
    } catch (const std::bad_alloc&) {
        return SQLITE_NOMEM;
    } catch (const std::exception& e) {
        if (vtab) set_vtab_error(vtab, std::string("hdbrepl internal error: ") + e.what());
        return SQLITE_INTERNAL;
    } catch (...) {
        return SQLITE_INTERNAL;
    }
}

template <class F> void guarded_fn(sqlite3_context* ctx, F&& body) noexcept {
    try {
        body();
    } catch (const std::bad_alloc&) {
        sqlite3_result_error_nomem(ctx);
    } catch (const std::exception& e) {
        result_error(ctx, std::string("hdbrepl internal error: ") + e.what(), SQLITE_INTERNAL);
    } catch (...) {
        result_error(ctx, "hdbrepl internal error", SQLITE_INTERNAL);
    }
}

} // namespace hdbrepl::sql
