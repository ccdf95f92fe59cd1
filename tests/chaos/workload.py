"""The chaos workload: one writer thread per node and one reader process per node.

Tables (created once, on the first node, and replicated):

    rows(id INTEGER PRIMARY KEY, node TEXT, val TEXT)   unique inserts, deletes of own rows
    a(id INTEGER PRIMARY KEY, v TEXT)                   a and b are written together, one
    b(id INTEGER PRIMARY KEY, v TEXT)                   transaction: same id, same value
    hot(id INTEGER PRIMARY KEY, val TEXT)               a few keys every node updates

Every write is recorded with its outcome:

    committed  the request that ran COMMIT (or the autocommit statement) answered OK
    failed     it answered with an SQL error (the transaction was rolled back), or it was
               never sent because the node was not running
    maybe      no answer: the process died, was stopped or the pipe broke in the middle

For hot-key updates the row's version (hlc, origin name) is read from the shadow table
inside the writing transaction, after the UPDATE and before COMMIT: the write lock is held
from BEGIN IMMEDIATE, so it is this write's version (the version is taken at the first
write of the transaction, sql/connection_state.cpp).

Each writer's choices come from its own random.Random seeded from the run's seed; thread
timing still differs between runs, so a replay repeats the choices and the fault schedule,
not the exact interleaving.
"""
import random
import threading
import time

import harness

HOT_KEYS = 8
ID_BLOCK = 10_000_000  # node i's ids are (i+1)*ID_BLOCK + n
# A big transaction: this many rows of `rows` in one commit, ~1.4 MB of changes, so it is
# written, sent and applied as several parts (engine/txn_record.hpp, "Parts"). At most
# BIG_PER_WRITER each, so the tables stay small enough to compare quickly at the end.
BIG_ROWS = 5_000
BIG_PAD = "p" * 250
BIG_PER_WRITER = 2

SCHEMA = [
    "CREATE VIRTUAL TABLE rows USING hdbrepl(id INTEGER PRIMARY KEY, node TEXT, val TEXT)",
    "CREATE VIRTUAL TABLE a USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)",
    "CREATE VIRTUAL TABLE b USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)",
    "CREATE VIRTUAL TABLE hot USING hdbrepl(id INTEGER PRIMARY KEY, val TEXT)",
]
TABLES = ("rows", "a", "b", "hot")

HOT_VERSION_Q = ("SELECT d.val, d.hdbrepl_v, o.name FROM hot_data d JOIN hdbrepl_origins o ON o.id = d.hdbrepl_o "
                 "WHERE d.id = ?")

REQUEST_TIMEOUT = 30


class NotRunning(Exception):
    pass


class Writer(threading.Thread):
    """Writes to one node until stopped, at most max_ops operations."""

    def __init__(self, idx, node, seed, stop_event, max_ops=200000, pause_s=(0.0, 0.01)):
        super().__init__(name=f"writer-{node.name}", daemon=True)
        self.idx = idx
        self.node = node
        self.rng = random.Random(seed * 1000 + idx)
        self.stop_event = stop_event
        self.max_ops = max_ops
        self.pause_s = pause_s
        self.counter = 0
        # Outcomes (read by the main thread after join()).
        self.inserts = []   # {id, node, val, status}
        self.deletes = []   # {id, status}
        self.mtx = []       # {id, kind, val, status}  kind: insert | update, in issue order
        self.hot = []       # {key, val, node, status, hlc, origin}
        self.bigs = []      # {first, last, status}: ids of one big transaction (also in inserts)
        self.ops = {"insert": 0, "hot": 0, "mtx_insert": 0, "mtx_update": 0, "delete": 0, "big": 0}
        self.skipped_down = 0
        self.hung = 0
        self.errors = {}    # SQL error text (shortened) -> count
        self._deletable = []  # ids of committed inserts not yet chosen for a delete
        self._mtx_ids = []    # ids of committed mtx inserts
        self.exc = None

    # -- helpers -------------------------------------------------------------------------
    def _next_id(self):
        self.counter += 1
        return (self.idx + 1) * ID_BLOCK + self.counter

    def _val(self, what):
        return f"{self.node.name}:{what}:{self.counter}"

    def _classify(self, e):
        if isinstance(e, harness.SqlError):
            msg = str(e).split(": ", 2)[-1][:80]
            self.errors[msg] = self.errors.get(msg, 0) + 1
            self._rollback()
            return "failed"
        if isinstance(e, NotRunning):
            return "failed"
        text = str(e)
        if "is not running" in text:
            return "failed"  # refused by the harness before anything was sent
        if "no reply within" in text:
            self.hung += 1
            self.node.needs_restart = True
        return "maybe"

    def _rollback(self):
        try:
            self.node.sql("ROLLBACK", timeout=REQUEST_TIMEOUT)
        except Exception:
            pass  # "no transaction is active" is the usual answer

    def _check_up(self):
        if not self.node.alive() or getattr(self.node, "needs_restart", False):
            raise NotRunning()

    # -- operations ----------------------------------------------------------------------
    def op_insert(self):
        rid = self._next_id()
        val = self._val("row")
        rec = {"id": rid, "node": self.node.name, "val": val, "status": "failed"}
        self.inserts.append(rec)
        try:
            self._check_up()
            self.node.sql("INSERT INTO rows(id, node, val) VALUES (?, ?, ?)", rid, self.node.name, val,
                          timeout=REQUEST_TIMEOUT)
            rec["status"] = "committed"
            self._deletable.append(rid)
        except Exception as e:
            rec["status"] = self._classify(e)

    def op_delete(self):
        if not self._deletable:
            return self.op_insert()
        rid = self._deletable.pop(self.rng.randrange(len(self._deletable)))
        rec = {"id": rid, "status": "failed"}
        self.deletes.append(rec)
        try:
            self._check_up()
            self.node.sql("DELETE FROM rows WHERE id = ?", rid, timeout=REQUEST_TIMEOUT)
            rec["status"] = "committed"
        except Exception as e:
            rec["status"] = self._classify(e)

    def op_hot(self):
        key = self.rng.randrange(1, HOT_KEYS + 1)
        self.counter += 1
        val = self._val(f"hot{key}")
        rec = {"key": key, "val": val, "node": self.node.name, "status": "failed", "hlc": None, "origin": None}
        self.hot.append(rec)
        try:
            self._check_up()
            rows = self.node.batch([("BEGIN IMMEDIATE", []), ("UPDATE hot SET val = ? WHERE id = ?", [val, key]),
                                    (HOT_VERSION_Q, [key])], timeout=REQUEST_TIMEOUT)
        except Exception as e:
            rec["status"] = self._classify(e)
            return
        if len(rows) != 1 or rows[0][0] != val:
            # The key is not here (cannot happen after setup) or the UPDATE did nothing.
            self.errors["hot update changed nothing"] = self.errors.get("hot update changed nothing", 0) + 1
            self._rollback()
            return
        rec["hlc"], rec["origin"] = rows[0][1], rows[0][2]
        try:
            self.node.sql("COMMIT", timeout=REQUEST_TIMEOUT)
            rec["status"] = "committed"
        except Exception as e:
            rec["status"] = self._classify(e)

    def op_mtx_insert(self):
        mid = self._next_id()
        val = self._val("mtx")
        rec = {"id": mid, "kind": "insert", "val": val, "status": "failed"}
        self.mtx.append(rec)
        try:
            self._check_up()
            self.node.batch([("BEGIN IMMEDIATE", []), ("INSERT INTO a(id, v) VALUES (?, ?)", [mid, val]),
                             ("INSERT INTO b(id, v) VALUES (?, ?)", [mid, val]), ("COMMIT", [])],
                            timeout=REQUEST_TIMEOUT)
            rec["status"] = "committed"
            self._mtx_ids.append(mid)
        except Exception as e:
            rec["status"] = self._classify(e)

    def op_mtx_update(self):
        if not self._mtx_ids:
            return self.op_mtx_insert()
        mid = self._mtx_ids[self.rng.randrange(len(self._mtx_ids))]
        self.counter += 1
        val = self._val("mtxu")
        rec = {"id": mid, "kind": "update", "val": val, "status": "failed"}
        self.mtx.append(rec)
        try:
            self._check_up()
            self.node.batch([("BEGIN IMMEDIATE", []), ("UPDATE a SET v = ? WHERE id = ?", [val, mid]),
                             ("UPDATE b SET v = ? WHERE id = ?", [val, mid]), ("COMMIT", [])],
                            timeout=REQUEST_TIMEOUT)
            rec["status"] = "committed"
        except Exception as e:
            rec["status"] = self._classify(e)

    def op_big(self):
        if len(self.bigs) >= BIG_PER_WRITER:
            return self.op_insert()
        first = self.counter + 1
        self.counter += BIG_ROWS
        base = (self.idx + 1) * ID_BLOCK + first - 1
        prefix = f"{self.node.name}:big{first}:"
        rec = {"first": base + 1, "last": base + BIG_ROWS, "status": "failed"}
        rows = [{"id": base + x, "node": self.node.name, "val": f"{prefix}{x}{BIG_PAD}", "status": "failed"}
                for x in range(1, BIG_ROWS + 1)]
        try:
            self._check_up()
            self.node.sql(f"WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < {BIG_ROWS}) "
                          f"INSERT INTO rows(id, node, val) SELECT {base} + x, ?, ? || x || ? FROM s",
                          self.node.name, prefix, BIG_PAD, timeout=REQUEST_TIMEOUT)
            rec["status"] = "committed"
        except Exception as e:
            rec["status"] = self._classify(e)
        for r in rows:
            r["status"] = rec["status"]
        self.inserts.extend(rows)
        self.bigs.append(rec)

    # Weights: a big transaction is rare (each is 5,000 rows).
    OPS = (("insert", 35), ("hot", 25), ("mtx_insert", 15), ("mtx_update", 10), ("delete", 15), ("big", 0.3))

    def run(self):
        try:
            names = [n for n, _ in self.OPS]
            weights = [w for _, w in self.OPS]
            for _ in range(self.max_ops):
                if self.stop_event.is_set():
                    break
                if not self.node.alive() or getattr(self.node, "needs_restart", False):
                    self.skipped_down += 1
                    self.stop_event.wait(0.05)
                    continue
                op = self.rng.choices(names, weights)[0]
                self.ops[op] += 1
                getattr(self, "op_" + op)()
                lo, hi = self.pause_s
                if hi > 0:
                    self.stop_event.wait(self.rng.uniform(lo, hi))
        except Exception as e:  # a harness bug: reported, fails the run
            self.exc = f"{type(e).__name__}: {e}"

    def outcomes(self):
        return {"inserts": self.inserts, "deletes": self.deletes, "mtx": self.mtx, "hot": self.hot, "bigs": self.bigs}


class Reader(threading.Thread):
    """Repeatedly reads tables a and b of one node's database in ONE read transaction (a
    second process on the same file) and checks that every id in one is in the other with
    the same value: a transaction applied in part would show up here."""

    def __init__(self, node_name, reader_node, stop_event, max_reads=1000000, pause_s=0.02):
        super().__init__(name=f"reader-{node_name}", daemon=True)
        self.node_name = node_name
        self.node = reader_node
        self.stop_event = stop_event
        self.max_reads = max_reads
        self.pause_s = pause_s
        self.reads = 0
        self.failed_reads = 0
        self.half_applied = 0
        self.samples = []
        self.max_rows = 0
        self.exc = None

    def read_once(self):
        n = self.node
        n.sql("BEGIN", timeout=REQUEST_TIMEOUT)
        try:
            a = dict((r[0], r[1]) for r in n.sql("SELECT id, v FROM a", timeout=REQUEST_TIMEOUT))
            b = dict((r[0], r[1]) for r in n.sql("SELECT id, v FROM b", timeout=REQUEST_TIMEOUT))
        finally:
            n.sql("COMMIT", timeout=REQUEST_TIMEOUT)
        return a, b

    def run(self):
        try:
            for _ in range(self.max_reads):
                if self.stop_event.is_set():
                    break
                try:
                    a, b = self.read_once()
                except harness.SqlError:
                    self.failed_reads += 1
                    try:
                        self.node.sql("ROLLBACK", timeout=REQUEST_TIMEOUT)
                    except Exception:
                        pass
                    self.stop_event.wait(self.pause_s)
                    continue
                self.reads += 1
                self.max_rows = max(self.max_rows, len(a))
                bad = [(i, a.get(i), b.get(i)) for i in set(a) | set(b) if a.get(i) != b.get(i)]
                if bad:
                    self.half_applied += 1
                    if len(self.samples) < 5:
                        self.samples.append({"t": round(time.time(), 3), "mismatches": len(bad), "first": bad[:3]})
                self.stop_event.wait(self.pause_s)
        except Exception as e:
            self.exc = f"{type(e).__name__}: {e}"

    def stats(self):
        return {"reads": self.reads, "failed_reads": self.failed_reads, "half_applied": self.half_applied,
                "max_rows_seen": self.max_rows, "samples": self.samples, "error": self.exc}


def fingerprint(node, timeout=60):
    """A cheap summary of the same contents, computed in SQL (counts, sums of ids, versions
    and value lengths per table and tombstone table): equal snapshots give equal
    fingerprints, so the convergence wait polls this and takes full snapshots only at the end."""
    cols = {"rows": "d.val", "a": "d.v", "b": "d.v", "hot": "d.val"}
    out = []
    for t in TABLES:
        out.append(node.sql(f"SELECT count(*), total(d.id), total(d.hdbrepl_v % 1000003), "
                            f"total(length({cols[t]})), total(unicode(substr({cols[t]}, -1)) * d.id % 1000003) FROM {t}_data d",
                            timeout=timeout))
        out.append(node.sql(f"SELECT count(*), total(d.id), total(d.hdbrepl_v % 1000003) FROM {t}_tomb d", timeout=timeout))
    return out


def snapshot(node, timeout=60):
    """Full contents of the four tables on one node, with versions (from the shadow tables)
    and tombstones: {table: {id: [...columns, hlc, origin]}, table+"_tomb": {id: [hlc, origin]}}."""
    out = {}
    cols = {"rows": "d.node, d.val", "a": "d.v", "b": "d.v", "hot": "d.val"}
    for t in TABLES:
        rows = node.sql(f"SELECT d.id, {cols[t]}, d.hdbrepl_v, o.name FROM {t}_data d "
                        f"LEFT JOIN hdbrepl_origins o ON o.id = d.hdbrepl_o ORDER BY d.id", timeout=timeout)
        out[t] = {r[0]: r[1:] for r in rows}
        tombs = node.sql(f"SELECT d.id, d.hdbrepl_v, o.name FROM {t}_tomb d "
                         f"LEFT JOIN hdbrepl_origins o ON o.id = d.hdbrepl_o ORDER BY d.id", timeout=timeout)
        out[t + "_tomb"] = {r[0]: r[1:] for r in tombs}
    return out
