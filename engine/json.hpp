// The one JSON module: every parse and every escape in the project goes through Boost.JSON,
// compiled once in json.cpp.
#pragma once
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace hdbrepl::json {

using boost::json::array;
using boost::json::object;
using boost::json::serialize;
using boost::json::value;

// Parses `text` as a JSON object; returns "" or what is wrong with it.
std::string parse_object(const std::string& text, value& out);
// The string member `key`, or "" when absent or not a string.
std::string get_string(const object& o, const char* key);
// {"message": text}
std::string message(const std::string& text);
// A time given as ISO 8601 UTC ("2026-11-26T10:00:00Z", optional .sss and ±HH:MM) or
// epoch milliseconds; returns "" or the complaint.
std::string parse_time_ms(const value& v, std::int64_t& out);
value parse_or_null(const std::string& text);
// `s` as a JSON string literal, quotes included.
std::string quoted(std::string_view s);

} // namespace hdbrepl::json
