#!/usr/bin/python3
"""Big-transaction probe: one transaction of --rows rows (~140 bytes each: an ordinary bulk
import) committed on A and replicated to B, two node processes. Not a test (CTest does not
run it); it prints figures and exits non-zero when a check fails. `make scale-txn` runs it.

    HDBREPL_SO=build/libhdbrepl HDBREPL_NODE_HOST=build/tests/node_host \\
        /usr/bin/python3 tests/cluster/big_txn_probe.py [--rows 300000] [--limit-mb 128]

Figures: the same transaction's commit into a plain SQLite table of A's database (the
reference), the commit's time on A, the time from COMMIT returning until B shows every row
(B's count polled every 20 ms; a reader on B only ever sees 0 or all, which is checked on
each poll), the rows per second that makes, the parts A's log holds the transaction in, and
the peak RSS (VmHWM) of each process. Checks: B holds every row once with the same sums;
B's peak below --limit-mb (the receiver stages the parts in its database, not in memory).
"""
import argparse
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_connected, wait_until  # noqa: E402


def peak_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--limit-mb", type=float, default=128)
    args = ap.parse_args()
    n = args.rows
    c = harness.Cluster("big_txn_probe", 1)
    failures = []
    try:
        a, b = c.node("127.0.0.2"), c.node("127.0.0.3")
        a.start(routes=["127.0.0.3"])
        b.start(routes=["127.0.0.2"])
        wait_connected(a, b)
        wait_connected(b, a)
        a.sql("CREATE VIRTUAL TABLE big USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT, n INTEGER)")
        wait_until(lambda: b.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'big'") == 1, 15, "table big on B")
        gen = f"WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {n}) "
        # The same transaction into a plain SQLite table of the same database first: the
        # figures are also given as ratios to it (same run, same machine load).
        a.sql("CREATE TABLE plain_big(id INTEGER PRIMARY KEY, v TEXT, n INTEGER)")
        tp = time.monotonic()
        a.sql(gen + "INSERT INTO plain_big SELECT x, hex(randomblob(60)), x FROM s", timeout=600)
        plain_s = time.monotonic() - tp
        t0 = time.monotonic()
        a.sql(gen + "INSERT INTO big SELECT x, hex(randomblob(60)), x FROM s", timeout=600)
        t1 = time.monotonic()
        partial = []

        def arrived():
            got = b.scalar("SELECT count(*) FROM big")
            if got not in (0, n):
                partial.append(got)
            return got == n
        wait_until(arrived, 600, "every row on B", interval=0.02)
        t2 = time.monotonic()
        parts, size = a.sql("SELECT count(*), sum(length(body)) FROM hdbrepl_log WHERE hlc = (SELECT max(hlc) FROM hdbrepl_log)")[0]
        pa, pb = peak_mb(a.pid), peak_mb(b.pid)
        want = [[n, n, n * (n + 1) // 2]]
        got = b.sql("SELECT count(*), count(DISTINCT id), sum(n) FROM big")
        print(f"rows {n}, changes {size / 1e6:.1f} MB in {parts} parts; node program: "
              f"{'node_host' if os.environ.get('HDBREPL_NODE_HOST') else 'node_proc.py'}")
        print(f"commit on A {t1 - t0:.2f} s; visible on B {t2 - t1:.2f} s after COMMIT returned ({n / (t2 - t1):,.0f} rows/s)")
        print(f"plain SQLite, the same transaction into an ordinary table: {plain_s:.2f} s; ratios to it: commit on A "
              f"{(t1 - t0) / plain_s:.2f}, commit and visible on B {(t2 - t0) / plain_s:.2f}")
        print(f"peak RSS: A (writer) {pa:.1f} MB, B (receiver) {pb:.1f} MB (limit for B: {args.limit_mb:.0f} MB)")
        if got != want:
            failures.append(f"B holds {got}, want {want}")
        if partial:
            failures.append(f"a reader on B saw part of the transaction: {partial[:5]}")
        if pb >= args.limit_mb:
            failures.append(f"B's peak RSS {pb:.1f} MB is over {args.limit_mb} MB")
    finally:
        c.close()
    for f in failures:
        print("FAIL: " + f)
    print("big_txn_probe: " + ("FAILED" if failures else "ok"))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
