// The result of an internal operation that can fail: a value, or an error made of an SQLite
// result code and a message. It is what internal APIs return instead of a bool with a
// std::string& out-parameter, an optional message, an "" = ok string or an rc with a char**;
// the guards at the C boundary (engine/c_guard.hpp, sql/sql_error.hpp) turn an error into
// the SQLite code and message of the slot or function, in one place.
//
//   result<int> parse(...) { if (bad) return error{SQLITE_ERROR, "why"}; return 42; }
//   result<void> write(...) { if (rc != SQLITE_OK) return error{rc, sqlite3_errmsg(db)}; return ok(); }
//   auto r = parse(...); if (!r) return r.error(); use(*r);
//
// No exceptions: value() on an error and error() on a value are checked with assert only.
#pragma once
#include <cassert>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace hdbrepl {

// An SQLite result code (never SQLITE_OK) and what went wrong, for a person to read.
struct error {
    int code = 1; // SQLITE_ERROR
    std::string message;
};

// Adds context in front of an error's message ("repl_start(): " + message).
inline error prefixed(std::string prefix, error e) {
    e.message = std::move(prefix) + e.message;
    return e;
}

struct ok_t {};
// The success of a result<void>.
inline constexpr ok_t ok() { return {}; }

template <class T> class [[nodiscard]] result {
    static_assert(!std::is_same_v<std::decay_t<T>, ::hdbrepl::error>, "result<error> is ambiguous");

public:
    template <class U = T, std::enable_if_t<std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, ::hdbrepl::error> &&
                                                !std::is_same_v<std::decay_t<U>, result>,
                                            int> = 0>
    result(U&& v) : v_(std::in_place_index<0>, std::forward<U>(v)) {}
    result(::hdbrepl::error e) : v_(std::in_place_index<1>, std::move(e)) {}

    bool has_value() const { return v_.index() == 0; }
    explicit operator bool() const { return has_value(); }

    T& value() & { assert(has_value()); return std::get<0>(v_); }
    const T& value() const& { assert(has_value()); return std::get<0>(v_); }
    T&& value() && { assert(has_value()); return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const ::hdbrepl::error& error() const& { assert(!has_value()); return std::get<1>(v_); }
    ::hdbrepl::error&& error() && { assert(!has_value()); return std::get<1>(std::move(v_)); }
    int code() const { return has_value() ? 0 : error().code; } // 0: SQLITE_OK

private:
    std::variant<T, ::hdbrepl::error> v_;
};

template <> class [[nodiscard]] result<void> {
public:
    result() = default;
    result(ok_t) {}
    result(::hdbrepl::error e) : failed_(true), e_(std::move(e)) {}

    bool has_value() const { return !failed_; }
    explicit operator bool() const { return has_value(); }

    const ::hdbrepl::error& error() const& { assert(failed_); return e_; }
    ::hdbrepl::error&& error() && { assert(failed_); return std::move(e_); }
    int code() const { return failed_ ? e_.code : 0; } // 0: SQLITE_OK

private:
    bool failed_ = false;
    ::hdbrepl::error e_;
};

// An SQLite return code as a result: SQLITE_OK is success, anything else an error with
// `message` (which is only built on failure).
template <class Message> result<void> from_rc(int rc, Message&& message) {
    if (rc == 0) return ok();
    return ::hdbrepl::error{rc, std::forward<Message>(message)()};
}

} // namespace hdbrepl
