// Unit tests for replication/row_filter.hpp: the one rule for which tables flow to and from a
// peer (system, shards, explicit subscriptions) and the by-row trims of records.
#include <catch2/catch.hpp>

#include "tests/unit/test_printers.hpp"

#include "engine/txn_record.hpp"
#include "replication/row_filter.hpp"

using namespace hdbrepl;
using namespace hdbrepl::engine;
using namespace hdbrepl::ext;
using namespace hdbrepl::ext::node_detail;

namespace {

node_config config(int shard, std::vector<database_entry> dbs) {
    node_config c;
    c.hostname = "a";
    c.shard = shard;
    c.all_databases = dbs.empty();
    c.databases = std::move(dbs);
    return c;
}

bytes two_table_record() {
    txn_record r;
    r.hlc = hlc_from_ms(1'795'687'405'123);
    r.origin = "b";
    r.tables = {{"dog", "\"id\" INTEGER PRIMARY KEY, \"name\" TEXT"}, {"hdbrepl_users", "\"username\" TEXT PRIMARY KEY, \"role\", \"password_hash\""}};
    r.changes = {{0, change_op::put, {value::of_int(1), value::of_text("Rex")}},
                 {1, change_op::put, {value::of_text("ann"), value::of_text("admin"), value::of_text("x")}}};
    return encode_record(r);
}

std::vector<std::string> tables_of(const bytes& rec) {
    std::string err;
    auto d = decode_record(rec.data(), rec.size(), err);
    REQUIRE(d);
    std::vector<std::string> out;
    for (const auto& c : d->changes) out.push_back(d->tables.at(c.table).name);
    return out;
}

} // namespace

TEST_CASE("row filter: with no subscriptions, shards or database list every table flows both ways") {
    row_filter f;
    f.configure("a", config(-1, {}));
    for (auto dir : {flow::to_peer, flow::from_peer}) {
        CHECK(f.table_flows("b", "dog", dir));
        CHECK(f.table_flows("b", "hdbrepl_users", dir));
        CHECK(f.gate("b", dir).passes_all());
    }
    bytes out{1, 2, 3};
    CHECK_FALSE(f.gate("b", flow::to_peer).drop_tables(two_table_record(), out));
    CHECK(out == bytes{1, 2, 3}); // untouched
}

TEST_CASE("row filter: a subscription gives each direction per table, and system tables ignore it") {
    row_filter f;
    f.configure("a", config(-1, {}));
    f.set_rules("b", R"([{"database":"main","table":"dog","publish":true,"subscribe":false}])");
    CHECK(f.table_flows("b", "dog", flow::to_peer));
    CHECK_FALSE(f.table_flows("b", "dog", flow::from_peer));
    CHECK_FALSE(f.table_flows("b", "cat", flow::to_peer)); // not listed: nothing flows
    CHECK(f.table_flows("b", "hdbrepl_users", flow::from_peer));
    CHECK(f.table_flows("c", "cat", flow::from_peer)); // other peers keep everything
    bytes out;
    REQUIRE(f.gate("b", flow::from_peer).drop_tables(two_table_record(), out));
    CHECK(tables_of(out) == std::vector<std::string>{"hdbrepl_users"});
    REQUIRE(f.gate("b", flow::to_peer).drop_tables(two_table_record(), out));
    CHECK(tables_of(out) == std::vector<std::string>{"dog", "hdbrepl_users"});
    f.set_rules("b", ""); // removed: automatic again
    CHECK(f.table_flows("b", "cat", flow::from_peer));
}

TEST_CASE("row filter: a sharded main flows only within the shard, and membership rows outrank given shards") {
    row_filter f;
    f.configure("a", config(1, {{"main", true}, {"system", false}}));
    f.set_given_shard("b", 1);
    f.set_given_shard("c", 2);
    CHECK(f.table_flows("b", "dog", flow::from_peer));
    CHECK_FALSE(f.table_flows("c", "dog", flow::to_peer));
    CHECK_FALSE(f.table_flows("unknown", "dog", flow::to_peer)); // no shard known: not ours
    CHECK(f.table_flows("c", "hdbrepl_users", flow::to_peer)); // system goes everywhere
    CHECK(f.data_shared("c", "hdbrepl_users"));
    CHECK_FALSE(f.data_shared("c", "dog"));
    f.set_member_shards({{"c", "ws://c:1", "", 1}});
    CHECK(f.shard_of("c") == 1);
    CHECK(f.table_flows("c", "dog", flow::to_peer));
    CHECK(f.rows_may_live_elsewhere("\"id\" PRIMARY KEY"));
}

TEST_CASE("row filter: where system does not replicate its tables stay, others flow") {
    row_filter f;
    f.configure("a", config(-1, {{"main", false}}));
    CHECK_FALSE(f.replicates_system());
    CHECK(f.table_flows("b", "dog", flow::to_peer));
    CHECK_FALSE(f.table_flows("b", "hdbrepl_users", flow::to_peer));
    bytes out;
    REQUIRE(f.gate("b", flow::to_peer).drop_tables(two_table_record(), out));
    CHECK(tables_of(out) == std::vector<std::string>{"dog"});
    CHECK_FALSE(f.rows_may_live_elsewhere("\"id\" PRIMARY KEY")); // every row is everywhere
    CHECK(f.note_holds_part());
    CHECK_FALSE(f.note_holds_part()); // once
    CHECK(f.rows_may_live_elsewhere("\"id\" PRIMARY KEY"));
}

TEST_CASE("row filter: malformed subscriptions JSON replicates nothing unexpected") {
    CHECK(parse_rules("not json").empty());
    CHECK(parse_rules(R"({"table":"dog"})").empty()); // not an array
    auto r = parse_rules(R"([1, {"schema":"data","table":"dog","publish":"yes","subscribe":true}])");
    REQUIRE(r.size() == 1);
    CHECK(r[0].database == "data");
    CHECK_FALSE(r[0].publish); // a string is not true
    CHECK(r[0].subscribe);
    CHECK_FALSE(rules_allow(r, "dog", true));
    CHECK(rules_allow(r, "dog", false));
    CHECK_FALSE(rules_allow(r, "cat", false));
}
