#!/usr/bin/python3
"""Topology and the node operations with real node processes:

- a chain A - B - C (A routes to B, C routes to B; A and C never connect): A's writes reach
  C through B and C's reach A, atomically and with table definitions;
- remove_node on A for B stops the flow both ways (writes after the removal do not
  arrive either way, cluster_status no longer lists it, and it stays removed across
  restarts), while nodes added with add_node rejoin after a restart by themselves;
- the exact replies of add_node / set_node / update_node / remove_node, their accepted
  forms (hostname, url, bare string) and their errors;
- repl_operation search_by_value on system.hdb_nodes, and the hdb_nodes table.
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TestFailure, assert_stays, check, check_eq, dump, run_tests, user_log_count, wait_connected,  # noqa: E402
                     wait_rows, wait_settled, wait_until)

A_IP, B_IP, C_IP, D_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"


def names_in_status(node):
    return sorted(c["name"] for c in node.status().get("connections", []))


def test_chain_relays_both_ways(c):
    a, b, n3 = c.node(A_IP), c.node(B_IP), c.node(C_IP)
    # `system` not replicated: no membership gossip, so A and C stay strangers (a real chain).
    chain = {"databases": "[main]"}
    a.start(routes=[B_IP], extra=chain)
    b.start(routes=[A_IP, C_IP], extra=chain)
    n3.start(routes=[B_IP], extra=chain)
    wait_connected(a, b)
    wait_connected(n3, b)
    wait_connected(b, a)
    wait_connected(b, n3)
    wait_settled(a, b)  # past the opening exchange of the links (basic_test.py tests that window)
    wait_settled(n3, b)
    a.sql("CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT, origin TEXT INDEXED)")
    wait_until(lambda: n3.scalar("SELECT count(*) FROM sqlite_master WHERE name = 't'") == 1, 15, "table t on C via B")
    a.sql("INSERT INTO t VALUES (1, 'one', 'a')")
    wait_rows(n3, "SELECT id, v FROM t", [[1, "one"]], what="A's row on C via B")
    n3.sql("INSERT INTO t VALUES (2, 'two', 'c')")
    wait_rows(a, "SELECT id, v FROM t ORDER BY id", [[1, "one"], [2, "two"]], what="C's row on A via B")
    n3.sql("UPDATE t SET v = 'uno' WHERE id = 1")
    a.sql("DELETE FROM t WHERE id = 2")
    for n in (a, b, n3):
        wait_rows(n, "SELECT id, v FROM t ORDER BY id", [[1, "uno"]], what=f"update from C and delete from A on {n.ip}")
    # A multi-table transaction from C arrives at A whole.
    n3.batch([("BEGIN", []), ("CREATE VIRTUAL TABLE u USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)", []),
              ("INSERT INTO u VALUES (1, 'u1')", []), ("INSERT INTO t VALUES (3, 'three', 'c')", []), ("COMMIT", [])])
    wait_rows(a, "SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM t)", [[1, 2]], what="C's transaction on A")
    # A and C never connected directly.
    check_eq(names_in_status(a), [B_IP], "A's connections")
    check_eq(names_in_status(n3), [B_IP], "C's connections")
    check_eq(names_in_status(b), [A_IP, C_IP], "B's connections")
    check_eq(dump(a, "t"), dump(n3, "t"), "t on A vs C")
    # Each transaction is applied once on C, though B relays it: C's log holds A's records once.
    n_a = user_log_count(a, A_IP)
    wait_until(lambda: user_log_count(n3, A_IP) == n_a, 10, f"C's log holds A's {n_a} transactions once")


def test_remove_node_stops_flow_both_ways(c):
    # Nodes joined by add_node (not config routes), so membership lives in the database.
    a, b = c.node(A_IP), c.node(B_IP)
    a.start()
    b.start()
    check_eq(a.op("add_node", {"hostname": B_IP}), {"message": f"Successfully added '{B_IP}' to cluster"}, "add_node on A")
    check_eq(b.op("add_node", {"hostname": A_IP}), {"message": f"Successfully added '{A_IP}' to cluster"}, "add_node on B")
    wait_connected(a, b)
    wait_connected(b, a)
    wait_settled(a, b)
    a.sql("CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    a.sql("INSERT INTO t VALUES (1, 'before')")
    wait_rows(b, "SELECT id FROM t", [[1]])
    # Membership survives restarts of both: they rejoin by themselves.
    a.restart(a.last_config)
    b.restart(b.last_config)
    wait_connected(a, b, 20)
    wait_connected(b, a, 20)
    b.sql("INSERT INTO t VALUES (2, 'after restart')")
    wait_rows(a, "SELECT id FROM t ORDER BY id", [[1], [2]], what="B's write on A after both restarted")
    # Remove B on A.
    reply = a.op("remove_node", {"hostname": B_IP})
    check_eq(reply, {"message": f"Successfully removed '{B_IP}' from cluster"}, "remove_node reply")
    wait_until(lambda: B_IP not in names_in_status(a), 10, "B gone from A's cluster_status")
    wait_until(lambda: not b.connected_to(A_IP), 10, "B no longer connected to A")
    a.sql("INSERT INTO t VALUES (10, 'a after removal')")
    b.sql("INSERT INTO t VALUES (20, 'b after removal')")
    # Neither write arrives, nor does B come back, for a window long enough for several
    # redial attempts (reconnectMaxDelay 500 ms) and for any delivery.
    def apart():
        return (b.sql("SELECT id FROM t ORDER BY id") == [[1], [2], [20]] and a.sql("SELECT id FROM t ORDER BY id") == [[1], [2], [10]]
                and B_IP not in names_in_status(a))
    assert_stays(apart, 2.5, "A and B apart after the removal (A's rows 1 2 10, B's rows 1 2 20, B not in A's status)")
    check_eq(b.sql("SELECT id FROM t ORDER BY id"), [[1], [2], [20]], "B's rows after the removal (A's new row must not arrive)")
    check_eq(a.sql("SELECT id FROM t ORDER BY id"), [[1], [2], [10]], "A's rows after the removal (B's new row must not arrive)")
    check(B_IP not in names_in_status(a), f"A's status after the removal: {a.status()}")
    search = json.loads(a.scalar("SELECT repl_operation(?)", json.dumps(
        {"operation": "search_by_value", "database": "system", "table": "hdb_nodes", "search_attribute": "name",
         "search_value": B_IP})))
    check_eq(search, [], "B in A's hdb_nodes after the removal")
    # The removal lasts across restarts.
    a.restart(a.last_config)
    b.restart(b.last_config)
    a.sql("INSERT INTO t VALUES (11, 'a after restart')")
    assert_stays(lambda: not a.connected_to(B_IP) and b.sql("SELECT id FROM t ORDER BY id") == [[1], [2], [20]],
                 2.5, "A and B apart after the removal and restarts (A not linked to B, B's rows 1 2 20)")
    check(not a.connected_to(B_IP) and not b.connected_to(A_IP), f"A and B reconnected after the removal and restarts: "
                                                                 f"{a.status()} / {b.status()}")
    check_eq(b.sql("SELECT id FROM t ORDER BY id"), [[1], [2], [20]], "B's rows after the restarts")
    # Adding B back restores the flow, and what was written meanwhile arrives.
    a.op("add_node", {"hostname": B_IP})
    b.op("add_node", {"hostname": A_IP})
    wait_connected(a, b, 20)
    ids = [[1], [2], [10], [11], [20]]
    wait_rows(a, "SELECT id FROM t ORDER BY id", ids, what="A after B was added back")
    wait_rows(b, "SELECT id FROM t ORDER BY id", ids, what="B after it was added back")


def test_node_operation_replies(c):
    a = c.node(A_IP)
    a.start()
    # Replies, exactly.
    check_eq(a.scalar("SELECT repl_add_node(?)", json.dumps({"hostname": B_IP})),
             json.dumps({"message": f"Successfully added '{B_IP}' to cluster"}, separators=(",", ":")), "add_node reply text")
    check_eq(a.op("set_node", {"hostname": C_IP, "port": c.port}), {"message": f"Successfully added '{C_IP}' to cluster"},
             "set_node reply")
    check_eq(a.op("update_node", {"hostname": B_IP, "shard": 3}), {"message": f"Successfully updated '{B_IP}'"}, "update_node reply")
    # update_node adds an unknown node.
    check_eq(a.op("update_node", {"hostname": D_IP}), {"message": f"Successfully updated '{D_IP}'"}, "update_node of a new node")
    # add_node by url; operation key given explicitly; repl_operation.
    check_eq(a.op("add_node", {"operation": "add_node", "url": f"ws://127.0.0.6:{c.port}"}),
             {"message": "Successfully added '127.0.0.6' to cluster"}, "add_node by url")
    check_eq(json.loads(a.scalar("SELECT repl_operation(?)", json.dumps({"operation": "add_node", "hostname": "127.0.0.7"}))),
             {"message": "Successfully added '127.0.0.7' to cluster"}, "repl_operation add_node")
    check_eq(a.op("add_node", {"hostname": "127.0.0.8", "start_time": 1717200000000}),
             {"message": "Successfully added '127.0.0.8' to cluster"}, "add_node with an epoch-ms start_time")
    # hdb_nodes holds them.
    rows = json.loads(a.scalar("SELECT repl_operation(?)", json.dumps(
        {"operation": "search_by_value", "database": "system", "table": "hdb_nodes", "search_attribute": "name",
         "search_value": "*"})))
    names = sorted(r["name"] for r in rows)
    for n in (B_IP, C_IP, D_IP, "127.0.0.6", "127.0.0.7", "127.0.0.8"):
        check(n in names, f"{n} listed by search_by_value: {names}")
    by_name = {r["name"]: r for r in rows}
    check_eq(by_name[B_IP].get("shard"), 3, "update_node's shard in hdb_nodes")
    check_eq(by_name[C_IP].get("url"), f"ws://{C_IP}:{c.port}", "url of C in hdb_nodes")
    one = json.loads(a.scalar("SELECT repl_operation(?)", json.dumps(
        {"operation": "search_by_value", "database": "system", "table": "hdb_nodes", "search_attribute": "name",
         "search_value": C_IP})))
    check_eq([r["name"] for r in one], [C_IP], "search_by_value for one name")
    # remove_node in every accepted form.
    check_eq(a.op("remove_node", {"hostname": C_IP}), {"message": f"Successfully removed '{C_IP}' from cluster"}, "remove by hostname")
    check_eq(a.op("remove_node", {"name": D_IP}), {"message": f"Successfully removed '{D_IP}' from cluster"}, "remove by name")
    check_eq(a.op("remove_node", {"url": f"ws://127.0.0.6:{c.port}"}),
             {"message": "Successfully removed '127.0.0.6' from cluster"}, "remove by url")
    check_eq(a.op("remove_node", "127.0.0.7"), {"message": "Successfully removed '127.0.0.7' from cluster"}, "remove by bare hostname")
    check_eq(json.loads(a.scalar("SELECT repl_operation(?)", json.dumps({"operation": "remove_node", "hostname": "127.0.0.8"}))),
             {"message": "Successfully removed '127.0.0.8' from cluster"}, "repl_operation remove_node")
    rows = json.loads(a.scalar("SELECT repl_operation(?)", json.dumps(
        {"operation": "search_by_value", "database": "system", "table": "hdb_nodes", "search_attribute": "name",
         "search_value": "*"})))
    names = sorted(r["name"] for r in rows)
    check(B_IP in names and C_IP not in names and "127.0.0.7" not in names, f"hdb_nodes after removals: {names}")
    # Errors name the function and the fault.
    for q, arg, want in [
        ("repl_add_node", "{}", "hostname"),
        ("repl_add_node", json.dumps({"hostname": A_IP}), "own"),
        ("repl_add_node", json.dumps({"hostname": "x.example", "port": 70000}), "port"),
        ("repl_add_node", json.dumps({"url": "http://x:1"}), "scheme"),
        ("repl_add_node", json.dumps({"hostname": "x.example", "start_time": "yesterday"}), "start_time"),
        ("repl_remove_node", json.dumps({"hostname": "nobody.example"}), "does not exist"),
        ("repl_operation", json.dumps({"operation": "frobnicate"}), "unknown operation"),
        ("repl_operation", json.dumps({"hostname": "x"}), "operation"),
    ]:
        msg = a.sql_error(f"SELECT {q}(?)", arg)
        check(q in msg and want in msg, f"{q}({arg}): error {msg!r} should name {q}() and {want!r}")
    # A node that is not running answers with a clear error.
    z = c.node("127.0.0.9")
    msg = z.sql_error("SELECT repl_add_node(?)", json.dumps({"hostname": B_IP}))
    check("repl_start" in msg, f"add_node without a running node: {msg}")


def test_search_by_value_on_a_cluster(c):
    a, b, n3 = c.node(A_IP), c.node(B_IP), c.node(C_IP)
    a.start(routes=[B_IP, C_IP])
    b.start(routes=[A_IP])
    n3.start(routes=[A_IP])
    wait_connected(a, b)
    wait_connected(a, n3)
    rows = json.loads(a.scalar("""SELECT repl_operation('{"operation":"search_by_value","database":"system","table":"hdb_nodes","search_attribute":"name","search_value":"*"}')"""))
    check(isinstance(rows, list), f"search_by_value returns a list: {rows}")
    names = sorted(r.get("name") for r in rows)
    for n in (B_IP, C_IP):
        check(n in names, f"{n} in A's hdb_nodes (config routes are cluster members): {names}")
    for r in rows:
        check("name" in r and "url" in r, f"hdb_nodes row has name and url: {r}")


def test_hdb_nodes_system_table(c):
    a = c.node(A_IP)
    a.start()
    a.op("add_node", {"hostname": B_IP})
    a.op("add_node", {"hostname": C_IP, "shard": 2})
    try:
        rows = a.sql("SELECT name, url, shard FROM hdb_nodes ORDER BY name")
    except Exception as e:
        raise TestFailure(f"SELECT ... FROM hdb_nodes (a read-only system table): {e}")
    by_name = {r[0]: r for r in rows}
    check(B_IP in by_name and C_IP in by_name, f"hdb_nodes lists B and C: {rows}")
    check_eq(by_name[C_IP][1], f"ws://{C_IP}:{c.port}", "url of C")
    check_eq(by_name[C_IP][2], 2, "shard of C")
    msg = a.sql_error(f"DELETE FROM hdb_nodes WHERE name = '{B_IP}'")
    check("hdb_nodes" in msg or "read" in msg.lower(), f"hdb_nodes is read-only: {msg}")


def test_target_reached_the_other_way_is_that_peer(c):
    """A's dial of B is refused (B does not know A yet), and A waits 10-20 s to try again;
    meanwhile B adds A and dials it. That link is A's link to B: A's status lists B once, as
    connected: not the refused target beside the connected peer, both named B (a forwarded
    read would count such a target as a node that may hold the row but is down)."""
    a, b = c.node(A_IP), c.node(B_IP)
    b.start()
    a.start(routes=[B_IP], extra={"reconnectMinDelay": "20s", "reconnectMaxDelay": "20s"})
    wait_until(lambda: (lambda x: x and x.get("lastError"))(a.connection(B_IP)), 10, "A's first dial of B refused")
    b.op("add_node", {"hostname": A_IP})
    wait_connected(a, b)
    entries = [x for x in a.status()["connections"] if x["name"] == B_IP]
    check_eq([x["database_sockets"][0]["connected"] for x in entries], [True],
             f"A's status entries for B (one, connected): {entries}")
    check(entries[0]["state"] in ("connected", "copying"), f"B's state on A: {entries[0]['state']}")


if __name__ == "__main__":
    run_tests(globals())
