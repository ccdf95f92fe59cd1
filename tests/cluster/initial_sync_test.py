#!/usr/bin/python3
"""Initial synchronisation with real node processes:

- A holds 100,000 rows (written in big transactions before its node ever ran); B starts
  empty with a route to A and receives every row, while A keeps inserting, updating and
  deleting during the copy (those changes arrive too). Compared by count, sums and a hash
  of every row. B's cluster_status shows the copy's progress (state "copying" / sync
  rowsDone, rowsTotal) or the copy completes before a poll sees it;
- add_node with start_time on a new node C: rows older than start_time are skipped, newer
  ones arrive, and C's own writes reach A;
- rows of ~20 KiB with maxFrameBytes 1 MiB: chunks budgeted in bytes keep within a frame
  and the copy brings every row (checked by content).
"""
import datetime
import hashlib
import json
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TestFailure, check, check_eq, hold, pick_port, run_tests, table_digest, wait_clock_past,  # noqa: E402
                     wait_connected, wait_rows, wait_settled, wait_until)

A_IP, B_IP, C_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4"
ROWS = 100_000


def wait_dial_refused(node, peer_ip):
    """Waits until `node` is running and has tried `peer_ip`, which is not up yet."""
    wait_until(lambda: (lambda x: x and x.get("state") != "connected" and x.get("lastError"))(node.connection(peer_ip)), 10,
               f"{node.ip} running, its dial of {peer_ip} refused", describe=lambda: node.connection(peer_ip))


def test_initial_copy_of_100k_rows_while_writing(c):
    a = c.node(A_IP)
    a.sql("CREATE VIRTUAL TABLE big USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER INDEXED, pad TEXT)")
    t0 = time.monotonic()
    step = 20_000
    for lo in range(0, ROWS, step):
        a.sql("WITH RECURSIVE s(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM s WHERE x + 1 < ?) "
              "INSERT INTO big SELECT x, 'name-' || x, x % 97, hex(randomblob(8)) FROM s", lo, lo + step, timeout=120)
    check_eq(a.scalar("SELECT count(*) FROM big"), ROWS, "rows on A")
    print(f"    wrote {ROWS} rows on A in {time.monotonic() - t0:.1f}s")
    a.start(routes=[B_IP])
    # B joins a running A (both starting at once has its own test below).
    wait_dial_refused(a, B_IP)
    b = c.node(B_IP)
    b.start(routes=[A_IP])
    # Writes on A during the copy: new rows, updates and deletes of copied rows.
    rng = c.rng
    errors, n_done = [], [0]
    stop = threading.Event()

    def writer():
        try:
            for i in range(400):
                if stop.is_set():
                    return
                k = rng.randrange(ROWS)
                a.batch([("BEGIN", []),
                         ("INSERT INTO big VALUES (?, ?, ?, 'live')", [ROWS + i, f"live-{i}", i % 97]),
                         ("UPDATE big SET name = ? WHERE id = ?", [f"upd-{i}", k]),
                         ("DELETE FROM big WHERE id = ?", [(k * 7 + 13) % ROWS]),
                         ("COMMIT", [])])
                n_done[0] += 1
                hold(0.005, "spread the writes over the copy")
        except Exception as e:
            errors.append(str(e))

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    seen = []
    deadline = time.monotonic() + 60
    for _ in range(100000):  # samples B's status until the writer is done (bounded)
        conn = b.connection(A_IP)
        if conn:
            if conn.get("state") == "copying" or "sync" in conn:
                seen.append((conn.get("state"), conn.get("sync")))
        if not t.is_alive() or time.monotonic() > deadline:
            break
        t.join(0.02)  # the sampling interval, cut short when the writer is done
    stop.set()
    t.join(30)
    check(not errors, f"writer on A failed: {errors}")
    print(f"    {n_done[0]} writes on A during the copy; B's status showed progress {len(seen)} times"
          f"{': first ' + str(seen[0]) + ', last ' + str(seen[-1]) if seen else ''}")
    for state, sync in seen:
        if sync is not None:
            check(isinstance(sync.get("rowsDone"), int) and isinstance(sync.get("rowsTotal"), int),
                  f"sync progress fields: {sync}")
            check(sync["rowsDone"] <= sync["rowsTotal"] or sync["rowsTotal"] == 0, f"rowsDone <= rowsTotal: {sync}")
    q = "SELECT count(*), sum(id), sum(grp), sum(length(name)), sum(length(pad)) FROM big"
    want = a.sql(q, timeout=60)
    try:
        wait_rows(b, q, want, timeout=30, what="B has every row of A (count and sums)")
    except Exception:
        print(f"    B's status of A: {b.connection(A_IP)}")
        raise
    check_eq(table_digest(b, "big"), table_digest(a, "big"), "hash of every row, B vs A")
    check_eq(b.scalar("SELECT count(*) FROM big WHERE pad = 'live'"), n_done[0], "rows written during the copy on B")
    # The copy is over: B reports a connected peer, no sync progress, and replicates both ways.
    conn = wait_until(lambda: (lambda x: x if x and x.get("state") == "connected" else None)(b.connection(A_IP)),
                      10, "B's link to A in state connected after the copy")
    check("sync" not in conn or conn["sync"] is None, f"no sync progress after the copy: {conn}")
    b.sql("INSERT INTO big VALUES (-1, 'from b', 0, 'b')")
    wait_rows(a, "SELECT name FROM big WHERE id = -1", [["from b"]])
    # The copy built B's INDEXED column index at its end (deferred while copying): it is
    # there, none is still waiting, and queries on grp use it.
    check_eq(b.scalar("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'big_data' AND sql IS NOT NULL"), 1,
             "secondary indexes of big_data on B after the copy")
    check_eq(b.scalar("SELECT count(*) FROM hdbrepl_meta WHERE key GLOB 'deferred_index:*'"), 0, "indexes still deferred on B")
    plan = " ".join(r[-1] for r in b.sql("EXPLAIN QUERY PLAN SELECT id FROM big_data WHERE grp = 5"))
    check("USING INDEX" in plan or "USING COVERING INDEX" in plan, f"B's shadow-table query on grp uses the index: {plan}")
    check_eq(b.sql("SELECT count(*) FROM big WHERE grp = 5"), a.sql("SELECT count(*) FROM big WHERE grp = 5"), "grp = 5 on B vs A")


def test_empty_tables_come_with_the_copy(c):
    # A table with no rows at the source has nothing to stream in chunks, but the copy's
    # progress covers its CREATE: the receiver must create it too, and later rows must apply.
    a = c.node(A_IP)
    a.sql("CREATE VIRTUAL TABLE empty_one USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    a.sql("CREATE VIRTUAL TABLE emptied USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    a.sql("INSERT INTO emptied VALUES (1, 'gone')")
    a.sql("DELETE FROM emptied")
    a.start(routes=[B_IP])
    b = c.node(B_IP)
    b.start(routes=[A_IP])
    wait_connected(b, a)
    for t in ("empty_one", "emptied"):
        wait_until(lambda t=t: b.sql("SELECT count(*) FROM sqlite_schema WHERE name = ?", t) == [[1]], 10, f"table {t} on B after the copy")
    a.sql("INSERT INTO empty_one VALUES (1, 'later')")
    wait_rows(b, "SELECT v FROM empty_one", [["later"]], what="a later row in the table that was empty")
    check_eq(b.sql("SELECT count(*) FROM emptied"), [[0]], "the deleted row stays deleted on B")


def test_copy_when_both_nodes_start_together(c):
    # Both databases fresh, routes to each other, started at the same moment: each asks
    # the other for a copy and both dial. The copy of A's rows must complete.
    n = 20_000
    for round_ in range(3):
        if round_:
            c.close()
            c.nodes = []
        a, b = c.node(A_IP, db_name=f"a{round_}.db"), c.node(B_IP, db_name=f"b{round_}.db")
        a.sql("CREATE VIRTUAL TABLE big USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT)")
        a.sql("WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < ?) "
              "INSERT INTO big SELECT x, 'name-' || x FROM s", n)
        a.start(routes=[B_IP])
        b.start(routes=[A_IP])
        seen = []

        def copied():
            conn = b.connection(A_IP)
            seen[:] = [conn]
            return conn and conn.get("state") == "connected" and \
                b.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'big'") == 1 and \
                b.scalar("SELECT count(*) FROM big") == n

        try:
            wait_until(copied, 15, f"round {round_}: B copied A's {n} rows and its link is back to 'connected'")
        except Exception as e:
            rows = b.scalar("SELECT count(*) FROM big") if b.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'big'") else 0
            raise TestFailure(f"{e}\n    B's status of A: {seen}\n    rows on B: {rows}") from None
        b.sql("INSERT INTO big VALUES (-1, 'from b')")
        wait_rows(a, "SELECT name FROM big WHERE id = -1", [["from b"]], what=f"round {round_}: B's write on A")


def test_new_node_with_two_peers_copies_once(c):
    # A and B replicate with data; C starts empty with routes to both: it copies from one
    # of them only, gets everything, and then streams from both.
    a, b = c.node(A_IP), c.node(B_IP)
    a.start(routes=[B_IP, C_IP])
    b.start(routes=[A_IP, C_IP])
    wait_connected(a, b)
    wait_connected(b, a)
    wait_settled(a, b)
    a.sql("CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    a.sql("WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < 5000) "
          "INSERT INTO t SELECT x, 'a' || x FROM s")
    wait_until(lambda: b.scalar("SELECT count(*) FROM sqlite_master WHERE name = 't'") == 1, 15, "table t on B")
    b.sql("WITH RECURSIVE s(x) AS (SELECT 5000 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < 10000) "
          "INSERT INTO t SELECT x, 'b' || x FROM s")
    q = "SELECT count(*), sum(id), sum(length(v)) FROM t"
    wait_until(lambda: a.sql(q) == b.sql(q) and a.sql(q)[0][0] == 10000, 20, "A and B hold both halves")
    want = a.sql(q)
    n3 = c.node(C_IP)
    n3.start(routes=[A_IP, B_IP])
    copying = set()

    def done():
        for conn in n3.status().get("connections", []):
            if conn.get("state") == "copying" or conn.get("sync"):
                copying.add(conn["name"])
        return n3.scalar("SELECT count(*) FROM sqlite_master WHERE name = 't'") == 1 and n3.sql(q) == want

    wait_until(done, 30, "C has every row", interval=0.02)
    check(len(copying) <= 1, f"C copied from more than one peer: {copying}")
    wait_connected(n3, a)
    wait_connected(n3, b)
    a.sql("INSERT INTO t VALUES (-1, 'new a')")
    b.sql("INSERT INTO t VALUES (-2, 'new b')")
    wait_rows(n3, "SELECT id FROM t WHERE id < 0 ORDER BY id", [[-2], [-1]], what="new rows of A and B on C")


def test_copy_from_a_node_whose_log_lacks_the_history(c):
    # D holds 20,000 rows; A joins D (copy), then D goes away. A's log does not hold those
    # rows (they came by copy), so a new node B can only get them by a copy from A.
    n = 20_000
    d = c.node("127.0.0.5")
    d.sql("CREATE VIRTUAL TABLE big USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT)")
    d.sql("WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < ?) "
          "INSERT INTO big SELECT x, 'name-' || x FROM s", n)
    d.start(routes=[A_IP])
    wait_dial_refused(d, A_IP)  # A joins a running D
    a = c.node(A_IP)
    a.start(routes=["127.0.0.5", B_IP])
    wait_until(lambda: a.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'big'") == 1 and
               a.scalar("SELECT count(*) FROM big") == n, 30, f"A copied D's {n} rows")
    d.kill()
    in_log = a.scalar("SELECT count(*) FROM hdbrepl_log l JOIN hdbrepl_origins o ON o.id = l.origin WHERE o.name = ?", "127.0.0.5")
    print(f"    A's log holds {in_log} of D's transactions after the copy")
    a.sql("INSERT INTO big VALUES (-1, 'a after the copy')")
    b = c.node(B_IP)
    b.start(routes=[A_IP])
    q = "SELECT count(*), sum(id), sum(length(name)) FROM big"
    want = a.sql(q)
    try:
        wait_rows(b, q, want, timeout=30, what="B got every row from A (by a copy: A's log lacks D's history)")
    except Exception:
        print(f"    B's status of A: {b.connection(A_IP)}")
        raise


def iso_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_ms(text):
    return int(datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp() * 1000 + 0.5)


def test_start_time_skips_old_rows(c):
    a = c.node(A_IP)
    a.start()
    a.sql("CREATE VIRTUAL TABLE ev USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    for i in range(50):
        a.sql("INSERT INTO ev VALUES (?, 'old')", i)
    a.sql("UPDATE ev SET v = 'old-updated' WHERE id < 10")
    # start_time falls after every old version and before every new one: the clock passes
    # A's newest version before it is read, and passes it before A writes again.
    newest = a.scalar("SELECT max(clock) FROM hdbrepl_log") >> 16
    wait_clock_past(newest, "A's newest version")
    start = iso_now()
    wait_clock_past(iso_ms(start), "start_time")
    # A knows C (the plain port accepts known nodes only); C adds A with a start time.
    n3 = c.node(C_IP)
    n3.start()
    reply = a.op("add_node", {"hostname": C_IP})
    check_eq(reply, {"message": f"Successfully added '{C_IP}' to cluster"}, "add_node on A")
    reply = n3.op("add_node", {"hostname": A_IP, "start_time": start})
    check_eq(reply, {"message": f"Successfully added '{A_IP}' to cluster"}, "add_node with start_time on C")
    wait_connected(n3, a)
    # New changes arrive, including an update of an old row (as of that update).
    for i in range(100, 110):
        a.sql("INSERT INTO ev VALUES (?, 'new')", i)
    a.sql("UPDATE ev SET v = 'touched' WHERE id = 20")
    wait_until(lambda: n3.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'ev'") == 1, 15,
               "table ev on C (its definition travels with the new changes)")
    wait_rows(n3, "SELECT count(*) FROM ev WHERE v = 'new'", [[10]], what="the 10 new rows on C")
    wait_rows(n3, "SELECT v FROM ev WHERE id = 20", [["touched"]], what="the update after start_time on C")
    old = n3.sql("SELECT id, v FROM ev WHERE v LIKE 'old%' ORDER BY id")
    check(old == [], f"C received {len(old)} rows written before start_time: {old[:5]}")
    check_eq(n3.scalar("SELECT count(*) FROM ev"), 11, "rows on C")
    # C's own writes reach A.
    n3.sql("INSERT INTO ev VALUES (500, 'from c')")
    wait_rows(a, "SELECT v FROM ev WHERE id = 500", [["from c"]])


def test_cut_copy_resumes_where_it_stopped(c):
    """B's initial copy stops half way (B's quota fills: intake pauses), B is killed -9 there,
    and A keeps writing, also to rows B already has. B restarted (no quota) continues after
    the last key it holds instead of starting over, and ends with exactly A's rows, the
    changes made to already-copied rows included."""
    n = 40_000
    a = c.node(A_IP)
    a.sql("CREATE VIRTUAL TABLE big USING hdbrepl(id INTEGER PRIMARY KEY, pad TEXT)")
    a.sql("CREATE VIRTUAL TABLE small USING hdbrepl(id TEXT PRIMARY KEY, v INTEGER)")  # sorts after 'big'
    a.sql("WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < ?) "
          "INSERT INTO big SELECT x, printf('%.100c', 'p') FROM s", n)
    a.sql("INSERT INTO small VALUES ('k1', 1), ('k2', 2)")
    a.sql("DELETE FROM big WHERE id % 1000 = 999")  # tombstones are copied after the live rows
    a.start(routes=[B_IP])
    b = c.node(B_IP)
    b.start(routes=[A_IP], extra={"maxDatabaseSize": 2 * 1024 * 1024})
    wait_until(lambda: b.status().get("intakePaused"), 30, "B's copy to stop at its quota")
    have = b.scalar("SELECT count(*) FROM big")
    check(0 < have < n, f"B holds part of the copy when it is cut ({have} rows)")
    b.kill()
    # Meanwhile A changes rows B already has, and rows it has not got yet.
    a.sql("UPDATE big SET pad = 'changed' WHERE id IN (0, 1, ?)", n - 2)
    a.sql("DELETE FROM big WHERE id = 2")
    b.restart(b.config(routes=[A_IP]))
    check(any("it resumes there" in line for line in b.log_lines()), "B says its copy resumes")
    q = "SELECT count(*), sum(id), sum(length(pad)), sum(pad = 'changed') FROM big"
    wait_rows(b, q, a.sql(q), timeout=30, what="B ends with exactly A's rows")
    wait_rows(b, "SELECT id, v FROM small ORDER BY id", [["k1", 1], ["k2", 2]], what="the table after the cut point")
    check_eq(table_digest(b, "big"), table_digest(a, "big"), "every row of big, hashed")
    sent = [line for line in a.log_lines() if "resumed copy for " + B_IP + " sent:" in line]
    check(sent, f"A logs the resumed copy: {a.log_tail()}")
    resent = int(sent[-1].split("sent: ")[1].split()[0])
    check(resent < n - have + 1000, f"the resumed copy sent only what B lacked ({resent} rows; B had {have} of {n})")
    check(any("resumed initial copy is complete" in line for line in b.log_lines()), "B says the resumed copy completed")
    # And it streams afterwards.
    a.sql("INSERT INTO big VALUES (-5, 'after')")
    wait_rows(b, "SELECT pad FROM big WHERE id = -5", [["after"]], what="a write after the resumed copy")


def paged_digest(node, table, n, page=40):
    """(count, sha1 of every row's id, body and note) of a table of large rows, read a page
    at a time (one reply of every row would take the harness minutes)."""
    h, count = hashlib.sha1(), 0
    for lo in range(0, n, page):
        rows = node.sql(f"SELECT id, hex(body), note FROM {table} WHERE id >= ? AND id < ? ORDER BY id", lo, lo + page, timeout=60)
        count += len(rows)
        h.update(json.dumps(rows).encode())
    return count, h.hexdigest()


def test_copy_of_rows_near_a_frame_in_size(c):
    # Rows of ~20 KiB with maxFrameBytes 1 MiB: 2,000 such rows would make a copy chunk of
    # ~40 MiB, which no frame carries (and a resumed copy would build the same chunk again).
    # Chunks are budgeted in bytes, so the copy goes through and brings every row.
    small_frames = {"maxFrameBytes": "1MiB"}
    n = 1200
    a = c.node(A_IP)
    a.sql("CREATE VIRTUAL TABLE wide USING hdbrepl(id INTEGER PRIMARY KEY, body BLOB, note TEXT)")
    # 1 KiB to 39 KiB each (20 KiB on average), and one row of 600 KiB: more than a chunk's
    # budget (256 KiB here), so it goes in a chunk of its own.
    a.sql("WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < ?) "
          "INSERT INTO wide SELECT x, randomblob(1024 + (x * 7919) % 38912), 'row ' || x FROM s", n, timeout=120)
    a.sql("UPDATE wide SET body = randomblob(614400) WHERE id = 601")
    check(a.scalar("SELECT avg(length(body)) FROM wide") > 19_000, "rows average ~20 KiB")
    a.start(routes=[B_IP], extra=small_frames)
    b = c.node(B_IP)
    b.start(routes=[A_IP], extra=small_frames)
    wait_until(lambda: b.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'wide'") == 1 and
               b.scalar("SELECT count(*) FROM wide") == n, 60, f"B holds A's {n} rows")
    check_eq(paged_digest(b, "wide", n), paged_digest(a, "wide", n), "every row on B, by content")
    log = a.log_text()
    check("exceeds maxFrameBytes" not in log, "no copy chunk was too big for a frame")
    sent = [line for line in a.log_lines() if "copy for " + B_IP + " sent:" in line]
    check(len(sent) == 1, f"one copy, not restarted: {sent}")
    chunks = int(sent[0].split(" rows in ")[1].split()[0])
    # ~24 MiB in chunks of at most 256 KiB: about a hundred of them.
    check(90 <= chunks <= 140, f"chunks of the byte budget: {sent[0]}")


if __name__ == "__main__":
    run_tests(globals())
