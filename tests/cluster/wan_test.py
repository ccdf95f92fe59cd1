#!/usr/bin/python3
"""Replication over a delayed link: every byte between the two nodes goes through a TCP
proxy that holds each chunk 25 ms in each direction (a 50 ms round trip; the chaos proxy's
"slow" mode, tests/chaos/proxy.py), as between regions, kept short so the file runs in a
few seconds.

Each node advertises 127.0.0.x (its hostname, the address its peer dials and checks) and
listens on 127.0.0.(100+x) (its bind); the proxy listens on the advertised addresses and
dials the other node FROM the dialer's advertised address, so the plain port's address
checks see the addresses they expect and stay as they are.

- An initial copy of 60,000 rows (about 130 bytes each) to an empty node, then streaming
  both ways (inserts, updates and deletes in many transactions, a 2 MB transaction, rows
  written on the joiner): every row arrives, compared by content (a hash of every row).
  The link is checked to be the delayed one: a single row takes at least the one-way delay
  to become visible, and the proxy carried the copy.
"""
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "chaos"))
from harness import check, check_eq, pick_port, run_tests, table_digest, wait_connected, wait_until, yaml_config  # noqa: E402
from proxy import ChaosProxy  # noqa: E402

ADV = ["127.0.0.2", "127.0.0.3"]     # B (joins), A (writes first): hostnames, dialed by peers
BINDS = ["127.0.0.102", "127.0.0.103"]  # where each node listens and dials from
ONE_WAY_MS = 25
ROWS = 60_000
TABLE = "CREATE VIRTUAL TABLE big USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER INDEXED, pad TEXT)"
FILL = ("WITH RECURSIVE s(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM s WHERE x + 1 < ?) "
        "INSERT INTO big SELECT x, 'name-' || x, x % 97, printf('%0100d', x * 7919) FROM s")


def delayed_pair(c):
    """Starts the proxy (slow from the first byte) and the two nodes behind it; returns
    (proxy, b, a, start_b) with A started and B's process up but not started."""
    port = pick_port("wan", ADV + BINDS)
    proxy = ChaosProxy(ADV, BINDS, port)
    proxy.start()
    proxy.set_link(0, 1, "slow", delay_ms=ONE_WAY_MS)
    b, a = c.node(ADV[0]), c.node(ADV[1])

    def config(i):
        other = ADV[1 - i]
        return yaml_config(ADV[i], port, routes=[f"ws://{other}:{port}"], bind=BINDS[i], extra=c.default_extra)

    a.start(config(1))
    return proxy, b, a, lambda: b.start(config(0))


def rows_of(node):
    """Rows in `big` on `node` (0 before the table has arrived)."""
    if not node.sql("SELECT 1 FROM sqlite_schema WHERE name = 'big'"):
        return 0
    return node.scalar("SELECT count(*) FROM big")


def visible_after(writer, reader, key, timeout=10):
    """Seconds from a single-row commit on `writer` until `reader` sees it."""
    t0 = time.monotonic()
    writer.sql("INSERT INTO big VALUES (?, 'probe', 0, 'p')", key)
    wait_until(lambda: reader.sql("SELECT 1 FROM big WHERE id = ?", key), timeout, f"row {key} on {reader.ip}", interval=0.002)
    return time.monotonic() - t0


def test_copy_and_streaming_over_a_delayed_link(c):
    proxy, b, a, start_b = delayed_pair(c)
    try:
        a.sql(TABLE)
        for lo in range(0, ROWS, 10_000):
            a.sql(FILL, lo, lo + 10_000, timeout=60)
        check_eq(a.scalar("SELECT count(*) FROM big"), ROWS, "rows on A")
        copy_bytes_before = proxy.stats["bytes"]
        t0 = time.monotonic()
        start_b()
        wait_until(lambda: rows_of(b) == ROWS, 90, f"{ROWS} rows copied to B", interval=0.1, describe=lambda: b.status())
        print(f"    copy of {ROWS} rows over a {2 * ONE_WAY_MS} ms round trip: {time.monotonic() - t0:.2f}s")
        check_eq(table_digest(b, "big"), table_digest(a, "big"), "B's copy, row by row")
        check(proxy.stats["bytes"] - copy_bytes_before > ROWS * 100,
              f"the copy went through the proxy: {proxy.stats['bytes'] - copy_bytes_before} bytes for {ROWS} rows")
        wait_connected(a, b, timeout=15)

        # The link is the delayed one, both ways.
        for writer, reader, key in ((a, b, -1), (b, a, -2)):
            dt = visible_after(writer, reader, key)
            check(dt >= ONE_WAY_MS / 1000.0, f"{writer.ip} -> {reader.ip}: a row visible after {dt * 1000:.1f} ms, "
                  f"less than the proxy's {ONE_WAY_MS} ms: the link bypasses the proxy")

        # Streaming: many transactions of inserts, updates and deletes on A; one big
        # transaction (2 MB: many TCP chunks in flight through the proxy); writes on B.
        for i in range(100):
            k = (i * 613) % ROWS
            a.batch([("BEGIN", []),
                     ("INSERT INTO big VALUES (?, ?, ?, 'live')", [ROWS + i, f"live-{i}", i % 97]),
                     ("UPDATE big SET name = ? WHERE id = ?", [f"upd-{i}", k]),
                     ("DELETE FROM big WHERE id = ?", [(k * 7 + 13) % ROWS]),
                     ("COMMIT", [])])
        a.sql("BEGIN")
        a.sql("WITH RECURSIVE s(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM s WHERE x + 1 < ?) "
              "INSERT INTO big SELECT x, 'bulk-' || x, x % 5, hex(zeroblob(100)) FROM s", 200_000, 210_000)
        a.sql("COMMIT")
        for i in range(50):
            b.sql("INSERT INTO big VALUES (?, ?, 1, 'from b')", 300_000 + i, f"b-{i}")

        def same():
            return table_digest(a, "big") == table_digest(b, "big")
        wait_until(same, 60, "A and B hold the same rows after streaming", interval=0.2,
                   describe=lambda: (a.scalar("SELECT count(*) FROM big"), b.scalar("SELECT count(*) FROM big")))
        count = a.scalar("SELECT count(*) FROM big")
        check_eq(count, ROWS + 2 + 100 - 100 + 10_000 + 50, "rows after streaming (100 inserted, 100 deleted)")
        check_eq(a.scalar("SELECT count(*) FROM big WHERE pad = 'from b'"), 50, "B's rows on A")
    finally:
        proxy.stop()


if __name__ == "__main__":
    run_tests(globals())
