#!/usr/bin/python3
"""Gossip membership through the replicated `system` tables, with real node processes:

- join through one seed: four nodes each add only the seed (certificate exchange with a
  user of the seed); every node then reaches every other, both ways, over verified TLS, and
  the full mesh forms within 5 seconds of the last add_node;
- removal propagates: remove_node on one member drops the node everywhere; the removed node
  stops replicating, and neither its restart nor its own membership row brings it back;
- a restarted member reconnects to every member, not only to its seed;
- plain (IP-authenticated) mode: members learned by gossip are dialed and admitted.
"""
import json
import os
import platform
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (assert_stays, check, check_eq, run_tests, stop_process, wait_connected, wait_rows,  # noqa: E402
                     wait_until)
from security_test import PASSWORD, make_table, secure_port, start_secure  # noqa: E402

IPS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"]


# nanosleep and clock_nanosleep, by machine (for kernels that show no wait channel names)
NANOSLEEP_CALLS = {"x86_64": {"35", "230"}, "aarch64": {"101", "115"}}.get(platform.machine(), set())


def thread_states(pid):
    """(name, kernel wait channel, system call number) of each thread of a node process."""
    out = []
    for t in os.listdir(f"/proc/{pid}/task"):
        fields = []
        for f in ("comm", "wchan", "syscall"):
            try:
                with open(f"/proc/{pid}/task/{t}/{f}") as fh:
                    fields.append(fh.read().strip())
            except OSError:
                fields.append("")
        out.append((fields[0], fields[1], fields[2].split(" ")[0]))
    return out


def db_thread_sleeping(pid):
    """A database thread of the node sleeps (the test hook's hold; idle, it waits on a futex)."""
    return any(name == "hdbrepl-db" and ("nanosleep" in wchan or call in NANOSLEEP_CALLS) for name, wchan, call in thread_states(pid))


def connected_names(n):
    return sorted(c["name"] for c in n.status().get("connections", []) if c["database_sockets"][0].get("connected"))


def full_mesh(nodes):
    for n in nodes:
        want = sorted(m.ip for m in nodes if m is not n)
        if connected_names(n) != want:
            return False
    return True


def make_table_everywhere(nodes):
    """One CREATE (the definition replicates); waits until every node has the table."""
    make_table(nodes[0])
    for n in nodes:
        wait_until(lambda n=n: n.sql("SELECT count(*) FROM sqlite_schema WHERE name = 'dog'") == [[1]], 10, f"table dog on {n.ip}")


def join_through_seed(c, count=5):
    seed = start_secure(c, IPS[0])
    seed.op("add_user", {"username": "admin", "password": PASSWORD, "role": "cluster_user"})
    nodes = [seed]
    for ip in IPS[1:count]:
        n = start_secure(c, ip)
        reply = n.op("add_node", {"hostname": seed.ip, "port": secure_port(c), "verify_tls": False,
                                  "authorization": {"username": "admin", "password": PASSWORD}})
        check_eq(reply, {"message": f"Successfully added '{seed.ip}' to cluster"}, f"{ip} joins through the seed")
        nodes.append(n)
    return nodes


def test_join_through_one_seed_full_mesh(c):
    nodes = join_through_seed(c)
    t0 = time.monotonic()
    wait_until(lambda: full_mesh(nodes), 5, "full mesh of 5 nodes within 5 s of the last add_node")
    print(f"    full mesh {time.monotonic() - t0:.2f}s after the last add_node")
    for n in nodes:
        names = sorted(r[0] for r in n.sql("SELECT name FROM hdb_nodes"))
        check_eq(names, sorted(IPS), f"hdb_nodes on {n.ip}")
    # Data written on one joiner reaches another joiner directly (not only through the seed).
    make_table_everywhere(nodes)
    nodes[1].sql("INSERT INTO dog VALUES (1, 'from the second node')")
    for n in nodes:
        wait_rows(n, "SELECT name FROM dog", [["from the second node"]], what=f"the row on {n.ip}")
    # search_by_value sees the members too.
    found = json.loads(nodes[4].scalar("SELECT repl_operation(?)", json.dumps(
        {"operation": "search_by_value", "database": "system", "table": "hdb_nodes", "search_attribute": "name", "search_value": "*"})))
    check_eq(sorted(r["name"] for r in found), sorted(IPS), "search_by_value on the last joiner")


def test_removal_propagates_and_sticks(c):
    nodes = join_through_seed(c, 4)
    wait_until(lambda: full_mesh(nodes), 10, "full mesh of 4 nodes")
    make_table_everywhere(nodes)
    a, b, cc, d = nodes
    check_eq(b.op("remove_node", {"hostname": d.ip}), {"message": f"Successfully removed '{d.ip}' from cluster"}, "remove_node on B")
    for n in (a, b, cc):
        wait_until(lambda n=n: d.ip not in connected_names(n), 10, f"{n.ip} drops {d.ip}")
        wait_until(lambda n=n: d.ip not in [r[0] for r in n.sql("SELECT name FROM hdb_nodes")], 10, f"{d.ip} gone from hdb_nodes on {n.ip}")
    d.sql("INSERT INTO dog VALUES (9, 'from the removed node')")
    a.sql("INSERT INTO dog VALUES (1, 'from a member')")
    for n in (b, cc):
        wait_rows(n, "SELECT id FROM dog ORDER BY id", [[1]], what=f"members replicate on {n.ip}")
    # Nothing crosses between the members and the removed node, for a second.
    def apart():
        return (all(n.sql("SELECT count(*) FROM dog WHERE id = 9") == [[0]] for n in (a, b, cc))
                and d.sql("SELECT count(*) FROM dog WHERE id = 1") == [[0]])
    assert_stays(apart, 1.0, "no write crosses between the members and the removed node")
    for n in (a, b, cc):
        check_eq(n.sql("SELECT count(*) FROM dog WHERE id = 9"), [[0]], f"the removed node's write on {n.ip}")
    check_eq(d.sql("SELECT count(*) FROM dog WHERE id = 1"), [[0]], "members' writes on the removed node")
    # Its restart (which rewrites its own membership row) does not bring it back: not for
    # two seconds after it.
    d.restart(d.last_config)
    assert_stays(lambda: all(d.ip not in connected_names(n) for n in (a, b, cc)), 2.0,
                 "no member links the restarted removed node")
    for n in (a, b, cc):
        check(d.ip not in connected_names(n), f"{n.ip} stays away from the restarted removed node")
    check_eq(connected_names(d), [], "the removed node replicates with no one")


def test_restarted_member_reconnects_to_all(c):
    nodes = join_through_seed(c, 4)
    wait_until(lambda: full_mesh(nodes), 10, "full mesh of 4 nodes")
    last = nodes[3]
    last.kill()
    # A member that is down stays known, with its state and since when.
    def down_entry():
        e = nodes[0].connection(last.ip)
        return e if e and e["state"] != "connected" and e.get("unreachableSince", "").endswith("GMT") else None
    wait_until(down_entry, 10, f"{last.ip} shown down with unreachableSince on {nodes[0].ip}")
    check(last.ip in [r[0] for r in nodes[0].sql("SELECT name FROM hdb_nodes")], "a member that is down stays in hdb_nodes")
    last.restart(last.last_config)
    wait_until(lambda: full_mesh(nodes), 10, "full mesh again after a restart")


def test_plain_mode_gossip(c):
    a, b, cc = c.node(IPS[0]), c.node(IPS[1]), c.node(IPS[2])
    a.start()
    b.start(routes=[IPS[0]])
    cc.start(routes=[IPS[0]])
    a.op("add_node", {"hostname": b.ip})
    a.op("add_node", {"hostname": cc.ip})
    # B and C were told of nobody but A: they learn each other from A's membership rows.
    wait_connected(b, cc, timeout=10)
    wait_connected(cc, b, timeout=10)
    # One CREATE: the definition replicates. Creating it on every linked node
    # races that replication ("table dog already exists" on a fast link).
    make_table_everywhere([a, b, cc])
    b.sql("INSERT INTO dog VALUES (1, 'b')")
    wait_rows(cc, "SELECT name FROM dog", [["b"]])


def test_shards_isolate_a_sharded_database(c):
    shards = {IPS[0]: 1, IPS[1]: 1, IPS[2]: 2, IPS[3]: 2}
    nodes = []
    for ip, shard in shards.items():
        n = c.node(ip)
        extra = {"databases": "[{name: main, sharded: true}, system]", "shard": shard}
        n.start(routes=[] if ip == IPS[0] else [IPS[0]], extra=extra)
        nodes.append(n)
    a, b, cc, d = nodes
    for n in (b, cc, d):
        a.op("add_node", {"hostname": n.ip})
    wait_until(lambda: full_mesh(nodes), 10, "full mesh across shards (membership is not sharded)")
    make_table_everywhere([a, b])  # the definition replicates within a shard
    make_table_everywhere([cc, d])
    a.sql("INSERT INTO dog VALUES (1, 'shard 1')")
    cc.sql("INSERT INTO dog VALUES (2, 'shard 2')")
    wait_rows(b, "SELECT id, name FROM dog", [[1, "shard 1"]], what="shard 1's row on its other member")
    wait_rows(d, "SELECT id, name FROM dog", [[2, "shard 2"]], what="shard 2's row on its other member")
    # Users (the system database) cross shards; the sharded data does not.
    a.op("add_user", {"username": "everywhere", "password": PASSWORD, "role": "cluster_user"})
    wait_rows(d, "SELECT username FROM hdb_user", [["everywhere"]], what="a user crosses shards")
    for n in (a, b):
        check_eq(n.sql("SELECT id FROM dog"), [[1]], f"only shard 1's row on {n.ip}")
    for n in (cc, d):
        check_eq(n.sql("SELECT id FROM dog"), [[2]], f"only shard 2's row on {n.ip}")
    shards_seen = dict(a.sql("SELECT name, shard FROM hdb_nodes"))
    check_eq(shards_seen, {ip: s for ip, s in shards.items()}, "hdb_nodes shows every member's shard")


def test_replicate_to_one_puts_each_row_on_two_nodes(c):
    nodes = []
    for ip in IPS[:4]:
        n = c.node(ip)
        n.start(routes=[] if ip == IPS[0] else [IPS[0]], extra={"replicateTo": 1})
        nodes.append(n)
    for n in nodes[1:]:
        nodes[0].op("add_node", {"hostname": n.ip})
    wait_until(lambda: full_mesh(nodes), 10, "full mesh of 4 nodes")
    make_table_everywhere(nodes)  # table definitions go everywhere, whatever replicateTo says
    rows = 60
    for i, writer in enumerate(nodes):  # every node writes, so every node is an origin
        writer.batch([("BEGIN", [])] + [("INSERT INTO dog VALUES (?, ?)", [i * 1000 + k, f"w{i}"]) for k in range(rows)] + [("COMMIT", [])])

    def holders():
        count = {}
        for n in nodes:
            for (k,) in n.sql("SELECT id FROM dog"):
                count[k] = count.get(k, 0) + 1
        return count

    # Each row on its writer and exactly one other node.
    def spread():
        h = holders()
        per_count = {}
        for k, n in h.items():
            per_count[n] = per_count.get(n, 0) + 1
        return {"rows": len(h), "rows by holder count": per_count}
    wait_until(lambda: (lambda s: s if s == {"rows": 4 * rows, "rows by holder count": {2: 4 * rows}} else False)(spread()), 15,
               "every row on exactly 2 nodes", describe=spread)
    assert_stays(lambda: set(holders().values()) == {2}, 0.5, "exactly 2 holders per row for half a second")
    check_eq(set(holders().values()), {2}, "still exactly 2 holders per row")
    for i, n in enumerate(nodes):
        check_eq(n.scalar("SELECT count(*) FROM dog WHERE name = ?", f"w{i}"), rows, f"{n.ip} holds all it wrote")
        others = n.scalar("SELECT count(*) FROM dog WHERE name != ?", f"w{i}")
        check(others > 0, f"{n.ip} holds some of the others' rows ({others})")
    # An update keeps the row on the same two nodes.
    before = sorted(n.ip for n in nodes if n.sql("SELECT 1 FROM dog WHERE id = 5"))
    nodes[0].sql("UPDATE dog SET name = 'updated' WHERE id = 5")
    wait_until(lambda: all(n.sql("SELECT name FROM dog WHERE id = 5") == [["updated"]] for n in nodes if n.ip in before), 10,
               "the update on the row's holders")
    after = sorted(n.ip for n in nodes if n.sql("SELECT 1 FROM dog WHERE id = 5"))
    check_eq(after, before, "the updated row's holders")


def test_forwarded_reads_find_rows_held_elsewhere(c):
    """replicateTo: 1 on 4 nodes: a key lookup on a node that does not hold the row fetches it
    from one that does; repl_forward_reads(0) keeps reads local; a key no node has is simply
    absent; with every holder down the lookup fails with a clear error after readTimeout."""
    nodes = []
    for ip in IPS[:4]:
        n = c.node(ip)
        n.start(routes=[] if ip == IPS[0] else [IPS[0]], extra={"replicateTo": 1, "readTimeout": "1s"})
        nodes.append(n)
    for n in nodes[1:]:
        nodes[0].op("add_node", {"hostname": n.ip})
    wait_until(lambda: full_mesh(nodes), 10, "full mesh of 4 nodes")
    make_table_everywhere(nodes)
    rows = 40
    nodes[0].batch([("BEGIN", [])] + [("INSERT INTO dog VALUES (?, ?)", [k, f"dog {k}"]) for k in range(rows)] + [("COMMIT", [])])

    def holders(k):
        return [n for n in nodes if n.sql("SELECT repl_forward_reads(0)") and n.sql("SELECT id FROM dog WHERE id = ?", k)]

    wait_until(lambda: all(len(holders(k)) == 2 for k in range(rows)), 15, "every row on its 2 nodes")
    for n in nodes:
        n.sql("SELECT repl_forward_reads(1)")
    forwarded = 0
    for k in range(rows):
        for n in nodes:
            check_eq(n.sql("SELECT id, name FROM dog WHERE id = ?", k), [[k, f"dog {k}"]], f"key {k} read on {n.ip}")
        forwarded += 4 - len(holders(k))
        for n in nodes:
            n.sql("SELECT repl_forward_reads(1)")
    check(forwarded == 2 * rows, f"half of the lookups were forwarded ({forwarded})")
    # A full scan stays local: only key lookups are forwarded.
    check(nodes[1].scalar("SELECT count(*) FROM dog") < rows, "a scan shows this node's rows only")
    # Local-only reads on a node that does not hold a row.
    k = next(k for k in range(rows) if nodes[1] not in holders(k))
    nodes[1].sql("SELECT repl_forward_reads(1)")
    check_eq(nodes[1].scalar("SELECT repl_forward_reads(0)"), 1, "repl_forward_reads returns the previous setting")
    check_eq(nodes[1].sql("SELECT id FROM dog WHERE id = ?", k), [], "repl_forward_reads(0): local rows only")
    nodes[1].sql("SELECT repl_forward_reads(1)")
    # A key that no node has: absent, at once (every node answered).
    t0 = time.monotonic()
    check_eq(nodes[1].sql("SELECT id FROM dog WHERE id = 12345"), [], "a key no node holds")
    check(time.monotonic() - t0 < 0.9, "an absent key does not wait for the timeout")
    err = nodes[1].sql_error("SELECT repl_forward_reads('yes')")
    check("repl_forward_reads" in err, f"a bad argument: {err}")
    # Every holder of k down (B is not one of them): a clear error, after readTimeout.
    down = [n for n in holders(k)]
    nodes[1].sql("SELECT repl_forward_reads(1)")
    for n in down:
        n.kill()
    wait_until(lambda: all(not nodes[1].connected_to(n.ip) for n in down), 10, "the holders seen down")
    # The other node up answers "absent"; the holders are down, so that proves nothing.
    err = nodes[1].sql_error("SELECT id FROM dog WHERE id = ?", k)
    check("unreachable" in err and all(n.ip in err for n in down), f"the lookup fails clearly, naming the nodes down: {err}")
    # A node that is connected but does not answer (stopped): the lookup gives up after
    # readTimeout (1 s here) and says who it waited for.
    silent = next(n for n in nodes if n not in down and n is not nodes[1])
    stop_process(silent.pid)
    try:
        t0 = time.monotonic()
        err = nodes[1].sql_error("SELECT id FROM dog WHERE id = ?", k)
        took = time.monotonic() - t0
    finally:
        os.kill(silent.pid, signal.SIGCONT)
    check("within 1000 ms" in err and silent.ip in err, f"a silent node: the timeout error names it: {err}")
    check(0.9 < took < 3.5, f"it waited about readTimeout ({took:.2f} s)")


def test_residency_expression_places_rows(c):
    nodes = []
    for ip, extra in ((IPS[0], {}), (IPS[1], {"shard": 5}), (IPS[2], {})):
        n = c.node(ip)
        n.start(routes=[] if ip == IPS[0] else [IPS[0]], extra=extra)
        nodes.append(n)
    a, b, cc = nodes
    for n in (b, cc):
        a.op("add_node", {"hostname": n.ip})
    wait_until(lambda: full_mesh(nodes), 10, "full mesh of 3 nodes")
    err = a.sql_error("CREATE VIRTUAL TABLE bad USING hdbrepl(id INTEGER PRIMARY KEY, residency=no_such_column + 1)")
    check("residency= is not an expression over its columns" in err, f"a bad residency expression: {err}")
    # Even ids live on B, odd ids on C (and on the writer); table s lives in shard 5 (B).
    a.sql(f"""CREATE VIRTUAL TABLE r USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT,
              residency=iif(id % 2 = 0, '["{b.ip}"]', '["{cc.ip}"]'))""")
    a.sql("CREATE VIRTUAL TABLE s USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT, residency=5)")
    for n in nodes:
        for t in ("r", "s"):
            wait_until(lambda n=n, t=t: n.sql("SELECT count(*) FROM sqlite_schema WHERE name = ?", t) == [[1]], 10, f"table {t} on {n.ip}")
    a.batch([("BEGIN", [])] + [("INSERT INTO r VALUES (?, 'x')", [i]) for i in range(1, 11)] +
            [("INSERT INTO s VALUES (?, 'y')", [i]) for i in range(1, 4)] + [("COMMIT", [])])
    wait_rows(b, "SELECT id FROM r ORDER BY id", [[2], [4], [6], [8], [10]], what="even ids on B")
    wait_rows(cc, "SELECT id FROM r ORDER BY id", [[1], [3], [5], [7], [9]], what="odd ids on C")
    wait_rows(b, "SELECT count(*) FROM s", [[3]], what="shard 5's rows on B")
    assert_stays(lambda: cc.sql("SELECT count(*) FROM s") == [[0]], 0.5, "no shard 5 rows on C for half a second")
    check_eq(cc.sql("SELECT count(*) FROM s"), [[0]], "no shard 5 rows on C")
    check_eq(a.sql("SELECT count(*) FROM r"), [[10]], "the writer keeps every row it wrote")
    check_eq(b.sql("SELECT count(*) FROM r"), [[5]], "B holds only its rows")


def test_trimmed_records_are_not_relayed(c):
    """B holds only its part of A's transaction; C, back while A is down, hears A through B.
    B must not relay that part as if it were A's whole transaction: C's progress for A would
    pass the rows placed on C, and A, back, would never send them."""
    nodes = []
    for ip in IPS[:3]:
        n = c.node(ip)
        n.start(routes=[] if ip == IPS[0] else [IPS[0]])
        nodes.append(n)
    a, b, cc = nodes
    for n in (b, cc):
        a.op("add_node", {"hostname": n.ip})
    wait_until(lambda: full_mesh(nodes), 10, "full mesh of 3 nodes")
    a.sql(f"""CREATE VIRTUAL TABLE r USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT,
              residency=iif(id % 2 = 0, '["{b.ip}"]', '["{cc.ip}"]'))""")
    for n in nodes:
        wait_until(lambda n=n: n.sql("SELECT count(*) FROM sqlite_schema WHERE name = 'r'") == [[1]], 10, f"table r on {n.ip}")
    cc.kill()
    a.batch([("BEGIN", [])] + [("INSERT INTO r VALUES (?, 'x')", [i]) for i in range(1, 11)] + [("COMMIT", [])])
    # A later transaction of A that is whole for everyone (a user: system data).
    a.op("add_user", {"username": "after", "password": PASSWORD, "role": "cluster_user"})
    wait_rows(b, "SELECT id FROM r ORDER BY id", [[2], [4], [6], [8], [10]], what="even ids on B")
    wait_rows(b, "SELECT username FROM hdb_user", [["after"]], what="A's user on B")
    a.kill()
    cc.restart(cc.last_config)
    wait_until(lambda: cc.connected_to(b.ip), 10, f"{cc.ip} linked to {b.ip} while {a.ip} is down")
    # A second for B to relay, were it going to: nothing of A's arrives on C meanwhile.
    assert_stays(lambda: cc.sql("SELECT count(*) FROM r") == [[0]] and cc.sql("SELECT username FROM hdb_user") == [], 1.0,
                 "nothing of A's (rows of r, A's later user) on C while A is down")
    check_eq(cc.sql("SELECT count(*) FROM r"), [[0]], "nothing of r on C before A is back")
    check_eq(cc.sql("SELECT username FROM hdb_user"), [], "A's later user waits for A too (relaying it would skip the rows)")
    a.restart(a.last_config)
    wait_rows(cc, "SELECT id FROM r ORDER BY id", [[1], [3], [5], [7], [9]], what="odd ids on C once A is back")
    wait_rows(cc, "SELECT username FROM hdb_user", [["after"]], what="A's user on C")
    check_eq(b.sql("SELECT count(*) FROM r"), [[5]], "B still holds only its rows")


def test_copy_from_a_partial_holder_claims_none_of_it(c):
    """C joins while A is down and is copied from B, which holds only its part of A's rows.
    The copy must not claim A's progress, or A, back, would never send C its rows."""
    a, b = c.node(IPS[0]), c.node(IPS[1])
    a.start()
    b.start(routes=[IPS[0]])
    a.op("add_node", {"hostname": b.ip})
    wait_until(lambda: full_mesh([a, b]), 10, "A and B linked")
    cc_ip = IPS[2]
    a.sql(f"""CREATE VIRTUAL TABLE r USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT,
              residency=iif(id % 2 = 0, '["{b.ip}"]', '["{cc_ip}"]'))""")
    wait_until(lambda: b.sql("SELECT count(*) FROM sqlite_schema WHERE name = 'r'") == [[1]], 10, "table r on B")
    a.batch([("BEGIN", [])] + [("INSERT INTO r VALUES (?, 'x')", [i]) for i in range(1, 11)] + [("COMMIT", [])])
    wait_rows(b, "SELECT id FROM r ORDER BY id", [[2], [4], [6], [8], [10]], what="even ids on B")
    a.kill()
    b.op("add_node", {"hostname": cc_ip})  # the plain port admits routes and known nodes
    cc = c.node(cc_ip)
    cc.start(routes=[b.ip])
    wait_until(lambda: cc.sql("SELECT count(*) FROM sqlite_schema WHERE name = 'r'") == [[1]], 10, "table r copied to C")
    check_eq(cc.sql("SELECT count(*) FROM r WHERE id % 2 = 1"), [[0]], "the copy from B has none of A's rows placed on C (B never had them)")
    a.restart(a.last_config)
    wait_rows(cc, "SELECT id FROM r WHERE id % 2 = 1 ORDER BY id", [[1], [3], [5], [7], [9]], what="odd ids on C once A is back")


if __name__ == "__main__":
    run_tests(globals())
