// SQL functions are registered from tables, by one helper. An entry names the function, its
// argument count, what kind of function it is, and its callback; the kind decides the
// SQLite flags in one place, and the callback SQLite gets is a guarded wrapper (an exception
// or a result<void> error becomes the function's error, sql/sql_error.hpp):
//
//   constexpr sql::function_entry functions[] = {
//       sql::sql_function<fn_start>("repl_start", 1, sql::fn_kind::changes_state),
//       sql::sql_function<fn_cluster_status>("repl_cluster_status", 0, sql::fn_kind::reads),
//   };
//   int rc = sql::register_functions(db, functions, user_data);
//
// A callback is void(sqlite3_context*, int, sqlite3_value**) or returns result<void>.
// Thread: the connection's.
#pragma once
#include <span>

#include "sql/sql_error.hpp"

namespace hdbrepl::sql {

enum class fn_kind {
    // Changes the database, the cluster, security or placement state, waits on the
    // cluster, or reveals secrets: SQLITE_DIRECTONLY, so that no view or trigger (in a
    // database from an untrusted source) can call it.
    changes_state,
    // Reads state without changing the cluster or security: plain (neither deterministic
    // nor innocuous: its answer changes, and it may reveal the cluster's layout).
    reads,
    // A result that depends only on the arguments, with no side effect and nothing to
    // reveal: SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS (usable in views, indexes and
    // CHECK constraints, also with trusted_schema off).
    pure,
};

constexpr int function_flags(fn_kind k) {
    switch (k) {
    case fn_kind::changes_state: return SQLITE_UTF8 | SQLITE_DIRECTONLY;
    case fn_kind::reads: return SQLITE_UTF8;
    case fn_kind::pure: return SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
    }
    return SQLITE_UTF8 | SQLITE_DIRECTONLY;
}

using function_callback = void (*)(sqlite3_context*, int, sqlite3_value**);

struct function_entry {
    const char* name;
    int n_arg;
    fn_kind kind;
    function_callback callback; // guarded (made by sql_function)
};

namespace detail {
template <auto Fn> struct guarded_function {
    static void call(sqlite3_context* c, int argc, sqlite3_value** argv) noexcept {
        guarded_fn(c, [&] { return Fn(c, argc, argv); });
    }
};
} // namespace detail

// A table entry for the callback `Fn`, which SQLite reaches only through its guard.
template <auto Fn> constexpr function_entry sql_function(const char* name, int n_arg, fn_kind kind) {
    return {name, n_arg, kind, &detail::guarded_function<Fn>::call};
}

// Registers every entry of `table` with `user_data`. With `destroy`, the registration owns
// `user_data` from here on: SQLite frees it with the table's last function when the
// connection closes, and it is freed at once when registration fails. Returns the first
// failure.
int register_functions(sqlite3* db, std::span<const function_entry> table, void* user_data, void (*destroy)(void*) = nullptr);

} // namespace hdbrepl::sql
