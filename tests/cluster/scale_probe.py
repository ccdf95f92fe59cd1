#!/usr/bin/python3
"""Scale probe: how a gossip-formed full mesh behaves as the node count
grows. Not a test (CTest does not run it); it prints figures. docs/scaling.md reports them.

    HDBREPL_SO=build/libhdbrepl /usr/bin/python3 tests/cluster/scale_probe.py --nodes 3,6,12,16

For each node count n, with n real node processes on 127.0.0.2 .. 127.0.0.(n+1) (loopback
only), started and killed by PID through harness.py:

1. join: node 1 is the seed; every other node joins through it alone (tls mode: each joiner
   runs add_node on the seed with a cluster_user's credentials — the certificate exchange;
   plain mode: the seed runs add_node for the joiner, which routes only to the seed). Then
   "mesh" = seconds from the return of the last add_node until every node's cluster_status
   lists every other node as connected (the status snapshot refreshes every 250 ms, so this
   is accurate to about 0.25 s). The probe also counts the established TCP sockets of the
   node PIDs (ss): a full mesh with one link per pair has n(n-1) socket ends.
2. idle: 2 s after the mesh formed, utime+stime (/proc/<pid>/stat) and RSS (/proc/<pid>/
   status) of every node, and TCP bytes sent (ss bytes_acked), over --idle seconds.
3. writes: one writer node (the second node, not the seed) inserts --rows rows in
   1,000-row transactions (one INSERT ... SELECT per autocommit transaction) of a table
   `id INTEGER PRIMARY KEY, name TEXT, breed TEXT INDEXED`; the window ends when every node
   holds every row. CPU per node over the window, peak RSS (VmHWM), TCP bytes sent by all
   node PIDs over the window divided by rows (raw, and with the idle rate subtracted).
4. latency: --samples single-row commits, on writers taken in turn from every node; for
   each, the time from sending the INSERT to (a) the writer's repl_confirm(n-1) returning
   (every peer applied it durably and acked it) and (b) the row being seen by a SELECT on
   every node (all nodes polled together, pipelined; an upper bound, +poll round).

Bytes are counted with `ss -tinpHn` (bytes_acked of every TCP socket whose owner is one of
our node PIDs): that is exactly what the nodes put on the wire (WebSocket frames, TLS records
in tls mode, pings and acks included; TCP/IP headers excluded), and nothing else.
/proc/<pid>/io wchar would also count the SQLite database/WAL writes and the pipe to this
script, so it is no measure of network traffic.

CPU on a shared 2-core machine is noisy; prefer per-row and per-node ratios. Every wait has
a timeout; the whole run is bounded by --budget seconds (default 600).
HDBREPL_KEEP=1 keeps the temp directories (node logs: <dir>/<ip>.log).
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Cluster, TestFailure, check, check_eq, wait_until  # noqa: E402
from security_test import PASSWORD, secure_config, secure_port  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
TABLE = "CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT, breed TEXT INDEXED)"
LAT_TABLE = "CREATE VIRTUAL TABLE lat USING hdbrepl(id INTEGER PRIMARY KEY, v INTEGER)"
INSERT_1000 = ("WITH RECURSIVE s(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM s WHERE i < ?) "
               "INSERT INTO t SELECT i, 'name-' || i, 'breed-' || (i % 8) FROM s")


# ---- /proc and ss ---------------------------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of the whole process (every thread), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def mem_kib(pid):
    """(VmRSS, VmHWM) in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


_PID_RE = re.compile(r"pid=(\d+)")
_BYTES_RE = re.compile(r"\b(bytes_sent|bytes_acked|bytes_received):(\d+)")


def tcp_sockets(pids):
    """{(pid, local, peer): {bytes_sent, bytes_acked, bytes_received}} for established TCP
    sockets owned by `pids` (ss -tinpHn, one socket per two lines)."""
    out = subprocess.run(["ss", "-tinpHn", "state", "established"], capture_output=True, text=True, timeout=20).stdout
    socks = {}
    key = None
    for line in out.splitlines():
        if not line[:1].isspace():  # the socket line: Recv-Q Send-Q local peer users:((...))
            key = None
            parts = line.split()
            owners = [int(p) for p in _PID_RE.findall(line)]
            mine = [p for p in owners if p in pids]
            if mine and len(parts) >= 4:
                key = (mine[0], parts[2], parts[3])
                socks[key] = {}
        elif key is not None:
            for name, v in _BYTES_RE.findall(line):
                socks[key][name] = int(v)
    return socks


def bytes_delta(before, after, field="bytes_acked"):
    """Bytes over the interval, summed over sockets; sockets that appeared count from 0,
    sockets that vanished are counted in `lost` (their last bytes are not in the sum)."""
    total = 0
    for k, v in after.items():
        total += v.get(field, 0) - before.get(k, {}).get(field, 0)
    lost = sum(1 for k in before if k not in after)
    return total, lost


class Snapshot:
    def __init__(self, nodes):
        self.t = time.monotonic()
        self.cpu = {n.pid: cpu_seconds(n.pid) for n in nodes}
        self.mem = {n.pid: mem_kib(n.pid) for n in nodes}
        self.socks = tcp_sockets({n.pid for n in nodes})


# ---- talking to many nodes at once ------------------------------------------------------------

def pipelined(nodes, q, params=(), timeout=30):
    """Sends one statement to every node, then reads every reply: [rows per node]."""
    msg = (json.dumps({"sql": q, "params": list(params)}) + "\n").encode()
    for n in nodes:
        n.proc.stdin.write(msg)
        n.proc.stdin.flush()
    out = []
    for n in nodes:
        r = n._read_reply(timeout)
        if "error" in r:
            raise TestFailure(f"node {n.ip}: {q[:120]!r}: {r['error']}")
        out.append(r["rows"])
    return out


def mesh_missing(nodes):
    """Number of (node, peer) pairs not connected per cluster_status; 0 = full mesh."""
    statuses = pipelined(nodes, "SELECT repl_cluster_status()")
    missing = 0
    for n, rows in zip(nodes, statuses):
        st = json.loads(rows[0][0])
        got = {c["name"] for c in st.get("connections", [])
               if c.get("database_sockets") and c["database_sockets"][0].get("connected")}
        missing += sum(1 for m in nodes if m is not n and m.ip not in got)
    return missing


def quiet(nodes):
    """No node has anything a peer has not confirmed."""
    return all(conn.get("backlog") == 0 for n in nodes for conn in n.status().get("connections", []))


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, math.ceil(p / 100.0 * len(xs)) - 1))  # nearest rank
    return xs[k]


# ---- one node count -------------------------------------------------------------------------

def start_cluster(n, mode, log):
    ips = [f"127.0.0.{x}" for x in range(2, 2 + n)]
    c = Cluster(f"scale{n}{mode}", 1, ips=ips)
    baseline_rss = []
    t_first = time.monotonic()
    if mode == "tls":
        seed = c.node(ips[0])
        baseline_rss.append(mem_kib(seed.pid)[0])
        seed.start(config=secure_config(c, seed))
        seed.op("add_user", {"username": "admin", "password": PASSWORD, "role": "cluster_user"})
        nodes = [seed]
        for ip in ips[1:]:
            m = c.node(ip)
            baseline_rss.append(mem_kib(m.pid)[0])
            m.start(config=secure_config(c, m))
            reply = m.op("add_node", {"hostname": seed.ip, "port": secure_port(c), "verify_tls": False,
                                      "authorization": {"username": "admin", "password": PASSWORD}})
            check_eq(reply, {"message": f"Successfully added '{seed.ip}' to cluster"}, f"{ip} joins through the seed")
            nodes.append(m)
    else:
        seed = c.node(ips[0])
        baseline_rss.append(mem_kib(seed.pid)[0])
        seed.start()
        nodes = [seed]
        for ip in ips[1:]:
            m = c.node(ip)
            baseline_rss.append(mem_kib(m.pid)[0])
            seed.op("add_node", {"hostname": ip})
            m.start(routes=[seed.ip])
            nodes.append(m)
    t_last = time.monotonic()
    log(f"  n={n}: {n} nodes started and joined through {seed.ip} in {t_last - t_first:.1f}s; waiting for the mesh")
    return c, nodes, baseline_rss, t_first, t_last


def probe(n, mode, rows, idle_s, samples, log):
    res = {"nodes": n, "mode": mode, "links": n * (n - 1) // 2, "loadavg_before": os.getloadavg()[0]}
    c, nodes, baseline_rss, t_first, t_last = start_cluster(n, mode, log)
    res["dir"] = c.dir
    try:
        # 1. mesh
        wait_until(lambda: mesh_missing(nodes) == 0, 60 + 2 * n, f"full mesh of {n} nodes", interval=0.05)
        t_mesh = time.monotonic()
        res["mesh_s"] = t_mesh - t_last
        res["join_to_mesh_s"] = t_mesh - t_first
        socks = tcp_sockets({m.pid for m in nodes})
        res["socket_ends"] = len(socks)
        per_node = [sum(1 for k in socks if k[0] == m.pid) for m in nodes]
        res["sockets_per_node"] = [min(per_node), max(per_node)]
        log(f"  n={n}: full mesh {res['mesh_s']:.2f}s after the last add_node; {len(socks)} TCP socket ends "
            f"(a full mesh with one link per pair has {n * (n - 1)})")

        # 2. idle (the method above: the window starts 2 s after the mesh formed)
        harness.hold(2.0, "the idle window starts 2 s after the mesh formed")
        a = Snapshot(nodes)
        harness.hold(idle_s, "the idle window being measured")
        b = Snapshot(nodes)
        dt = b.t - a.t
        cpu = [(b.cpu[m.pid] - a.cpu[m.pid]) / dt * 100 for m in nodes]
        res["idle_cpu_pct_mean"] = statistics.mean(cpu)
        res["idle_cpu_pct_max"] = max(cpu)
        res["idle_cpu_pct_sum"] = sum(cpu)
        rss = [b.mem[m.pid][0] for m in nodes]
        res["baseline_rss_mib"] = statistics.median(baseline_rss) / 1024
        res["idle_rss_mib_mean"] = statistics.mean(rss) / 1024
        res["idle_rss_mib_max"] = max(rss) / 1024
        idle_bytes, lost = bytes_delta(a.socks, b.socks)
        res["idle_bytes_per_s"] = idle_bytes / dt
        res["idle_bytes_per_s_per_link"] = idle_bytes / dt / res["links"]
        res["idle_socks_lost"] = lost
        res["socket_ends_steady"] = len(b.socks)
        log(f"  n={n}: {len(b.socks)} TCP socket ends after the idle window")
        log(f"  n={n}: idle {dt:.1f}s: CPU/node mean {res['idle_cpu_pct_mean']:.2f}% max {res['idle_cpu_pct_max']:.2f}%, "
            f"RSS/node mean {res['idle_rss_mib_mean']:.1f} MiB (before repl_start {res['baseline_rss_mib']:.1f}), "
            f"{res['idle_bytes_per_s']:.0f} B/s on the wire ({res['idle_bytes_per_s_per_link']:.0f} per link)")

        # 3. writes
        writer = nodes[1]
        writer.sql(TABLE)
        writer.sql(LAT_TABLE)
        wait_until(lambda: all(r[0][0] == 2 for r in pipelined(nodes, "SELECT count(*) FROM sqlite_master WHERE name IN ('t', 'lat')")),
                   30, "tables t and lat on every node")
        # The tables' CREATEs confirmed everywhere before the window opens.
        wait_until(lambda: quiet(nodes), 30, "every link quiet (no backlog) after the CREATEs")
        a = Snapshot(nodes)
        for k in range(rows // 1000):
            writer.sql(INSERT_1000, k * 1000 + 1, (k + 1) * 1000, timeout=60)
        t_written = time.monotonic()

        # One origin's transactions apply in order: its last row on a node means all of them
        # (a point lookup, cheap enough not to disturb the CPU figures; counted after).
        def all_have():
            return all(r[0][0] == 1 for r in pipelined(nodes, "SELECT count(*) FROM t WHERE id = ?", [rows]))

        wait_until(all_have, 120 + rows / 1000, f"row {rows} on all {n} nodes", interval=0.02)
        b = Snapshot(nodes)
        check(all(r[0][0] == rows for r in pipelined(nodes, "SELECT count(*) FROM t", timeout=60)), f"{rows} rows on every node")
        dt = b.t - a.t
        res["rows"] = rows
        res["write_s"] = t_written - a.t
        res["all_visible_s"] = dt
        res["writer_rows_per_s"] = rows / res["write_s"]
        res["rows_per_s_on_all"] = rows / dt
        cpu = {m.pid: b.cpu[m.pid] - a.cpu[m.pid] for m in nodes}
        readers = [cpu[m.pid] for m in nodes if m is not writer]
        res["writer_cpu_us_per_row"] = cpu[writer.pid] / rows * 1e6
        res["reader_cpu_us_per_row_mean"] = statistics.mean(readers) / rows * 1e6
        res["total_cpu_us_per_row"] = sum(cpu.values()) / rows * 1e6
        res["write_cpu_pct_mean"] = statistics.mean(cpu.values()) / dt * 100
        hwm = [b.mem[m.pid][1] for m in nodes]
        res["peak_rss_mib_mean"] = statistics.mean(hwm) / 1024
        res["peak_rss_mib_max"] = max(hwm) / 1024
        res["writer_peak_rss_mib"] = b.mem[writer.pid][1] / 1024
        wire, lost = bytes_delta(a.socks, b.socks)
        res["write_socks_lost"] = lost
        res["bytes_per_row"] = wire / rows
        net = max(0.0, wire - res["idle_bytes_per_s"] * dt)
        res["bytes_per_row_net"] = net / rows
        res["bytes_per_row_per_peer"] = net / rows / (n - 1)
        wsent, _ = bytes_delta({k: v for k, v in a.socks.items() if k[0] == writer.pid},
                               {k: v for k, v in b.socks.items() if k[0] == writer.pid})
        res["writer_bytes_per_row"] = wsent / rows
        log(f"  n={n}: {rows} rows: writer {res['writer_rows_per_s']:.0f} rows/s, on all nodes after {dt:.2f}s "
            f"({res['rows_per_s_on_all']:.0f} rows/s); CPU/row writer {res['writer_cpu_us_per_row']:.1f} us, "
            f"each other node {res['reader_cpu_us_per_row_mean']:.1f} us, all {res['total_cpu_us_per_row']:.1f} us; "
            f"{res['bytes_per_row']:.0f} B/row on the wire ({res['bytes_per_row_net']:.0f} without idle traffic, "
            f"{res['bytes_per_row_per_peer']:.1f} per peer; the writer sent {res['writer_bytes_per_row']:.0f}); "
            f"peak RSS/node mean {res['peak_rss_mib_mean']:.1f} MiB max {res['peak_rss_mib_max']:.1f}")

        # 4. latency. (a) commit + repl_confirm on the writer, no polling; CPU of every node
        # over these commits, per commit. (b) commit, then poll every other node.
        confirm, seen, seen_half = [], [], []
        a = Snapshot(nodes)
        for i in range(samples):
            w = nodes[i % n]
            t0 = time.monotonic()
            got = w.batch([("INSERT INTO lat VALUES (?, ?)", [i + 1, i]), ("SELECT repl_confirm(?, 10000)", [n - 1])])
            confirm.append(time.monotonic() - t0)
            check(got[0][0] >= n - 1, f"repl_confirm on {w.ip}: {got} of {n - 1}")
        b = Snapshot(nodes)
        res["cpu_ms_per_commit_all"] = sum(b.cpu[m.pid] - a.cpu[m.pid] for m in nodes) / samples * 1000
        idle_cpu = res["idle_cpu_pct_sum"] / 100 * (b.t - a.t)  # what the idle nodes would have spent
        res["cpu_ms_per_commit_all_net"] = max(0.0, sum(b.cpu[m.pid] - a.cpu[m.pid] for m in nodes) - idle_cpu) / samples * 1000
        for i in range(samples):
            w = nodes[i % n]
            pending = [m for m in nodes if m is not w]
            key = samples + i + 1
            t0 = time.monotonic()
            w.sql("INSERT INTO lat VALUES (?, ?)", key, i)
            deadline = t0 + 10
            times = []
            for _ in range(100000):
                found = pipelined(pending, "SELECT count(*) FROM lat WHERE id = ?", [key])
                now = time.monotonic()
                times += [now - t0 for r in found if r[0][0] == 1]
                pending = [m for m, r in zip(pending, found) if r[0][0] != 1]
                if not pending:
                    break
                check(now < deadline, f"row {key} of {w.ip} not on {[m.ip for m in pending]} after 10 s")
            seen.append(times[-1])
            seen_half.append(sorted(times)[len(times) // 2])
        res["confirm_ms_p50"] = statistics.median(confirm) * 1000
        res["confirm_ms_p99"] = pct(confirm, 99) * 1000
        res["seen_ms_p50"] = statistics.median(seen) * 1000
        res["seen_ms_p99"] = pct(seen, 99) * 1000
        res["seen_ms_max"] = max(seen) * 1000
        res["seen_half_ms_p50"] = statistics.median(seen_half) * 1000
        log(f"  n={n}: latency over {samples} commits: confirmed by all {n - 1} peers p50 {res['confirm_ms_p50']:.2f} "
            f"p99 {res['confirm_ms_p99']:.2f} ms ({res['cpu_ms_per_commit_all']:.2f} ms CPU per commit, all nodes; "
            f"{res['cpu_ms_per_commit_all_net']:.2f} without the idle rate); "
            f"seen on all by polling p50 {res['seen_ms_p50']:.2f} p99 {res['seen_ms_p99']:.2f} max {res['seen_ms_max']:.2f} ms, "
            f"on half of them p50 {res['seen_half_ms_p50']:.2f} ms")

        for m in nodes:
            check(m.alive(), f"node {m.ip} died (log: {m.log_tail()})")
    finally:
        c.close()
    return res


def table(results):
    rows = [
        ("nodes (links = n(n-1)/2)", lambda r: f"{r['nodes']} ({r['links']})"),
        ("TCP socket ends at full mesh / after idle", lambda r: f"{r['socket_ends']} / {r['socket_ends_steady']}"),
        ("full mesh after the last join, s", lambda r: f"{r['mesh_s']:.2f}"),
        ("first start to full mesh, s", lambda r: f"{r['join_to_mesh_s']:.1f}"),
        ("RSS/node before repl_start, MiB", lambda r: f"{r['baseline_rss_mib']:.1f}"),
        ("RSS/node idle, mean / max, MiB", lambda r: f"{r['idle_rss_mib_mean']:.1f} / {r['idle_rss_mib_max']:.1f}"),
        ("CPU/node idle, mean / max, %", lambda r: f"{r['idle_cpu_pct_mean']:.2f} / {r['idle_cpu_pct_max']:.2f}"),
        ("idle wire bytes/s, all / per link", lambda r: f"{r['idle_bytes_per_s']:.0f} / {r['idle_bytes_per_s_per_link']:.0f}"),
        ("writer insert rate, rows/s", lambda r: f"{r['writer_rows_per_s']:.0f}"),
        ("rows/s until on all nodes", lambda r: f"{r['rows_per_s_on_all']:.0f}"),
        ("CPU/row: writer, us", lambda r: f"{r['writer_cpu_us_per_row']:.1f}"),
        ("CPU/row: each other node (mean), us", lambda r: f"{r['reader_cpu_us_per_row_mean']:.1f}"),
        ("CPU/row: all nodes, us", lambda r: f"{r['total_cpu_us_per_row']:.1f}"),
        ("peak RSS/node under writes, mean / max, MiB", lambda r: f"{r['peak_rss_mib_mean']:.1f} / {r['peak_rss_mib_max']:.1f}"),
        ("wire bytes/row, all nodes", lambda r: f"{r['bytes_per_row']:.0f}"),
        ("  minus idle traffic; per peer", lambda r: f"{r['bytes_per_row_net']:.0f}; {r['bytes_per_row_per_peer']:.1f}"),
        ("  sent by the writer", lambda r: f"{r['writer_bytes_per_row']:.0f}"),
        ("commit to confirmed by all, p50 / p99, ms", lambda r: f"{r['confirm_ms_p50']:.2f} / {r['confirm_ms_p99']:.2f}"),
        ("CPU per single-row commit, all nodes (minus idle), ms", lambda r: f"{r['cpu_ms_per_commit_all']:.2f} ({r['cpu_ms_per_commit_all_net']:.2f})"),
        ("commit to seen on all, p50 / p99, ms", lambda r: f"{r['seen_ms_p50']:.2f} / {r['seen_ms_p99']:.2f}"),
        ("commit to seen on half of them, p50, ms", lambda r: f"{r['seen_half_ms_p50']:.2f}"),
        ("load average before (other jobs)", lambda r: f"{r['loadavg_before']:.1f}"),
    ]
    head = "| figure | " + " | ".join(f"n={r['nodes']}" for r in results) + " |"
    sep = "|---|" + "---|" * len(results)
    lines = [head, sep]
    for name, f in rows:
        cells = []
        for r in results:
            try:
                cells.append(f(r))
            except (KeyError, TypeError):
                cells.append("-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="3,6,12,16", help="node counts, comma-separated (2..200)")
    ap.add_argument("--mode", choices=("tls", "plain"), default="tls",
                    help="tls: secure port, join by add_node with a user of the seed; plain: IP-authenticated port")
    ap.add_argument("--rows", type=int, default=100000, help="rows written under load (multiple of 1000)")
    ap.add_argument("--idle", type=float, default=10.0, help="idle window, seconds")
    ap.add_argument("--samples", type=int, default=100, help="latency samples per node count")
    ap.add_argument("--budget", type=float, default=600.0, help="stop starting node counts after this many seconds")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    if not harness.SO:
        print("set HDBREPL_SO to the built library path without .so (e.g. build/libhdbrepl)")
        return 2
    counts = [int(x) for x in args.nodes.split(",") if x.strip()]
    check(all(2 <= x <= 200 for x in counts), "node counts must be 2..200 (127.0.0.2 .. 127.0.0.201)")
    check(args.rows >= 1000 and args.rows % 1000 == 0, "--rows must be a multiple of 1000")
    t_start = time.monotonic()

    def log(s):
        print(f"[{time.monotonic() - t_start:6.1f}s] {s}", flush=True)

    log(f"scale_probe: nodes {counts}, mode {args.mode}, {args.rows} rows, idle {args.idle}s, {args.samples} latency samples; "
        f"library {harness.SO}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    results = []
    for n in counts:
        if time.monotonic() - t_start > args.budget:
            log(f"budget of {args.budget:.0f}s spent; skipping n={n} and beyond")
            break
        log(f"n={n}: load average {os.getloadavg()[0]:.2f}")
        results.append(probe(n, args.mode, args.rows, args.idle, args.samples, log))
    print()
    print(f"mode {args.mode}, {args.rows} rows in 1,000-row transactions, idle window {args.idle:.0f}s, "
          f"{args.samples} latency samples; total {time.monotonic() - t_start:.0f}s")
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    harness._cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
