// Round trips of every peer message (replication/wire.hpp): each type is encoded from a
// non-trivial instance, decoded, and compared field by field; every strict prefix of its
// encoding is refused with an error (or, for the two messages whose last field runs to the end
// of the frame, decodes to something else), never a crash or the original.
//
// Completeness: sample() and same() are overloaded per alternative of wire::message and are
// called for every index of the variant, so a message type added without a case here does
// not compile; the type byte of each sample is checked against its index, and the byte after
// the last type must be refused as unknown.
#include <catch2/catch.hpp>

#include "engine/txn_record.hpp"
#include "replication/wire.hpp"
#include "tests/unit/test_printers.hpp"

#include <array>
#include <string>
#include <type_traits>
#include <utility>

using namespace hdbrepl::engine;
namespace w = hdbrepl::engine::wire;

namespace {

constexpr hlc_t t1 = hlc_t{1'795'687'405'123} << 16 | 7;
constexpr hlc_t t2 = (hlc_t{1'795'687'409'001} << 16) | 0xfffe;

template <class T> using tag = std::type_identity<T>;

std::vector<w::origin_progress> some_progress() { return {{"node-a", t1}, {"127.0.0.3", t2}, {"ü-node", 1}}; }

w::subscription some_subscription() {
    w::subscription s;
    s.start_after = t1 - 5;
    s.progress = some_progress();
    s.exclude = {"node-c", "node-d"};
    return s;
}

w::copy_resume some_resume() { return {"dog", 1, value::of_text("key with 'quotes'")}; }

bytes some_record() {
    txn_record rec;
    rec.hlc = t2;
    rec.origin = "node-a";
    rec.tables = {{"dog", "\"id\" INTEGER PRIMARY KEY, \"name\" TEXT"}, {"cat", "\"k\" TEXT PRIMARY KEY"}};
    rec.changes = {{0, change_op::put, {value::of_int(1), value::of_text("rex")}},
                   {0, change_op::del, {value::of_int(2)}},
                   {1, change_op::put, {value::of_text("tom"), value::of_blob(std::string("\0\xff", 2))}}};
    return encode_record(rec);
}

// ---- one sample per message type -------------------------------------------------------------

w::message sample(tag<w::hello>) {
    w::hello h;
    h.node_name = "node-a";
    h.node_url = "ws://127.0.0.2:9925";
    h.database = "main";
    h.db_id = "5f1c0a7e-db";
    h.needs_copy = true;
    h.sub = some_subscription();
    h.resume = some_resume();
    return h;
}
w::message sample(tag<w::subscribe>) { return w::subscribe{some_subscription()}; }
w::message sample(tag<w::txn>) { return w::txn{123456789, some_record()}; }
w::message sample(tag<w::ack>) { return w::ack{1ull << 40}; }
w::message sample(tag<w::copy_start>) { return w::copy_start{100'000, some_progress()}; }
w::message sample(tag<w::copy_table>) { return w::copy_table{"dog", "\"id\" INTEGER PRIMARY KEY, \"name\" TEXT INDEXED"}; }
w::message sample(tag<w::copy_rows>) {
    w::copy_rows c;
    c.table = 3;
    c.rows.push_back({false, t1, "node-a", {value::of_int(-42), value::of_real(2.5), value::null(), value::of_blob("bin")}});
    c.rows.push_back({true, t2, "node-b", {value::of_text("gone")}});
    return c;
}
w::message sample(tag<w::copy_end>) { return w::copy_end{987654, some_progress()}; }
w::message sample(tag<w::copy_ack>) { return w::copy_ack{17}; }
w::message sample(tag<w::error_msg>) { return w::error_msg{"table 'dog': definition differs"}; }
w::message sample(tag<w::removed>) { return w::removed{"node-b"}; }
w::message sample(tag<w::copy_request>) { return w::copy_request{some_resume()}; }
w::message sample(tag<w::read_request>) { return w::read_request{99, "dog", "id", value::of_int(7)}; }
w::message sample(tag<w::read_reply>) { return w::read_reply{99, w::read_status::found, {value::of_int(7), value::of_text("rex")}}; }
w::message sample(tag<w::fragment>) { return w::fragment{1 << 20, bytes{1, 2, 3, 0, 255, 9}}; }
w::message sample(tag<w::fragment_ack>) { return w::fragment_ack{65536}; }

// ---- field by field ------------------------------------------------------------------------

void same_progress(const std::vector<w::origin_progress>& a, const std::vector<w::origin_progress>& b) {
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        CHECK(a[i].origin == b[i].origin);
        CHECK(a[i].hlc == b[i].hlc);
    }
}
void same_sub(const w::subscription& a, const w::subscription& b) {
    CHECK(a.start_after == b.start_after);
    same_progress(a.progress, b.progress);
    CHECK(a.exclude == b.exclude);
}
void same_resume(const std::optional<w::copy_resume>& a, const std::optional<w::copy_resume>& b) {
    REQUIRE(a.has_value() == b.has_value());
    if (!a) return;
    CHECK(a->table == b->table);
    CHECK(a->phase == b->phase);
    CHECK(a->key == b->key);
    CHECK(a->key.type == b->key.type);
}
void same_values(const std::vector<value>& a, const std::vector<value>& b) {
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        CHECK(a[i].type == b[i].type);
        CHECK(a[i] == b[i]);
    }
}

void same(const w::hello& a, const w::hello& b) {
    CHECK(a.version == b.version);
    CHECK(a.node_name == b.node_name);
    CHECK(a.node_url == b.node_url);
    CHECK(a.database == b.database);
    CHECK(a.db_id == b.db_id);
    CHECK(a.needs_copy == b.needs_copy);
    same_sub(a.sub, b.sub);
    same_resume(a.resume, b.resume);
}
void same(const w::subscribe& a, const w::subscribe& b) { same_sub(a.sub, b.sub); }
void same(const w::txn& a, const w::txn& b) {
    CHECK(a.seq == b.seq);
    CHECK(a.record == b.record);
}
void same(const w::ack& a, const w::ack& b) { CHECK(a.seq == b.seq); }
void same(const w::copy_start& a, const w::copy_start& b) {
    CHECK(a.total_rows == b.total_rows);
    same_progress(a.progress, b.progress);
}
void same(const w::copy_table& a, const w::copy_table& b) {
    CHECK(a.name == b.name);
    CHECK(a.definition == b.definition);
}
void same(const w::copy_rows& a, const w::copy_rows& b) {
    CHECK(a.table == b.table);
    REQUIRE(a.rows.size() == b.rows.size());
    for (std::size_t i = 0; i < a.rows.size(); ++i) {
        CHECK(a.rows[i].deleted == b.rows[i].deleted);
        CHECK(a.rows[i].hlc == b.rows[i].hlc);
        CHECK(a.rows[i].origin == b.rows[i].origin);
        same_values(a.rows[i].values, b.rows[i].values);
    }
}
void same(const w::copy_end& a, const w::copy_end& b) {
    CHECK(a.seq == b.seq);
    same_progress(a.progress, b.progress);
}
void same(const w::copy_ack& a, const w::copy_ack& b) { CHECK(a.chunks == b.chunks); }
void same(const w::error_msg& a, const w::error_msg& b) { CHECK(a.text == b.text); }
void same(const w::removed& a, const w::removed& b) { CHECK(a.by == b.by); }
void same(const w::copy_request& a, const w::copy_request& b) { same_resume(a.resume, b.resume); }
void same(const w::read_request& a, const w::read_request& b) {
    CHECK(a.id == b.id);
    CHECK(a.table == b.table);
    CHECK(a.key_column == b.key_column);
    CHECK(a.key.type == b.key.type);
    CHECK(a.key == b.key);
}
void same(const w::read_reply& a, const w::read_reply& b) {
    CHECK(a.id == b.id);
    CHECK(a.status == b.status);
    same_values(a.row, b.row);
}
void same(const w::fragment& a, const w::fragment& b) {
    CHECK(a.total == b.total);
    CHECK(a.data == b.data);
}
void same(const w::fragment_ack& a, const w::fragment_ack& b) { CHECK(a.received == b.received); }

// ---- the checks, for alternative I ---------------------------------------------------------

template <std::size_t I> void round_trip() {
    using T = std::variant_alternative_t<I, w::message>;
    const w::message m = sample(tag<T>{});
    REQUIRE(m.index() == I);
    const std::string name = w::name_of(m);
    INFO("message " << name);
    const bytes enc = w::encode(m);
    REQUIRE(enc.size() > 1);
    // The type byte is the enum value of the variant's alternative.
    CHECK(enc[0] == I + 1);

    std::string err;
    auto back = w::decode(enc.data(), enc.size(), err);
    INFO("decode error: " << err);
    REQUIRE(back);
    REQUIRE(back->index() == I);
    same(std::get<T>(m), std::get<T>(*back));
    // Re-encoding gives the same bytes.
    CHECK(w::encode(*back) == enc);
    // The owning decoder (a txn keeps the buffer) agrees.
    bytes copy = enc;
    auto back2 = w::decode(std::move(copy), err);
    REQUIRE(back2);
    REQUIRE(back2->index() == I);
    same(std::get<T>(m), std::get<T>(*back2));

    // Every strict prefix: refused with an error naming the message, except where the frame's
    // end ends the message (a fragment's data, a copy_request's optional resume point): there
    // a prefix may be a valid, different message.
    for (std::size_t n = 1; n < enc.size(); ++n) {
        INFO("prefix of " << n << " of " << enc.size() << " bytes");
        std::string e;
        auto got = w::decode(enc.data(), n, e);
        const bool may_decode = (std::is_same_v<T, w::fragment> && n > w::fragment_header_bytes) ||
                                (std::is_same_v<T, w::copy_request> && n == 1);
        if (got) {
            CHECK(may_decode);
            CHECK(w::encode(*got) != enc);
        } else {
            CHECK(e.find(name) != std::string::npos);
        }
        bytes pre(enc.begin(), enc.begin() + static_cast<std::ptrdiff_t>(n));
        std::string e2;
        auto got2 = w::decode(std::move(pre), e2);
        CHECK(got2.has_value() == got.has_value());
    }
    // Trailing garbage is refused too (except where data runs to the frame's end).
    if constexpr (!std::is_same_v<T, w::txn> && !std::is_same_v<T, w::fragment>) {
        bytes longer = enc;
        longer.push_back(0);
        std::string e;
        CHECK_FALSE(w::decode(longer.data(), longer.size(), e));
    }
}

template <std::size_t... I> void round_trip_all(std::index_sequence<I...>) { (round_trip<I>(), ...); }

} // namespace

TEST_CASE("every peer message round-trips field by field, and its prefixes are refused", "[unit][wire]") {
    constexpr std::size_t n = std::variant_size_v<w::message>;
    // The enum lists the types 1..n in the variant's order (the last is fragment_ack).
    static_assert(static_cast<std::size_t>(w::msg::fragment_ack) == n,
                  "a message type was added: give it a sample() and a same() above");
    round_trip_all(std::make_index_sequence<n>{});
    // No type byte beyond the variant's is understood.
    for (unsigned b : {0u, static_cast<unsigned>(n + 1), 255u}) {
        const std::uint8_t one[] = {static_cast<std::uint8_t>(b), 0, 0};
        std::string e;
        CHECK_FALSE(w::decode(one, sizeof one, e));
        CHECK(e.find("unknown message type") != std::string::npos);
    }
    std::string e;
    CHECK_FALSE(w::decode(nullptr, 0, e));
    CHECK(e == "empty message");
}

TEST_CASE("optional parts of messages round-trip when absent", "[unit][wire]") {
    w::hello h = std::get<w::hello>(sample(tag<w::hello>{}));
    h.needs_copy = false;
    h.resume.reset();
    h.sub = {};
    w::copy_request none;
    w::read_reply absent{5, w::read_status::absent, {}};
    w::read_reply cannot{6, w::read_status::cannot, {}};
    for (const w::message& m : {w::message(h), w::message(none), w::message(absent), w::message(cannot)}) {
        INFO(w::name_of(m));
        auto enc = w::encode(m);
        std::string err;
        auto back = w::decode(enc.data(), enc.size(), err);
        INFO(err);
        REQUIRE(back);
        REQUIRE(back->index() == m.index());
        std::visit([&](const auto& x) { same(x, std::get<std::decay_t<decltype(x)>>(*back)); }, m);
    }
}
