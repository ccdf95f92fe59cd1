#!/usr/bin/python3
"""Hostile members: a protocol client (protocol_client.py) connects from the address of a
configured route, so it passes the plain port's address check and is a member by that port's
rules, and then sends what no honest member sends. Each case checks that the node refuses it
(closes that link, or leaves the change out), says so in its log and in cluster_status, and
that nothing else changes: the real pair A-B keeps replicating both ways
(extension/link_entitlement.hpp, extension/record_entitlement.hpp, docs/security.md).
"""
import os
import random
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protocol_client as pc  # noqa: E402
from harness import (check, check_eq, pick_port, run_tests, wait_connected, wait_rows, wait_until)  # noqa: E402

A_IP, B_IP = "127.0.0.2", "127.0.0.3"
X_IP = "127.0.0.5"  # a configured route of A with no node behind it: the hostile member's address
YEAR_2100_MS = 4102444800000


def start_pair(c):
    a, b = c.node(A_IP), c.node(B_IP)
    a.start(routes=[B_IP, X_IP])
    b.start(routes=[A_IP])
    wait_connected(a, b)
    wait_connected(b, a)
    a.sql("CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    wait_until(lambda: b.scalar("SELECT count(*) FROM sqlite_master WHERE name = 't'") == 1, 15, "table t on B")
    return a, b


def definition(node, table):
    return node.scalar("SELECT definition FROM hdbrepl_tables WHERE name = ?", table)


def refusals(node):
    return node.status().get("refusals", {}).get("total", 0)


class Flow:
    """A and B still replicate both ways, with fresh keys each time."""

    def __init__(self, a, b):
        self.a, self.b, self.n = a, b, 0

    def check(self, what):
        self.n += 1
        ka, kb = 1000 + 2 * self.n, 1001 + 2 * self.n
        self.a.sql("INSERT INTO t VALUES (?, ?)", ka, f"a {what}")
        self.b.sql("INSERT INTO t VALUES (?, ?)", kb, f"b {what}")
        wait_rows(self.b, f"SELECT v FROM t WHERE id = {ka}", [[f"a {what}"]], 10, f"A->B still flows after {what}")
        wait_rows(self.a, f"SELECT v FROM t WHERE id = {kb}", [[f"b {what}"]], 10, f"B->A still flows after {what}")


def member(c, name=X_IP):
    """The hostile member: connected from X's address, HELLO said under `name`."""
    p = pc.Peer(X_IP, A_IP, c.port)
    check_eq(p.status, 101, "upgrade from a configured route's address")
    check(p.node_hello is not None and p.node_hello[:5] == b"\x01HDBR", "the node says hello first")
    p.hello(name, start_after=(1 << 64) - 1)  # wants nothing: the node sends it no stream and no copy
    return p


def expect_cut(a, p, what):
    closed = p.closed(10)
    p.close()
    check(closed, f"the node keeps the link open after {what}")
    check(a.alive(), f"node A died on {what}; log: {a.log_tail()}")


def expect_counted(a, before, what):
    wait_until(lambda: refusals(a) > before, 5, f"cluster_status counts the refusal of {what}")


def clock_ms(node):
    return (node.scalar("SELECT coalesce(max(clock), 0) FROM hdbrepl_log") or 0) >> 16


def test_copy_messages_outside_a_copy_close_the_link(c):
    a, b = start_pair(c)
    flow = Flow(a, b)
    d = definition(a, "t")
    for label, msgs in [
        ("copy_table + copy_rows without copy_start",
         [pc.copy_table("t", d), pc.copy_rows(0, [(pc.hlc_of_ms(YEAR_2100_MS), X_IP, [900, "from 2100"])])]),
        ("copy_end without a copy", [pc.copy_end(0, [(B_IP, (1 << 63) - 1)])]),
        ("copy_ack without a copy", [pc.copy_ack(3)]),
    ]:
        before = refusals(a)
        p = member(c)
        for m in msgs:
            p.send(m)
        # The node has dealt with the messages once it cut the link and counted the refusal;
        # the flow A-B behind them passes A's database thread after anything they queued there.
        expect_cut(a, p, label)
        expect_counted(a, before, label)
        flow.check(label)
        check_eq(a.sql("SELECT count(*) FROM t WHERE id = 900"), [[0]], f"the unsolicited row is not in t ({label})")
        check(clock_ms(a) < YEAR_2100_MS - 86400000, f"A's clock did not jump to 2100 ({label})")
    check("not inside a copy" in a.log_text(), "the log says why")


def test_copy_rows_ahead_of_the_clock_are_refused(c):
    """A synced node accepts a copy as the answer to its subscription (a full resync), but
    every version in it is checked against maxClockSkew, as streamed ones are."""
    a, b = start_pair(c)
    flow = Flow(a, b)
    before = refusals(a)
    p = member(c)
    p.send(pc.copy_start(1, [(X_IP, pc.now_hlc())]))
    p.send(pc.copy_table("t", definition(a, "t")))
    p.send(pc.copy_rows(0, [(pc.hlc_of_ms(YEAR_2100_MS), X_IP, [901, "from 2100"])]))
    p.send(pc.copy_end(0, []))
    # The refusal is counted when A's database thread has checked the copied row.
    expect_cut(a, p, "a copied row from 2100")
    expect_counted(a, before, "a copied row from 2100")
    check_eq(a.sql("SELECT count(*) FROM t WHERE id = 901"), [[0]], "the row from 2100 is not in t")
    a.sql("INSERT INTO t VALUES (902, 'local after')")
    check(a.scalar("SELECT hdbrepl_v FROM t_data WHERE id = 902") >> 16 < YEAR_2100_MS - 86400000, "later local writes are not stamped 2100")
    check(clock_ms(a) < YEAR_2100_MS - 86400000, "A's clock did not jump to 2100")
    flow.check("a row from 2100")


def test_copy_end_cannot_mute_another_origin(c):
    """A resync's copy_end claims progress; it may not claim the origins this node hears
    directly (B here), and never a version ahead of the clock."""
    a, b = start_pair(c)
    flow = Flow(a, b)
    # Far ahead: refused whole.
    before = refusals(a)
    p = member(c)
    p.send(pc.copy_start(0, []))
    p.send(pc.copy_end(0, [(B_IP, pc.now_hlc(3600 * 1000))]))
    # Refused on A's database thread, where a claim would be applied: B writes after that.
    expect_cut(a, p, "a copy_end claiming B an hour ahead")
    expect_counted(a, before, "a copy_end claiming B an hour ahead")
    b.sql("INSERT INTO t VALUES (905, 'b after the far claim')")
    wait_rows(a, "SELECT v FROM t WHERE id = 905", [["b after the far claim"]], 10, "B's write after the far claim reaches A")
    # Within the skew but about B, whom A hears directly: the claim is ignored.
    p = member(c)
    p.send(pc.copy_start(0, []))
    p.send(pc.copy_end(0, [(B_IP, pc.now_hlc(30 * 1000))]))
    # A row of X's own streamed behind the end: A's database thread applies a link's input
    # in order, so once the row is in, the end (and whatever it claimed) has been applied.
    p.send(pc.txn(1, pc.record(X_IP, pc.now_hlc(), [("t", definition(a, "t"))], [(0, "put", [906, "x after the claim"])])))
    wait_rows(a, "SELECT v FROM t WHERE id = 906", [["x after the claim"]], 10, "X's row behind the copy_end applied on A")
    b.sql("INSERT INTO t VALUES (903, 'b after the claim')")
    wait_rows(a, "SELECT v FROM t WHERE id = 903", [["b after the claim"]], 10, "B's write after the claim reaches A")
    p.close()
    flow.check("copy_end claims")


def test_removed_only_from_the_remover(c):
    a, b = start_pair(c)
    flow = Flow(a, b)
    before = refusals(a)
    p = member(c)
    p.send(pc.removed(B_IP))
    # Dealt with once A cut the link and counted the refusal; the flow A-B comes after.
    expect_cut(a, p, "removed{by: B} from another member")
    expect_counted(a, before, "removed{by: B}")
    flow.check("a forged removal")
    check(B_IP in [r[0] for r in a.sql("SELECT name FROM hdb_nodes")], "B is still one of A's nodes")
    check(a.connected_to(B_IP), "A still linked to B")
    check("only the node that removed us" in a.log_text(), "the log says why")


def test_hello_must_name_the_connecting_address(c):
    a, b = start_pair(c)
    flow = Flow(a, b)
    before = refusals(a)
    p = member(c, name=B_IP)  # from X's address, claiming to be B
    expect_cut(a, p, "a HELLO naming B from X's address")
    check(a.connected_to(B_IP), "the real B is still linked")
    flow.check("an impostor's hello")
    check("not the name of a route or known node" in a.log_text(), "the log says why")
    expect_counted(a, before, "an impostor's hello")


def test_no_hello_in_time_closes_the_link(c):
    a, b = start_pair(c)
    before = refusals(a)
    p = pc.Peer(X_IP, A_IP, c.port)
    check_eq(p.status, 101, "upgrade")
    t0 = time.monotonic()
    check(p.closed(15), "a link that never says hello is closed")
    check(time.monotonic() - t0 < 12, "within the hello timeout")
    p.close()
    wait_until(lambda: "no hello in time" in a.log_text(), 5, "the log says why (not a ping timeout)")
    expect_counted(a, before, "a silent link")


def test_membership_and_removals_of_others_are_left_out(c):
    a, b = start_pair(c)
    flow = Flow(a, b)
    members_def = definition(a, "hdbrepl_members")
    removals_def = definition(a, "hdbrepl_removals")
    b_url_before = a.scalar("SELECT url FROM hdbrepl_members WHERE name = ?", B_IP)
    p = member(c)
    # B's membership row pointing elsewhere, a removal of B "by B", and X's own row (allowed).
    rec = pc.record(X_IP, pc.now_hlc(), [("hdbrepl_members", members_def), ("hdbrepl_removals", removals_def)], [
        (0, "put", [B_IP, "ws://127.0.0.77:1", None, None]),
        (1, "put", [B_IP, B_IP]),
        (0, "put", [X_IP, f"ws://{X_IP}:{c.port}", None, None]),
    ])
    before = refusals(a)
    p.send(pc.txn(1, rec))
    wait_until(lambda: a.scalar("SELECT count(*) FROM hdbrepl_members WHERE name = ?", X_IP) == 1, 10, "X's own row is kept")
    check_eq(a.scalar("SELECT url FROM hdbrepl_members WHERE name = ?", B_IP), b_url_before, "B's row is unchanged")
    check_eq(a.sql("SELECT count(*) FROM hdbrepl_removals WHERE name = ?", B_IP), [[0]], "B is not removed")
    check(a.connected_to(B_IP), "A still linked to B")
    expect_counted(a, before, "changes to others' membership")
    p.close()
    flow.check("forged membership")


def test_a_record_ahead_of_the_clock_holds_only_its_origin(c):
    a, b = start_pair(c)
    flow = Flow(a, b)
    p = member(c)
    d = definition(a, "t")
    p.send(pc.txn(1, pc.record(X_IP, pc.now_hlc(3600 * 1000), [("t", d)], [(0, "put", [904, "an hour ahead"])])))
    def held():
        return [h for h in a.status().get("heldOrigins", []) if h["origin"] == X_IP]
    wait_until(lambda: held(), 10, "X shown held in cluster_status")
    h = held()[0]
    check("ahead of this node's clock" in h["lastError"], f"lastError says why: {h}")
    check_eq(h["seq"], 1, "the held record's seq")
    flow.check("a record an hour ahead")  # B's origin goes on
    check_eq(a.sql("SELECT count(*) FROM t WHERE id = 904"), [[0]], "the early record is not applied")
    p.close()


def test_a_record_that_fails_is_held_and_retried_without_blocking_others(c):
    a, b = start_pair(c)
    flow = Flow(a, b)
    p = member(c)
    # A table definition that contradicts the existing one: the apply step refuses it.
    bad = pc.record(X_IP, pc.now_hlc(), [("t", "CREATE VIRTUAL TABLE t USING hdbrepl(id TEXT PRIMARY KEY, other BLOB, third INTEGER)")],
                    [(0, "put", ["k", b"x", 1])])
    p.send(pc.txn(7, bad))
    def held():
        return [h for h in a.status().get("heldOrigins", []) if h["origin"] == X_IP]
    wait_until(lambda: held() and held()[0]["attempts"] >= 2, 15, "X held and retried")
    check_eq(held()[0]["seq"], 7, "the held record's seq")
    check(not p.closed(0.5), "the link stays open: the record waits, it is not bounced forever")
    flow.check("a record that cannot apply")
    p.close()


def test_random_message_sequences_never_take_the_node_down(c):
    """Random valid messages in random states, from several connections: the node may close
    any of them, must never crash, and A-B keeps replicating."""
    a, b = start_pair(c)
    flow = Flow(a, b)
    rnd = c.rng
    d = definition(a, "t")
    def any_message():
        k = rnd.randrange(12)
        h = pc.now_hlc(rnd.choice([0, 0, 1000, 10 ** 8]))
        return [
            lambda: pc.hello(X_IP),
            lambda: pc.subscribe(rnd.choice([0, (1 << 64) - 1]), [(B_IP, h)], [A_IP]),
            lambda: pc.txn(rnd.randrange(1, 50), pc.record(X_IP, h, [("t", d)], [(0, "put", [rnd.randrange(5000, 6000), "r"])])),
            lambda: pc.ack(rnd.randrange(0, 1 << 40)),
            lambda: pc.copy_start(rnd.randrange(10), [(X_IP, h)]),
            lambda: pc.copy_table("t", d),
            lambda: pc.copy_rows(rnd.randrange(2), [(h, X_IP, [rnd.randrange(6000, 7000), "c"])]),
            lambda: pc.copy_end(rnd.randrange(10), [(rnd.choice([X_IP, B_IP, A_IP]), h)]),
            lambda: pc.copy_ack(rnd.randrange(10)),
            lambda: pc.removed(rnd.choice([X_IP, B_IP, A_IP])),
            lambda: pc.copy_request(),
            lambda: pc.read_request(rnd.randrange(100), "t", "id", rnd.randrange(100)),
        ][k]()
    pid = a.pid
    for round_ in range(8):
        p = pc.Peer(X_IP, A_IP, c.port)
        if p.status != 101:
            p.close()
            continue
        p.hello(X_IP)
        for _ in range(25):
            if not p.send(any_message()):
                break
        p.frames(0.3)
        p.close()
        check(a.alive() and a.pid == pid, f"node A died in round {round_}; log: {a.log_tail()}")
    flow.check("random sequences")


def test_removed_node_leaves_the_allowlist(c):
    """remove_node takes the node's address off the plain port's allowlist (it only grew)."""
    a, b = start_pair(c)
    gone = "127.0.0.6"
    a.op("add_node", {"hostname": gone, "port": c.port})
    def upgrade_status():
        p = pc.Peer(gone, A_IP, c.port)
        s = p.status
        p.close()
        return s
    wait_until(lambda: upgrade_status() == 101, 5, "a known node's address is admitted")
    a.op("remove_node", {"hostname": gone})
    wait_until(lambda: upgrade_status() == 403, 5, "the removed node's address is refused")
    check_eq(upgrade_status(), 403, "and stays refused")


def test_a_peer_ignoring_flow_control_is_cut_off(c):
    """Records held back (an hour ahead) keep their bytes counted: a peer that goes on sending
    past the flow-control window is cut off instead of growing the node's memory."""
    a, b = c.node(A_IP), c.node(B_IP)
    a.start(routes=[B_IP, X_IP], extra={"maxBytesInFlight": "64KiB", "maxFrameBytes": "64KiB"})
    b.start(routes=[A_IP])
    wait_connected(a, b)
    a.sql("CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    wait_until(lambda: b.scalar("SELECT count(*) FROM sqlite_master WHERE name = 't'") == 1, 15, "table t on B")
    flow = Flow(a, b)
    d = definition(a, "t")
    p = member(c)
    sent = 0
    pad = "x" * 8000
    for seq in range(1, 200):  # ~1.6 MB, 3.5x the bound (64 KiB + 6 x 64 KiB)
        if not p.send(pc.txn(seq, pc.record(X_IP, pc.now_hlc(3600 * 1000) + seq, [("t", d)], [(0, "put", [10000 + seq, pad])]))):
            break
        sent += 1
    check(p.closed(10), f"the link is cut off (sent {sent} records)")
    p.close()
    wait_until(lambda: "ignored flow control" in a.log_text() or "flow-control bound" in a.log_text(), 5, "the log says why")
    flow.check("a flood")


def test_users_over_the_plain_port_of_a_secure_node_are_left_out(c):
    """A node that serves the secure port takes users only from authenticated links: a user
    written by an address-trusted member would authorise a certificate exchange."""
    a, b = c.node(A_IP), c.node(B_IP)
    secure = pick_port(c.test_name + "-tls", c.ips + ["127.0.0.9"])
    a.start(routes=[B_IP, X_IP], extra={"securePort": secure})
    b.start(routes=[A_IP])
    wait_connected(a, b)
    users_def = definition(a, "hdbrepl_users")
    check(users_def, "hdbrepl_users has a definition")
    before = refusals(a)
    p = member(c)
    p.send(pc.txn(1, pc.record(X_IP, pc.now_hlc(), [("hdbrepl_users", users_def)],
                               [(0, "put", ["intruder", "super_user", "pbkdf2-sha256$1000$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "="])])))
    # Behind it, a row of X's own, to know the record was processed.
    p.send(pc.txn(2, pc.record(X_IP, pc.now_hlc() + 1, [("hdbrepl_members", definition(a, "hdbrepl_members"))],
                               [(0, "put", [X_IP, f"ws://{X_IP}:{c.port}", None, None])])))
    wait_until(lambda: a.scalar("SELECT count(*) FROM hdbrepl_members WHERE name = ?", X_IP) == 1, 10, "the records were applied")
    check_eq(a.sql("SELECT count(*) FROM hdb_user WHERE username = 'intruder'"), [[0]], "no user from the plain port")
    expect_counted(a, before, "a user over the plain port")
    p.close()


def test_no_certificate_exchange_on_the_plain_port(c):
    """Address trust must not become certificate trust: /hdbrepl/sign is refused on the plain
    port before any data, even from a configured route's address."""
    a, b = start_pair(c)
    before = refusals(a)
    for target in ("/hdbrepl/sign?node=" + X_IP, "/hdbrepl/sign", "/other"):
        p = pc.Peer(X_IP, A_IP, c.port, target=target)
        status = p.status
        p.close()
        check(status in (403, 404), f"{target} on the plain port answered {status}, not a refusal")
    wait_until(lambda: "on the plain port: it serves /hdbrepl only" in a.log_text(), 5, "the log says why")
    expect_counted(a, before, "a certificate request on the plain port")
    Flow(a, b).check("plain-port certificate requests")


def test_refused_reads_count_in_cluster_status(c):
    """A forwarded read of hdbrepl's own tables is answered 'cannot' and counted, each time."""
    a, b = start_pair(c)
    p = member(c)
    before = refusals(a)
    for rid in range(1, 4):
        p.send(pc.read_request(rid, "hdbrepl_meta", "key", "token_secret"))
    wait_until(lambda: refusals(a) >= before + 3, 5, "three refused reads counted")
    recent = a.status()["refusals"]["recent"]
    check(any("hdbrepl's own tables are not served" in r["reason"] and r["node"] == X_IP for r in recent),
          f"the refusal names the member and the reason: {recent[-3:]}")
    check(not p.closed(0.3), "a refused read does not cut the link")
    p.close()


if __name__ == "__main__":
    run_tests(globals())
