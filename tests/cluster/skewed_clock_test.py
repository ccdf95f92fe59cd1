#!/usr/bin/python3
"""The chaos run's skewed wall clock (tests/chaos/skewed_clock.c), preloaded into a node
process, moves the versions that node stamps by the skew, and a peer with a true clock
treats them as the product does any clock ahead of it:

- a node 30 s ahead stamps its commits 30 s ahead (the HLC reads the skewed clock);
- the same node unskewed stamps them now;
- a fresh peer with maxClockSkew 5 s refuses a copy from that node (its versions are too
  far ahead), and a node 2 s ahead replicates normally.
"""
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import assert_stays, check, run_tests, wait_connected, wait_rows, wait_until  # noqa: E402

A_IP, B_IP = "127.0.0.2", "127.0.0.3"
DOG = "CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT)"
SHIM = os.environ.get("CHAOS_SKEWED_CLOCK", "")


def skewed(ms):
    return {"LD_PRELOAD": (os.environ.get("LD_PRELOAD", "") + " " + SHIM).strip(), "CHAOS_CLOCK_SKEW_MS": str(ms)}


def commit_ms(n, sql):
    n.sql(sql)
    return json.loads(n.scalar("SELECT repl_last_commit()"))["version"] >> 16


def test_a_skewed_node_stamps_its_commits_ahead(c):
    check(os.path.exists(SHIM), f"the skewed clock library {SHIM!r} was built")
    a = c.node(A_IP, env=skewed(30000))
    a.start()
    a.sql(DOG)
    got = commit_ms(a, "INSERT INTO dog VALUES (1, 'rex')")
    ahead = got - int(time.time() * 1000)
    check(25000 <= ahead <= 40000, f"a commit 30 s ahead: it is {ahead} ms ahead")


def test_the_same_node_unskewed_stamps_now(c):
    a = c.node(A_IP, env=skewed(0))
    a.start()
    a.sql(DOG)
    got = commit_ms(a, "INSERT INTO dog VALUES (1, 'rex')")
    check(abs(got - int(time.time() * 1000)) < 5000, f"a commit now: {got - int(time.time() * 1000)} ms off")


def test_a_fresh_peer_refuses_a_copy_from_a_node_too_far_ahead(c):
    far = c.node(A_IP, env=skewed(30000))
    b = c.node(B_IP)
    far.start(routes=[B_IP], extra={"maxClockSkew": "5s"})
    far.sql(DOG)
    far.sql("INSERT INTO dog VALUES (1, 'from the future')")
    b.start(routes=[A_IP], extra={"maxClockSkew": "5s"})

    def refused():
        return [r for r in b.status()["refusals"]["recent"] if "ahead of this node's clock" in r["reason"]]

    wait_until(refused, 10, "B refusing the copy whose versions are 30 s ahead (cluster_status refusals)")
    assert_stays(lambda: b.scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'dog'") == 0, 2.0,
                 "none of the copy (its CREATE first) applied on B")


def test_a_node_a_little_ahead_replicates(c):
    near = c.node(A_IP, env=skewed(2000))
    b = c.node(B_IP)
    near.start(routes=[B_IP], extra={"maxClockSkew": "5s"})
    b.start(routes=[A_IP], extra={"maxClockSkew": "5s"})
    wait_connected(near, b)
    near.sql(DOG)
    near.sql("INSERT INTO dog VALUES (1, 'slightly ahead')")
    wait_rows(b, "SELECT name FROM dog WHERE id = 1", [["slightly ahead"]])


if __name__ == "__main__":
    run_tests(globals())
