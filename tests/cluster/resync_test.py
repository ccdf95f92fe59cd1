#!/usr/bin/python3
"""Crashes and resynchronisation with real node processes (a process that restarts and
calls repl_start again rejoins and resynchronises without any other step; repl_confirm):

- kill -9 B, write on A meanwhile, restart B with the same config: B catches up from the
  change log (no full copy: its log holds A's transactions and no copy was reported) and
  none of B's own writes (also those committed just before the kill) are lost;
- kill -9 A in the middle of a stream of transactions: B only ever holds a prefix of A's
  transactions, and after A restarts B converges to exactly what A committed;
- repl_confirm(1, 5000) is 1 with B up, 0 after its timeout with B down, and 1 again once B
  is back.
"""
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TestFailure, check, check_eq, run_tests, user_log_count, wait_connected, wait_rows,  # noqa: E402
                     wait_settled, wait_until)

A_IP, B_IP, C_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4"


def start_pair(c):
    a, b = c.node(A_IP), c.node(B_IP)
    a.start(routes=[B_IP])
    b.start(routes=[A_IP])
    wait_connected(a, b)
    wait_connected(b, a)
    wait_settled(a, b)  # past the opening exchange of the link (basic_test.py tests that window)
    return a, b


def log_count(node, origin):
    return user_log_count(node, origin)


def floor_of(node, origin):
    rows = node.sql("SELECT log_floor FROM hdbrepl_progress WHERE origin = ?", origin)
    return rows[0][0] if rows else 0


def test_killed_node_catches_up_from_the_log(c):
    a, b = start_pair(c)
    # A member that is never up: no record is ever confirmed by every known node, so no
    # prune pass (every 5 s) removes records or moves floors while this test counts them
    # (on a slow run, under a sanitizer, a pass can fall between the counts).
    for n in (a, b):
        n.op("add_node", {"hostname": C_IP})
    a.sql("CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT, who TEXT INDEXED)")
    for i in range(20):
        a.sql("INSERT INTO t VALUES (?, ?, 'a')", i, f"a{i}")
    wait_rows(b, "SELECT count(*) FROM t", [[20]])
    # B's own writes; the last ones are committed right before the kill, maybe unsent.
    for i in range(1000, 1010):
        b.sql("INSERT INTO t VALUES (?, ?, 'b')", i, f"b{i}")
    b.kill()
    wait_until(lambda: not a.connected_to(B_IP), 10, "A sees B gone")
    # A writes while B is down: inserts, updates, deletes, one per transaction.
    for i in range(20, 220):
        a.sql("INSERT INTO t VALUES (?, ?, 'a')", i, f"a{i}")
    a.sql("UPDATE t SET v = 'updated' WHERE id < 5")
    a.sql("DELETE FROM t WHERE id BETWEEN 5 AND 9")
    b.restart()
    floor_before = floor_of(b, A_IP)
    log_b_before = log_count(b, A_IP)
    b.start(b.last_config)
    # Watch B's status closely while it catches up: a full copy would show "copying".
    states = set()
    # A's rows (B's own rows from before the kill may still be on their way to A).
    q = "SELECT id, v, who FROM t WHERE who = 'a' ORDER BY id"
    want_a = a.sql(q)

    def caught_up():
        for conn in b.status().get("connections", []):
            states.add(conn.get("state"))
            if "sync" in conn:
                states.add("sync-progress")
        return b.sql(q) == want_a

    try:
        wait_until(caught_up, 20, "B caught up with A after its restart", interval=0.02)
    except TestFailure as e:
        rows_b = b.sql(q)
        missing = sorted(set(r[0] for r in want_a) - set(r[0] for r in rows_b))
        extra = sorted(set(r[0] for r in rows_b) - set(r[0] for r in want_a))
        differ = [r for r in rows_b if r in want_a] and [r for r in rows_b if r[0] not in missing and r not in want_a]
        raise TestFailure(f"{e}\n    B has {len(rows_b)} rows, A {len(want_a)}; missing on B: {missing[:20]} ({len(missing)}); "
                          f"extra on B: {extra[:20]}; different: {differ[:10]}\n    states seen: {states}"
                          f"\n    B's status of A: {b.connection(A_IP)}\n    A's status of B: {a.connection(B_IP)}") from None
    # B's own writes survived the crash and reached A.
    wait_rows(a, "SELECT count(*) FROM t WHERE who = 'b'", [[10]], what="B's writes from before the kill on A")
    check_eq(b.scalar("SELECT count(*) FROM t WHERE who = 'b'"), 10, "B's own writes on B")
    wait_until(lambda: a.sql("SELECT * FROM t ORDER BY id") == b.sql("SELECT * FROM t ORDER BY id"), 10, "A and B identical")
    check("copying" not in states and "sync-progress" not in states, f"B did a full copy to catch up (states seen: {states})")
    # Caught up from the log: every transaction A wrote is in B's log too, and the
    # log floor (what a copy brought in without a log) did not move.
    wait_until(lambda: log_count(b, A_IP) == log_count(a, A_IP), 10,
               f"B's log holds all of A's transactions (A: {log_count(a, A_IP)})")
    check(log_count(b, A_IP) - log_b_before == 202, f"B logged A's 202 downtime transactions: {log_count(b, A_IP) - log_b_before}")
    check_eq(floor_of(b, A_IP), floor_before, "B's log floor for A (moves only with a copy)")
    # Both directions still work after the restart.
    b.sql("INSERT INTO t VALUES (5000, 'after', 'b')")
    a.sql("INSERT INTO t VALUES (5001, 'after', 'a')")
    wait_rows(a, "SELECT count(*) FROM t WHERE id >= 5000", [[2]])
    wait_rows(b, "SELECT count(*) FROM t WHERE id >= 5000", [[2]])


def test_writer_killed_mid_stream_prefix_consistent(c):
    a, b = start_pair(c)
    a.batch([("BEGIN", []),
             ("CREATE VIRTUAL TABLE seqs USING hdbrepl(id INTEGER PRIMARY KEY, v INTEGER)", []),
             ("CREATE VIRTUAL TABLE head USING hdbrepl(id INTEGER PRIMARY KEY, last INTEGER)", []),
             ("INSERT INTO head VALUES (0, -1)", []),
             ("COMMIT", [])])
    wait_rows(b, "SELECT last FROM head", [[-1]])
    # Transaction i inserts row i and sets head.last = i: a prefix of the stream is rows
    # 0..k with head.last = k. Anything else means a transaction was lost, reordered or torn.
    q = "SELECT (SELECT last FROM head WHERE id = 0), (SELECT count(*) FROM seqs), " \
        "(SELECT coalesce(max(id), -1) FROM seqs), (SELECT coalesce(sum(v), 0) FROM seqs)"

    def prefix_ok(r):
        last, n, mx, s = r
        return last == mx and n == last + 1 and s == (last * (last + 1)) // 2 * 3 if last >= 0 else n == 0

    done = []
    errors = []

    def writer():
        try:
            for i in range(100000):
                a.batch([("BEGIN", []), ("INSERT INTO seqs VALUES (?, ?)", [i, 3 * i]),
                         ("UPDATE head SET last = ? WHERE id = 0", [i]), ("COMMIT", [])], timeout=10)
                done.append(i)
        except Exception as e:  # the kill ends the stream
            errors.append(str(e))

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    bad = []
    kill_after = 150 + c.rng.randrange(200)
    deadline = time.monotonic() + 30
    for _ in range(100000):
        r = b.sql(q)[0]
        if not prefix_ok(r):
            bad.append(r)
        if len(done) >= kill_after or time.monotonic() > deadline:
            break
    a.kill()
    t.join(15)
    check(not t.is_alive(), "writer thread ended after the kill")
    print(f"    killed A after {len(done)} acknowledged transactions")
    check(len(done) >= kill_after, f"A wrote {len(done)} transactions before the deadline")
    r_b = b.sql(q)[0]
    check(not bad, f"reader on B saw non-prefix states during the stream: {bad[:5]}")
    check(prefix_ok(r_b), f"B after the kill holds a prefix: {r_b}")
    # A restarts: it holds at least every acknowledged transaction, and B converges to it.
    a.restart()
    r_a = a.sql(q)[0]
    check(prefix_ok(r_a), f"A after its crash holds a prefix: {r_a}")
    check(r_a[0] >= done[-1], f"A kept every acknowledged transaction: last {r_a[0]} < {done[-1]}")
    check(r_b[0] <= r_a[0], f"B is not ahead of A: {r_b} vs {r_a}")
    a.start(a.last_config)
    wait_rows(b, q, [r_a], timeout=30, what="B converges to A after A's restart")
    check_eq(b.sql("SELECT id, v FROM seqs ORDER BY id"), a.sql("SELECT id, v FROM seqs ORDER BY id"), "B vs A")
    # The stream resumes after the restart.
    a.batch([("BEGIN", []), ("INSERT INTO seqs VALUES (?, ?)", [r_a[0] + 1, 3 * (r_a[0] + 1)]),
             ("UPDATE head SET last = ? WHERE id = 0", [r_a[0] + 1]), ("COMMIT", [])])
    wait_rows(b, "SELECT last FROM head", [[r_a[0] + 1]])


def test_node_that_lost_its_database_gets_everything(c):
    # B keeps its name but loses its database file: it must not be taken for up to date.
    a, b = start_pair(c)
    a.sql("CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    a.sql("WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < 3000) "
          "INSERT INTO t SELECT x, 'v' || x FROM s")
    wait_rows(b, "SELECT count(*) FROM t WHERE id >= 0", [[3000]])
    b.sql("INSERT INTO t VALUES (-1, 'from b')")
    wait_rows(a, "SELECT v FROM t WHERE id = -1", [["from b"]])
    b.kill()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(b.db_path + suffix):
            os.remove(b.db_path + suffix)
    a.sql("INSERT INTO t VALUES (5000, 'while b was gone')")
    b.restart(b.last_config)
    q = "SELECT count(*), sum(id), sum(length(v)) FROM t"
    want = a.sql(q)
    wait_rows(b, q, want, timeout=30, what="B with a new empty database gets every row again")
    b.sql("INSERT INTO t VALUES (-2, 'b again')")
    wait_rows(a, "SELECT v FROM t WHERE id = -2", [["b again"]])


def test_confirm(c):
    a, b = start_pair(c)
    msg = a.sql_error("SELECT repl_confirm(1, 100)")
    check("committed" in msg, f"repl_confirm before any commit: {msg}")
    a.sql("CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    a.sql("INSERT INTO t VALUES (1, 'x')")
    t0 = time.monotonic()
    check_eq(a.scalar("SELECT repl_confirm(1, 5000)"), 1, "repl_confirm(1, 5000) with B up")
    check(time.monotonic() - t0 < 4.5, "confirmation came before the timeout")
    check_eq(b.scalar("SELECT v FROM t WHERE id = 1"), "x", "B has the confirmed row")
    # Asking for more nodes than there are: waits the timeout, answers how many did.
    t0 = time.monotonic()
    check_eq(a.scalar("SELECT repl_confirm(2, 700)"), 1, "repl_confirm(2, 700) with one peer")
    check(0.6 <= time.monotonic() - t0 < 5, f"repl_confirm(2, 700) took {time.monotonic() - t0:.2f}s")
    check_eq(a.scalar("SELECT repl_confirm(0, 0)"), 1, "repl_confirm(0, 0) returns at once")
    b.kill()
    wait_until(lambda: not a.connected_to(B_IP), 10, "A sees B gone")
    a.sql("INSERT INTO t VALUES (2, 'y')")
    t0 = time.monotonic()
    check_eq(a.scalar("SELECT repl_confirm(1, 1500)"), 0, "repl_confirm(1, 1500) with B down")
    dt = time.monotonic() - t0
    check(1.4 <= dt < 6, f"repl_confirm with B down took {dt:.2f}s (timeout 1.5s)")
    # B comes back: the same commit gets confirmed.
    b.restart(b.last_config)
    check_eq(a.scalar("SELECT repl_confirm(1, 15000)", timeout=30), 1, "repl_confirm after B's restart")
    check_eq(b.scalar("SELECT v FROM t WHERE id = 2"), "y", "B has the row after confirming")
    for bad in ("SELECT repl_confirm(-1, 10)", "SELECT repl_confirm(1, -5)", "SELECT repl_confirm('x', 10)"):
        check("repl_confirm" in a.sql_error(bad), f"{bad} names the function")


def test_peer_behind_the_retained_log_gets_a_full_resync(c):
    """A short logRetention prunes A's log while B is down; B back needs records A no
    longer has: A says so (log line, cluster_status) and sends a full copy, which merges:
    B's own rows, written while it was cut off, survive."""
    extra = {"logRetention": "1s"}
    a, b = c.node(A_IP), c.node(B_IP)
    a.start(routes=[B_IP], extra=extra)
    b.start(routes=[A_IP], extra=extra)
    wait_connected(a, b)
    a.sql("CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT)")
    wait_until(lambda: b.sql("SELECT count(*) FROM sqlite_schema WHERE name = 'dog'") == [[1]], 10, "table dog on B")
    b.kill()
    for t in range(5):
        a.batch([("BEGIN", [])] + [("INSERT INTO dog VALUES (?, 'a')", [t * 100 + k]) for k in range(100)] + [("COMMIT", [])])
    # Pruning runs every 5 s; wait until A's log keeps only its newest record.
    wait_until(lambda: log_count(a, A_IP) <= 1 and floor_of(a, A_IP) > 0, 20, "A's log pruned past what B has")
    check_eq(a.connection(B_IP)["fullResyncs"], 0, "no full resync yet")
    b.restart()
    b.sql("INSERT INTO dog VALUES (-1, 'b, while cut off')")  # before B is back on the network
    b.start(b.last_config)
    wait_rows(b, "SELECT count(*) FROM dog WHERE name = 'a'", [[500]], timeout=20, what="every row of A on B after the full resync")
    entry = wait_until(lambda: (lambda e: e if e and e.get("fullResyncs", 0) >= 1 else None)(a.connection(B_IP)), 10,
                       "A's cluster_status to count a full resync for B")
    check(entry.get("lastFullResync", "").endswith("GMT"), f"when it happened: {entry.get('lastFullResync')!r}")
    check(any("needs changes our log no longer holds" in line for line in a.log_lines()), "A logs why it sends a full copy")
    check_eq(b.sql("SELECT name FROM dog WHERE id = -1"), [["b, while cut off"]], "B's own row survives the full resync")
    wait_rows(a, "SELECT name FROM dog WHERE id = -1", [["b, while cut off"]], what="B's own row reaches A")


def test_log_pruning_keeps_up_with_many_small_transactions(c):
    """Pruning goes on in batches until nothing more is prunable, so a log under steady
    writes stays bounded by the retention (one 256-record batch per 5 s pass would fall
    behind at about 50 commits a second)."""
    a = c.node(A_IP)
    a.start(extra={"logRetention": "2s"})
    a.sql("CREATE VIRTUAL TABLE tick USING hdbrepl(id INTEGER PRIMARY KEY)")
    a.batch([("INSERT INTO tick VALUES (?)", [k]) for k in range(3000)])  # 3,000 commits
    # On a slow run (TSan) a pass may already have pruned the older part during the writes;
    # what matters is that more than two 256-record batches are left for one pass to take.
    check(log_count(a, A_IP) > 600, f"the commits are in the log ({log_count(a, A_IP)})")
    wait_until(lambda: log_count(a, A_IP) <= 1, 15, "every record older than the retention pruned within two passes")


if __name__ == "__main__":
    run_tests(globals())
