// Unit tests for the decoders' limits (replication/wire.hpp, engine/txn_record.hpp, bytes.hpp): what
// a message may make the decoder build is bounded by its size (decoded_bytes_limit), counts
// are checked against what the remaining bytes can hold, and timestamps are below 2^63.
#include <catch2/catch.hpp>

#include "engine/txn_record.hpp"
#include "replication/wire.hpp"

#include <string>

using namespace hdbrepl::engine;
namespace w = hdbrepl::engine::wire;

namespace {

constexpr hlc_t some_hlc = hlc_t{1'795'687'405'123} << 16;
constexpr hlc_t two_63 = hlc_t{1} << 63;

// The memory a decoded copy_rows holds (objects and string payloads).
std::size_t decoded_bytes(const w::copy_rows& c) {
    std::size_t n = sizeof(c) + c.rows.capacity() * sizeof(w::copy_row);
    for (const auto& r : c.rows) {
        n += string_heap_bytes(r.origin.size()) + r.values.capacity() * sizeof(value);
        for (const auto& v : r.values) n += string_heap_bytes(v.s.size());
    }
    return n;
}

// A copy_rows message of `rows` rows of `cols` NULL columns each: 1 byte of input per value.
bytes null_rows(std::size_t rows, std::size_t cols) {
    bytes out;
    byte_writer wr(out);
    wr.put_u8(static_cast<std::uint8_t>(w::msg::copy_rows));
    wr.put_varint(0);
    wr.put_varint(rows);
    for (std::size_t i = 0; i < rows; ++i) {
        wr.put_u8(1);
        wr.put_u64le(some_hlc);
        wr.put_str("a");
        wr.put_varint(cols);
        for (std::size_t j = 0; j < cols; ++j) wr.put_u8(0);
    }
    return out;
}

// A record of `changes` puts of `cols` NULL columns each.
bytes null_record(std::size_t changes, std::size_t cols) {
    bytes out;
    byte_writer wr(out);
    encode_record_head(wr, some_hlc, "a", {{"t", "\"id\" PRIMARY KEY"}});
    wr.put_varint(changes);
    for (std::size_t i = 0; i < changes; ++i) {
        wr.put_varint(0);
        wr.put_u8(static_cast<std::uint8_t>(change_op::put));
        wr.put_varint(cols);
        for (std::size_t j = 0; j < cols; ++j) wr.put_u8(0);
    }
    return out;
}

std::optional<w::message> decode(const bytes& b, std::string& err) { return w::decode(b.data(), b.size(), err); }

} // namespace

TEST_CASE("a frame of NULL values that would decode past the limit is refused") {
    // 2,600 rows of 1,000 NULLs: 2.6 MB of input that would decode to ~146 MB (56x).
    bytes b = null_rows(2600, 1000);
    REQUIRE(sizeof(value) * 2600 * 1000 > decoded_bytes_limit(b.size()));
    std::string err;
    CHECK_FALSE(decode(b, err));
    CHECK(err == "malformed copy_rows message: decoded size over the limit");
}

TEST_CASE("a change record of NULL values that would decode past the limit is refused") {
    bytes rec = null_record(2600, 1000);
    std::string err;
    CHECK_FALSE(decode_record(rec.data(), rec.size(), err));
    CHECK(err.find("decoded size over the limit") != std::string::npos);
    // The same record inside a txn message.
    bytes msg = w::encode(w::txn{7, rec});
    err.clear();
    CHECK_FALSE(decode(msg, err));
    CHECK(err.find("malformed txn message: malformed change record: decoded size over the limit") == 0);
}

TEST_CASE("ordinary large messages still decode, within the ratio bound") {
    w::copy_rows c;
    c.table = 3;
    for (int i = 0; i < 2000; ++i)
        c.rows.push_back({i % 10 == 0, some_hlc + i, "node-a",
                          i % 10 == 0 ? std::vector<value>{value::of_int(i)}
                                      : std::vector<value>{value::of_int(i), value::of_text("name " + std::to_string(i)),
                                                           value::of_real(i * 0.5), value::null()}});
    bytes b = w::encode(c);
    std::string err;
    auto m = decode(b, err);
    REQUIRE(m);
    auto& back = std::get<w::copy_rows>(*m);
    REQUIRE(back.rows.size() == 2000);
    CHECK(back.rows[1999].values[1] == value::of_text("name 1999"));
    std::size_t ratio = decoded_bytes(back) / b.size();
    INFO("decoded " << decoded_bytes(back) << " bytes from " << b.size());
    CHECK(ratio <= decode_ratio);

    // A transaction of 200,000 rows of five small integers (3.8 MB, decoded ~18x: the slack
    // covers it) and a NULL-heavy one within the slack.
    txn_record rec;
    rec.hlc = some_hlc;
    rec.origin = "node-a";
    rec.tables = {{"t", "\"id\" PRIMARY KEY, \"a\", \"b\", \"c\", \"d\""}};
    for (int i = 0; i < 200'000; ++i)
        rec.changes.push_back({0, change_op::put, {value::of_int(i), value::of_int(1), value::of_int(2), value::of_int(3), value::of_int(4)}});
    bytes r = encode_record(rec);
    auto dec = decode_record(r.data(), r.size(), err);
    REQUIRE(dec);
    CHECK(dec->changes.size() == 200'000);
    bytes small = null_record(1000, 1000); // 1 MB decoding to 56 MB: under the slack
    CHECK(decode_record(small.data(), small.size(), err));
}

TEST_CASE("a count larger than the remaining bytes could hold is refused before reserving") {
    std::string err;
    // Rows take at least 12 bytes: 1,000 rows cannot come in 5,000 bytes.
    bytes b;
    byte_writer wr(b);
    wr.put_u8(static_cast<std::uint8_t>(w::msg::copy_rows));
    wr.put_varint(0);
    wr.put_varint(1000);
    b.resize(b.size() + 5000, 0);
    CHECK_FALSE(decode(b, err));
    CHECK(err == "malformed copy_rows message: bad row count");

    // Changes take at least 2 bytes each: a count of the remaining bytes is a lie.
    bytes rec;
    byte_writer rw(rec);
    encode_record_head(rw, some_hlc, "a", {{"t", "\"id\" PRIMARY KEY"}});
    rw.put_varint(4000);
    rec.resize(rec.size() + 4000, 0);
    CHECK_FALSE(decode_record(rec.data(), rec.size(), err));
    CHECK(err.find("bad change count") != std::string::npos);

    // Progress entries take at least 10 bytes.
    bytes p;
    byte_writer pw(p);
    pw.put_u8(static_cast<std::uint8_t>(w::msg::copy_end));
    pw.put_varint(1);
    pw.put_varint(100);
    p.resize(p.size() + 500, 0);
    CHECK_FALSE(decode(p, err));
    CHECK(err == "malformed copy_end message: bad origin count");
}

TEST_CASE("timestamps of 2^63 and above are malformed, except start_after's sentinel") {
    std::string err;
    auto round_trip = [&](const w::message& m) { return decode(w::encode(m), err).has_value(); };

    w::copy_rows rows;
    rows.rows.push_back({false, max_hlc, "a", {value::of_int(1)}});
    CHECK(round_trip(rows));
    rows.rows[0].hlc = two_63;
    CHECK_FALSE(round_trip(rows));
    CHECK(err == "malformed copy_rows message: row hlc out of range (>= 2^63)");

    const std::vector<w::origin_progress> bad_progress{{"a", some_hlc}, {"b", two_63}};
    const std::vector<w::origin_progress> top_progress{{"a", 0}, {"b", max_hlc}};
    CHECK(round_trip(w::copy_start{5, top_progress}));
    CHECK_FALSE(round_trip(w::copy_start{5, bad_progress}));
    CHECK(err == "malformed copy_start message: progress hlc out of range (>= 2^63)");
    CHECK(round_trip(w::copy_end{5, top_progress}));
    CHECK_FALSE(round_trip(w::copy_end{5, bad_progress}));
    CHECK(err == "malformed copy_end message: progress hlc out of range (>= 2^63)");
    CHECK_FALSE(round_trip(w::copy_end{5, {{"a", ~hlc_t{0}}}})); // the sentinel is not progress

    w::subscribe s;
    s.sub.progress = bad_progress;
    CHECK_FALSE(round_trip(s));
    CHECK(err == "malformed subscribe message: progress hlc out of range (>= 2^63)");
    s.sub.progress = top_progress;
    for (hlc_t ok : {hlc_t{0}, some_hlc, max_hlc, hlc_nothing}) {
        s.sub.start_after = ok;
        CHECK(round_trip(s));
    }
    for (hlc_t bad : {two_63, hlc_nothing - 1}) {
        s.sub.start_after = bad;
        CHECK_FALSE(round_trip(s));
        CHECK(err == "malformed subscribe message: start_after out of range (>= 2^63)");
    }

    // hello: a node that needs a copy subscribes to nothing (start_after = the sentinel).
    w::hello h;
    h.node_name = "b";
    h.database = "main";
    h.needs_copy = true;
    h.sub.start_after = hlc_nothing;
    CHECK(round_trip(h));
    h.sub.progress = bad_progress;
    CHECK_FALSE(round_trip(h));
    CHECK(err == "malformed hello message: progress hlc out of range (>= 2^63)");

    // The record head, through decode_record, peek_record_head and a txn message.
    txn_record rec;
    rec.origin = "a";
    rec.tables = {{"t", "\"id\" PRIMARY KEY"}};
    rec.changes = {{0, change_op::put, {value::of_int(1)}}};
    hlc_t h_out = 0;
    std::string origin;
    rec.hlc = max_hlc;
    bytes good = encode_record(rec);
    CHECK(decode_record(good.data(), good.size(), err));
    CHECK(peek_record_head(good.data(), good.size(), h_out, origin));
    CHECK(round_trip(w::txn{1, good}));
    for (hlc_t bad : {two_63, ~hlc_t{0}}) {
        rec.hlc = bad;
        bytes b = encode_record(rec);
        CHECK_FALSE(decode_record(b.data(), b.size(), err));
        CHECK(err.find("timestamp out of range (>= 2^63)") != std::string::npos);
        CHECK_FALSE(peek_record_head(b.data(), b.size(), h_out, origin));
        CHECK_FALSE(round_trip(w::txn{1, b}));
    }
}

TEST_CASE("filtering a record of this node's own log is not bounded by the decode limit") {
    // Past the limit: decode_record refuses it, yet a filter keeps it whole (its receiver then
    // refuses it loudly) instead of dropping it as if no change were wanted.
    bytes rec = null_record(2600, 1000);
    std::string err;
    REQUIRE_FALSE(decode_record(rec.data(), rec.size(), err));
    bytes all = filter_record(rec.data(), rec.size(), [](const std::string&) { return true; });
    CHECK(all == rec);
}
