// The node's membership rows in hdbrepl_nodes (replication/replication_store.hpp), on a real
// database file: a removed node stays out, whatever records a link that comes up late.
#include <catch2/catch.hpp>

#include "tests/support/test_db.hpp"

#include "replication/replication_store.hpp"
#include "engine/schema.hpp"

#include <algorithm>
#include <string>
#include <vector>

using namespace hdbrepl;
using namespace hdbrepl::test;

namespace {
std::vector<std::string> node_names(engine::replication_store& store) {
    std::vector<engine::node_row> rows;
    REQUIRE(store.load_nodes(rows) == SQLITE_OK);
    std::vector<std::string> names;
    for (const auto& r : rows) names.push_back(r.name);
    std::sort(names.begin(), names.end());
    return names;
}
} // namespace

TEST_CASE("replication_store: a link recorded after remove_node does not bring the node back", "[sql]") {
    temp_dir dir;
    test_db db(dir.file("nodes.db"));
    std::string err;
    REQUIRE(engine::ensure_system_tables(db.handle(), "main", err) == SQLITE_OK);
    REQUIRE(engine::ensure_replication_tables(db.handle(), "main", err) == SQLITE_OK);
    engine::replication_store store(db.handle(), "main");

    REQUIRE(store.ensure_node("b", "ws://b:9925") == SQLITE_OK);
    REQUIRE(store.ensure_node("c", "ws://c:9925") == SQLITE_OK);
    CHECK(node_names(store) == std::vector<std::string>{"b", "c"});

    // remove_node's writes, then the db job a link to b queued just before it.
    bool existed = false;
    REQUIRE(store.remove_node("b", existed) == SQLITE_OK);
    CHECK(existed);
    REQUIRE(store.set_removed("b", true) == SQLITE_OK);
    REQUIRE(store.ensure_node("b", "ws://b:9925") == SQLITE_OK);
    CHECK(node_names(store) == std::vector<std::string>{"c"});

    // add_node clears the removal; then a link records it again.
    REQUIRE(store.set_removed("b", false) == SQLITE_OK);
    REQUIRE(store.ensure_node("b", "ws://b:9925") == SQLITE_OK);
    CHECK(node_names(store) == std::vector<std::string>{"b", "c"});
}
