#!/usr/bin/python3
"""Rows larger than a frame (docs/protocol.md, "Fragments"): a message larger than
maxFrameBytes travels as fragments within a window of acknowledged bytes and is handled
whole once assembled.

- a 64 MiB BLOB written on A streams to B and copies to C, which joins later, byte for byte
  (length and a SHA-256 of the value read back in pieces);
- the same with maxFrameBytes 1 MiB on every node, with a TEXT value of 4 MiB, and with
  rows larger than the receiver's input bound (maxBytesInFlight + 6 frames) one after the
  other, in a stream and in a copy, followed by a small row that must come after them;
- A and B each write a 32 MiB row at the same moment (1 MiB frames): both arrive (each side acknowledges the
  other's fragments while its own are under way);
- a member that sends fragments that do not fit together (a total over the cap, a piece past
  the total, a fragment inside a fragment, a total that needs no fragments, a total that
  changes) or a fragment_ack nobody awaits is cut off, counted in cluster_status, and A and
  B keep replicating; the same member's well-formed fragmented txn is applied and acked.
"""
import hashlib
import os
import sqlite3
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protocol_client as pc  # noqa: E402
import harness  # noqa: E402
from harness import check, check_eq, run_tests, wait_connected, wait_rows, wait_until  # noqa: E402

A_IP, B_IP, C_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4"
X_IP = "127.0.0.5"  # a route of A with no node behind it: the hostile member's address
MIB = 1 << 20
SMALL_FRAMES = {"maxFrameBytes": "1MiB"}
TABLE = "CREATE VIRTUAL TABLE big USING hdbrepl(id INTEGER PRIMARY KEY, v)"


def read_row(node, q, key):
    """One value of the node's row store (big_data, the shadow table of `big`), read from the
    database file by a connection of this process: a 64 MiB value through the node's request
    pipe would take seconds as hex."""
    con = sqlite3.connect(f"file:{node.db_path}?mode=ro", uri=True, timeout=10)
    try:
        row = con.execute(q, (key,)).fetchone()
    finally:
        con.close()
    return row[0] if row else None


def digest(node, key):
    """(length, SHA-256) of big.v for `key`, as bytes (TEXT as its UTF-8)."""
    v = read_row(node, "SELECT v FROM big_data WHERE id = ?", key)
    if v is None:
        return None
    b = v.encode() if isinstance(v, str) else bytes(v)
    return len(b), hashlib.sha256(b).hexdigest()


def has_row(node, key, length):
    # length() of a column reads only the record header: cheap to poll.
    return read_row(node, "SELECT length(v) FROM big_data WHERE id = ?", key) == length


def wait_same(src, dst, key, length, timeout, what):
    timeout *= harness.TIME_SCALE
    wait_until(lambda: has_row(dst, key, length), timeout, what)
    want = digest(src, key)
    check_eq(want[0], length, f"length on the writer ({what})")
    check_eq(digest(dst, key), want, f"the value is the same byte for byte ({what})")


def start_pair(c, extra=None):
    a, b = c.node(A_IP), c.node(B_IP)
    a.start(routes=[B_IP, X_IP, C_IP], extra=extra)
    b.start(routes=[A_IP], extra=extra)
    wait_connected(a, b)
    wait_connected(b, a)
    a.sql(TABLE)
    wait_until(lambda: b.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'big'") == 1, 15, "table big on B")
    return a, b


def joiner(c, a, extra=None):
    """C joins later (routes A and B, which gossip has told about it): it copies from one."""
    cc = c.node(C_IP)
    cc.start(routes=[A_IP, B_IP], extra=extra)
    wait_connected(cc, a)
    return cc


def refusals(node):
    return node.status().get("refusals", {}).get("total", 0)


def test_a_64_mib_blob_streams_and_copies(c):
    a, b = start_pair(c)
    t0 = time.monotonic()
    a.sql("INSERT INTO big VALUES (1, randomblob(?))", 64 * MIB)
    wait_same(a, b, 1, 64 * MIB, 30, "a 64 MiB BLOB streamed to B")
    print(f"    64 MiB streamed in {time.monotonic() - t0:.1f}s (insert included)")
    a.sql("INSERT INTO big VALUES (2, 'after')")
    wait_rows(b, "SELECT v FROM big WHERE id = 2", [["after"]], 10 * harness.TIME_SCALE, "a small row after it")
    t0 = time.monotonic()
    cc = joiner(c, a)
    wait_same(a, cc, 1, 64 * MIB, 30, "the 64 MiB BLOB copied to C")
    print(f"    64 MiB copied in {time.monotonic() - t0:.1f}s")
    wait_rows(cc, "SELECT v FROM big WHERE id = 2", [["after"]], 10 * harness.TIME_SCALE, "the small row copied to C")
    check("exceeds maxFrameBytes" not in a.log_text(), "nothing was refused as too big")


def test_one_mib_frames_carry_big_text_and_rows_past_the_input_bound(c):
    a, b = start_pair(c, SMALL_FRAMES)
    # TEXT of 4 MiB: hex of 2 MiB of random bytes.
    a.sql("INSERT INTO big VALUES (1, hex(randomblob(?)))", 2 * MIB)
    wait_same(a, b, 1, 4 * MIB, 20, "a 4 MiB TEXT streamed over 1 MiB frames")
    check_eq(b.scalar("SELECT typeof(v) FROM big WHERE id = 1"), "text", "it stays TEXT")
    # Two rows of 20 MiB, each larger than B's input bound (8 MiB + 6 x 1 MiB), one
    # transaction each, then a small row that must come after them.
    for k in (2, 3):
        a.sql("INSERT INTO big VALUES (?, randomblob(?))", k, 20 * MIB)
    a.sql("INSERT INTO big VALUES (5, 'last')")
    wait_rows(b, "SELECT v FROM big WHERE id = 5", [["last"]], 30 * harness.TIME_SCALE, "the small row after the big ones")
    for k in (2, 3):
        check(has_row(b, k, 20 * MIB), f"row {k} arrived before the row committed after it")
        check_eq(digest(b, k), digest(a, k), f"row {k} the same on B")
    check_eq(refusals(b), 0, "B refused nothing (no flow-control cut)")
    # And the same rows by initial copy.
    cc = joiner(c, a, SMALL_FRAMES)
    wait_rows(cc, "SELECT v FROM big WHERE id = 5", [["last"]], 30 * harness.TIME_SCALE, "the copy reached C")
    for k in (1, 2, 3):
        check_eq(digest(cc, k), digest(a, k), f"row {k} copied to C")
    check_eq(refusals(cc), 0, f"C refused nothing: {cc.status().get('refusals')}")


def test_both_sides_send_a_huge_row_at_once(c):
    a, b = start_pair(c, SMALL_FRAMES)
    a.sql("INSERT INTO big VALUES (1, 0)")
    wait_until(lambda: has_row(b, 1, 1), 10, "the pair streams")
    # Each node writes its own at the same moment (B's from a thread).
    t = threading.Thread(target=lambda: b.sql("INSERT INTO big VALUES (11, randomblob(?))", 32 * MIB))
    t.start()
    a.sql("INSERT INTO big VALUES (10, randomblob(?))", 32 * MIB)
    t.join(30)
    check(not t.is_alive(), "B's insert returned")
    wait_same(a, b, 10, 32 * MIB, 30, "A's row on B")
    wait_same(b, a, 11, 32 * MIB, 30, "B's row on A")
    check_eq(refusals(a) + refusals(b), 0, "nothing refused")


# ---- hostile members (as hostile_links_test.py) ---------------------------------------------

def member(c, a):
    p = pc.Peer(X_IP, A_IP, c.port)
    check_eq(p.status, 101, "upgrade from a configured route's address")
    p.hello(X_IP, start_after=(1 << 64) - 1)  # wants nothing
    return p


def flows(a, b, n):
    a.sql("INSERT INTO big VALUES (?, 'a flows')", 1000 + n)
    wait_rows(b, f"SELECT v FROM big WHERE id = {1000 + n}", [["a flows"]], 10, f"A->B still flows ({n})")
    b.sql("INSERT INTO big VALUES (?, 'b flows')", 2000 + n)
    wait_rows(a, f"SELECT v FROM big WHERE id = {2000 + n}", [["b flows"]], 10, f"B->A still flows ({n})")


def txn_of_size(a, key, n):
    d = a.scalar("SELECT definition FROM hdbrepl_tables WHERE name = 'big'")
    rec = pc.record(X_IP, pc.now_hlc(), [("big", d)], [(0, "put", [key, b"\x07" * n])])
    return pc.txn(1, rec)


def test_fragments_that_do_not_fit_together_close_the_link(c):
    a, b = start_pair(c)
    msg = txn_of_size(a, 900, 300_000)
    piece = 100_000
    cases = [
        ("a total over the cap", [pc.fragment(1 << 40, msg[:piece])], "over the limit of"),
        ("a piece past the total", [pc.fragment(len(msg), msg[:piece]), pc.fragment(len(msg), msg[piece:] + b"\x00" * 10)],
         "runs past its end"),
        ("a fragment inside a fragment", pc.fragments(pc.fragment(len(msg), msg), piece)[:1], "a fragment inside a fragmented message"),
        ("a total that needs no fragments", [pc.fragment(1000, msg[:500])], "sent whole"),
        ("a total that changes", [pc.fragment(len(msg), msg[:piece]), pc.fragment(len(msg) + 1, msg[piece:2 * piece])],
         "in a message of"),
        ("a stray fragment_ack", [pc.fragment_ack(10)], "sending that peer no fragmented message"),
    ]
    for i, (label, frames, reason) in enumerate(cases):
        before = refusals(a)
        p = member(c, a)
        for f in frames:
            p.send(f)
        closed = p.closed(10)
        p.close()
        check(closed, f"the link stays open after {label}")
        check(a.alive(), f"A died on {label}")
        wait_until(lambda: refusals(a) > before, 5, f"cluster_status counts the refusal of {label}")
        check(reason in a.log_text(), f"the log says why ({label}: {reason!r})")
        flows(a, b, i)
    check_eq(a.scalar("SELECT count(*) FROM big WHERE id = 900"), 0, "nothing of the refused messages applied")


def test_a_members_fragmented_txn_is_applied_and_acknowledged(c):
    a, b = start_pair(c)
    before = refusals(a)
    p = member(c, a)
    msg = txn_of_size(a, 901, 250_000)
    for f in pc.fragments(msg, 100_000):
        p.send(f)
    wait_rows(a, "SELECT length(v) FROM big WHERE id = 901", [[250_000]], 10, "the assembled txn applied on A")
    acks = [f[1] for f in p.frames(1.0) if f[1][:1] == bytes([pc.FRAGMENT_ACK])]
    check_eq(acks[-1:], [pc.fragment_ack(len(msg))], "A acknowledged the whole message")
    check(len(acks) >= 2, f"A acknowledged the pieces as they came ({len(acks)} acks)")
    p.close()
    check_eq(refusals(a), before, "nothing refused")
    wait_rows(b, "SELECT length(v) FROM big WHERE id = 901", [[250_000]], 10, "and relayed to B")


if __name__ == "__main__":
    run_tests(globals(), file_budget=60)
