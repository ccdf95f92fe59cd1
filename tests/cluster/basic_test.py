#!/usr/bin/python3
"""Cluster basics with real node processes:

- repl_start's reply, a second identical repl_start, repl_stop, status before start;
- a commit made right after the link comes up is sent (not skipped);
- two nodes, both directions: insert, update (also of the key), delete;
- three nodes in a full mesh via routes;
- table definitions replicate (CREATE; RENAME and DROP too);
- a transaction spanning two tables is never seen half-applied by a reader on another node;
- concurrent conflicting writes on two nodes converge to identical content;
- a replicate=false table never leaves its node;
- the shape of repl_cluster_status(): fields, a measured latency, a dead peer's state and
  its backlog.
"""
import json
import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TestFailure, assert_stays, check, check_eq, dump, run_tests, wait_connected, wait_rows,  # noqa: E402
                     wait_settled, wait_until)

A_IP, B_IP, C_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4"
DOG = "CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT, breed TEXT INDEXED)"


def start_pair(c, settle=True):
    """A and B routed to each other and connected. `settle`: also wait until the link has
    settled (harness.wait_settled), so tests of other themes do not depend on the opening
    exchange of a link (that window has its own test, test_commit_right_after_connecting_is_sent)."""
    a, b = c.node(A_IP), c.node(B_IP)
    a.start(routes=[B_IP])
    b.start(routes=[A_IP])
    wait_connected(a, b)
    wait_connected(b, a)
    if settle:
        wait_settled(a, b)
    return a, b


def has_table(node, name):
    return node.scalar("SELECT count(*) FROM sqlite_master WHERE name = ?", name) == 1


def wait_table(node, name, timeout=15):
    wait_until(lambda: has_table(node, name), timeout, f"table {name} on {node.ip}")


def test_start_reply_and_status_before_start(c):
    a = c.node(A_IP)
    st = a.status()
    check_eq(st.get("type"), "cluster-status", "status type before start")
    check_eq(st.get("is_enabled"), False, "is_enabled before start")
    check_eq(st.get("connections"), [], "connections before start")
    reply = a.start(routes=[B_IP])
    check_eq(reply.get("node_name"), A_IP, "repl_start() reply node_name")
    check_eq(a.scalar("PRAGMA journal_mode"), "wal", "journal mode after repl_start")
    # The same config again is a no-op with the same reply.
    again = json.loads(a.scalar("SELECT repl_start(?)", a.config_path))
    check_eq(again.get("node_name"), A_IP, "second repl_start() with the same config")
    st = a.status()
    check_eq(st.get("node_name"), A_IP, "status node_name")
    check_eq(st.get("is_enabled"), True, "is_enabled after start")
    check_eq(a.scalar("SELECT repl_stop()"), "stopped", "repl_stop()")
    check_eq(a.status().get("is_enabled"), False, "is_enabled after repl_stop()")


def test_connection_that_wrote_before_start_takes_the_node_name(c):
    # The connection wrote (under the generated name) before repl_start named the node: its
    # later writes carry the configured name, as origin and in repl_node_name().
    a = c.node(A_IP)
    a.sql("CREATE VIRTUAL TABLE early USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    a.sql("INSERT INTO early VALUES (1, 'before start')")
    a.start()
    a.sql("INSERT INTO early VALUES (2, 'after start')")
    check_eq(a.scalar("SELECT repl_node_name()"), A_IP, "repl_node_name() after repl_start")
    check_eq(a.sql("SELECT o.name FROM early_data d JOIN hdbrepl_origins o ON o.id = d.hdbrepl_o WHERE d.id = 2"), [[A_IP]],
             "the origin of a write after repl_start")


def test_commit_right_after_connecting_is_sent(c):
    # Fresh pairs, a CREATE committed as soon as both nodes report the link: it must reach
    # B (not only be implied by a later write). Several rounds, as the window is short.
    for round_ in range(6):
        if round_:
            c.close()
            c.nodes = []
        a, b = c.node(A_IP, db_name=f"a{round_}.db"), c.node(B_IP, db_name=f"b{round_}.db")
        a.start(routes=[B_IP])
        b.start(routes=[A_IP])
        wait_connected(a, b)
        wait_connected(b, a)
        a.sql(f"CREATE VIRTUAL TABLE t{round_} USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
        try:
            wait_until(lambda: has_table(b, f"t{round_}"), 5, f"round {round_}: the CREATE committed right after connecting, on B")
        except TestFailure as e:
            raise TestFailure(f"{e}\n    A's status of B: {a.connection(B_IP)}\n    A's log: {a.sql('SELECT seq, hlc FROM hdbrepl_log')}"
                              f"\n    B's log: {b.sql('SELECT seq, hlc FROM hdbrepl_log')}")


def test_two_nodes_both_directions(c):
    a, b = start_pair(c, settle=False)
    a.sql(DOG)
    wait_table(b, "dog")
    q = "SELECT id, name, breed FROM dog ORDER BY id"
    # insert on A -> B
    a.sql("INSERT INTO dog VALUES (1, 'Rex', 'collie'), (2, 'Fido', 'pug')")
    wait_rows(b, q, [[1, "Rex", "collie"], [2, "Fido", "pug"]])
    # insert on B -> A
    b.sql("INSERT INTO dog VALUES (3, 'Bella', 'beagle')")
    wait_rows(a, q, [[1, "Rex", "collie"], [2, "Fido", "pug"], [3, "Bella", "beagle"]])
    # update on A -> B, update on B -> A
    a.sql("UPDATE dog SET name = 'Rexy' WHERE id = 1")
    wait_rows(b, "SELECT name FROM dog WHERE id = 1", [["Rexy"]])
    b.sql("UPDATE dog SET breed = 'boxer' WHERE id = 2")
    wait_rows(a, "SELECT breed FROM dog WHERE id = 2", [["boxer"]])
    # update of the key, both ways
    a.sql("UPDATE dog SET id = 10 WHERE id = 1")
    wait_rows(b, "SELECT id FROM dog ORDER BY id", [[2], [3], [10]])
    b.sql("UPDATE dog SET id = 20 WHERE id = 2")
    wait_rows(a, "SELECT id FROM dog ORDER BY id", [[3], [10], [20]])
    # delete on A -> B, delete on B -> A
    a.sql("DELETE FROM dog WHERE id = 3")
    wait_rows(b, "SELECT id FROM dog ORDER BY id", [[10], [20]])
    b.sql("DELETE FROM dog WHERE id = 10")
    wait_rows(a, "SELECT id FROM dog ORDER BY id", [[20]])
    # the index serves queries on the receiving side too
    wait_rows(b, "SELECT id FROM dog WHERE breed = 'boxer'", [[20]])
    check_eq(dump(a, "dog"), dump(b, "dog"), "final content A vs B")


def test_three_node_full_mesh(c):
    a, b, n3 = c.node(A_IP), c.node(B_IP), c.node(C_IP)
    a.start(routes=[B_IP, C_IP])
    b.start(routes=[A_IP, C_IP])
    n3.start(routes=[A_IP, B_IP])
    for x in (a, b, n3):
        for y in (a, b, n3):
            if x is not y:
                wait_connected(x, y)
    a.sql(DOG)
    wait_table(b, "dog")
    wait_table(n3, "dog")
    for i, n in enumerate((a, b, n3)):
        n.sql("INSERT INTO dog VALUES (?, ?, ?)", 100 + i, f"from-{n.ip}", "mutt")
    want = [[100, f"from-{A_IP}"], [101, f"from-{B_IP}"], [102, f"from-{C_IP}"]]
    for n in (a, b, n3):
        wait_rows(n, "SELECT id, name FROM dog ORDER BY id", want)
    # An update on C reaches A and B; a delete on B reaches A and C.
    n3.sql("UPDATE dog SET name = 'changed' WHERE id = 100")
    b.sql("DELETE FROM dog WHERE id = 102")
    want = [[100, "changed"], [101, f"from-{B_IP}"]]
    for n in (a, b, n3):
        wait_rows(n, "SELECT id, name FROM dog ORDER BY id", want)
    # A transaction arrives once, not once per path: the log of C holds each origin's
    # transaction once.
    check_eq(dump(a, "dog"), dump(n3, "dog"), "A vs C")


def test_table_definition_replicates(c):
    a, b = start_pair(c)
    a.sql("CREATE VIRTUAL TABLE cat USING hdbrepl(name TEXT PRIMARY KEY, age INTEGER, color TEXT INDEXED)")
    wait_table(b, "cat")
    sql_b = b.scalar("SELECT sql FROM sqlite_master WHERE name = 'cat'")
    check("hdbrepl" in sql_b and "INDEXED" in sql_b.upper(), f"definition on B: {sql_b!r}")
    # The table created from the replicated definition is a full replicated table on B.
    b.sql("INSERT INTO cat VALUES ('tom', 3, 'grey')")
    wait_rows(a, "SELECT name, age, color FROM cat", [["tom", 3, "grey"]])
    plan = " ".join(str(r) for r in b.sql("EXPLAIN QUERY PLAN SELECT * FROM cat WHERE color = 'grey'"))
    check("index" in plan.lower(), f"INDEXED column on B is served by index: {plan}")
    # A table created on B with rows already in it reaches A with them.
    b.batch([("BEGIN", []),
             ("CREATE VIRTUAL TABLE bird USING hdbrepl(id INTEGER PRIMARY KEY, kind TEXT)", []),
             ("INSERT INTO bird VALUES (1, 'owl'), (2, 'crow')", []),
             ("COMMIT", [])])
    wait_rows(a, "SELECT id, kind FROM bird ORDER BY id", [[1, "owl"], [2, "crow"]])
    # RENAME and DROP are replicated too.
    a.sql("ALTER TABLE cat RENAME TO kitty")
    wait_table(b, "kitty")
    check(not has_table(b, "cat"), "cat is gone on B after the rename")
    wait_rows(b, "SELECT name FROM kitty", [["tom"]])
    a.sql("DROP TABLE bird")
    wait_until(lambda: not has_table(b, "bird"), 15, "bird dropped on B")


def test_transaction_spanning_two_tables_is_atomic(c):
    a, b = start_pair(c)
    a.batch([("BEGIN", []),
             ("CREATE VIRTUAL TABLE debit USING hdbrepl(id INTEGER PRIMARY KEY, v INTEGER)", []),
             ("CREATE VIRTUAL TABLE credit USING hdbrepl(id INTEGER PRIMARY KEY, v INTEGER)", []),
             ("COMMIT", [])])
    wait_table(b, "debit")
    wait_table(b, "credit")
    q = "SELECT (SELECT count(*) FROM debit), (SELECT count(*) FROM credit), " \
        "(SELECT coalesce(sum(v),0) FROM debit), (SELECT coalesce(sum(v),0) FROM credit)"
    violations, states = [], set()
    stop = threading.Event()

    def reader():
        deadline = time.monotonic() + 60
        for _ in range(100000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            try:
                nd, nc, sd, sc = b.sql(q)[0]
            except Exception as e:
                violations.append(f"reader error: {e}")
                return
            states.add((nd, sd))
            if nd != nc or sd != sc:
                violations.append((nd, nc, sd, sc))
                if len(violations) > 20:
                    return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    rng = c.rng
    n_txn = 300
    try:
        for i in range(n_txn):
            x = rng.randint(1, 1000)
            stmts = [("BEGIN", []),
                     ("INSERT INTO debit VALUES (?, ?)", [i, x]),
                     ("INSERT INTO credit VALUES (?, ?)", [i, x])]
            if i > 10 and rng.random() < 0.4:  # also move value between existing rows
                k, d = rng.randrange(i), rng.randint(-50, 50)
                stmts += [("UPDATE debit SET v = v + ? WHERE id = ?", [d, k]),
                          ("UPDATE credit SET v = v + ? WHERE id = ?", [d, k])]
            stmts.append(("COMMIT", []))
            a.batch(stmts)
        want = a.sql(q)
        check(want[0][0] == n_txn, f"A's own counts: {want}")
        wait_rows(b, q, want, timeout=30, what="all transactions on B")
    finally:
        stop.set()
        t.join(10)
    check(not violations, f"reader on B saw half-applied transactions: {violations[:5]}")
    print(f"    reader on B saw {len(states)} distinct states")
    check(len(states) > 3, f"the reader saw too few intermediate states ({len(states)}) to test anything")


def test_concurrent_conflicting_updates_converge(c):
    a, b = start_pair(c)
    a.sql("CREATE VIRTUAL TABLE kv USING hdbrepl(k INTEGER PRIMARY KEY, v TEXT, n INTEGER INDEXED)")
    a.batch([("BEGIN", [])] + [("INSERT INTO kv VALUES (?, ?, ?)", [k, "init", 0]) for k in range(40)] + [("COMMIT", [])])
    wait_rows(b, "SELECT count(*) FROM kv", [[40]])
    seed_a, seed_b = c.rng.randrange(1 << 30), c.rng.randrange(1 << 30)
    errors = []

    def writer(node, seed, ops):
        import random
        rng = random.Random(seed)
        try:
            for i in range(ops):
                k = rng.randrange(48)
                r = rng.random()
                if r < 0.55:
                    node.sql("UPDATE kv SET v = ?, n = n + 1 WHERE k = ?", f"{node.ip}-{i}", k)
                elif r < 0.75:
                    node.sql("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", k, f"{node.ip}-r{i}", i)
                elif r < 0.9:
                    node.sql("DELETE FROM kv WHERE k = ?", k)
                else:
                    node.batch([("BEGIN", []),
                                ("UPDATE kv SET v = ? WHERE k = ?", [f"{node.ip}-t{i}", k]),
                                ("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", [(k + 1) % 48, f"{node.ip}-t{i}", i]),
                                ("COMMIT", [])])
        except Exception as e:
            errors.append(f"{node.ip}: {e}")

    t = threading.Thread(target=writer, args=(a, seed_a, 300), daemon=True)
    t.start()
    writer(b, seed_b, 300)
    t.join(60)
    check(not t.is_alive(), "writer on A finished")
    check(not errors, f"writers failed: {errors}")
    q = "SELECT k, v, n FROM kv ORDER BY k"
    wait_until(lambda: a.sql(q) == b.sql(q), 30, "A and B converge",)
    # and stay converged for a second (nothing still in flight flips one side)
    assert_stays(lambda: a.sql(q) == b.sql(q), 1.0, "A and B stay converged")
    da, db_ = a.sql(q), b.sql(q)
    check_eq(db_, da, "content after convergence, B vs A")
    check(len(da) > 0, "some rows survive")


def test_replicate_false_table_stays_local(c):
    a, b = start_pair(c)
    a.sql("CREATE VIRTUAL TABLE secret USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT, replicate=false)")
    a.sql("CREATE VIRTUAL TABLE pub USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    a.sql("INSERT INTO secret VALUES (1, 'hidden')")
    # One transaction writing both: only the replicated part travels.
    a.batch([("BEGIN", []), ("INSERT INTO secret VALUES (2, 'hidden too')", []),
             ("INSERT INTO pub VALUES (1, 'public')", []), ("COMMIT", [])])
    a.sql("INSERT INTO pub VALUES (2, 'barrier')")
    wait_rows(b, "SELECT id, v FROM pub ORDER BY id", [[1, "public"], [2, "barrier"]])
    check(not has_table(b, "secret"), "replicate=false table reached B")
    check_eq(a.scalar("SELECT count(*) FROM secret"), 2, "rows of the local table on A")
    # B may have its own table of that name; A's rows never arrive in it, B's never leave.
    b.sql("CREATE VIRTUAL TABLE secret USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT, replicate=false)")
    b.sql("INSERT INTO secret VALUES (100, 'b only')")
    b.sql("INSERT INTO pub VALUES (3, 'barrier 2')")
    wait_rows(a, "SELECT count(*) FROM pub", [[3]])
    a.sql("INSERT INTO pub VALUES (4, 'barrier 3')")
    wait_rows(b, "SELECT count(*) FROM pub", [[4]])
    check_eq(a.sql("SELECT id FROM secret ORDER BY id"), [[1], [2]], "A's local table")
    check_eq(b.sql("SELECT id FROM secret ORDER BY id"), [[100]], "B's local table")


def test_cluster_status_shape(c):
    a, b = start_pair(c, settle=False)
    link_up = time.monotonic()
    wait_settled(a, b)
    # Pings run every second: within 2.5 quiet seconds of the link coming up the status shows
    # a measured round trip (a status refreshed only by replication events would not).
    def latency():
        lat = a.connection(B_IP)["database_sockets"][0]["latency"]
        return ("measured", lat) if isinstance(lat, (int, float)) and lat >= 0 else None
    latency_problem = None
    try:
        wait_until(latency, max(0.0, link_up + 2.5 - time.monotonic()), "a measured latency in A's status of B")
    except TestFailure as e:
        latency_problem = f"no measured latency in A's status of B after 2.5 quiet seconds of pings: {e}"
    a.sql(DOG)
    a.sql("INSERT INTO dog VALUES (1, 'Rex', 'collie')")
    wait_rows(b, "SELECT count(*) FROM dog", [[1]])
    check_eq(a.scalar("SELECT repl_confirm(1, 5000)"), 1, "repl_confirm on A")
    # Read at once: the status is refreshed with the confirmation, before repl_confirm
    # returns (a 250 ms refresh alone would show the old backlog most of the time).
    st = a.status()
    check_eq(st["type"], "cluster-status", "type")
    check_eq(st["node_name"], A_IP, "node_name")
    check_eq(st["is_enabled"], True, "is_enabled")
    check(isinstance(st["connections"], list) and len(st["connections"]) == 1, f"one connection: {st['connections']}")
    conn = st["connections"][0]
    check_eq(conn["name"], B_IP, "connection name")
    check_eq(conn["url"], f"ws://{B_IP}:{c.port}", "connection url")
    for k in ("subscriptions", "replicates", "state", "lastError", "backlog", "database_sockets"):
        check(k in conn, f"connection has {k}: {conn}")
    check_eq(conn["state"], "connected", "state")
    check(conn["lastError"] in (None, ""), f"no lastError when healthy: {conn['lastError']!r}")
    check(isinstance(conn["backlog"], int) and conn["backlog"] == 0, f"backlog: {conn['backlog']!r}")
    check(isinstance(conn["database_sockets"], list) and len(conn["database_sockets"]) >= 1, "database_sockets")
    s = conn["database_sockets"][0]
    check_eq(s["database"], "main", "database_sockets[0].database")
    check_eq(s["connected"], True, "database_sockets[0].connected")
    check(s["latency"] is None or isinstance(s["latency"], (int, float)), f"latency: {s['latency']!r}")
    for k in ("lastCommitConfirmed", "lastReceivedRemoteTime", "lastReceivedLocalTime", "lastSendTime"):
        check(k in s, f"database socket has {k}: {s}")
    check(s["lastCommitConfirmed"].endswith("GMT"), f"lastCommitConfirmed is an HTTP date: {s['lastCommitConfirmed']!r}")
    check(s["lastSendTime"], f"lastSendTime after sending: {s['lastSendTime']!r}")
    # B received from A: its lastReceived* fields are set.
    # (the status snapshot is refreshed by state changes and a 250 ms tick, not per message)
    def b_receive_times():
        sb = b.connection(A_IP)["database_sockets"][0]
        return sb["lastReceivedRemoteTime"] and sb["lastReceivedLocalTime"] and sb
    wait_until(b_receive_times, 2, "B's receive times in its cluster_status")
    # Confirmed means the status says so: B paused, a write on A shows as backlog; B resumed,
    # once repl_confirm returns the status read next shows the backlog gone.
    for i in range(10, 13):
        os.kill(b.pid, signal.SIGSTOP)
        try:
            a.sql("INSERT INTO dog VALUES (?, 'Pup', 'beagle')", i)
            wait_until(lambda: (lambda x: x and x["backlog"] >= 1)(a.connection(B_IP)), 5, f"row {i} as backlog while B is paused")
        finally:
            os.kill(b.pid, signal.SIGCONT)
        check_eq(a.scalar("SELECT repl_confirm(1, 5000)"), 1, f"repl_confirm of row {i}")
        got = a.connection(B_IP)
        check(got and got["backlog"] == 0, f"A's status of B right after repl_confirm of row {i}: backlog 0, got {got}")
    # repl_operation's cluster_status is the same document.
    via_op = json.loads(a.scalar("""SELECT repl_operation('{"operation":"cluster_status"}')"""))
    check_eq(via_op["type"], "cluster-status", "repl_operation cluster_status")
    # A dead peer shows as not connected, and writes to it pile up as backlog.
    b.kill()
    wait_until(lambda: not a.connected_to(B_IP), 10, "A sees B disconnected")
    a.sql("INSERT INTO dog VALUES (2, 'Fido', 'pug')")
    conn = wait_until(lambda: (lambda x: x if x and x["database_sockets"][0]["connected"] is False else None)(a.connection(B_IP)),
                      5, "A's status of the dead peer B")
    check(conn["state"] != "connected", f"state of a dead peer: {conn['state']}")
    problems = [latency_problem] if latency_problem else []
    # Changes written while B is down are B's backlog ("changes not yet confirmed").
    seen = []

    def backlog_counts():
        x = a.connection(B_IP)
        seen[:] = [x]
        return x if x and isinstance(x.get("backlog"), int) and x["backlog"] >= 1 else None

    try:
        wait_until(backlog_counts, 5, "backlog >= 1 in A's status of the dead peer B after a write on A")
    except TestFailure as e:
        problems.append(f"{e}\n    A's status of B: {seen}")
    check(not problems, "\n  ".join(problems))


if __name__ == "__main__":
    run_tests(globals())
