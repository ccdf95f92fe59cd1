// Replication between in-process nodes, through the fixture's relay: the basic flow, and
// the cluster recovering from cut, blackholed and slow links and from a killed node.
#include "tests/inproc/cluster_fixture.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace hdbrepl::test::inproc;

namespace {

const char* const dog_table = "CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT, breed TEXT)";
const char* const dog_rows = "SELECT id, name, breed FROM dog ORDER BY id";
// Rows with their versions, and tombstones: what converged nodes hold alike.
const char* const dog_versions = "SELECT id, name, breed, hdbrepl_v FROM dog_data ORDER BY id";
const char* const dog_tombs = "SELECT id, hdbrepl_v FROM dog_tomb ORDER BY id";

void create_dog_everywhere(cluster& c) {
    c.exec(0, dog_table);
    for (int i = 1; i < c.size(); ++i)
        wait_until([&] { return c.count(i, "SELECT count(*) FROM sqlite_schema WHERE name = 'dog'") == 1; }, 15s,
                   "table dog on " + c.name(i));
}

} // namespace

TEST_CASE("two nodes replicate an insert then an update then a delete", "[inproc]") {
    cluster c(2);
    c.wait_mesh();
    create_dog_everywhere(c);
    c.exec(0, "INSERT INTO dog VALUES (1, 'rex', 'collie'), (2, 'fido', 'pug')");
    c.wait_rows(1, dog_rows, {"1|rex|collie", "2|fido|pug"});
    c.exec(1, "UPDATE dog SET name = 'max' WHERE id = 1");
    c.wait_rows(0, dog_rows, {"1|max|collie", "2|fido|pug"});
    c.exec(0, "DELETE FROM dog WHERE id = 2");
    c.wait_rows(1, dog_rows, {"1|max|collie"});
    // The same versions and the same tombstone on both.
    c.wait_converged(dog_versions);
    CHECK(c.wait_converged(dog_tombs).size() == 1);
    // It all went through the relay, both ways.
    CHECK(c.traffic(0, 1).bytes_delivered > 0);
    CHECK(c.traffic(1, 0).bytes_delivered > 0);
}

TEST_CASE("three nodes converge after a cut is healed", "[inproc]") {
    cluster c(3);
    c.wait_mesh();
    create_dog_everywhere(c);
    c.exec(0, "INSERT INTO dog VALUES (1, 'one', 'a'), (100, 'shared', 'x')");
    c.wait_converged(dog_versions);
    // Node 0 alone on one side, nodes 1 and 2 on the other.
    c.cut(0, 1);
    c.cut(0, 2);
    wait_until([&] { return !c.connected(0, 1) && !c.connected(0, 2) && !c.connected(1, 0) && !c.connected(2, 0); }, 15s,
               "node 0 cut off", [&] { return c.status(0); });
    // Redials across the cut fail.
    const auto refused_before = c.traffic(0, 1).refused + c.traffic(1, 0).refused;
    wait_until([&] { return c.traffic(0, 1).refused + c.traffic(1, 0).refused > refused_before; }, 10s, "a redial refused across the cut");
    // Both sides write, including the same key.
    c.exec(0, "INSERT INTO dog VALUES (2, 'two', 'b')");
    c.exec(0, "UPDATE dog SET name = 'from 0' WHERE id = 100");
    c.exec(1, "INSERT INTO dog VALUES (3, 'three', 'c')");
    c.exec(2, "DELETE FROM dog WHERE id = 1");
    c.exec(1, "UPDATE dog SET name = 'from 1' WHERE id = 100");
    c.wait_rows(2, "SELECT id FROM dog ORDER BY id", {"3", "100"}); // 1 and 2 still reach each other
    CHECK(c.rows(0, "SELECT id FROM dog ORDER BY id") == std::vector<std::string>{"1", "2", "100"});
    c.heal_all();
    c.wait_mesh(20s);
    const auto rows = c.wait_converged(dog_versions);
    c.wait_converged(dog_tombs);
    CHECK(c.rows(0, "SELECT id FROM dog ORDER BY id") == std::vector<std::string>{"2", "3", "100"});
    // Key 100: one version everywhere, the later write's (node 1 wrote it after node 0).
    CHECK(c.scalar(0, "SELECT name FROM dog WHERE id = 100") == "from 1");
    CHECK(rows.size() == 3);
}

TEST_CASE("a blackholed pair is detected by its ping timeout and recovers", "[inproc]") {
    node_spec fast;
    fast.extra = {{"pingInterval", "200ms"}, {"pingTimeout", "1s"}};
    cluster c({fast, fast});
    c.wait_mesh();
    create_dog_everywhere(c);
    c.exec(0, "INSERT INTO dog VALUES (1, 'before', 'a')");
    c.wait_rows(1, dog_rows, {"1|before|a"});
    c.blackhole(0, 1);
    // Nothing closes the connections: only the pings that stop coming tell.
    bool seen0 = false, seen1 = false;
    wait_until(
        [&] {
            seen0 = seen0 || (!c.connected(0, 1) && c.peer_field(0, c.name(1), "lastError") == "ping timeout");
            seen1 = seen1 || (!c.connected(1, 0) && c.peer_field(1, c.name(0), "lastError") == "ping timeout");
            return seen0 && seen1;
        },
        10s, "both ends closing their link with a ping timeout", [&] { return c.status(0) + "\n  " + c.status(1); });
    c.exec(0, "INSERT INTO dog VALUES (2, 'during', 'b')");
    CHECK(c.traffic(0, 1).bytes_dropped + c.traffic(1, 0).bytes_dropped > 0);
    CHECK(c.rows(1, dog_rows) == std::vector<std::string>{"1|before|a"});
    c.heal(0, 1);
    c.wait_mesh();
    c.wait_rows(1, dog_rows, {"1|before|a", "2|during|b"});
    c.exec(1, "INSERT INTO dog VALUES (3, 'after', 'c')");
    c.wait_rows(0, dog_rows, {"1|before|a", "2|during|b", "3|after|c"});
    c.wait_converged(dog_versions);
}

TEST_CASE("latency added to a pair delays its traffic and loses nothing", "[inproc]") {
    cluster c(2);
    c.wait_mesh();
    create_dog_everywhere(c);
    const auto delay = 400ms;
    c.set_latency(0, 1, delay);
    // The link's round trip shows it (pings go 0 -> 1 through the delay).
    wait_until([&] {
        auto l = c.peer_field(0, c.name(1), "latency");
        return !l.empty() && std::stod(l) >= 0.95 * static_cast<double>(delay.count());
    }, 15s, "node 0's link latency at least the added delay", [&] { return c.status(0); });
    // Many small transactions: each arrives no sooner than the delay, all of them, in order.
    const auto t0 = std::chrono::steady_clock::now();
    c.exec(0, "INSERT INTO dog VALUES (1, 'first', 'x')");
    c.wait_rows(1, "SELECT id FROM dog", {"1"}, 10s);
    CHECK(std::chrono::steady_clock::now() - t0 >= delay);
    for (int k = 2; k <= 60; ++k) c.exec(0, "INSERT INTO dog VALUES (" + std::to_string(k) + ", 'n', 'x')");
    c.exec(0, "UPDATE dog SET name = 'last' WHERE id = 60");
    c.wait_rows(1, "SELECT count(*), sum(id), max(name) FROM dog", {"60|1830|n"}, 15s);
    c.wait_converged(dog_versions);
    CHECK(c.connected(0, 1));
    // Back to no delay: still one link, still streaming.
    c.heal(0, 1);
    c.exec(0, "INSERT INTO dog VALUES (61, 'after', 'x')");
    c.wait_rows(1, "SELECT name FROM dog WHERE id = 61", {"after"});
}

TEST_CASE("a killed node restarted on its file catches up and its last writes reach the others", "[inproc]") {
    cluster c(3);
    c.wait_mesh();
    create_dog_everywhere(c);
    c.exec(0, "INSERT INTO dog VALUES (1, 'a', 'x'), (2, 'b', 'x'), (3, 'c', 'x')");
    c.wait_converged(dog_versions);
    // A write on node 2 just before it dies: committed there, maybe not sent yet.
    c.exec(2, "INSERT INTO dog VALUES (20, 'last words', 'y')");
    c.kill(2);
    wait_until([&] { return !c.connected(0, 2) && !c.connected(1, 2); }, 15s, "nodes 0 and 1 see node 2 gone");
    // The others go on while it is down.
    c.exec(0, "UPDATE dog SET name = 'a2' WHERE id = 1");
    c.exec(1, "DELETE FROM dog WHERE id = 2");
    c.exec(1, "INSERT INTO dog VALUES (4, 'd', 'x')");
    c.restart(2);
    c.wait_mesh();
    const auto rows = c.wait_converged(dog_versions);
    c.wait_converged(dog_tombs);
    CHECK(c.rows(2, "SELECT id, name FROM dog ORDER BY id") == std::vector<std::string>{"1|a2", "3|c", "4|d", "20|last words"});
    CHECK(rows.size() == 4);
    // The same log everywhere: per origin, one record per transaction that changed something.
    c.wait_converged("SELECT o.name, count(*) FROM hdbrepl_log l JOIN hdbrepl_origins o ON o.id = l.origin "
                     "WHERE repl_record_json(l.body) NOT LIKE '%\"table\":\"hdbrepl\\_%' ESCAPE '\\' GROUP BY o.name ORDER BY o.name");
}
