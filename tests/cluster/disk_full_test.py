#!/usr/bin/python3
"""A node that cannot write (disk full, or its maxDatabaseSize quota reached) pauses intake,
says so in cluster_status, and resumes without loss once space returns.

SQLite's max_page_count is how maxDatabaseSize is enforced, and it fails a write with
SQLITE_FULL exactly as a full disk does, so this exercises the same path. B's own user
connection has no quota: it fills a local (replicate=false) table, which then stands for
the space that returns when it is emptied.
"""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import assert_stays, check, check_eq, run_tests, wait_connected, wait_rows, wait_until  # noqa: E402

A_IP, B_IP = "127.0.0.2", "127.0.0.3"
QUOTA = 4 * 1024 * 1024


def db_bytes(node):
    return node.scalar("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")


def test_full_database_pauses_intake_and_resumes_without_loss(c):
    a, b = c.node(A_IP), c.node(B_IP)
    a.start(routes=[B_IP])
    b.start(routes=[A_IP], extra={"maxDatabaseSize": QUOTA})
    wait_connected(a, b)
    wait_connected(b, a)
    a.sql("CREATE VIRTUAL TABLE doc USING hdbrepl(id INTEGER PRIMARY KEY, body BLOB)")
    wait_until(lambda: b.sql("SELECT count(*) FROM sqlite_schema WHERE name = 'doc'") == [[1]], 10, "table doc on B")
    # B's user fills the file up to about the quota with local rows.
    b.sql("CREATE VIRTUAL TABLE junk USING hdbrepl(id INTEGER PRIMARY KEY, pad BLOB, replicate=false)")
    k = 0
    for _ in range(200):  # bounded: ~64 KiB a round
        if db_bytes(b) >= QUOTA - 64 * 1024:
            break
        b.batch([("BEGIN", [])] + [("INSERT INTO junk VALUES (?, randomblob(4000))", [k + j]) for j in range(16)] + [("COMMIT", [])])
        k += 16
    check(db_bytes(b) >= QUOTA - 64 * 1024, f"B's file reached about the quota ({db_bytes(b)} bytes)")

    # A writes 1 MB in 20 transactions: B cannot take it.
    for t in range(20):
        a.batch([("BEGIN", [])] + [("INSERT INTO doc VALUES (?, randomblob(1000))", [t * 50 + j]) for j in range(50)] + [("COMMIT", [])])
    paused = wait_until(lambda: b.status().get("intakePaused"), 15, "B's cluster_status to show intake paused")
    check("full" in paused.lower(), f"the pause names the cause: {paused!r}")
    check(any("intake paused" in line for line in b.log_lines()), "a log line on B says intake paused")
    held = b.scalar("SELECT count(*) FROM doc")
    check(held < 1000, f"B could not take everything while full ({held} rows)")
    # The link stays up (a full disk is not the peer's fault) and A keeps serving.
    check(b.connected_to(A_IP) and a.connected_to(B_IP), "the link stays up while B is paused")
    a.sql("INSERT INTO doc VALUES (5000, x'01')")
    backlog = wait_until(lambda: (a.connection(B_IP) or {}).get("backlog"), 10, "A to count a backlog for B")
    check(backlog > 0, f"A shows a backlog for B ({backlog})")
    assert_stays(lambda: b.status().get("intakePaused"), 1.0, "still paused for a second while nothing changed")

    # Space returns: B's user empties its local table (freed pages are reused).
    b.sql("DELETE FROM junk")
    wait_rows(b, "SELECT count(*) FROM doc", [[1001]], timeout=20, what="every row of A on B once space returned")
    wait_until(lambda: b.status().get("intakePaused") is None, 10, "intakePaused cleared")
    check(any("intake resumed" in line for line in b.log_lines()), "a log line on B says intake resumed")
    check_eq(b.sql("SELECT sum(length(body)) FROM doc"), a.sql("SELECT sum(length(body)) FROM doc"), "the same bytes on both")
    # Still replicating both ways.
    b.sql("INSERT INTO doc VALUES (6000, x'02')")
    wait_rows(a, "SELECT count(*) FROM doc WHERE id = 6000", [[1]], what="B's write reaches A after the pause")


def test_max_database_size_is_validated(c):
    n = c.node(A_IP)
    err = n.sql_error("SELECT repl_start(?)", n.config(extra={"maxDatabaseSize": "lots"}))
    check("maxDatabaseSize" in err, f"a bad maxDatabaseSize names the key: {err}")
    err = n.sql_error("SELECT repl_start(?)", n.config(extra={"maxDatabaseSize": 10}))
    check("maxDatabaseSize" in err, f"a too small maxDatabaseSize names the key: {err}")


if __name__ == "__main__":
    run_tests(globals())
