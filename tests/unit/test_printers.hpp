// Catch2 printers for engine types, so failed checks show values instead of {?}.
// Include in every unit test that compares engine::value (one definition for all TUs).
#pragma once
#include <catch2/catch.hpp>

#include "engine/value.hpp"

namespace Catch {
template <> struct StringMaker<hdbrepl::engine::value> {
    static std::string convert(const hdbrepl::engine::value& v) {
        static const char* names[] = {"NULL", "INTEGER", "REAL", "TEXT", "BLOB"};
        return v.to_string() + " (" + names[static_cast<int>(v.type) % 5] + ")";
    }
};
} // namespace Catch
