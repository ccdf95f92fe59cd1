// Unit tests for replication/membership_view.hpp: what changed in the membership since the
// node last acted on it.
#include <catch2/catch.hpp>

#include "replication/membership_view.hpp"

using namespace hdbrepl::engine;
using namespace hdbrepl::ext::node_detail;

TEST_CASE("membership view: only changes count, removals are new once, CA changes are seen") {
    membership_view v;
    const std::vector<member_row> ab{{"a", "wss://a:1", "CA1", -1}, {"b", "wss://b:1", "CA1", -1}};
    auto c = v.update(ab, {}, false);
    CHECK(c.changed);
    CHECK(c.cas_changed); // from none to CA1
    CHECK(c.new_removals.empty());
    CHECK_FALSE(v.update(ab, {}, false).changed); // same again: nothing to do

    c = v.update(ab, {"b"}, false);
    CHECK(c.changed);
    CHECK_FALSE(c.cas_changed);
    CHECK(c.new_removals == std::vector<std::string>{"b"});
    CHECK(v.update(ab, {"b"}, false).new_removals.empty()); // acted on already

    // Forced: every removal again, even unchanged.
    c = v.update(ab, {"b"}, true);
    CHECK(c.changed);
    CHECK(c.new_removals == std::vector<std::string>{"b"});

    const std::vector<member_row> ab2{{"a", "wss://a:1", "CA1", -1}, {"b", "wss://b:1", "CA2", -1}};
    CHECK(v.update(ab2, {"b"}, false).cas_changed);
}

TEST_CASE("membership view: placement members are self first, then members less removals") {
    membership_view v;
    (void)v.update({{"c", "", "", -1}, {"a", "", "", -1}, {"b", "", "", -1}}, {"b"}, false);
    CHECK(v.placement_members("a") == std::vector<std::string>{"a", "c"});
    v.readmit("b"); // added again with add_node
    CHECK(v.placement_members("a") == std::vector<std::string>{"a", "c", "b"});
    v.note_removal("c"); // removed here
    CHECK(v.placement_members("a") == std::vector<std::string>{"a", "b"});
    // A removal this node made itself is not new when the replicated row comes back.
    CHECK(v.update({{"c", "", "", -1}, {"a", "", "", -1}, {"b", "", "", -1}}, {"c"}, false).new_removals.empty());
}
