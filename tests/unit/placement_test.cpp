// Unit tests for engine/placement.hpp: the hash (pinned), rendezvous placement by count and
// its stability under joins and leaves, kept placement on update, residency parsing, shards.
#include <catch2/catch.hpp>

#include "tests/unit/test_printers.hpp"

#include "engine/placement.hpp"

#include <algorithm>
#include <map>
#include <set>

using namespace hdbrepl::engine;

namespace {
std::vector<std::string> node_names(int n, int first = 0) {
    std::vector<std::string> out;
    for (int i = first; i < first + n; ++i) out.push_back("node-" + std::to_string(i));
    return out;
}

// A writer per key among `members`, derived from the key (any fixed rule will do).
const std::string& writer_for(std::int64_t k, const std::vector<std::string>& members) {
    return members[static_cast<std::size_t>(k * 7 + 3) % members.size()];
}

std::vector<std::string> names_of(const residency& r) {
    REQUIRE(r.index() == residency_nodes);
    return std::get<residency_nodes>(r);
}
std::string error_of(const residency& r) {
    REQUIRE(r.index() == residency_error);
    return std::get<residency_error>(r);
}
} // namespace

TEST_CASE("placement: SipHash-2-4 matches the reference test vectors", "[unit][placement]") {
    // Key 00..0f, message 00..len-1 (vectors.h of the reference implementation).
    std::uint8_t m[64];
    for (int i = 0; i < 64; ++i) m[i] = static_cast<std::uint8_t>(i);
    const std::uint64_t k0 = 0x0706050403020100ULL, k1 = 0x0f0e0d0c0b0a0908ULL;
    auto h = [&](std::size_t n) { return siphash24(k0, k1, {m, n}); };
    CHECK(h(0) == 0x726fdb47dd0e0e31ULL);
    CHECK(h(1) == 0x74f839c593dc67fdULL);
    CHECK(h(7) == 0xab0200f58b01d137ULL);
    CHECK(h(8) == 0x93f5f5799a932462ULL);
    CHECK(h(15) == 0xa129ca6149be45e5ULL);
    CHECK(h(63) == 0x958a324ceb064572ULL);
}

TEST_CASE("placement: rendezvous scores are pinned", "[unit][placement]") {
    // Computed once and pinned: a change here moves rows between nodes of a running
    // cluster, i.e. it is a protocol change.
    CHECK(rendezvous_score("node-a", placement_key(value::of_int(1))) == 0xee785eec4992630eULL);
    CHECK(rendezvous_score("node-b", placement_key(value::of_int(1))) == 0x43d16f450d72f0b3ULL);
    CHECK(rendezvous_score("node-a", placement_key(value::of_text("dog-42"))) == 0x28e25d4d5c59e98dULL);
    CHECK(rendezvous_score("", {}) == 0x4e0acc7cd6762b0eULL);

    // The node name is length-prefixed, so moving bytes between name and key changes the score.
    const std::uint8_t c[] = {'c'}, bc[] = {'b', 'c'};
    CHECK(rendezvous_score("ab", c) != rendezvous_score("a", bc));
}

TEST_CASE("placement: place_row outputs are pinned", "[unit][placement]") {
    const auto members = std::vector<std::string>{"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"};
    using v = std::vector<std::string>;
    CHECK(place_row(value::of_int(1), "n0", members, 2) == v{"n0", "n2", "n3"});
    CHECK(place_row(value::of_int(2), "n0", members, 2) == v{"n0", "n5", "n8"});
    CHECK(place_row(value::of_int(-7), "n0", members, 2) == v{"n0", "n6", "n9"});
    CHECK(place_row(value::of_text("dog-42"), "n0", members, 2) == v{"n0", "n4", "n7"});
    CHECK(place_row(value::of_blob(std::string("\x00\xff", 2)), "n0", members, 2) == v{"n0", "n2", "n9"});
}

TEST_CASE("placement: key bytes are the normalized value encoding", "[unit][placement]") {
    // REAL 1.0 is the key INTEGER 1 in SQLite, so it is placed the same way.
    CHECK(placement_key(value::of_real(1.0)) == placement_key(value::of_int(1)));
    CHECK(placement_key(value::of_real(1.5)) != placement_key(value::of_int(1)));
    // TEXT and BLOB with the same bytes are different keys.
    CHECK(placement_key(value::of_text("a")) != placement_key(value::of_blob("a")));

    const auto members = node_names(10);
    for (std::int64_t k = 0; k < 50; ++k) {
        const auto kb = placement_key(value::of_int(k));
        CHECK(place_row(value::of_int(k), "node-3", members, 3) == place_row(kb, "node-3", members, 3));
        CHECK(place_row(value::of_real(static_cast<double>(k)), "node-3", members, 3) == place_row(kb, "node-3", members, 3));
    }
    // A key kept as an encoded std::string (as change-log code keeps them).
    const auto kb = placement_key(value::of_text("x"));
    const std::string as_string(kb.begin(), kb.end());
    CHECK(place_row(as_byte_span(as_string), "node-1", members, 2) == place_row(kb, "node-1", members, 2));
}

TEST_CASE("placement: the writer is always included and the count is min(N+1, members)", "[unit][placement]") {
    const auto members = node_names(6);
    for (std::int64_t k = 0; k < 200; ++k) {
        const auto kb = placement_key(value::of_int(k));
        for (int n = -1; n <= 8; ++n) {
            const auto& writer = writer_for(k, members);
            const auto r = place_row(kb, writer, members, n);
            const std::size_t expected = n < 0 ? members.size() : std::min<std::size_t>(n + 1, members.size());
            REQUIRE(r.size() == expected);
            CHECK(std::is_sorted(r.begin(), r.end()));
            CHECK(std::adjacent_find(r.begin(), r.end()) == r.end());
            CHECK(std::find(r.begin(), r.end(), writer) != r.end());
            for (const auto& x : r) CHECK(std::find(members.begin(), members.end(), x) != members.end());
        }
        // A writer that is not a member (yet): itself plus N members.
        const auto r = place_row(kb, "outsider", members, 2);
        CHECK(r.size() == 3);
        CHECK(std::find(r.begin(), r.end(), "outsider") != r.end());
    }
    // N = 0: the writer alone; N < 0 or >= the others: everyone.
    const auto kb = placement_key(value::of_int(5));
    CHECK(place_row(kb, "node-2", members, 0) == std::vector<std::string>{"node-2"});
    CHECK(place_row(kb, "node-2", members, -1) == members);
    CHECK(place_row(kb, "node-2", members, 5) == members);
    CHECK(place_row(kb, "node-2", members, 1000) == members);
    CHECK(place_row(kb, "solo", {}, 2) == std::vector<std::string>{"solo"});
}

TEST_CASE("placement: member order and duplicates do not matter", "[unit][placement]") {
    auto members = node_names(8);
    auto shuffled = std::vector<std::string>{"node-5", "node-0", "node-7", "node-5", "node-2", "node-1",
                                             "node-6", "node-3", "node-4", "node-0", "node-2"};
    for (std::int64_t k = 0; k < 300; ++k) {
        const auto kb = placement_key(value::of_int(k));
        CHECK(place_row(kb, "node-1", members, 3) == place_row(kb, "node-1", shuffled, 3));
        CHECK(place_row(kb, "node-1", shuffled, 3).size() == 4);
        CHECK(place_row(kb, "node-1", shuffled, -1) == members);
    }
}

TEST_CASE("placement: a row written by one of its key's top N+1 nodes is placed there whoever writes",
          "[unit][placement]") {
    // Only the key decides: an update from any holder recomputes the same set.
    const auto members = node_names(10);
    for (std::int64_t k = 0; k < 300; ++k) {
        const auto kb = placement_key(value::of_int(k));
        const auto home = place_row(kb, "nobody", members, 3); // "nobody" + the top 3
        std::vector<std::string> top3;
        for (const auto& n : home)
            if (n != "nobody") top3.push_back(n);
        for (const auto& writer : top3) {
            // A holder of the top 3 writing with N = 2 gets exactly the top 3.
            CHECK(place_row(kb, writer, members, 2) == top3);
        }
    }
}

TEST_CASE("placement: adding an 11th node moves about 1/10 of the replicas, only to it", "[unit][placement]") {
    // 10,000 keys, N = 2, each written by one of the first 10 nodes. With the writer fixed,
    // a row's 2 other holders are drawn from 9 candidates before and 10 after the join, so
    // the newcomer enters a row's set with probability 2/10, displacing exactly one holder:
    // 1/10 of the non-writer replicas move (1/15 of all copies) and nothing else changes.
    const auto before = node_names(10);
    auto after = before;
    after.push_back("node-10");
    const int n = 2, keys = 10000;
    int changed_rows = 0;
    std::map<std::string, int> newcomer_took_from;
    for (std::int64_t k = 0; k < keys; ++k) {
        const auto kb = placement_key(value::of_int(k));
        const auto& writer = writer_for(k, before);
        const auto a = place_row(kb, writer, before, n);
        const auto b = place_row(kb, writer, after, n);
        if (a == b) continue;
        ++changed_rows;
        // Exactly one holder replaced, by the newcomer, never the writer.
        std::vector<std::string> gone, added;
        std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(gone));
        std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(added));
        REQUIRE(gone.size() == 1);
        REQUIRE(added == std::vector<std::string>{"node-10"});
        CHECK(gone[0] != writer);
        ++newcomer_took_from[gone[0]];
    }
    const double moved_fraction = static_cast<double>(changed_rows) / (keys * n); // of non-writer replicas
    CHECK(moved_fraction > 0.085);
    CHECK(moved_fraction < 0.115);
    // The newcomer takes its rows evenly from the old nodes (about 2000/10 each).
    REQUIRE(newcomer_took_from.size() == 10);
    for (const auto& [node, count] : newcomer_took_from) {
        INFO(node);
        CHECK(count > 120);
        CHECK(count < 280);
    }
}

TEST_CASE("placement: replicas are spread evenly over the members", "[unit][placement]") {
    const auto members = node_names(10);
    std::map<std::string, int> held;
    const int keys = 10000;
    for (std::int64_t k = 0; k < keys; ++k) {
        for (const auto& x : place_row(placement_key(value::of_int(k)), "writer", members, 3)) ++held[x];
    }
    CHECK(held["writer"] == keys);
    for (const auto& m : members) {
        INFO(m);
        CHECK(held[m] > 2700); // expected 3000
        CHECK(held[m] < 3300);
    }
}

TEST_CASE("placement: removing a node moves only the rows it held", "[unit][placement]") {
    const auto before = node_names(10);
    const std::string removed = "node-4";
    std::vector<std::string> after;
    for (const auto& m : before)
        if (m != removed) after.push_back(m);
    int rows_on_removed = 0;
    for (std::int64_t k = 0; k < 10000; ++k) {
        const auto kb = placement_key(value::of_int(k));
        const auto& writer = writer_for(k, after); // the removed node wrote nothing
        const auto a = place_row(kb, writer, before, 3);
        const auto b = place_row(kb, writer, after, 3);
        if (std::find(a.begin(), a.end(), removed) == a.end()) {
            CHECK(a == b);
            continue;
        }
        ++rows_on_removed;
        // The removed node replaced by exactly one other, the rest kept.
        std::vector<std::string> kept;
        std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(kept));
        CHECK(kept.size() == 3);
        CHECK(b.size() == 4);
        CHECK(std::find(b.begin(), b.end(), removed) == b.end());
    }
    // The removed node held about 3/9 of the rows (3 others chosen from 9 candidates).
    CHECK(rows_on_removed > 3000);
    CHECK(rows_on_removed < 3700);
}

TEST_CASE("placement: an update keeps the row's placement", "[unit][placement]") {
    const auto members = node_names(10);
    const auto kb = placement_key(value::of_text("dog-7"));
    const placement first = place_write(std::nullopt, kb, "node-0", members, 2);
    CHECK(first.nodes == place_row(kb, "node-0", members, 2));
    CHECK(first.nodes.size() == 3);

    // An update from another node, outside the set, and after the membership changed.
    std::string outsider;
    for (const auto& m : members)
        if (!node_holds(first, m)) { outsider = m; break; }
    REQUIRE(!outsider.empty());
    auto grown = node_names(20);
    CHECK(place_write(first, kb, outsider, grown, 2) == first);
    CHECK(place_write(first, kb, "node-0", {"node-0"}, 5) == first);
    // The placement depends on the key only, never on values: a new row with the same key
    // and writer gets the same nodes.
    CHECK(place_write(std::nullopt, kb, "node-0", members, 2) == first);

    // node_holds / receivers.
    for (const auto& m : members) CHECK(node_holds(first, m) == (std::find(first.nodes.begin(), first.nodes.end(), m) != first.nodes.end()));
    CHECK(!node_holds(first, "node-"));
    CHECK(!node_holds(placement{}, "node-0"));
    auto to = receivers(first, "node-0");
    CHECK(to.size() == 2);
    CHECK(std::find(to.begin(), to.end(), "node-0") == to.end());
    CHECK(receivers(first, outsider) == first.nodes);

    CHECK(make_placement({"b", "a", "b", "c"}).nodes == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("placement: residency values that parse", "[unit][placement]") {
    using v = std::vector<std::string>;
    auto shard = [](std::int64_t i) {
        auto r = parse_residency("", true, i);
        REQUIRE(r.index() == residency_shard);
        return std::get<residency_shard>(r);
    };
    CHECK(shard(0) == 0);
    CHECK(shard(7) == 7);
    CHECK(shard(65535) == 65535);
    // The text is ignored for an INTEGER.
    CHECK(std::get<residency_shard>(parse_residency("12", true, 12)) == 12);

    CHECK(names_of(parse_residency(R"(["node-1"])", false, 0)) == v{"node-1"});
    CHECK(names_of(parse_residency(" \t\r\n[ \"a\" ,\n\"b\",\"a\" ] \n", false, 0)) == v{"a", "b", "a"});
    CHECK(names_of(parse_residency(R"(["q\"uote","back\\slash","sl\/ash"])", false, 0)) == v{"q\"uote", "back\\slash", "sl/ash"});
    CHECK(names_of(parse_residency(R"(["\b\f\n\r\t"])", false, 0)) == v{"\b\f\n\r\t"});
    CHECK(names_of(parse_residency(R"(["\u0041\u00e9\u20AC"])", false, 0)) == v{"A\xc3\xa9\xe2\x82\xac"});
    CHECK(names_of(parse_residency(R"(["\ud83d\ude00"])", false, 0)) == v{"\xf0\x9f\x98\x80"});
    CHECK(names_of(parse_residency("[\"n\xc3\xa9\xf0\x9f\x98\x80\"]", false, 0)) == v{"n\xc3\xa9\xf0\x9f\x98\x80"});
}

TEST_CASE("placement: residency values that are refused", "[unit][placement]") {
    CHECK(error_of(parse_residency("", true, -1)) == "residency: shard -1 is out of range 0..65535");
    CHECK(error_of(parse_residency("", true, 65536)) == "residency: shard 65536 is out of range 0..65535");
    CHECK(error_of(parse_residency("", false, 0)) ==
          "residency: expected a shard number (0..65535) or a JSON array of node names, got empty text");
    CHECK(error_of(parse_residency("3", false, 0)) ==
          "residency: expected a shard number (INTEGER 0..65535) or a JSON array of node names at offset 0");
    CHECK(error_of(parse_residency("[]", false, 0)) == "residency: the node list is empty");
    CHECK(error_of(parse_residency(R"([""])", false, 0)) == "residency: empty node name at offset 1");
    CHECK(error_of(parse_residency(R"(["a",])", false, 0)) == "residency: expected a string (node name) at offset 5");
    CHECK(error_of(parse_residency(R"(["a"] x)", false, 0)) == "residency: unexpected text after the array at offset 6");
    CHECK(error_of(parse_residency(R"(["a")", false, 0)) == "residency: expected ',' or ']' at end of text");
    CHECK(error_of(parse_residency(R"(["a)", false, 0)) == "residency: unterminated string at end of text");
    CHECK(error_of(parse_residency(R"(["\x"])", false, 0)) == "residency: invalid escape at offset 2");
    CHECK(error_of(parse_residency(R"(["\u12"])", false, 0)) == "residency: expected 4 hex digits after \\u at offset 6");
    CHECK(error_of(parse_residency(R"(["\ud800"])", false, 0)) == "residency: unpaired surrogate in \\u escape at offset 2");
    CHECK(error_of(parse_residency(R"(["\ud800\u0041"])", false, 0)) == "residency: unpaired surrogate in \\u escape at offset 2");
    CHECK(error_of(parse_residency(R"(["\udc00"])", false, 0)) == "residency: unpaired surrogate in \\u escape at offset 2");
    CHECK(error_of(parse_residency("[\"a\tb\"]", false, 0)) == "residency: control character in string (must be escaped) at offset 3");
    CHECK(error_of(parse_residency("[\"a\xff\"]", false, 0)) == "residency: invalid UTF-8 at offset 3");
    CHECK(error_of(parse_residency("[\"\xc0\x80\"]", false, 0)) == "residency: invalid UTF-8 at offset 2");       // overlong NUL
    CHECK(error_of(parse_residency("[\"\xed\xa0\x80\"]", false, 0)) == "residency: invalid UTF-8 at offset 2");   // raw surrogate
    CHECK(error_of(parse_residency("[\"\xe2\x82\"]", false, 0)) == "residency: invalid UTF-8 at offset 2");       // truncated

    // Anything that is not an array of strings.
    for (const char* bad : {"[1]", "[null]", "[[\"a\"]]", "[\"a\", 2]", "{\"a\": 1}", "['a']", "\"a\"", "[\"a\"]]",
                            "[\"a\",,\"b\"]", "null", "3.0", "[\"a\" \"b\"]"}) {
        INFO(bad);
        const auto r = parse_residency(bad, false, 0);
        REQUIRE(r.index() == residency_error);
        CHECK(std::get<residency_error>(r).rfind("residency: ", 0) == 0);
    }
}

TEST_CASE("placement: shard members", "[unit][placement]") {
    const std::vector<member_shard> members{{"c", 1}, {"a", 1}, {"b", 2}, {"d", -1}, {"a", 1}};
    CHECK(shard_nodes(1, members) == std::vector<std::string>{"a", "c"});
    CHECK(shard_nodes(2, members) == std::vector<std::string>{"b"});
    CHECK(shard_nodes(3, members).empty());
    CHECK(shard_nodes(-1, members).empty()); // "no shard" is not a shard
}

TEST_CASE("placement: static shard rules for sharded databases", "[unit][placement]") {
    CHECK(same_shard(0, 0));
    CHECK(same_shard(65535, 65535));
    CHECK(!same_shard(0, 1));
    // A node with a shard and one without never replicate a sharded database.
    CHECK(!same_shard(3, -1));
    CHECK(!same_shard(-1, 3));
    CHECK(!same_shard(0, -1));
    // Two nodes without a shard form one implicit group; every negative value is "none".
    CHECK(same_shard(-1, -1));
    CHECK(same_shard(-1, -5));

    CHECK(replicates_with(false, 1, 2));
    CHECK(replicates_with(false, 1, -1));
    CHECK(replicates_with(true, 2, 2));
    CHECK(!replicates_with(true, 1, 2));
    CHECK(!replicates_with(true, 1, -1));
    CHECK(replicates_with(true, -1, -1));
}
