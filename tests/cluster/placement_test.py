#!/usr/bin/python3
"""Where rows live, with real node processes:

- per transaction: repl_replicate_to('<node>') sends a transaction's rows to that node only;
  the others learn that rows exist elsewhere and forward key lookups; a count places each new
  row on the writer plus N; NULL goes back to every node; bad settings are clear errors;
- a row keeps its placement on update, from any holder and with the setting reset;
- placement is stored with the row: after a node joins, updates under replicateTo land on
  the same holders as before (rendezvous over the new membership would move some);
- initial copies carry only the rows placed (or resident, by a residency= expression) on the
  joining node;
- confirmations: with confirm=1 COMMIT returns once the row's holder confirmed, reports
  "timed out" after its timeout when the holder is stopped, and never holds the write lock
  while it waits (another process writes the same file meanwhile).
"""
import json
import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, check_eq, run_tests, stop_process, wait_rows, wait_until  # noqa: E402
from membership_test import IPS, full_mesh, make_table_everywhere  # noqa: E402


def start_mesh(c, count, extra=None):
    nodes = []
    for ip in IPS[:count]:
        n = c.node(ip)
        n.start(routes=[] if ip == IPS[0] else [IPS[0]], extra=extra or {})
        nodes.append(n)
    for n in nodes[1:]:
        nodes[0].op("add_node", {"hostname": n.ip})
    wait_until(lambda: full_mesh(nodes), 10, f"full mesh of {count} nodes")
    make_table_everywhere(nodes)
    return nodes


def local(n, q, *params):
    """A query that reads this node's own rows only (no forwarded lookups)."""
    n.sql("SELECT repl_forward_reads(0)")
    try:
        return n.sql(q, *params)
    finally:
        n.sql("SELECT repl_forward_reads(1)")


def holders(nodes, key):
    return sorted(n.ip for n in nodes if local(n, "SELECT 1 FROM dog WHERE id = ?", key))


def last_commit(n):
    return json.loads(n.scalar("SELECT repl_last_commit()"))


def placement_flag(n):
    return n.scalar("SELECT count(*) FROM hdbrepl_meta WHERE key = 'placement'")


def test_unplaced_cluster_pays_no_placement_lookups(c):
    """Every node makes the placement table when it starts, but only a stored placement sets
    the flag that makes writers and appliers look each row up (5,500 instructions a row when
    the flag came with the table). Without placements no node has the flag, whatever it wrote."""
    a, b = nodes = start_mesh(c, 2)
    a.batch([("BEGIN", [])] + [("INSERT INTO dog VALUES (?, ?)", [k, "x"]) for k in range(20)] + [("COMMIT", [])])
    wait_rows(b, "SELECT count(*) FROM dog", [[20]], what="A's rows on B")
    for n in nodes:
        check_eq(n.scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'hdbrepl_placement'"), 1, f"the table exists on {n.ip}")
        check_eq(placement_flag(n), 0, f"no placement flag on {n.ip} in a fully replicated cluster")
    # The first placed row sets it on the writer and on the holder that stores it.
    a.sql("SELECT repl_replicate_to(?)", b.ip)
    a.sql("INSERT INTO dog VALUES (100, 'placed')")
    wait_rows(b, "SELECT name FROM dog WHERE id = 100", [["placed"]], what="the placed row on B")
    for n in nodes:
        check_eq(placement_flag(n), 1, f"the flag once {n.ip} stores a placement")
    # A restart keeps it while placements exist: rows placed stay placed.
    b.restart(b.last_config)
    check_eq(placement_flag(b), 1, "a restart keeps the flag of a placed row")
    check_eq(local(b, "SELECT nodes FROM hdb_placement WHERE key = 100"), [[json.dumps(sorted([a.ip, b.ip]), separators=(",", ":"))]],
             "the row's nodes after the restart")


def test_per_transaction_replicate_to(c):
    a, b, cc, d = nodes = start_mesh(c, 4)
    check_eq(a.scalar("SELECT repl_last_commit()"), None, "no commit yet")
    setting = json.loads(a.scalar("SELECT repl_replicate_to(?)", b.ip))
    check_eq(setting, {"replicateTo": [b.ip], "confirm": 0, "timeout_ms": 10000}, "the setting, as JSON")
    a.batch([("BEGIN", [])] + [("INSERT INTO dog VALUES (?, ?)", [k, f"to b {k}"]) for k in range(10)] + [("COMMIT", [])])
    lc = last_commit(a)
    check_eq((lc["placedOn"], lc["status"]), ([b.ip], "not asked"), "repl_last_commit after a placed commit")
    wait_rows(b, "SELECT count(*) FROM dog", [[10]], what="the placed rows on B")
    # A marker written to every node after them: once it is everywhere, so is anything of
    # the placed transaction that was going to arrive.
    a.sql("SELECT repl_replicate_to(NULL)")
    a.sql("INSERT INTO dog VALUES (1000, 'everywhere')")
    for n in nodes:
        wait_rows(n, "SELECT name FROM dog WHERE id = 1000", [["everywhere"]], what=f"the unplaced row on {n.ip}")
    check_eq(last_commit(a)["placedOn"], None, "after NULL rows are not placed")
    for k in (0, 5, 9):
        check_eq(holders(nodes, k), sorted([a.ip, b.ip]), f"key {k} lives on A and B only")
    # C and D do not hold the rows but know they exist elsewhere: a key lookup forwards.
    for n in (cc, d):
        check_eq(n.sql("SELECT name FROM dog WHERE id = 5"), [["to b 5"]], f"a forwarded lookup on {n.ip}")
        check_eq(n.sql("SELECT id FROM dog WHERE id = 777"), [], f"an absent key on {n.ip}")
    # An update keeps the row's nodes: from the writer with the setting reset, and from B.
    a.sql("UPDATE dog SET name = 'updated by a' WHERE id = 1")
    b.sql("UPDATE dog SET name = 'updated by b' WHERE id = 2")
    wait_rows(b, "SELECT name FROM dog WHERE id = 1", [["updated by a"]], what="A's update on B")
    wait_rows(a, "SELECT name FROM dog WHERE id = 2", [["updated by b"]], what="B's update on A")
    a.sql("INSERT INTO dog VALUES (1001, 'marker')")
    for n in nodes:
        wait_rows(n, "SELECT name FROM dog WHERE id = 1001", [["marker"]], what=f"the second marker on {n.ip}")
    # A delete goes where its row lives, whatever the connection's setting names.
    a.sql("SELECT repl_replicate_to(?)", cc.ip)
    a.sql("DELETE FROM dog WHERE id = 3")
    a.sql("SELECT repl_replicate_to(NULL)")
    wait_rows(b, "SELECT count(*) FROM dog WHERE id = 3", [[0]], what="the delete on B, the row's other holder")
    check_eq(holders(nodes, 1), sorted([a.ip, b.ip]), "an update from the writer keeps the placement")
    check_eq(holders(nodes, 2), sorted([a.ip, b.ip]), "an update from the other holder keeps the placement")
    # A count: each new row on its writer plus one other, chosen per key.
    a.sql("SELECT repl_replicate_to(1)")
    a.batch([("BEGIN", [])] + [("INSERT INTO dog VALUES (?, 'counted')", [k]) for k in range(100, 140)] + [("COMMIT", [])])
    a.sql("SELECT repl_replicate_to(NULL)")
    a.sql("INSERT INTO dog VALUES (1002, 'marker')")
    for n in nodes:
        wait_rows(n, "SELECT name FROM dog WHERE id = 1002", [["marker"]], what=f"the third marker on {n.ip}")
    spread = [holders(nodes, k) for k in range(100, 140)]
    check(all(len(h) == 2 and a.ip in h for h in spread), f"each counted row on A and one other: {spread}")
    check(len({h[1] if h[0] == a.ip else h[0] for h in spread}) == 3, f"the others spread over B, C and D: {spread}")
    # Bad settings are errors that say what to write, and change nothing.
    for bad, want in [("'-1'", "count"), ("'2;confirm=x'", "confirm="), ("'2;bogus=1'", "unknown part"), ("''", "empty"),
                      ("'[1]'", "node names"), ("'{\"replicateTo\": -3}'", "count"), ("'{\"nope\": 1}'", "unknown key"),
                      ("1001", "count"), ("x'00'", "1st argument"), ("'a,,b'", "empty")]:
        err = a.sql_error(f"SELECT repl_replicate_to({bad})")
        check("repl_replicate_to()" in err and want in err, f"repl_replicate_to({bad}): {err!r} should say {want!r}")
    err = a.sql_error("SELECT repl_replicate_to(1, -1)")
    check("confirmations" in err, f"a bad confirmation count: {err}")
    check_eq(json.loads(a.scalar("SELECT repl_replicate_to(NULL)"))["replicateTo"], None, "the setting after the errors")
    # Not between writes of one transaction.
    a.batch([("BEGIN", []), ("INSERT INTO dog VALUES (2000, 'x')", [])])
    err = a.sql_error("SELECT repl_replicate_to(1)")
    check("already written" in err, f"a change inside a transaction that wrote: {err}")
    a.sql("ROLLBACK")
    # The JSON object form takes HarperDB's operation field names.
    s = json.loads(a.scalar("""SELECT repl_replicate_to('{"replicateTo": ["127.0.0.4"], "replicatedConfirmation": 1}')"""))
    check_eq((s["replicateTo"], s["confirm"]), ([cc.ip], 1), "the JSON object form")
    a.sql("INSERT INTO dog VALUES (3000, 'to c, confirmed')")
    lc = last_commit(a)
    check_eq((lc["placedOn"], lc["confirmationsWanted"], lc["confirmed"], lc["status"]), ([cc.ip], 1, 1, "confirmed"),
             f"a commit confirmed by its holder: {lc}")
    check_eq(local(cc, "SELECT name FROM dog WHERE id = 3000"), [["to c, confirmed"]], "the confirmed row is on C when COMMIT returns")
    # More confirmations than nodes that got rows: said at once, no wait.
    a.sql("SELECT repl_replicate_to('127.0.0.4;confirm=2')")
    t0 = time.monotonic()
    a.sql("INSERT INTO dog VALUES (3001, 'x')")
    check(time.monotonic() - t0 < 1, "no wait for confirmations that cannot come")
    check("cannot confirm" in last_commit(a)["status"], f"status: {last_commit(a)}")


def test_placement_kept_across_membership_change(c):
    """replicateTo: 1 on three nodes, then a fourth joins. Rendezvous hashing over four
    members would give some rows a different second holder; stored placements keep every
    updated row where it was."""
    nodes = start_mesh(c, 3, extra={"replicateTo": 1})
    a = nodes[0]
    keys = list(range(60))
    a.batch([("BEGIN", [])] + [("INSERT INTO dog VALUES (?, 'v1')", [k]) for k in keys] + [("COMMIT", [])])
    wait_until(lambda: all(len(holders(nodes, k)) == 2 for k in keys), 15, "every row on 2 of 3 nodes")
    before = {k: holders(nodes, k) for k in keys}
    # Every holder records where the row lives; the others know nothing of it.
    for n in nodes:
        got = n.sql("SELECT nodes FROM hdb_placement WHERE table_name = 'dog' AND key = 7")
        want = [[json.dumps(before[7], separators=(",", ":"))]] if n.ip in before[7] else []
        check_eq(got, want, f"hdb_placement of key 7 on {n.ip}")
    d = c.node(IPS[3])
    d.start(routes=[IPS[0]], extra={"replicateTo": 1})
    a.op("add_node", {"hostname": d.ip})
    nodes.append(d)
    wait_until(lambda: full_mesh(nodes), 10, "full mesh of 4 nodes")
    # Every row updated by its second holder (not the writer), and once more by the writer.
    for k in keys:
        other = next(n for n in nodes if n.ip in before[k] and n is not a)
        other.sql("UPDATE dog SET name = 'v2' WHERE id = ?", k)
    a.batch([("BEGIN", [])] + [("UPDATE dog SET name = 'v3' WHERE id = ?", [k]) for k in keys] + [("COMMIT", [])])
    for n in nodes[:3]:
        wait_until(lambda n=n: all(r == ["v3"] for r in local(n, "SELECT name FROM dog")), 15, f"the updates on {n.ip}")
    after = {k: holders(nodes, k) for k in keys}
    moved = {k: (before[k], after[k]) for k in keys if before[k] != after[k]}
    check_eq(moved, {}, "rows whose holders changed after the join")
    check_eq(local(d, "SELECT count(*) FROM dog"), [[0]], "the new node got none of the placed rows")
    # New rows do use the new member.
    a.batch([("BEGIN", [])] + [("INSERT INTO dog VALUES (?, 'new')", [k]) for k in range(100, 160)] + [("COMMIT", [])])
    wait_until(lambda: local(d, "SELECT count(*) FROM dog")[0][0] > 0, 15, "new rows placed on the new member")


def test_initial_copy_honours_residency(c):
    """A node that joins later copies only the rows a residency expression puts on it."""
    a, b = start_mesh(c, 2)
    d_ip = IPS[3]
    a.sql(f"""CREATE VIRTUAL TABLE r USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT,
              residency=iif(id % 2 = 0, '["{b.ip}"]', '["{d_ip}"]'))""")
    a.batch([("BEGIN", [])] + [("INSERT INTO r VALUES (?, 'x')", [i]) for i in range(1, 11)] + [("COMMIT", [])])
    wait_rows(b, "SELECT id FROM r ORDER BY id", [[2], [4], [6], [8], [10]], what="even ids on B")
    d = c.node(d_ip)
    d.start(routes=[a.ip])
    a.op("add_node", {"hostname": d.ip})
    wait_until(lambda: full_mesh([a, b, d]), 10, "full mesh of 3 nodes")
    wait_rows(d, "SELECT id FROM r ORDER BY id", [[1], [3], [5], [7], [9]], what="odd ids copied to D, and only those")
    a.sql("INSERT INTO dog VALUES (1, 'marker')")
    wait_rows(d, "SELECT name FROM dog", [["marker"]], what="a later row on D")
    check_eq(local(d, "SELECT id FROM r ORDER BY id"), [[1], [3], [5], [7], [9]], "D holds only its resident rows")


def test_confirm_waits_without_holding_the_write_lock(c):
    a, b = nodes = start_mesh(c, 2)
    a.sql(f"SELECT repl_replicate_to('{b.ip};confirm=1;timeout=1500')")
    a.sql("INSERT INTO dog VALUES (1, 'confirmed')")
    check_eq(last_commit(a)["status"], "confirmed", "confirmed by B")
    check_eq(local(b, "SELECT name FROM dog WHERE id = 1"), [["confirmed"]], "on B when COMMIT returned")
    # B stopped: the COMMIT waits its timeout, says so, and the row is committed on A.
    stop_process(b.pid)
    other = c.node("127.0.0.9", db_name=os.path.basename(a.db_path))  # a second process on A's file
    try:
        result = {}

        def commit():
            t0 = time.monotonic()
            a.sql("INSERT INTO dog VALUES (2, 'waits')")
            result["took"] = time.monotonic() - t0

        t = threading.Thread(target=commit)
        t.start()
        # The row is in A's file (another process reads it) while the COMMIT still waits.
        wait_until(lambda: other.sql("SELECT count(*) FROM dog WHERE id = 2") == [[1]], 1.0,
                   "row 2 committed in A's file while its COMMIT waits for B")
        check(t.is_alive(), "the COMMIT is still waiting for B")
        t1 = time.monotonic()
        other.sql("INSERT INTO dog VALUES (3, 'written meanwhile')")
        check(time.monotonic() - t1 < 0.5, "another writer of the same file is not blocked by the wait")
        check(t.is_alive(), "the other writer wrote while the COMMIT was still waiting")
        t.join(10)
        check(not t.is_alive(), "the COMMIT returned")
        check(1.3 < result["took"] < 4, f"it waited about its timeout ({result['took']:.2f} s)")
        lc = last_commit(a)
        check_eq((lc["status"], lc["confirmed"]), ("timed out", 0), f"repl_last_commit says it timed out: {lc}")
        check_eq(a.sql("SELECT name FROM dog WHERE id = 2"), [["waits"]], "the row is committed on A all the same")
    finally:
        os.kill(b.pid, signal.SIGCONT)
    wait_rows(b, "SELECT count(*) FROM dog WHERE id = 2", [[1]], what="the row reaches B once it runs again")


if __name__ == "__main__":
    run_tests(globals())
