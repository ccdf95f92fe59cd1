// The one JSON module: every parse and every escape in the project goes through Boost.JSON,
// compiled once in json.cpp.
#pragma once
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace hdbrepl::json {

using boost::json::array;
using boost::json::object;
using boost::json::serialize;
using boost::json::value;

// Parses `text` as one JSON value; returns "" or Boost.JSON's description of what is wrong
// ("a number is out of range" for one that overflows a double, such as 1e999).
std::string parse(std::string_view text, value& out);
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

// ---- reading one JSON text exactly one way ----------------------------------------------

// The top level of a JSON object: how often each key occurs (a text with a key twice can be
// read two ways, so callers refuse it) and the decoded value of each member that is a string.
struct object_members {
    std::map<std::string, int> key_count;
    std::map<std::string, std::string> strings;
};
// Validates `text` as exactly one JSON object (RFC 8259; arrays and objects nested at most
// max_depth deep, the top object counting as one; surrounding whitespace allowed) and fills
// `out`. With allow_invalid_utf8, raw string bytes are not checked as UTF-8 (escapes are).
// Returns false, `out` partly filled, for anything else.
bool read_object_members(std::string_view text, object_members& out, unsigned max_depth,
                         bool allow_invalid_utf8 = false);

// What is wrong with a text read by parse_string_array, and the byte offset where (text.size()
// for "at the end").
struct string_array_error {
    enum kind_t {
        none,
        not_array,              // the text does not start with '[' (offset: its first non-blank byte)
        empty_array,            // [] where at least one string is required
        not_string,             // an element that is not a string, or none after '[' or ','
        empty_string,           // "" where empty strings are refused (offset: its opening quote)
        expected_comma_or_end,  // after an element
        trailing_text,          // after the closing ']'
        unterminated_string,
        control_character,      // a raw byte below 0x20 inside a string
        invalid_utf8,           // offset: the first byte of the sequence
        invalid_escape,         // offset: the backslash
        bad_hex_digit,          // in a \u escape (offset: the digit, or the end)
        unpaired_surrogate,     // offset: the backslash of the first \u escape involved
        other,                  // anything else Boost.JSON refuses (see `detail`)
    };
    kind_t kind = none;
    std::size_t offset = 0;
    std::string detail; // Boost.JSON's message, for `other`
};
// Parses `text` as exactly one JSON array of strings (RFC 8259: strict UTF-8, every escape,
// \u surrogate pairs; JSON whitespace around tokens; nothing after the array), in order, into
// `out`. Refuses an empty array unless allow_empty_array, and "" unless allow_empty_strings.
// On failure returns false and describes the first problem in the text.
bool parse_string_array(std::string_view text, std::vector<std::string>& out, string_array_error& err,
                        bool allow_empty_array = false, bool allow_empty_strings = false);

} // namespace hdbrepl::json
