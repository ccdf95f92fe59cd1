#!/usr/bin/python3
"""Copy scale probe: an initial copy of 10,000,000 rows between two node processes, with the
peak RSS of each checked against a bound (128 MB). Not a test (CTest does not run it); it
prints figures and exits non-zero when a check fails. `make scale-copy` runs it.

    HDBREPL_SO=build/libhdbrepl HDBREPL_NODE_HOST=build/tests/node_host \\
        /usr/bin/python3 tests/cluster/copy_scale_probe.py [--rows N] [--limit-mb 128]

1. The source S (127.0.0.3, a node process of its own) writes --rows rows of about 100
   bytes (id, name, grp INDEXED, an 80-character pad) in transactions of --txn-rows rows
   (one INSERT ... SELECT each), before its node starts. grp runs in blocks of 1,000 ids
   ((id / 1000) % 1000): a transaction then appends to a few places of the index, where
   id % 1000 touched a thousand and, once the index outgrew SQLite's 2 MB page cache, wrote
   at 45,000 rows/s instead of ~200,000.
2. S starts; the joiner J (127.0.0.2, another process, empty database) starts with a route to
   S and copies every row. The copy is timed from J's repl_start to every row visible on J
   (max(id) polled every 0.25 s: copies go in key order; the count is checked after);
   "while rows arrive" is the rate from J's first copied row to its last.
3. Peak RSS: VmHWM of each process. S's is reset (/proc/<pid>/clear_refs) when the copy
   starts, so it covers serving the copy, not writing the data (its peak while writing is
   printed too); J's covers its life up to the last copied row (read before this probe's own
   queries on J, which grow J's page cache). RSS is also sampled every 0.25 s (the fallback
   when the reset is not allowed). The check: both peaks below --limit-mb (MB = 10^6 bytes;
   RSS counts neither database file on tmpfs: SQLite reads it, it does not map it).
4. Content: count, sums and lengths over every column, and 2,000 rows drawn at random,
   compared between S and J.

Node processes are node_host (C++) when HDBREPL_NODE_HOST names it, so a process's RSS is
the node's and SQLite's; with node_proc.py it includes the Python interpreter (~10 MB), and
the report says which. Databases go to $TMPDIR (make scale-copy: /dev/shm where there is
one, as make bench). Every wait is bounded (--budget seconds for the whole run).
HDBREPL_KEEP=1 keeps the temp directory (node logs: <dir>/<ip>.log).
"""
import argparse
import os
import random
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, TestFailure, check, check_eq, pick_port, wait_until  # noqa: E402

S_IP, J_IP = "127.0.0.3", "127.0.0.2"  # the joiner's name sorts first: its dial is the kept link
TABLE = "CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER INDEXED, pad TEXT)"
FILL = ("WITH RECURSIVE s(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM s WHERE x + 1 < ?) "
        "INSERT INTO t SELECT x, 'name-' || x, (x / 1000) % 1000, printf('%080d', x * 2654435761 % 1000000007) FROM s")
DIGEST = "SELECT count(*), sum(id), sum(grp), sum(length(name)), sum(length(pad)), sum(substr(pad, 71) + 0) FROM t"


def mem_kib(pid):
    """(VmRSS, VmHWM) of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


def reset_peak(pid):
    """Resets VmHWM to the current RSS (Linux >= 4.0); False when not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def mb(kib):
    return kib * 1024 / 1e6


def table_or_zero(node, q):
    if not node.sql("SELECT 1 FROM sqlite_schema WHERE name = 't'"):
        return 0
    return node.scalar(q) or 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--txn-rows", type=int, default=10_000)
    ap.add_argument("--limit-mb", type=float, default=128.0)
    ap.add_argument("--budget", type=float, default=1200.0, help="seconds for the whole run")
    args = ap.parse_args()
    if not harness.SO:
        print("set HDBREPL_SO to the built library path without .so (e.g. build/libhdbrepl)")
        return 2
    deadline = time.monotonic() + args.budget
    host = os.environ.get("HDBREPL_NODE_HOST") or "node_proc.py (Python: its interpreter counts in RSS)"
    cluster = Cluster("copy_scale", seed=1)
    try:
        return run(cluster, args, host, deadline)
    finally:
        cluster.close()
        harness._cleanup()


def run(cluster, args, host, deadline):
    left = lambda: max(1.0, deadline - time.monotonic())  # noqa: E731
    print(f"copy scale probe: {args.rows:,} rows in {args.txn_rows:,}-row transactions; node processes: {host}")
    print(f"  directory {cluster.dir}; load average {open('/proc/loadavg').read().split()[:3]} on {os.cpu_count()} CPUs", flush=True)
    s = cluster.node(S_IP)
    s.sql(TABLE)
    t0 = time.monotonic()
    for lo in range(0, args.rows, args.txn_rows):
        s.sql(FILL, lo + 1, min(args.rows, lo + args.txn_rows) + 1, timeout=min(600, left()))
        if time.monotonic() > deadline:
            raise TestFailure("budget spent while writing the source data")
    write_s = time.monotonic() - t0
    _, write_hwm = mem_kib(s.pid)
    db_bytes = sum(os.path.getsize(p) for p in (s.db_path, s.db_path + "-wal") if os.path.exists(p))
    print(f"  1. S wrote {args.rows:,} rows in {write_s:.1f}s ({args.rows / write_s:,.0f} rows/s); S's database "
          f"{db_bytes / 1e6:,.0f} MB (rows and change log); S's peak RSS meanwhile {mb(write_hwm):.1f} MB", flush=True)

    # S knows J's address (its allowlist) but dials a port where nothing listens: the copy runs
    # on J's own dial, never replaced mid-copy by a second link.
    nobody = next(p for p in (pick_port(f"nobody{i}", [J_IP]) for i in range(10)) if p != cluster.port)
    s.start(routes=[{"hostname": J_IP, "port": nobody}])
    j = cluster.node(J_IP)
    reset_ok = reset_peak(s.pid)
    s_rss0, _ = mem_kib(s.pid)
    sampled = {s.pid: s_rss0, j.pid: 0}
    t_start = time.monotonic()
    j.start(routes=[S_IP])
    t_first = None
    first_max = 0
    last_max = -1
    stalled_since = time.monotonic()
    while True:
        for pid in sampled:
            sampled[pid] = max(sampled[pid], mem_kib(pid)[0])
        m = table_or_zero(j, "SELECT max(id) FROM t")
        now = time.monotonic()
        if m and t_first is None:
            t_first, first_max = now, m
        if m != last_max:
            last_max, stalled_since = m, now
        if m >= args.rows:
            break
        check(now - stalled_since < 60, f"the copy made no progress for 60 s (J at max(id) {m:,}); J: {j.log_tail()}")
        check(now < deadline, f"budget spent during the copy (J at max(id) {m:,})")
        harness.hold(0.25, "the sampling interval of the copy's progress and the RSS peaks")
    t_done = time.monotonic()
    # The peaks of the copy, before this probe's own queries grow J's page cache.
    _, s_hwm = mem_kib(s.pid)
    j_rss, j_hwm = mem_kib(j.pid)
    wait_until(lambda: j.scalar("SELECT count(*) FROM t", timeout=120) == args.rows, min(120, left()), "every row counted on J",
               interval=1.0)
    s_peak = s_hwm if reset_ok else max(sampled[s.pid], mem_kib(s.pid)[0])
    copy_s = t_done - t_start
    arriving = (args.rows - first_max) / (t_done - t_first) if t_first and t_done > t_first else args.rows / copy_s
    print(f"  2. J copied {args.rows:,} rows in {copy_s:.1f}s: {args.rows / copy_s:,.0f} rows/s from repl_start, "
          f"{arriving:,.0f} rows/s while rows arrived (first row after {(t_first - t_start) * 1000:.0f} ms)", flush=True)

    # Content: aggregates over every column, then rows drawn at random, on both nodes.
    ds, dj = s.sql(DIGEST, timeout=min(300, left())), j.sql(DIGEST, timeout=min(300, left()))
    check_eq(dj, ds, "J's aggregates against S's (count, sum(id), sum(grp), lengths, pad digits)")
    check_eq(ds[0][0], args.rows, "rows on S")
    rng = random.Random(7)
    ids = sorted(rng.sample(range(1, args.rows + 1), min(2000, args.rows)))
    marks = ",".join("?" * len(ids))
    q = f"SELECT id, name, grp, pad FROM t WHERE id IN ({marks}) ORDER BY id"
    check_eq(j.sql(q, *ids, timeout=120), s.sql(q, *ids, timeout=120), f"{len(ids)} rows drawn at random")
    print(f"  3. J holds the same rows as S (aggregates over every column; {len(ids):,} rows drawn at random)")

    limit_kib = args.limit_mb * 1e6 / 1024
    verdict = lambda kib: "ok" if kib < limit_kib else "OVER"  # noqa: E731
    print(f"\n{'figure':<46} {'value':>12} {'target':>12}  status")
    print(f"{'copy of ' + format(args.rows, ',') + ' rows (rows/s, from repl_start)':<46} {args.rows / copy_s:>12,.0f} {'':>12}")
    print(f"{'  while rows arrived (rows/s)':<46} {arriving:>12,.0f}")
    what = "VmHWM since the copy started" if reset_ok else "sampled max RSS (VmHWM reset not allowed)"
    print(f"{'peak RSS of the source S (MB)':<46} {mb(s_peak):>12.1f} {'< ' + format(args.limit_mb, '.0f'):>12}  {verdict(s_peak)}")
    print(f"{'peak RSS of the joiner J (MB)':<46} {mb(j_hwm):>12.1f} {'< ' + format(args.limit_mb, '.0f'):>12}  {verdict(j_hwm)}")
    print(f"  S: {what}; RSS {mb(s_rss0):.1f} MB when the copy started, sampled max {mb(sampled[s.pid]):.1f} MB; "
          f"peak while writing the data {mb(write_hwm):.1f} MB")
    print(f"  J: VmHWM up to the last copied row; RSS {mb(j_rss):.1f} MB then, sampled max {mb(sampled[j.pid]):.1f} MB")
    print(f"  load average at the end {open('/proc/loadavg').read().split()[:3]}")
    s.stop()
    j.stop()
    return 0 if s_peak < limit_kib and j_hwm < limit_kib else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TestFailure as e:
        print(f"copy scale probe failed: {e}")
        sys.exit(1)
