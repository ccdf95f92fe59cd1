// Virtual-table modules built from guarded slots only. A module's methods are written as
// plain functions that may throw and may return an SQLite code or a result<void>; the
// module table is made by guarded_module<Methods>(), which puts a noexcept wrapper around
// each one (sql/sql_error.hpp), so no slot reaches SQLite unguarded:
//
//   struct my_methods {
//       static constexpr auto xConnect = &my_connect;   // any slot of sqlite3_module
//       static constexpr auto xBestIndex = &my_best_index;
//       ...
//   };
//   const sqlite3_module my_module = guarded_module<my_methods>(1);
//
// Where errors go, by slot:
//   xCreate, xConnect                 *pzErr
//   methods of a vtab                 the vtab's zErrMsg (xDisconnect, xDestroy: the code
//                                     only, the vtab may be freed by then)
//   methods of a cursor               its vtab's zErrMsg (read before the call: xClose frees
//                                     the cursor)
//   xEof                              1 (end of the scan): it has no way to report one
//   xShadowName, xFindFunction        0 (not a shadow table, not overloaded)
// Thread: the connection's.
#pragma once
#include "sql/sql_error.hpp"

namespace hdbrepl::sql {

namespace slots {

// Methods of a vtab: sqlite3_vtab* first.
template <auto Fn> struct vtab_method;
template <class R, class... A, R (*Fn)(sqlite3_vtab*, A...)> struct vtab_method<Fn> {
    static int call(sqlite3_vtab* v, A... a) noexcept { return guarded(v, [&] { return Fn(v, a...); }); }
};

// xDisconnect / xDestroy: the wrapped function may free the vtab.
template <auto Fn> struct vtab_release;
template <class R, R (*Fn)(sqlite3_vtab*)> struct vtab_release<Fn> {
    static int call(sqlite3_vtab* v) noexcept { return guarded(nullptr, [&] { return Fn(v); }); }
};

// Methods of a cursor: sqlite3_vtab_cursor* first.
template <auto Fn> struct cursor_method;
template <class R, class... A, R (*Fn)(sqlite3_vtab_cursor*, A...)> struct cursor_method<Fn> {
    static int call(sqlite3_vtab_cursor* c, A... a) noexcept {
        sqlite3_vtab* v = c->pVtab;
        return guarded(v, [&] { return Fn(c, a...); });
    }
};

// xCreate / xConnect.
template <auto Fn> struct constructor;
template <class R, R (*Fn)(sqlite3*, void*, int, const char* const*, sqlite3_vtab**, char**)> struct constructor<Fn> {
    static int call(sqlite3* db, void* aux, int argc, const char* const* argv, sqlite3_vtab** out, char** pz_err) noexcept {
        return guarded_create(pz_err, [&] { return Fn(db, aux, argc, argv, out, pz_err); });
    }
};

// Slots whose int is an answer, not a code: `Fallback` when the body fails.
template <auto Fn, int Fallback> struct answer;
template <class R, class... A, R (*Fn)(A...), int Fallback> struct answer<Fn, Fallback> {
    static int call(A... a) noexcept { return guarded_or(Fallback, [&] { return Fn(a...); }); }
};

} // namespace slots

// The module table of `Methods` (see the top of the file): every slot it names, guarded.
template <class Methods> sqlite3_module guarded_module(int version) {
    sqlite3_module m{};
    m.iVersion = version;
    if constexpr (requires { Methods::xCreate; }) m.xCreate = slots::constructor<Methods::xCreate>::call;
    if constexpr (requires { Methods::xConnect; }) m.xConnect = slots::constructor<Methods::xConnect>::call;
    if constexpr (requires { Methods::xBestIndex; }) m.xBestIndex = slots::vtab_method<Methods::xBestIndex>::call;
    if constexpr (requires { Methods::xDisconnect; }) m.xDisconnect = slots::vtab_release<Methods::xDisconnect>::call;
    if constexpr (requires { Methods::xDestroy; }) m.xDestroy = slots::vtab_release<Methods::xDestroy>::call;
    if constexpr (requires { Methods::xOpen; }) m.xOpen = slots::vtab_method<Methods::xOpen>::call;
    if constexpr (requires { Methods::xClose; }) m.xClose = slots::cursor_method<Methods::xClose>::call;
    if constexpr (requires { Methods::xFilter; }) m.xFilter = slots::cursor_method<Methods::xFilter>::call;
    if constexpr (requires { Methods::xNext; }) m.xNext = slots::cursor_method<Methods::xNext>::call;
    if constexpr (requires { Methods::xEof; }) m.xEof = slots::answer<Methods::xEof, 1>::call;
    if constexpr (requires { Methods::xColumn; }) m.xColumn = slots::cursor_method<Methods::xColumn>::call;
    if constexpr (requires { Methods::xRowid; }) m.xRowid = slots::cursor_method<Methods::xRowid>::call;
    if constexpr (requires { Methods::xUpdate; }) m.xUpdate = slots::vtab_method<Methods::xUpdate>::call;
    if constexpr (requires { Methods::xBegin; }) m.xBegin = slots::vtab_method<Methods::xBegin>::call;
    if constexpr (requires { Methods::xSync; }) m.xSync = slots::vtab_method<Methods::xSync>::call;
    if constexpr (requires { Methods::xCommit; }) m.xCommit = slots::vtab_method<Methods::xCommit>::call;
    if constexpr (requires { Methods::xRollback; }) m.xRollback = slots::vtab_method<Methods::xRollback>::call;
    if constexpr (requires { Methods::xFindFunction; }) m.xFindFunction = slots::answer<Methods::xFindFunction, 0>::call;
    if constexpr (requires { Methods::xRename; }) m.xRename = slots::vtab_method<Methods::xRename>::call;
    if constexpr (requires { Methods::xSavepoint; }) m.xSavepoint = slots::vtab_method<Methods::xSavepoint>::call;
    if constexpr (requires { Methods::xRelease; }) m.xRelease = slots::vtab_method<Methods::xRelease>::call;
    if constexpr (requires { Methods::xRollbackTo; }) m.xRollbackTo = slots::vtab_method<Methods::xRollbackTo>::call;
    if constexpr (requires { Methods::xShadowName; }) m.xShadowName = slots::answer<Methods::xShadowName, 0>::call;
    return m;
}

} // namespace hdbrepl::sql
