// The one place where errors become SQLite result codes and messages: for scalar
// functions (sqlite3_result_error then _code, in that order), for virtual-table methods
// (zErrMsg) and for xCreate/xConnect (*pzErr).
//
// The guards: every C entry point of the SQL surface runs its body through one of them
// (module slots through sql/vtab_module.hpp, function callbacks through sql/fn_table.hpp,
// the init function in extension/entry.cpp). A body returns an SQLite code (having set its
// own message), or a result<void> whose error the guard reports; an exception becomes
// SQLITE_NOMEM (std::bad_alloc) or SQLITE_ERROR with "hdbrepl internal error: <what>" (see
// engine/c_guard.hpp).
#pragma once
#include <exception>
#include <string>

#include "engine/c_guard.hpp"
#include "engine/result.hpp"
#include "engine/sqlite_api.hpp"

namespace hdbrepl::sql {

void set_vtab_error(sqlite3_vtab* vtab, const std::string& msg);
char* error_string(const std::string& msg); // sqlite3_malloc'ed copy, for *pzErr
void result_error(sqlite3_context* ctx, const std::string& msg, int code = SQLITE_ERROR);

// Reports `e` on the vtab (no message for an empty one, e.g. out of memory); returns its code.
int report_error(sqlite3_vtab* vtab, const error& e) noexcept;
// Reports `e` in *pz_err; returns its code.
int report_error(char** pz_err, const error& e) noexcept;
// Makes `e` the function's result.
void report_error(sqlite3_context* ctx, const error& e) noexcept;

// A virtual-table method; the message goes to `vtab` (none when it is null).
template <class F> int guarded(sqlite3_vtab* vtab, F&& body) noexcept {
    return c_guard(body, [vtab](const error& e) { return report_error(vtab, e); });
}

// xCreate / xConnect: the message goes to *pz_err.
template <class F> int guarded_create(char** pz_err, F&& body) noexcept {
    return c_guard(body, [pz_err](const error& e) { return report_error(pz_err, e); });
}

// A slot that cannot report an error (xEof, xShadowName, xFindFunction): `fallback` is
// what it returns when the body fails.
template <class F> int guarded_or(int fallback, F&& body) noexcept {
    return c_guard([&]() -> int {
        auto r = body();
        if constexpr (std::is_same_v<decltype(r), int>) return r;
        else return r ? 0 : fallback;
    }, [fallback](const error&) { return fallback; });
}

// A scalar function callback: an error becomes the function's result.
template <class F> void guarded_fn(sqlite3_context* ctx, F&& body) noexcept {
    c_guard(body, [ctx](const error& e) { report_error(ctx, e); });
}

} // namespace hdbrepl::sql
