#!/usr/bin/python3
"""Forwarded-read latency: 4 nodes with replicateTo: 1, 400 rows written on the first;
on the second node, key lookups of rows it holds (local) and of rows it does not hold
(forwarded to a holder), timed through the harness (which adds the same request/reply
overhead to both). Prints p50/p99 of each and the median cost added by forwarding.

    HDBREPL_SO=build/libhdbrepl /usr/bin/python3 tests/cluster/forward_read_probe.py
"""
import os
import statistics
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from membership_test import IPS, full_mesh, make_table_everywhere  # noqa: E402


def main():
    c = harness.Cluster("forward_read_probe", 1)
    try:
        nodes = []
        for ip in IPS[:4]:
            n = c.node(ip)
            n.start(routes=[] if ip == IPS[0] else [IPS[0]], extra={"replicateTo": 1})
            nodes.append(n)
        for n in nodes[1:]:
            nodes[0].op("add_node", {"hostname": n.ip})
        harness.wait_until(lambda: full_mesh(nodes), 10, "full mesh")
        make_table_everywhere(nodes)
        nodes[0].batch([("BEGIN", [])] + [("INSERT INTO dog VALUES (?, ?)", [k, f"d{k}"]) for k in range(400)] + [("COMMIT", [])])
        b = nodes[1]
        harness.wait_until(lambda: b.scalar("SELECT count(*) FROM dog") > 0, 10, "rows on B")
        # Every row on its writer and one other node (a scan counts local rows only).
        harness.wait_until(lambda: sum(n.scalar("SELECT count(*) FROM dog") for n in nodes) == 2 * 400, 10,
                           "every row on 2 nodes")
        b.sql("SELECT repl_forward_reads(0)")
        local = [k for k in range(400) if b.sql("SELECT 1 FROM dog WHERE id = ?", k)]
        remote = [k for k in range(400) if k not in set(local)]
        b.sql("SELECT repl_forward_reads(1)")

        def timed(keys):
            ts = []
            for k in keys[:150]:
                t0 = time.perf_counter()
                rows = b.sql("SELECT name FROM dog WHERE id = ?", k)
                ts.append(time.perf_counter() - t0)
                harness.check(rows == [[f"d{k}"]], f"key {k} read")
            ts.sort()
            return statistics.median(ts) * 1000, ts[max(0, int(len(ts) * 0.99) - 1)] * 1000

        lm, lp = timed(local)
        rm, rp = timed(remote)
        print(f"local lookup: p50 {lm:.3f} ms, p99 {lp:.3f} ms ({len(local)} keys held)")
        print(f"forwarded lookup: p50 {rm:.3f} ms, p99 {rp:.3f} ms ({len(remote)} keys held elsewhere)")
        print(f"added by forwarding (p50): {rm - lm:.3f} ms")
    finally:
        c.close()


if __name__ == "__main__":
    main()
