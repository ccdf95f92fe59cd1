// Unit tests for engine/json.hpp: the operation bodies' parser and start_time.
#include <catch2/catch.hpp>

#include "engine/json.hpp"

#include <string>

using namespace hdbrepl;

namespace {
std::string time_err(const json::value& v, std::int64_t* out = nullptr) {
    std::int64_t ms = -1;
    std::string e = json::parse_time_ms(v, ms);
    if (out) *out = ms;
    return e;
}
} // namespace

TEST_CASE("json: parse_object", "[unit][json]") {
    json::value v;
    CHECK(json::parse_object(R"({"hostname":"a","port":9933})", v).empty());
    CHECK(v.as_object().at("port").as_int64() == 9933);
    CHECK(json::parse_object("[1]", v).find("must be a JSON object") != std::string::npos);
    CHECK(json::parse_object("{", v).find("not valid JSON") != std::string::npos);
    // Found by fuzzing: Boost.JSON reads 1e999 as infinity and would write it back as
    // `Infinity`, which no JSON parser reads.
    CHECK(json::parse_object(R"({"a":[1e999]})", v).find("out of range") != std::string::npos);
    CHECK(json::parse_or_null(R"({"a":-1e999})").is_null());
}

TEST_CASE("json: parse_time_ms", "[unit][json]") {
    std::int64_t ms = 0;
    CHECK(time_err(json::value("2026-11-26T10:00:00Z"), &ms).empty());
    CHECK(ms == 1795687200000);
    CHECK(time_err(json::value("2026-11-26T10:00:00.5Z"), &ms).empty());
    CHECK(ms == 1795687200500);
    CHECK(time_err(json::value("2026-11-26T11:00:00+01:00"), &ms).empty());
    CHECK(ms == 1795687200000);
    CHECK(time_err(json::value(std::int64_t{1764151200000}), &ms).empty());
    CHECK(ms == 1764151200000);
    CHECK_FALSE(time_err(json::value(std::int64_t{-1})).empty());
    // Found by fuzzing: each of these was accepted.
    CHECK(time_err(json::value(std::uint64_t{17641512088800025010ull})).find("too large") != std::string::npos);
    CHECK(time_err(json::value("1969-12-31T23:59:59Z")).find("before 1970") != std::string::npos);
    CHECK(time_err(json::value("1970-01-01T00:30:00+01:00")).find("before 1970") != std::string::npos);
    CHECK(time_err(json::value("2026-02-31T00:00:00Z")).find("not a valid date") != std::string::npos);
    CHECK(time_err(json::value("2026-11-26T10:00:60Z")).find("not a valid date") != std::string::npos);
    CHECK_FALSE(time_err(json::value("2026- 1-01T00:00:00Z")).empty());
    CHECK_FALSE(time_err(json::value("+026-01-01T00:00:00Z")).empty());
    CHECK_FALSE(time_err(json::value("2026-01-01T00:00:00+1:000")).empty());
    CHECK(time_err(json::value("2024-02-29T00:00:00Z")).empty());
}
