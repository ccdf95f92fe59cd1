// Row placement on one database, without a node: what
// repl_replicate_to() puts in the log record and in hdbrepl_placement, that an update keeps a
// row's nodes and a delete drops them, that a rolled-back transaction leaves no placement,
// and what repl_last_commit() reports. Placement across real nodes: tests/cluster/placement_test.py.
#include "tests/sql/sql_test_util.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

using namespace hdbrepl::test;

namespace {

struct placed_db {
    temp_dir dir;
    test_db db{dir.file("placed.db")};
    std::string me;
    placed_db() {
        db.exec("CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT)");
        me = db.scalar("SELECT repl_node_name()");
    }
    // The changes of the newest log record, as JSON.
    std::string last_changes() { return db.scalar("SELECT json_extract(repl_record_json(body), '$.changes') FROM hdbrepl_log ORDER BY seq DESC LIMIT 1"); }
    std::string nodes_of_last(int i = 0) {
        return db.scalar("SELECT coalesce(json_extract(repl_record_json(body), '$.changes[" + std::to_string(i) +
                         "].nodes'), 'none') FROM hdbrepl_log ORDER BY seq DESC LIMIT 1");
    }
    std::int64_t stored() { return db.count("SELECT count(*) FROM hdbrepl_placement"); }
    // A node list as the record shows it: sorted, with this node in it.
    std::string list(std::vector<std::string> nodes) {
        nodes.push_back(me);
        std::sort(nodes.begin(), nodes.end());
        std::string out = "[";
        for (const auto& n : nodes) out += (out.size() > 1 ? ",\"" : "\"") + n + "\"";
        return out + "]";
    }
};

} // namespace

TEST_CASE("repl_replicate_to: a node list places the transaction's rows, updates keep them, deletes drop them", "[sql]") {
    placed_db p;
    auto& db = p.db;
    CHECK(db.scalar("SELECT repl_last_commit() IS NULL") == "1");
    CHECK(db.scalar("SELECT repl_replicate_to('node-b, node-c')") == R"({"replicateTo":["node-b","node-c"],"confirm":0,"timeout_ms":10000})");
    db.exec("INSERT INTO dog VALUES (1, 'rex')");
    const std::string placed = p.list({"node-b", "node-c"});
    CHECK(p.nodes_of_last() == placed);
    CHECK(p.stored() == 1);
    // hdb_placement shows it readably: the key as stored, the nodes as JSON.
    CHECK(db.rows("SELECT table_name, typeof(key), key, nodes FROM hdb_placement") == std::vector<std::string>{"dog|integer|1|" + placed});
    CHECK(db.scalar("SELECT json_extract(repl_last_commit(), '$.placedOn')") == R"(["node-b","node-c"])");
    CHECK(db.scalar("SELECT json_extract(repl_last_commit(), '$.status')") == "not asked");

    // Reset: a new row is unplaced, an update of the placed row keeps its nodes.
    db.exec("SELECT repl_replicate_to(NULL)");
    db.exec("INSERT INTO dog VALUES (2, 'fido')");
    CHECK(p.nodes_of_last() == "none");
    CHECK(db.scalar("SELECT json_extract(repl_last_commit(), '$.placedOn')") == "NULL");
    db.exec("UPDATE dog SET name = 'rex 2' WHERE id = 1");
    CHECK(p.nodes_of_last() == placed);
    // 1.0 is the key 1: the same placement.
    db.exec("UPDATE dog SET name = 'rex 3' WHERE id = 1.0");
    CHECK(p.nodes_of_last() == placed);

    // A count cannot be filled without members: the row stays unplaced (senders place it).
    db.exec("SELECT repl_replicate_to(2)");
    db.exec("INSERT INTO dog VALUES (3, 'alone')");
    CHECK(p.nodes_of_last() == "none");
    CHECK(p.stored() == 1);
    // ...but a row that has a placement keeps it under a count.
    db.exec("UPDATE dog SET name = 'rex 4' WHERE id = 1");
    CHECK(p.nodes_of_last() == placed);

    // A node list given for a placed row adds to its nodes (rows never leave a node, so no
    // holder keeps a stale version); for a new row it is exactly the list.
    db.exec("SELECT repl_replicate_to('node-d')");
    db.exec("UPDATE dog SET name = 'rex 5' WHERE id = 1");
    CHECK(p.nodes_of_last() == p.list({"node-b", "node-c", "node-d"}));
    CHECK(db.scalar("SELECT json_extract(repl_last_commit(), '$.placedOn')") == R"(["node-b","node-c","node-d"])");
    db.exec("INSERT INTO dog VALUES (5, 'new')");
    CHECK(p.nodes_of_last() == p.list({"node-d"}));
    // A delete goes where the row lives, whatever the setting says.
    db.exec("DELETE FROM dog WHERE id = 5");
    CHECK(p.nodes_of_last() == p.list({"node-d"}));
    db.exec("SELECT repl_replicate_to('node-e')");
    db.exec("DELETE FROM dog WHERE id = 2"); // unplaced row: it may be anywhere, so the delete goes everywhere
    CHECK(p.nodes_of_last() == "none");

    // A rolled-back placed insert leaves no placement.
    db.exec("BEGIN");
    db.exec("INSERT INTO dog VALUES (4, 'gone')");
    db.exec("ROLLBACK");
    CHECK(p.stored() == 1);

    // The delete travels to the row's nodes and drops the stored placement.
    db.exec("SELECT repl_replicate_to(NULL)");
    db.exec("DELETE FROM dog WHERE id = 1");
    CHECK(p.last_changes().find("\"op\":\"delete\"") != std::string::npos);
    CHECK(p.nodes_of_last() == p.list({"node-b", "node-c", "node-d"}));
    CHECK(p.stored() == 0);
}

TEST_CASE("repl_replicate_to: confirmations without a node running, and bad settings", "[sql]") {
    placed_db p;
    auto& db = p.db;
    CHECK(db.scalar("SELECT json_extract(repl_replicate_to('node-b;confirm=1;timeout=50'), '$.confirm')") == "1");
    db.exec("INSERT INTO dog VALUES (1, 'rex')");
    CHECK(db.scalar("SELECT json_extract(repl_last_commit(), '$.status')") == "no node running");
    CHECK(db.scalar("SELECT json_extract(repl_last_commit(), '$.confirmationsWanted')") == "1");
    db.exec("SELECT repl_replicate_to('node-b', 2)");
    db.exec("INSERT INTO dog VALUES (2, 'rex')");
    CHECK(db.scalar("SELECT json_extract(repl_last_commit(), '$.status')").find("cannot confirm: asked for 2") == 0);
    // Errors change nothing.
    CHECK(db.try_exec("SELECT repl_replicate_to('3;confirm=-1')").find("confirm=") != std::string::npos);
    CHECK(db.try_exec("SELECT repl_replicate_to(1.5)").find("1st argument") != std::string::npos);
    CHECK(db.try_exec("SELECT repl_replicate_to('[\"a\"')").find("not valid JSON") != std::string::npos);
    CHECK(db.scalar("SELECT json_extract(repl_replicate_to('node-b', 2), '$.replicateTo')") == R"(["node-b"])");
    db.exec("BEGIN");
    db.exec("INSERT INTO dog VALUES (3, 'x')");
    CHECK(db.try_exec("SELECT repl_replicate_to(NULL)").find("already written rows") != std::string::npos);
    db.exec("COMMIT");
}

TEST_CASE("stored placements follow a renamed table and go with a dropped one", "[sql]") {
    placed_db p;
    auto& db = p.db;
    db.exec("SELECT repl_replicate_to('node-b')");
    db.exec("INSERT INTO dog VALUES (1, 'rex')");
    db.exec("SELECT repl_replicate_to(NULL)");
    CHECK(db.rows("SELECT table_name, key FROM hdb_placement") == std::vector<std::string>{"dog|1"});
    db.exec("ALTER TABLE dog RENAME TO hound");
    CHECK(db.rows("SELECT table_name, key FROM hdb_placement") == std::vector<std::string>{"hound|1"});
    db.exec("UPDATE hound SET name = 'rex 2' WHERE id = 1");
    CHECK(p.nodes_of_last() == p.list({"node-b"})); // the renamed table's row keeps its nodes
    db.exec("DROP TABLE hound");
    CHECK(p.stored() == 0);
    // A table created again under the old name starts with no placements.
    db.exec("CREATE VIRTUAL TABLE hound USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT)");
    db.exec("INSERT INTO hound VALUES (1, 'new')");
    CHECK(p.nodes_of_last() == "none");
}
