#!/usr/bin/python3
"""Explicit subscriptions with real node processes (add_node "subscriptions"): they replace
the automatic replication for that node, table by table.

- publish-only: A adds B with {table: pub, publish: true, subscribe: false}; A's writes to
  `pub` reach B, B's writes to `pub` do not reach A, and A's other tables do not reach B;
- subscribe-only: A adds B with {table: sub, publish: false, subscribe: true}; B's writes
  to `sub` reach A, A's writes to `sub` do not reach B;
- update_node replaces the subscriptions: switching publish on makes later writes flow.
"""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import assert_stays, check_eq, run_tests, wait_connected, wait_rows  # noqa: E402

A_IP, B_IP = "127.0.0.2", "127.0.0.3"


def pair(c, subs):
    """A and B connected, A holding explicit subscriptions for B; both have tables pub, sub, other."""
    a, b = c.node(A_IP), c.node(B_IP)
    a.start()
    b.start()
    for n in (a, b):
        for t in ("pub", "sub", "other"):
            n.sql(f"CREATE VIRTUAL TABLE {t} USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    reply = a.op("add_node", {"hostname": B_IP, "subscriptions": subs})
    check_eq(reply, {"message": f"Successfully added '{B_IP}' to cluster"}, "add_node with subscriptions")
    b.op("add_node", {"hostname": A_IP})
    wait_connected(a, b)
    return a, b


def test_publish_only(c):
    a, b = pair(c, [{"database": "main", "table": "pub", "publish": True, "subscribe": False}])
    a.sql("INSERT INTO pub VALUES (1, 'from a')")
    wait_rows(b, "SELECT v FROM pub WHERE id = 1", [["from a"]], what="A's write to pub on B")
    b.sql("INSERT INTO pub VALUES (2, 'from b')")
    a.sql("INSERT INTO other VALUES (3, 'from a, other table')")
    a.sql("INSERT INTO pub VALUES (4, 'from a, later')")
    # Links deliver in order: once the later write arrives, the other-table one would have too.
    wait_rows(b, "SELECT v FROM pub WHERE id = 4", [["from a, later"]], what="A's later write to pub on B")
    check_eq(b.sql("SELECT count(*) FROM other"), [[0]], "A's table `other` (not subscribed) on B")
    # B's write gets a second's chance to arrive (it must not).
    assert_stays(lambda: a.sql("SELECT count(*) FROM pub WHERE id = 2") == [[0]], 1.0, "B's write to pub stays off A")
    check_eq(a.sql("SELECT count(*) FROM pub WHERE id = 2"), [[0]], "B's write to pub on A (publish-only)")


def test_subscribe_only(c):
    a, b = pair(c, [{"database": "main", "table": "sub", "publish": False, "subscribe": True}])
    b.sql("INSERT INTO sub VALUES (1, 'from b')")
    wait_rows(a, "SELECT v FROM sub WHERE id = 1", [["from b"]], what="B's write to sub on A")
    a.sql("INSERT INTO sub VALUES (2, 'from a')")
    b.sql("INSERT INTO sub VALUES (3, 'from b, later')")
    wait_rows(a, "SELECT v FROM sub WHERE id = 3", [["from b, later"]], what="B's later write on A")
    assert_stays(lambda: b.sql("SELECT count(*) FROM sub WHERE id = 2") == [[0]], 1.0, "A's write to sub stays off B")
    check_eq(b.sql("SELECT count(*) FROM sub WHERE id = 2"), [[0]], "A's write to sub on B (subscribe-only)")
    b.sql("INSERT INTO other VALUES (9, 'from b, other table')")
    b.sql("INSERT INTO sub VALUES (10, 'from b, last')")
    wait_rows(a, "SELECT v FROM sub WHERE id = 10", [["from b, last"]], what="B's last write on A")
    check_eq(a.sql("SELECT count(*) FROM other"), [[0]], "B's table `other` (not subscribed) on A")


def test_update_node_replaces_subscriptions(c):
    a, b = pair(c, [{"database": "main", "table": "pub", "publish": False, "subscribe": False}])
    a.sql("INSERT INTO pub VALUES (1, 'before')")
    assert_stays(lambda: b.sql("SELECT count(*) FROM pub") == [[0]], 1.0, "pub stays empty on B while nothing is published")
    check_eq(b.sql("SELECT count(*) FROM pub"), [[0]], "pub on B while nothing is published")
    reply = a.op("update_node", {"hostname": B_IP, "subscriptions": [
        {"database": "main", "table": "pub", "publish": True, "subscribe": True}]})
    check_eq(reply, {"message": f"Successfully updated '{B_IP}'"}, "update_node")
    a.sql("INSERT INTO pub VALUES (2, 'after')")
    wait_rows(b, "SELECT v FROM pub WHERE id = 2", [["after"]], what="the write after update_node on B")
    b.sql("INSERT INTO pub VALUES (3, 'back')")
    wait_rows(a, "SELECT v FROM pub WHERE id = 3", [["back"]], what="B's write after subscribe was switched on")


if __name__ == "__main__":
    run_tests(globals())
