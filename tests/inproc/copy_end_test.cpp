// The end of an initial copy held on the receiver's db thread (fault_hooks::before_copy_end):
// the copy's link replaced while its end still waits, and an operation on a node whose db
// thread is busy past the operation's wait.
#include "tests/inproc/cluster_fixture.hpp"

#include "engine/json.hpp"

#include <catch2/catch.hpp>


using namespace hdbrepl::test::inproc;

namespace {

// Node 0 (A) accepts B (a route names it) but dials a port of B's address where nothing
// listens: there is one link, B's, until a test tells A to dial B for real.
cluster copy_pair(ms hold) {
    node_spec a, b;
    a.start = b.start = false;
    a.routes = std::vector<int>{};
    b.routes = std::vector<int>{0};
    b.faults.before_copy_end = hold;
    return cluster({a, b});
}

void start_with_dead_route(cluster& c) {
    c.spec(0).extra_routes = {"{hostname: " + c.name(1) + ", port: " + std::to_string(c.dead_port(1)) + "}"};
    c.start(0);
}

std::string op(const std::string& name) { return "{\"hostname\": \"" + name + "\"}"; }

} // namespace

TEST_CASE("a copy's end still queued when its link is replaced: the resumed copy claims nothing", "[inproc][copy]") {
    // B's copy from A is complete on the wire, but B has not applied its end yet (held 6 s)
    // when A dials B and that link replaces B's (the smaller name's dial wins). B asks the
    // new link to resume after the rows it holds; the first copy's end then completes B's
    // copy. The resumed copy that follows skips the rows before its resume point, so its
    // snapshot's progress must not be claimed: A's own member row, rewritten when the new
    // link came up (after the first snapshot, before the second), must still reach B.
    cluster c = copy_pair(6000ms);
    start_with_dead_route(c);
    c.start(1);
    const std::string a = c.name(0), b = c.name(1);
    c.wait_logged(0, "copy for " + b + " sent", 10s);
    // "sent" is A's side (its copy_end went out); B has a point to resume from once it
    // applied the rows, which a slow (sanitized, loaded) B may not have done yet.
    wait_until([&] { return c.scalar(1, "SELECT count(*) FROM hdbrepl_meta WHERE key = 'copy_resume'") == "1"; }, 10s,
               "B's resume point, after applying the copy's rows");
    REQUIRE(c.node(0).set_node(op(b)));
    c.wait_logged(0, "resuming a copy for " + b, 10s);
    // A's member row was rewritten before the resumed copy's snapshot was taken, so before
    // A logs that copy as sent.
    c.wait_logged(0, "resumed copy for " + b + " sent", 10s);
    const std::string own = "SELECT hdbrepl_v FROM hdbrepl_members_data WHERE name = '" + a + "'";
    const std::string latest = c.scalar(0, own);
    c.wait_rows(1, own, {latest}, 15s);
    INFO("B's log:" << c.log_tail(1));
    CHECK(c.logged(1, "ended after this node's copy had completed"));
    c.exec(0, "CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT)");
    c.exec(0, "INSERT INTO dog VALUES (7, 'after the switch')");
    c.wait_rows(1, "SELECT name FROM dog", {"after the switch"});
    c.exec(1, "INSERT INTO dog VALUES (8, 'from b')");
    c.wait_rows(0, "SELECT name FROM dog WHERE id = 8", {"from b"});
}

TEST_CASE("an operation on a busy node says so and completes late", "[inproc][copy]") {
    // The node's database thread can be busy for seconds (an initial copy's end building the
    // indexes of a large table; here held 13 s). An add_node that waits 10 s for it answers
    // that the change is queued, and the change then takes effect whole when the thread gets
    // to it: the hdb_nodes row and the dialing.
    cluster c = copy_pair(13000ms);
    start_with_dead_route(c);
    c.exec(0, "CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT)");
    c.exec(0, "INSERT INTO dog VALUES (1, 'before')");
    c.start(1);
    const std::string b = c.name(1), ghost = c.unused_address();
    hdbrepl::ext::node& nb = c.node(1);
    c.wait_logged(0, "copy for " + b + " sent", 10s);
    wait_until([&] { return c.db_thread_sleeping(1); }, 5s, "B's database thread in the held copy end");
    const auto t0 = std::chrono::steady_clock::now();
    const auto added = nb.set_node(op(ghost));
    const auto waited = std::chrono::steady_clock::now() - t0;
    REQUIRE_FALSE(added);
    const std::string err = added.error().message;
    INFO("add_node: " << err);
    CHECK(err.find("busy") != std::string::npos);
    CHECK(err.find("queued") != std::string::npos);
    CHECK(waited >= 9s); // its own 10 s wait,
    CHECK(waited < 13s); // not the whole hold
    // When the thread is free, the queued add_node completes whole: the row and the dialing.
    wait_until([&] { return c.listed(1, ghost); }, 15s, ghost + " as a target in B's status", [&] { return c.log_tail(1); });
    int rows_for_ghost = 0;
    auto nodes = hdbrepl::json::parse_or_null(nb.search_nodes_json());
    REQUIRE(nodes.is_array());
    for (const auto& n : nodes.as_array())
        if (n.is_object() && hdbrepl::json::get_string(n.as_object(), "name") == ghost) ++rows_for_ghost;
    CHECK(rows_for_ghost == 1);
    // The node kept serving: its copy completed and both directions stream.
    c.wait_rows(1, "SELECT name FROM dog WHERE id = 1", {"before"});
    c.exec(0, "INSERT INTO dog VALUES (2, 'after')");
    c.wait_rows(1, "SELECT name FROM dog WHERE id = 2", {"after"});
    c.exec(1, "INSERT INTO dog VALUES (3, 'from b')");
    c.wait_rows(0, "SELECT name FROM dog WHERE id = 3", {"from b"});
    // And a free node answers at once.
    const auto t1 = std::chrono::steady_clock::now();
    const auto removed = nb.remove_node(op(ghost));
    REQUIRE(removed);
    CHECK(removed->find("removed") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - t1 < 5s);
    wait_until([&] { return !c.listed(1, ghost); }, 5s, ghost + " gone from B's status");
}
