// Unit tests for replication/link_entitlement.hpp (which messages a link may receive in each
// state) and replication/record_entitlement.hpp (which changes to hdbrepl's own tables a link
// may make). Each case is one row of the tables those headers give.
#include <catch2/catch.hpp>

#include "engine/txn_record.hpp"
#include "replication/link_entitlement.hpp"
#include "replication/record_entitlement.hpp"

using namespace hdbrepl;
using namespace hdbrepl::ext;
namespace w = hdbrepl::engine::wire;
using engine::change;
using engine::change_op;
using engine::value;

namespace {

link_view streaming(const std::string& peer) {
    link_view v;
    v.state = link_state::peer;
    v.peer = peer;
    v.synced = true;
    return v;
}

bool allowed(const link_view& v, const w::message& m) { return link_refusal(v, m).empty(); }

} // namespace

TEST_CASE("before hello a link may send only hello") {
    link_view v;
    CHECK(allowed(v, w::hello{}));
    for (const w::message& m : {w::message{w::txn{}}, w::message{w::subscribe{}}, w::message{w::copy_rows{}}, w::message{w::removed{"x"}},
                                w::message{w::read_request{}}, w::message{w::ack{}}})
        CHECK_THAT(link_refusal(v, m), Catch::Contains("expected hello"));
}

TEST_CASE("a certificate exchange link speaks no peer protocol") {
    link_view v;
    v.state = link_state::signing;
    CHECK_FALSE(allowed(v, w::hello{}));
    CHECK_FALSE(allowed(v, w::txn{}));
}

TEST_CASE("a streaming peer: stream messages pass, a second hello does not") {
    auto v = streaming("b");
    CHECK(allowed(v, w::txn{}));
    CHECK(allowed(v, w::subscribe{}));
    CHECK(allowed(v, w::ack{}));
    CHECK(allowed(v, w::read_request{}));
    CHECK(allowed(v, w::copy_request{}));
    CHECK(allowed(v, w::error_msg{"x"}));
    CHECK_THAT(link_refusal(v, w::hello{}), Catch::Contains("second hello"));
}

TEST_CASE("copy messages only inside a copy") {
    auto v = streaming("b");
    CHECK_THAT(link_refusal(v, w::copy_table{}), Catch::Contains("not inside a copy"));
    CHECK_THAT(link_refusal(v, w::copy_rows{}), Catch::Contains("not inside a copy"));
    CHECK_THAT(link_refusal(v, w::copy_end{}), Catch::Contains("not inside a copy"));
    v.state = link_state::receiving_copy;
    CHECK(allowed(v, w::copy_table{}));
    CHECK(allowed(v, w::copy_rows{}));
    CHECK(allowed(v, w::copy_end{}));
    CHECK_THAT(link_refusal(v, w::copy_start{}), Catch::Contains("already under way"));
    CHECK_THAT(link_refusal(v, w::txn{}), Catch::Contains("only after its copy_end"));
    // The other direction goes on during a copy.
    CHECK(allowed(v, w::subscribe{}));
    CHECK(allowed(v, w::ack{}));
    v.copy_tables = max_copy_tables;
    CHECK_THAT(link_refusal(v, w::copy_table{}), Catch::Contains("too many tables"));
}

TEST_CASE("a never-synced node takes a copy only from the link it asked") {
    auto v = streaming("b");
    v.synced = false;
    CHECK_THAT(link_refusal(v, w::copy_start{}), Catch::Contains("asked that peer for no copy"));
    v.initial_copy_source = true;
    CHECK(allowed(v, w::copy_start{}));
    // Once synced, a copy is the answer to a subscription behind the sender's log (a resync).
    auto synced = streaming("b");
    CHECK(allowed(synced, w::copy_start{}));
}

TEST_CASE("copy acks only while this node sends that peer a copy") {
    auto v = streaming("b");
    CHECK_THAT(link_refusal(v, w::copy_ack{}), Catch::Contains("sending that peer no copy"));
    v.copy_acks_due = true;
    CHECK(allowed(v, w::copy_ack{}));
    v.copy_acks_due = false;
    v.sending_copy = true;
    CHECK(allowed(v, w::copy_ack{}));
}

TEST_CASE("removed is honoured only from the node that did the removal") {
    auto v = streaming("b");
    CHECK(allowed(v, w::removed{"b"}));
    CHECK_THAT(link_refusal(v, w::removed{"c"}), Catch::Contains("only the node that removed us"));
}

// ---- record_entitlement ------------------------------------------------------------------

namespace {

engine::bytes record(const std::string& origin, const std::string& table, const std::string& columns, std::vector<change> changes) {
    engine::txn_record r;
    r.hlc = engine::hlc_from_ms(1'700'000'000'000);
    r.origin = origin;
    r.tables.push_back({table, "CREATE VIRTUAL TABLE x USING hdbrepl(" + columns + ")"});
    r.changes = std::move(changes);
    return engine::encode_record(r);
}

change put(std::vector<value> row) {
    change c;
    c.op = change_op::put;
    c.values = std::move(row);
    return c;
}

value t(const std::string& s) { return value::of_text(s); }

const std::string members = "name TEXT PRIMARY KEY, url TEXT, shard INTEGER, ca TEXT";
const std::string removals = "name TEXT PRIMARY KEY, removed_by TEXT";
const std::string users = "username TEXT PRIMARY KEY, role TEXT, password_hash TEXT";

std::size_t changes_in(const engine::bytes& b) {
    std::string err;
    auto r = engine::decode_record(b.data(), b.size(), err);
    REQUIRE(r);
    return r->changes.size();
}

} // namespace

TEST_CASE("a link's state moves on hello, copy_start and copy_end only") {
    CHECK(link_state_after(link_state::awaiting_hello, w::hello{}) == link_state::peer);
    CHECK(link_state_after(link_state::peer, w::copy_start{}) == link_state::receiving_copy);
    CHECK(link_state_after(link_state::receiving_copy, w::copy_end{}) == link_state::peer);
    // Inside a copy its tables and rows, and the other direction's messages, keep the state.
    for (const w::message& m : {w::message{w::copy_table{}}, w::message{w::copy_rows{}}, w::message{w::subscribe{}}, w::message{w::ack{}},
                                w::message{w::copy_ack{}}, w::message{w::read_request{}}})
        CHECK(link_state_after(link_state::receiving_copy, m) == link_state::receiving_copy);
    // Streaming: nothing but a copy_start leaves `peer`.
    for (const w::message& m : {w::message{w::txn{}}, w::message{w::copy_end{}}, w::message{w::copy_request{}}, w::message{w::removed{"x"}},
                                w::message{w::fragment_ack{}}})
        CHECK(link_state_after(link_state::peer, m) == link_state::peer);
    // A certificate exchange never enters the peer protocol.
    CHECK(link_state_after(link_state::signing, w::hello{}) == link_state::signing);
}

TEST_CASE("user tables are every member's to write") {
    auto rec = record("b", "dog", "id INTEGER PRIMARY KEY, name TEXT", {put({value::of_int(1), t("rex")})});
    auto v = entitled_changes(rec, false, "a", false);
    CHECK(v.refused == 0);
    CHECK_FALSE(v.rewritten); // applied as received, not copied
}

TEST_CASE("plain port: a node writes only its own membership row, without a CA") {
    auto own = record("b", "hdbrepl_members", members, {put({t("b"), t("ws://127.0.0.3:9925"), value::null(), value::null()})});
    CHECK(entitled_changes(own, false, "a", false).refused == 0);
    auto other = record("b", "hdbrepl_members", members, {put({t("c"), t("ws://127.0.0.66:9925"), value::null(), value::null()})});
    auto v = entitled_changes(other, false, "a", false);
    CHECK(v.refused == 1);
    CHECK(v.record.empty());
    CHECK_THAT(v.reason, Catch::Contains("membership row of 'c'"));
    auto with_ca = record("b", "hdbrepl_members", members, {put({t("b"), t("ws://127.0.0.3:9925"), value::null(), t("-----BEGIN CERTIFICATE-----")})});
    auto vc = entitled_changes(with_ca, false, "a", false);
    CHECK(vc.refused == 0);
    REQUIRE(vc.rewritten); // the node applies the rewritten record: without the CA
    REQUIRE(changes_in(vc.record) == 1);
    std::string err;
    auto decoded = engine::decode_record(vc.record.data(), vc.record.size(), err);
    CHECK(decoded->changes[0].values[3].type == engine::value_type::null);
    CHECK_FALSE(decoded->trimmed); // every change kept: it still relays, without the CA
}

TEST_CASE("plain port: removals only by their origin, never of this node, never taken back") {
    CHECK(entitled_changes(record("b", "hdbrepl_removals", removals, {put({t("d"), t("b")})}), false, "a", false).refused == 0);
    CHECK(entitled_changes(record("b", "hdbrepl_removals", removals, {put({t("d"), t("c")})}), false, "a", false).refused == 1);
    CHECK(entitled_changes(record("b", "hdbrepl_removals", removals, {put({t("a"), t("b")})}), false, "a", false).refused == 1);
    change del;
    del.op = change_op::del;
    del.values = {t("d")};
    CHECK(entitled_changes(record("b", "hdbrepl_removals", removals, {del}), false, "a", false).refused == 1);
    // A removal whose key is no node name (not TEXT) is refused too (found by fuzz_link).
    CHECK(entitled_changes(record("b", "hdbrepl_removals", removals, {put({value::of_int(7), t("b")})}), false, "a", false).refused == 1);
}

TEST_CASE("plain port of a node serving the secure port: no user changes; secure port: all of them") {
    auto rec = record("b", "hdbrepl_users", users, {put({t("root"), t("super_user"), t("pbkdf2-sha256$1$AA$AA")})});
    auto plain = entitled_changes(rec, false, "a", false);
    CHECK(plain.refused == 1);
    CHECK(plain.record.empty());
    auto secure = entitled_changes(rec, true, "a", false);
    // A node that serves no secure port: users authorise nothing there, and replicate.
    CHECK(entitled_changes(rec, false, "a", true).refused == 0);
    CHECK(secure.refused == 0);
    CHECK_FALSE(secure.rewritten);
}

TEST_CASE("DDL on hdbrepl's own tables is refused from any link") {
    change drop;
    drop.op = change_op::drop_table;
    auto rec = record("b", "hdbrepl_users", users, {drop});
    CHECK(entitled_changes(rec, true, "a", false).refused == 1);
    CHECK(entitled_changes(rec, false, "a", false).refused == 1);
}

TEST_CASE("a record mixing user rows and refused system rows keeps the user rows, trimmed") {
    engine::txn_record r;
    r.hlc = engine::hlc_from_ms(1'700'000'000'000);
    r.origin = "b";
    r.tables.push_back({"dog", "CREATE VIRTUAL TABLE x USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT)"});
    r.tables.push_back({"hdbrepl_users", "CREATE VIRTUAL TABLE x USING hdbrepl(" + users + ")"});
    auto c1 = put({value::of_int(1), t("rex")});
    auto c2 = put({t("root"), t("super_user"), t("h")});
    c2.table = 1;
    r.changes = {c1, c2};
    auto v = entitled_changes(engine::encode_record(r), false, "a", false);
    CHECK(v.refused == 1);
    std::string err;
    auto out = engine::decode_record(v.record.data(), v.record.size(), err);
    REQUIRE(out);
    REQUIRE(out->changes.size() == 1);
    CHECK(out->changes[0].table == 0);
    CHECK(out->trimmed);
}
