#!/usr/bin/python3
"""Transactions larger than a frame (txn_record.hpp, "Parts"; docs/protocol.md):

- a transaction of several times maxFrameBytes replicates, and a reader polling the peer
  never sees part of it; transactions committed after it follow it in order;
- the parts received before the last wait in the receiver's database (hdbrepl_staged) and
  are gone once it is applied;
- a third node that hears the transaction only through the peer (relay) gets all of it;
- a node that joins later gets it in its initial copy;
- a member that sends parts by hand (protocol_client.py): two parts apply together, and a
  last part whose earlier parts never came holds its origin (cluster_status heldOrigins says
  why) and applies nothing, while the other origins go on.

A link cut, the receiver stopped, the receiver killed and the sender killed in the middle of
such a transfer are in-process tests (tests/inproc/big_txn_test.cpp), where a fault hook
holds the receiver before each part.
"""
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protocol_client as pc  # noqa: E402
from harness import check, check_eq, run_tests, wait_connected, wait_until  # noqa: E402

A_IP, B_IP, C_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4"
FRAME = {"maxFrameBytes": "1MiB"}
ROWS = 30_000  # ~150 bytes each: ~4.5 MB, more than four 1 MiB frames
TABLE = "CREATE VIRTUAL TABLE big USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT, n INTEGER)"


def insert_big(node, rows=ROWS, tag="t1", base=0):
    """One transaction of `rows` rows, ids base+1 .. base+rows."""
    node.sql(f"WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {rows}) "
             f"INSERT INTO big SELECT {base} + x, '{tag}-' || hex(randomblob(64)), x FROM s", timeout=120)


class Watcher:
    """Polls count(*) of big on a node from a thread; records every value seen."""

    def __init__(self, node, allowed):
        self.node, self.allowed = node, set(allowed)
        self.seen, self.bad = set(), []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                n = self.node.scalar("SELECT count(*) FROM big", timeout=10)
            except Exception:
                self.stop.wait(0.05)  # the node is being restarted: poll again shortly (at once when stopped)
                continue
            self.seen.add(n)
            if n not in self.allowed:
                self.bad.append(n)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(15)
        check(not self.bad, f"a reader saw part of a transaction: counts {sorted(set(self.bad))[:10]}")


def start_pair(c):
    a = c.node(A_IP)
    b = c.node(B_IP)
    a.start(routes=[B_IP], extra=FRAME)
    b.start(routes=[A_IP], extra=FRAME)
    wait_connected(a, b)
    wait_connected(b, a)
    a.sql(TABLE)
    wait_until(lambda: b.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'big'") == 1, 15, "table big on B")
    return a, b


def staged(node):
    return node.scalar("SELECT count(*) FROM hdbrepl_staged")


def check_whole(node, rows, what):
    check_eq(node.sql("SELECT count(*), count(DISTINCT id), min(id), max(id), sum(n) FROM big"),
             [[rows, rows, 1, rows, rows * (rows + 1) // 2]], what)


def test_big_transaction_is_atomic_and_in_order(c):
    a, b = start_pair(c)
    # The later transaction never shows before the big one: a reader sees 0, ROWS or ROWS+1
    # rows, never 1 (the later row alone) nor anything in between.
    with Watcher(b, {0, ROWS, ROWS + 1}):
        insert_big(a)
        a.sql("INSERT INTO big VALUES (?, 'after', ?)", ROWS + 1, ROWS + 1)  # committed after it
        wait_until(lambda: b.scalar("SELECT count(*) FROM big") == ROWS + 1, 60, "both transactions on B")
    check_eq(b.sql("SELECT count(DISTINCT id), sum(n) FROM big"), [[ROWS + 1, ROWS * (ROWS + 1) // 2 + ROWS + 1]], "B's rows")
    parts = a.scalar("SELECT count(*) FROM hdbrepl_log WHERE hlc = (SELECT hlc FROM hdbrepl_log ORDER BY length(body) DESC LIMIT 1)")
    check(parts >= 4, f"the transaction was logged as parts ({parts})")
    check_eq(staged(b), 0, "nothing staged once applied")
    # B logged the parts too (it relays them), each within the part size.
    check(b.scalar("SELECT max(length(body)) FROM hdbrepl_log") <= 1 << 20, "B's log holds parts of at most 1 MiB")
    check_eq(a.scalar("SELECT repl_confirm(1, 5000)"), 1, "A's last commit confirmed by B")


def test_relay_and_initial_copy_carry_it(c):
    # A -> B -> C: C hears A only through B. Then D joins B later and copies.
    a, b = c.node(A_IP), c.node(B_IP)
    cc = c.node(C_IP)
    # `system` not replicated: no membership gossip, so A and C stay strangers (a real chain).
    chain = dict(FRAME, databases="[main]")
    a.start(routes=[B_IP], extra=chain)
    b.start(routes=[A_IP, C_IP, "127.0.0.5"], extra=chain)
    cc.start(routes=[B_IP], extra=chain)
    wait_connected(a, b)
    wait_connected(cc, b)
    a.sql(TABLE)
    wait_until(lambda: cc.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'big'") == 1, 15, "table big on C")
    with Watcher(cc, {0, ROWS}):
        insert_big(a)
        wait_until(lambda: cc.scalar("SELECT count(*) FROM big") == ROWS, 60, "the transaction relayed to C")
    check_whole(cc, ROWS, "C's rows (relayed)")
    check_eq(sorted(x["name"] for x in cc.status().get("connections", [])), [B_IP], "C heard A only through B")
    d = c.node("127.0.0.5")
    d.start(routes=[B_IP], extra=chain)
    wait_until(lambda: (d.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'big'") == 1 and
                        d.scalar("SELECT count(*) FROM big") == ROWS), 60, "the transaction copied to D")
    check_whole(d, ROWS, "D's rows (copied)")


def part_record(origin, hlc, index, last, tables, changes):
    """A part (engine/txn_record.hpp): the part flags in the format byte and the index after
    the origin; the rest as protocol_client.record() encodes a whole record."""
    whole = pc.record(origin, hlc, tables, changes)
    head = 2 + 8 + len(pc.wstr(origin))
    return b"H" + bytes([1 | 0x10 | (0x20 if last else 0)]) + whole[2:head] + pc.varint(index) + whole[head:]


def test_parts_sent_by_a_member(c):
    x_ip = "127.0.0.5"  # a configured route of A with no node behind it: the protocol client's address
    a, b = c.node(A_IP), c.node(B_IP)
    a.start(routes=[B_IP, x_ip])
    b.start(routes=[A_IP])
    wait_connected(a, b)
    a.sql(TABLE)
    d = a.scalar("SELECT definition FROM hdbrepl_tables WHERE name = 'big'")
    p = pc.Peer(x_ip, A_IP, c.port)
    check_eq(p.status, 101, "upgrade from a configured route's address")
    p.hello(x_ip, start_after=(1 << 64) - 1)
    # Two parts of one transaction: nothing shows until the last one, then both rows.
    h1 = pc.now_hlc()
    p.send(pc.txn(1, part_record(x_ip, h1, 0, False, [("big", d)], [(0, "put", [9001, "first part", 1])])))
    wait_until(lambda: staged(a) == 1, 10, "the first part staged on A")
    check_eq(a.scalar("SELECT count(*) FROM big WHERE id > 9000"), 0, "a part before the last applies nothing")
    p.send(pc.txn(2, part_record(x_ip, h1, 1, True, [("big", d)], [(0, "put", [9002, "last part", 2])])))
    wait_until(lambda: a.scalar("SELECT count(*) FROM big WHERE id > 9000") == 2, 10, "both parts applied on A")
    check_eq(staged(a), 0, "staging emptied")
    # It is relayed to B as parts too, and applies there whole.
    wait_until(lambda: b.scalar("SELECT count(*) FROM big WHERE id > 9000") == 2, 10, "both rows on B")
    # A last part whose parts 0 and 1 never came: X is held, nothing of it applies.
    h2 = pc.now_hlc() + 1
    p.send(pc.txn(3, part_record(x_ip, h2, 2, True, [("big", d)], [(0, "put", [9003, "orphan", 3])])))

    def held():
        return [h for h in a.status().get("heldOrigins", []) if h["origin"] == x_ip]
    wait_until(lambda: held(), 10, "X shown held in cluster_status")
    check("never arrived" in held()[0]["lastError"], f"lastError says why: {held()[0]}")
    check_eq(a.scalar("SELECT count(*) FROM big WHERE id = 9003"), 0, "the orphan last part is not applied")
    # A and B still replicate.
    b.sql("INSERT INTO big VALUES (1, 'from b', 1)")
    wait_until(lambda: a.scalar("SELECT count(*) FROM big WHERE id = 1") == 1, 10, "B's row on A")
    p.close()


if __name__ == "__main__":
    run_tests(globals())
