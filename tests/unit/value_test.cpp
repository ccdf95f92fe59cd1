// Unit tests for engine/value.hpp: the value codec and SQLite's cross-type ordering.
#include <catch2/catch.hpp>

#include "tests/unit/test_printers.hpp"

#include "engine/value.hpp"

#include <cmath>
#include <cstring>
#include <limits>

using namespace hdbrepl::engine;

namespace {
value round_trip(const value& v) {
    bytes b;
    byte_writer w(b);
    encode_value(w, v);
    byte_reader r(b);
    value out = value::of_text("garbage");
    REQUIRE(decode_value(r, out));
    CHECK(r.ok());
    CHECK(r.at_end());
    // skip_value consumes exactly the same bytes.
    byte_reader s(b);
    CHECK(skip_value(s));
    CHECK(s.at_end());
    return out;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }
} // namespace

TEST_CASE("value: every type round-trips through the codec", "[unit][value]") {
    const value cases[] = {
        value::null(),
        value::of_int(0),
        value::of_int(-1),
        value::of_int(std::numeric_limits<std::int64_t>::max()),
        value::of_int(std::numeric_limits<std::int64_t>::min()),
        value::of_real(0.5),
        value::of_real(-1e308),
        value::of_real(std::numeric_limits<double>::denorm_min()),
        value::of_real(std::numeric_limits<double>::infinity()),
        value::of_real(-std::numeric_limits<double>::infinity()),
        value::of_text(""),
        value::of_text("hello"),
        value::of_text(std::string("a\0b", 3)),
        value::of_text("\xc3\xa9t\xc3\xa9"),
        value::of_blob(""),
        value::of_blob(std::string("\x00\xff\x01", 3)),
        value::of_blob(std::string(100000, 'z')),
    };
    for (const auto& v : cases) {
        INFO(v.to_string());
        value out = round_trip(v);
        CHECK(out.type == v.type);
        CHECK(out == v);
    }
}

TEST_CASE("value: NaN and -0.0 keep their bits", "[unit][value]") {
    value nan = round_trip(value::of_real(std::numeric_limits<double>::quiet_NaN()));
    CHECK(nan.type == value_type::real);
    CHECK(std::isnan(nan.r));
    CHECK(nan == value::of_real(std::numeric_limits<double>::quiet_NaN())); // same bits compare equal

    value nz = round_trip(value::of_real(-0.0));
    CHECK(nz.type == value_type::real);
    CHECK(std::signbit(nz.r));
    CHECK(same_bits(nz.r, -0.0));
    CHECK(nz == value::of_real(0.0)); // numerically equal
}

TEST_CASE("value: the encoding is the documented one", "[unit][value]") {
    bytes b;
    byte_writer w(b);
    encode_value(w, value::null());
    encode_value(w, value::of_int(-1));
    encode_value(w, value::of_text("ab"));
    encode_value(w, value::of_blob(""));
    encode_value(w, value::of_real(1.0));
    bytes expect{0, 1, 0x01, 3, 2, 'a', 'b', 4, 0, 2, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f};
    CHECK(b == expect);
}

TEST_CASE("value: malformed encodings are rejected", "[unit][value]") {
    SECTION("unknown tag") {
        bytes b{5};
        byte_reader r(b);
        value v;
        CHECK_FALSE(decode_value(r, v));
        CHECK_FALSE(r.ok());
        byte_reader s(b);
        CHECK_FALSE(skip_value(s));
    }
    SECTION("empty input") {
        bytes b;
        byte_reader r(b);
        value v;
        CHECK_FALSE(decode_value(r, v));
    }
    SECTION("every truncation of every type") {
        const value cases[] = {value::of_int(1ll << 50), value::of_real(3.25), value::of_text("abcdef"), value::of_blob("xyz")};
        for (const auto& v : cases) {
            bytes b;
            byte_writer w(b);
            encode_value(w, v);
            for (std::size_t n = 0; n < b.size(); ++n) {
                INFO(v.to_string() << " cut to " << n << " bytes");
                byte_reader r(b.data(), n);
                value out;
                CHECK_FALSE(decode_value(r, out));
                CHECK_FALSE(r.ok());
                byte_reader s(b.data(), n);
                CHECK_FALSE(skip_value(s));
            }
        }
    }
}

TEST_CASE("value: SQLite's order NULL < numbers < TEXT < BLOB", "[unit][value]") {
    const value null = value::null();
    const value small = value::of_int(std::numeric_limits<std::int64_t>::min());
    const value neg_inf = value::of_real(-std::numeric_limits<double>::infinity());
    const value big = value::of_real(1e300);
    const value empty_text = value::of_text("");
    const value text = value::of_text("zzz");
    const value empty_blob = value::of_blob("");
    const value blob = value::of_blob("a");

    CHECK(null < small);
    CHECK(null < neg_inf);
    CHECK(neg_inf < small);
    CHECK(small < big);
    CHECK(big < empty_text);
    CHECK(empty_text < text);
    CHECK(text < empty_blob); // any BLOB sorts after any TEXT
    CHECK(empty_blob < blob);
    CHECK((null <=> value::null()) == std::weak_ordering::equivalent);

    // TEXT and BLOB compare by memcmp (BINARY).
    CHECK(value::of_text("B") < value::of_text("a"));
    CHECK(value::of_text("ab") < value::of_text("abc"));
    CHECK(value::of_blob(std::string("\x00", 1)) < value::of_blob("\x01"));
    CHECK(value::of_blob("\x7f") < value::of_blob("\x80")); // unsigned bytes
    CHECK(value::of_text("\x7f") < value::of_text("\xc3\xa9"));
}

TEST_CASE("value: INTEGER and REAL compare by numeric value", "[unit][value]") {
    CHECK((value::of_int(2) <=> value::of_real(2.0)) == std::weak_ordering::equivalent);
    CHECK(value::of_int(1) < value::of_real(1.5));
    CHECK(value::of_real(1.5) < value::of_int(2));
    CHECK(value::of_real(-0.5) < value::of_int(0));
    CHECK((value::of_real(-0.0) <=> value::of_int(0)) == std::weak_ordering::equivalent);
    CHECK(value::of_int(-3) < value::of_int(2));
    // Equality (==) is by storage class, not numeric value.
    CHECK_FALSE(value::of_int(2) == value::of_real(2.0));
    CHECK_FALSE(value::of_text("1") == value::of_blob("1"));
}

TEST_CASE("value: INTEGER/REAL comparison is exact beyond 2^53, as in SQLite", "[unit][value]") {
    // SQLite compares an integer with a real exactly (sqlite3IntFloatCompare):
    //   SELECT 9007199254740993 > 9007199254740992.0  -> 1
    //   SELECT 9223372036854775807 < 9223372036854775808.0 -> 1
    const std::int64_t two53 = 1ll << 53;
    CHECK(value::of_int(two53 + 1) > value::of_real(static_cast<double>(two53)));
    CHECK(value::of_real(static_cast<double>(two53)) < value::of_int(two53 + 1));
    CHECK(value::of_int(std::numeric_limits<std::int64_t>::max()) < value::of_real(9223372036854775808.0));
    CHECK(value::of_int(std::numeric_limits<std::int64_t>::min()) ==
          value::of_int(std::numeric_limits<std::int64_t>::min())); // sanity
}

TEST_CASE("value: to_string names every type", "[unit][value]") {
    CHECK(value::null().to_string() == "NULL");
    CHECK(value::of_int(-7).to_string() == "-7");
    CHECK(value::of_text("x").to_string() == "'x'");
    CHECK(value::of_blob("abc").to_string() == "x'<3 bytes>'");
    CHECK(value::of_real(0.5).to_string() == "0.5");
}
