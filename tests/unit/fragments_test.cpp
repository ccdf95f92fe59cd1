// Unit tests for messages larger than a frame: the fragment and fragment_ack codec
// (replication/wire.hpp), the receiver's assembly and its checks (replication/fragments.hpp), and that a
// huge value passes the decoders' limits once assembled.
#include <catch2/catch.hpp>

#include "replication/fragments.hpp"
#include "engine/txn_record.hpp"
#include "replication/wire.hpp"
#include "replication/link_entitlement.hpp"

#include <string>

using namespace hdbrepl::engine;
namespace w = hdbrepl::engine::wire;

namespace {

constexpr hlc_t some_hlc = hlc_t{1'795'687'405'123} << 16;
constexpr std::uint64_t cap = 1'000'000'000;

std::optional<w::message> decode(const bytes& b, std::string& err) { return w::decode(b.data(), b.size(), err); }

// The fragments a sender makes of `whole`, `piece` data bytes each.
std::vector<w::fragment> cut(const bytes& whole, std::size_t piece) {
    std::vector<w::fragment> out;
    for (std::size_t at = 0; at < whole.size(); at += piece) {
        const std::size_t n = std::min(piece, whole.size() - at);
        out.push_back({whole.size(), bytes(whole.begin() + static_cast<std::ptrdiff_t>(at), whole.begin() + static_cast<std::ptrdiff_t>(at + n))});
    }
    return out;
}

// A txn message whose record puts one row with a BLOB of `n` bytes.
bytes big_txn(std::size_t n) {
    txn_record rec;
    rec.hlc = some_hlc;
    rec.origin = "node-a";
    rec.tables = {{"t", "\"id\" INTEGER PRIMARY KEY, \"b\" BLOB"}};
    std::string blob(n, '\0');
    for (std::size_t i = 0; i < n; i += 4096) blob[i] = static_cast<char>(i / 4096);
    rec.changes.push_back({0, change_op::put, {value::of_int(1), value::of_blob(std::move(blob))}});
    return w::encode(w::txn{42, encode_record(rec)});
}

} // namespace

TEST_CASE("fragment and fragment_ack round-trip") {
    const bytes data = {3, 1, 2, 3};
    bytes f = w::encode(w::fragment{100'000, data});
    CHECK(f.size() == w::fragment_header_bytes + data.size());
    CHECK(w::encode_fragment(100'000, data.data(), data.size()) == f);
    std::string err;
    auto m = decode(f, err);
    REQUIRE(m);
    CHECK(std::string(w::name_of(*m)) == "fragment");
    CHECK(std::get<w::fragment>(*m).total == 100'000);
    CHECK(std::get<w::fragment>(*m).data == data);

    auto a = decode(w::encode(w::fragment_ack{70'000}), err);
    REQUIRE(a);
    CHECK(std::string(w::name_of(*a)) == "fragment_ack");
    CHECK(std::get<w::fragment_ack>(*a).received == 70'000);
}

TEST_CASE("malformed fragments and fragment acks are refused") {
    std::string err;
    bytes truncated = {static_cast<std::uint8_t>(w::msg::fragment), 1, 2, 3};
    CHECK_FALSE(decode(truncated, err));
    CHECK(err == "malformed fragment message: truncated total");
    bytes empty = w::encode_fragment(100, nullptr, 0);
    CHECK_FALSE(decode(empty, err));
    CHECK(err == "malformed fragment message: no data");
    const bytes five(5, 7);
    CHECK_FALSE(decode(w::encode(w::fragment{4, five}), err));
    CHECK(err == "malformed fragment message: more data than the declared total");
    CHECK_FALSE(decode(w::encode(w::fragment_ack{0}), err));
    CHECK(err == "malformed fragment_ack message: acknowledges nothing");
    bytes trailing = w::encode(w::fragment_ack{9});
    trailing.push_back(0);
    CHECK_FALSE(decode(trailing, err));
    CHECK(err == "malformed fragment_ack message: trailing bytes");
    bytes ack_truncated = {static_cast<std::uint8_t>(w::msg::fragment_ack), 0x80};
    CHECK_FALSE(decode(ack_truncated, err));
}

TEST_CASE("decoding a buffer it owns keeps a txn's record without copying it") {
    bytes whole = big_txn(1 << 20);
    std::string err;
    auto copied = decode(whole, err);
    REQUIRE(copied);
    const auto* record_start = whole.data();
    auto moved = w::decode(std::move(whole), err);
    REQUIRE(moved);
    const auto& t = std::get<w::txn>(*moved);
    CHECK(t.seq == 42);
    CHECK(t.record == std::get<w::txn>(*copied).record);
    CHECK(t.record.data() == record_start); // the same buffer, moved down over the seq
    bytes bad = w::encode(w::txn{7, bytes{1, 2, 3}});
    std::string err_copy, err_moved;
    CHECK_FALSE(decode(bad, err_copy));
    CHECK_FALSE(w::decode(std::move(bad), err_moved));
    CHECK(err_moved == err_copy);
    bytes ack = w::encode(w::ack{5});
    auto a = w::decode(std::move(ack), err);
    REQUIRE(a);
    CHECK(std::get<w::ack>(*a).seq == 5);
}

TEST_CASE("fragment sizes fit the frame and the window holds at least one") {
    CHECK(fragment_data_bytes(64 * 1024) + w::fragment_header_bytes == 64 * 1024);
    CHECK(fragment_data_bytes(16 << 20) == (1 << 20) - w::fragment_header_bytes);
    CHECK(fragment_window_bytes(16 << 20, 8 << 20) == 4 << 20);
    CHECK(fragment_window_bytes(64 * 1024, 64 * 1024) == fragment_data_bytes(64 * 1024));
}

TEST_CASE("a message cut into fragments assembles to the same bytes and decodes") {
    const bytes whole = big_txn(3 << 20);
    fragment_assembler as;
    auto pieces = cut(whole, fragment_data_bytes(1 << 20));
    REQUIRE(pieces.size() == 4);
    for (std::size_t i = 0; i < pieces.size(); ++i) {
        CHECK_FALSE(as.complete());
        CHECK(as.add(pieces[i], cap).empty());
        CHECK(as.received() == std::min<std::uint64_t>(whole.size(), (i + 1) * fragment_data_bytes(1 << 20)));
    }
    REQUIRE(as.complete());
    bytes back = as.take();
    CHECK(back == whole);
    CHECK_FALSE(as.active());
    std::string err;
    auto m = decode(back, err);
    REQUIRE(m);
    CHECK(std::get<w::txn>(*m).seq == 42);
    // Ready for the next message.
    CHECK(as.add(pieces[0], cap).empty());
    CHECK(as.active());
}

TEST_CASE("the assembler refuses pieces that do not fit together") {
    const bytes whole = big_txn(300'000);
    auto pieces = cut(whole, 100'000);
    REQUIRE(pieces.size() == 4);
    fragment_assembler as;

    SECTION("a total over the cap") {
        CHECK(as.add(pieces[0], whole.size() - 1).find("over the limit of") != std::string::npos);
        CHECK_FALSE(as.active());
    }
    SECTION("a message that fits a frame") {
        const bytes small(1000, 3);
        CHECK(as.add({small.size(), small}, cap).find("a message that fits a frame is sent whole") != std::string::npos);
        const bytes first(60'000, 3);
        CHECK(as.add({min_frame_bytes, first}, cap).find("sent whole") != std::string::npos);
        CHECK(as.add({200'000, bytes(200'000, 3)}, cap).find("sent whole") != std::string::npos); // one piece is all of it
    }
    SECTION("a total that changes") {
        REQUIRE(as.add(pieces[0], cap).empty());
        auto other = pieces[1];
        other.total += 1;
        CHECK(as.add(other, cap).find("in a message of " + std::to_string(whole.size()) + " bytes") != std::string::npos);
        CHECK_FALSE(as.active());
    }
    SECTION("a piece past the total") {
        for (int i = 0; i < 3; ++i) REQUIRE(as.add(pieces[i], cap).empty());
        auto last = pieces[3];
        last.data.push_back(0);
        CHECK(as.add(last, cap).find("runs past its end") != std::string::npos);
    }
    SECTION("a fragment inside a fragmented message") {
        bytes nested = w::encode(w::fragment{whole.size(), whole});
        auto p = cut(nested, 100'000);
        CHECK(as.add(p[0], cap).find("a fragment inside a fragmented message") != std::string::npos);
        bytes ack = w::encode(w::fragment_ack{5});
        ack.resize(100'000, 0);
        CHECK(as.add({200'000, ack}, cap).find("a fragment inside a fragmented message") != std::string::npos);
    }
    SECTION("a piece with more data than its total") {
        w::fragment f{10, bytes(11, 1)};
        CHECK(as.add(f, cap).find("carries 11") != std::string::npos);
    }
}

TEST_CASE("the buffer is reserved once, so later pieces never move earlier ones") {
    fragment_assembler as;
    const bytes piece(100'000, static_cast<std::uint8_t>(w::msg::txn));
    REQUIRE(as.add({350'000, piece}, cap).empty());
    REQUIRE(as.add({350'000, piece}, cap).empty());
    CHECK(as.received() == 2 * piece.size());
    bytes held = as.take(); // not complete, but it holds what came, in a buffer of the total
    CHECK(held.size() == 2 * piece.size());
    CHECK(held.capacity() == 350'000);
}

TEST_CASE("a 64 MiB value passes the decoders once assembled") {
    // A txn and a copy chunk of one row each: decode limits (16x + 64 MiB) and counts hold.
    const std::size_t n = std::size_t{64} << 20;
    std::string err;
    {
        bytes msg = big_txn(n);
        auto m = decode(msg, err);
        REQUIRE(m);
        auto& t = std::get<w::txn>(*m);
        auto rec = decode_record(t.record.data(), t.record.size(), err);
        REQUIRE(rec);
        REQUIRE(rec->changes.size() == 1);
        CHECK(rec->changes[0].values[1].s.size() == n);
        CHECK(rec->changes[0].values[1].s[4096 * 5] == 5);
    }
    {
        w::copy_rows c;
        c.rows.push_back({false, some_hlc, "node-a", {value::of_int(1), value::of_text(std::string(n, 'x'))}});
        bytes msg = w::encode(c);
        c = {};
        auto m = decode(msg, err);
        REQUIRE(m);
        CHECK(std::get<w::copy_rows>(*m).rows.at(0).values.at(1).s.size() == n);
    }
}

TEST_CASE("fragments come only after hello; fragment acks only while fragments are unacknowledged") {
    using namespace hdbrepl::ext;
    link_view v;
    const w::message frag = w::fragment{100'000, bytes(10, 3)}, ack = w::fragment_ack{10};
    CHECK_THAT(link_refusal(v, frag), Catch::Contains("expected hello"));
    v.state = link_state::signing;
    CHECK_FALSE(link_refusal(v, frag).empty());
    for (auto s : {link_state::peer, link_state::receiving_copy}) {
        v.state = s;
        CHECK(link_refusal(v, frag).empty());
        v.fragment_acks_due = false;
        CHECK_THAT(link_refusal(v, ack), Catch::Contains("sending that peer no fragmented message"));
        v.fragment_acks_due = true;
        CHECK(link_refusal(v, ack).empty());
    }
}
