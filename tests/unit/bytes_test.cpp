// Unit tests for engine/bytes.hpp: varints, zig-zag, bounds-checked (sticky) reads.
#include <catch2/catch.hpp>

#include "engine/bytes.hpp"

#include <cstdint>
#include <limits>

using namespace hdbrepl::engine;

namespace {
bytes varint_bytes(std::uint64_t v) {
    bytes b;
    byte_writer w(b);
    w.put_varint(v);
    return b;
}
} // namespace

TEST_CASE("bytes: unsigned varints round-trip at the boundaries", "[unit][bytes]") {
    const std::uint64_t cases[] = {0,
                                   1,
                                   127,
                                   128,
                                   255,
                                   16383,
                                   16384,
                                   (1ull << 32) - 1,
                                   1ull << 32,
                                   (1ull << 63) - 1,
                                   1ull << 63,
                                   std::numeric_limits<std::uint64_t>::max()};
    for (auto v : cases) {
        INFO("value " << v);
        bytes b = varint_bytes(v);
        byte_reader r(b);
        CHECK(r.get_varint() == v);
        CHECK(r.ok());
        CHECK(r.at_end());
    }
    CHECK(varint_bytes(0).size() == 1);
    CHECK(varint_bytes(127).size() == 1);
    CHECK(varint_bytes(128).size() == 2);
    CHECK(varint_bytes(1ull << 32).size() == 5);
    CHECK(varint_bytes(1ull << 63).size() == 10);
    CHECK(varint_bytes(std::numeric_limits<std::uint64_t>::max()).size() == 10);
    CHECK(varint_bytes(128) == bytes{0x80, 0x01});
}

TEST_CASE("bytes: zig-zag signed varints, including INT64_MIN and INT64_MAX", "[unit][bytes]") {
    const std::int64_t cases[] = {0, 1, -1, 63, -64, 64, -65, 1ll << 40, -(1ll << 40),
                                  std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min()};
    for (auto v : cases) {
        INFO("value " << v);
        bytes b;
        byte_writer w(b);
        w.put_svarint(v);
        byte_reader r(b);
        CHECK(r.get_svarint() == v);
        CHECK(r.ok());
        CHECK(r.at_end());
    }
    // Small negatives stay small.
    bytes b;
    byte_writer w(b);
    w.put_svarint(-1);
    CHECK(b == bytes{0x01});
    b.clear();
    w.put_svarint(-64);
    CHECK(b.size() == 1);
}

TEST_CASE("bytes: fixed-width and raw reads round-trip", "[unit][bytes]") {
    bytes b;
    byte_writer w(b);
    w.put_u8(0xab);
    w.put_u64le(0x0102030405060708ull);
    w.put_str("hello");
    w.put_str("");
    w.put_raw("xyz", 3);
    w.put_raw(nullptr, 0);
    CHECK(w.size() == b.size());
    CHECK(b[1] == 0x08); // little endian
    byte_reader r(b);
    CHECK(r.get_u8() == 0xab);
    CHECK(r.get_u64le() == 0x0102030405060708ull);
    CHECK(r.get_str() == "hello");
    CHECK(r.get_str().empty());
    CHECK(r.ok());
    const std::uint8_t* p = r.get_raw(3);
    REQUIRE(p != nullptr);
    CHECK(std::string(reinterpret_cast<const char*>(p), 3) == "xyz");
    CHECK(r.ok());
    CHECK(r.at_end());
}

TEST_CASE("bytes: truncated varints fail and the failure is sticky", "[unit][bytes]") {
    bytes full = varint_bytes(1ull << 40);
    for (std::size_t n = 0; n < full.size(); ++n) {
        INFO("prefix length " << n);
        byte_reader r(full.data(), n);
        CHECK(r.get_varint() == 0);
        CHECK_FALSE(r.ok());
        CHECK(r.at_end());
        CHECK(r.remaining() == 0);
    }
    // Sticky: after a failure, nothing reads successfully again, even with data left.
    bytes b{0x80}; // a continuation byte with nothing after it
    byte_reader r(b);
    r.get_varint();
    CHECK_FALSE(r.ok());
    r.get_u8();
    r.get_u64le();
    r.get_str();
    CHECK_FALSE(r.ok());

    bytes data{0x05, 0x01, 0x02, 0x03};
    byte_reader r2(data);
    r2.get_raw(10); // too long: fails and consumes everything
    CHECK_FALSE(r2.ok());
    CHECK(r2.at_end());
    CHECK(r2.get_u8() == 0);
    CHECK_FALSE(r2.ok());

    byte_reader r3(data);
    r3.get_u64le(); // only 4 bytes
    CHECK_FALSE(r3.ok());
}

TEST_CASE("bytes: an overlong varint (10th byte above 1, or an 11th byte) fails", "[unit][bytes]") {
    // UINT64_MAX is nine 0xff and then 0x01.
    bytes max = varint_bytes(std::numeric_limits<std::uint64_t>::max());
    REQUIRE(max.size() == 10);
    CHECK(max[9] == 0x01);
    bytes bad = max;
    bad[9] = 0x02; // would need a 65th bit
    {
        byte_reader r(bad);
        r.get_varint();
        CHECK_FALSE(r.ok());
    }
    bad[9] = 0x7f;
    {
        byte_reader r(bad);
        r.get_varint();
        CHECK_FALSE(r.ok());
    }
    bad[9] = 0x81; // continuation on the 10th byte: an 11-byte varint
    bad.push_back(0x00);
    {
        byte_reader r(bad);
        r.get_varint();
        CHECK_FALSE(r.ok());
    }
    bytes eleven(10, 0x80);
    eleven.push_back(0x00);
    {
        byte_reader r(eleven);
        r.get_varint();
        CHECK_FALSE(r.ok());
    }
}

TEST_CASE("bytes: get_str longer than the rest or than max_len fails", "[unit][bytes]") {
    bytes b;
    byte_writer w(b);
    w.put_varint(10);
    w.put_raw("abc", 3);
    {
        byte_reader r(b);
        CHECK(r.get_str().empty());
        CHECK_FALSE(r.ok());
        CHECK(r.at_end());
    }
    bytes c;
    byte_writer wc(c);
    wc.put_str("abcdef");
    {
        byte_reader r(c);
        CHECK(r.get_str(5).empty());
        CHECK_FALSE(r.ok());
    }
    {
        byte_reader r(c);
        CHECK(r.get_str(6) == "abcdef");
        CHECK(r.ok());
    }
    // A length near SIZE_MAX must not wrap the bounds check.
    bytes huge;
    byte_writer wh(huge);
    wh.put_varint(std::numeric_limits<std::uint64_t>::max());
    wh.put_raw("x", 1);
    {
        byte_reader r(huge);
        CHECK(r.get_str().empty());
        CHECK_FALSE(r.ok());
    }
}
