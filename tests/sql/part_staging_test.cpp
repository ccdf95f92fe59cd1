// Staged parts of received transactions (replication/part_staging.hpp) on a real database file:
// a part staged twice is kept once, contiguity is counted, parts come back in index order,
// an origin's newer transaction drops what an older one left, and drops are per origin.
#include <catch2/catch.hpp>

#include "tests/support/test_db.hpp"

#include "replication/part_staging.hpp"
#include "replication/replication_store.hpp"
#include "engine/schema.hpp"

#include <string>
#include <vector>

using namespace hdbrepl;
using namespace hdbrepl::test;

namespace {
engine::bytes body(const std::string& s) { return engine::bytes(s.begin(), s.end()); }

std::vector<std::string> parts_of(engine::part_staging& st, const std::string& origin, engine::hlc_t hlc, std::uint32_t below) {
    std::vector<std::string> out;
    REQUIRE(st.for_each(origin, hlc, below, [&](engine::bytes&& b) {
        out.emplace_back(b.begin(), b.end());
        return true;
    }) == SQLITE_OK);
    return out;
}
} // namespace

TEST_CASE("part_staging: stage, count, read in order, replace, drop", "[sql]") {
    temp_dir dir;
    test_db db(dir.file("staged.db"));
    std::string err;
    REQUIRE(engine::ensure_replication_tables(db.handle(), "main", err) == SQLITE_OK);
    engine::system_store sys(db.handle(), "main");
    engine::part_staging st(sys);

    auto stage = [&](const std::string& o, engine::hlc_t h, std::uint32_t i, const std::string& b) {
        auto x = body(b);
        REQUIRE(st.stage(o, h, i, x.data(), x.size()) == SQLITE_OK);
    };
    stage("a", 100, 0, "a0");
    stage("a", 100, 2, "a2");
    stage("b", 50, 0, "b0");
    std::uint32_t n = 0;
    REQUIRE(st.count("a", 100, 3, n) == SQLITE_OK);
    CHECK(n == 2); // part 1 missing: not contiguous
    // A missing part stops the read with SQLITE_NOTFOUND.
    std::vector<std::string> seen;
    CHECK(st.for_each("a", 100, 3, [&](engine::bytes&& b) { seen.emplace_back(b.begin(), b.end()); return true; }) == SQLITE_NOTFOUND);
    CHECK(seen == std::vector<std::string>{"a0"});
    stage("a", 100, 1, "a1");
    stage("a", 100, 1, "a1 again"); // sent again after a cut link: replaces
    REQUIRE(st.count("a", 100, 3, n) == SQLITE_OK);
    CHECK(n == 3);
    CHECK(parts_of(st, "a", 100, 3) == std::vector<std::string>{"a0", "a1 again", "a2"});
    std::uint64_t parts = 0, bytes = 0;
    REQUIRE(st.totals(parts, bytes) == SQLITE_OK);
    CHECK(parts == 4);
    CHECK(bytes == 2 + 8 + 2 + 2);

    // The first part of a newer transaction of "a" drops what the older one left; "b" stays.
    stage("a", 200, 0, "new0");
    REQUIRE(st.count("a", 100, 3, n) == SQLITE_OK);
    CHECK(n == 0);
    REQUIRE(st.count("b", 50, 1, n) == SQLITE_OK);
    CHECK(n == 1);
    // A later part of it does not drop anything.
    stage("a", 300, 1, "other1");
    REQUIRE(st.count("a", 200, 1, n) == SQLITE_OK);
    CHECK(n == 1);

    REQUIRE(st.drop("a", 200) == SQLITE_OK);
    REQUIRE(st.count("a", 200, 1, n) == SQLITE_OK);
    CHECK(n == 0);
    REQUIRE(st.drop_through("a", 299) == SQLITE_OK); // keeps 300
    REQUIRE(st.count("a", 300, 2, n) == SQLITE_OK);
    CHECK(n == 1);
    REQUIRE(st.drop_through("a", 300) == SQLITE_OK);
    REQUIRE(st.totals(parts, bytes) == SQLITE_OK);
    CHECK(parts == 1); // b's
}
