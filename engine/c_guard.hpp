// The one exception guard for code that C calls: SQLite's module slots and function
// callbacks, the extension's init function, and the threads the extension starts. An
// exception must never unwind into C (undefined behaviour) or out of a thread's main
// (std::terminate); every such entry point runs its body through one of these.
//
//   c_guard(body, on_error)   body returns an SQLite code (int) or a result<void>; an
//                             error result or an exception becomes on_error(error), whose
//                             return value is the entry point's. Exceptions map to
//                               std::bad_alloc      -> {SQLITE_NOMEM, ""}
//                               std::exception      -> {SQLITE_ERROR, "internal error: " + what()}
//                               anything else       -> {SQLITE_ERROR, std::string(prefix) + "unknown exception"}
//   thread_guard(body, report) for thread mains and loops that must carry on: runs body;
//                             what escapes is passed to report as an error whose message
//                             is the bare what(), and false returned.
//
// Thread: any. The SQL-facing shapes (set the vtab's zErrMsg, the context's result error,
// *pzErr) are in sql/sql_error.hpp, built on these.
#pragma once
#include <new>
#include <exception>
#include <string>
#include <type_traits>

#include "engine/result.hpp"

namespace hdbrepl {

inline constexpr int guard_error_code = 1; // SQLITE_ERROR
inline constexpr int guard_nomem_code = 7; // SQLITE_NOMEM

// The exception in flight (call only inside a catch block) as an error whose message is
// `prefix` and the exception's what(). Never throws: when even the message cannot be
// built, the error is "out of memory" without one.
inline error current_exception_error(const char* prefix = "hdbrepl internal error: ") noexcept {
    try {
        try {
            throw;
        } catch (const std::bad_alloc&) {
            return error{guard_nomem_code, {}};
        } catch (const std::exception& e) {
            return error{guard_error_code, std::string(prefix) + e.what()};
        } catch (...) {
            return error{guard_error_code, std::string(prefix) + "unknown exception"};
        }
    } catch (...) {
        return error{guard_nomem_code, {}};
    }
}

namespace detail {
template <class R> struct is_result_void : std::false_type {};
template <> struct is_result_void<result<void>> : std::true_type {};
} // namespace detail

// What a guarded body that returned nothing, or success, yields: SQLITE_OK for an int
// entry point, nothing for a void one.
template <class R> constexpr R on_success() noexcept {
    if constexpr (std::is_void_v<R>) return;
    else return R{};
}

// See the top of the file. `on_error` is called with an error and returns the entry point's
// value; it runs outside any try block, so it must not throw (building no strings that may
// fail is enough: sqlite3_mprintf and sqlite3_result_error do not throw).
template <class F, class OnError> auto c_guard(F&& body, OnError&& on_error) noexcept -> decltype(on_error(std::declval<const error&>())) {
    using body_t = std::decay_t<decltype(body())>;
    static_assert(std::is_same_v<body_t, int> || detail::is_result_void<body_t>::value || std::is_void_v<body_t>,
                  "a guarded body returns an SQLite code, a result<void> or nothing");
    error failure;
    try {
        if constexpr (std::is_same_v<body_t, int>) {
            return body();
        } else if constexpr (std::is_void_v<body_t>) {
            body();
            return on_success<decltype(on_error(failure))>();
        } else {
            result<void> r = body();
            if (r) return on_success<decltype(on_error(failure))>();
            failure = std::move(r).error();
        }
    } catch (...) {
        failure = current_exception_error();
    }
    return on_error(failure);
}

// See the top of the file.
template <class F, class Report> bool thread_guard(F&& body, Report&& report) noexcept {
    try {
        body();
        return true;
    } catch (...) {
        error e = current_exception_error("");
        try {
            if (e.message.empty()) e.message = "out of memory";
            report(e);
        } catch (...) {
            // nothing left to tell it to
        }
        return false;
    }
}

} // namespace hdbrepl
