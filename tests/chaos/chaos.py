#!/usr/bin/python3
"""Chaos run: a few hdbrepl nodes on loopback, concurrent writers on every node, faults from a
seeded schedule (kill -9, graceful restarts, SIGSTOP pauses, cut / black-holed / slow links through a proxy,
skewed clocks), then heal everything, wait for convergence and check the result
(tests/chaos/checker.py). See docs/reliability.md, "Chaos runs".

    HDBREPL_SO=build/libhdbrepl /usr/bin/python3 tests/chaos/chaos.py

Environment (all optional but HDBREPL_SO):
    CHAOS_SECONDS     total budget of the run, default 120: writes and faults for all but the
                      convergence budget, then heal, converge, check. A watchdog ends the
                      process at CHAOS_SECONDS + 120 s whatever happens.
    CHAOS_SEED        the seed (or HDBREPL_SEED); printed, replays the schedule and the writers'
                      choices (not the threads' exact interleaving)
    CHAOS_NODES       3 to 5 nodes, default 4
    CHAOS_SKEW_MS     clock skew of node 1 (node n-1 gets minus half of it when n >= 4), default 5000
    CHAOS_CONVERGE_SECONDS  how long the healed cluster may take to converge, default 25% of
                      CHAOS_SECONDS, at least 15
    CHAOS_LOG_RETENTION  e.g. 2s: the nodes' logRetention (tombstones kept 1d), so that a node
                      cut off for longer is brought back by a copy instead of a stream
    CHAOS_REPORT      where to write the JSON report, default ./chaos-report.json
    CHAOS_KINDS       comma list restricting the fault kinds (kill,graceful,pause,reset,blackhole,slow,isolate)
    HDBREPL_KEEP=1    keep the node directories (databases, logs, configs)

Nodes: node i is named and advertised as 127.0.0.(2+i) and listens on 127.0.0.(102+i); every
connection between nodes goes through the proxy (tests/chaos/proxy.py).
Exit status: 0 when the checker found nothing and no node crashed or hung, 1 otherwise.
"""
import heapq
import json
import os
import random
import signal
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cluster"))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from harness import wait_until, yaml_config  # noqa: E402
import checker  # noqa: E402
import workload  # noqa: E402
from nodes import ChaosNode  # noqa: E402
from proxy import ChaosProxy  # noqa: E402

KINDS = {  # weight, (min, max) duration in seconds
    "kill": (25, (0.5, 4.0)),        # kill -9, restart after the duration
    "graceful": (12, (0.5, 3.0)),    # repl_stop + exit, restart after the duration
    "reset": (15, (1.0, 6.0)),       # one link's connections closed, new ones refused
    "blackhole": (18, (1.0, 8.0)),   # one link silent: only the ping timeout notices
    "slow": (15, (2.0, 8.0)),        # one link delays every chunk 20-400 ms
    "isolate": (15, (1.0, 6.0)),     # every link of one node black-holed or reset
    "pause": (10, (1.0, 6.0)),       # SIGSTOP the node process, SIGCONT after the duration
}
PING = {"pingInterval": "1s", "reconnectMaxDelay": "500ms"}  # pingTimeout: 3 x pingInterval


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def env_int(name, default):
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


def make_schedule(rng, n, phase_s, kinds):
    """Fault episodes: start time (s from the start of the phase), kind, target, duration.
    Episodes may overlap; one that would touch a node or link already under a fault when it
    is due is skipped then (and reported)."""
    names = [k for k in KINDS if k in kinds]
    weights = [KINDS[k][0] for k in names]
    eps = []
    t = rng.uniform(2.0, 4.0)
    for _ in range(10000):
        if t > phase_s - 2.0:
            break
        kind = rng.choices(names, weights)[0]
        lo, hi = KINDS[kind][1]
        dur = round(min(rng.uniform(lo, hi), max(0.5, phase_s - t - 1.0)), 2)
        ep = {"t": round(t, 2), "kind": kind, "duration": dur}
        if kind in ("kill", "graceful", "pause"):
            ep["node"] = rng.randrange(n)
        elif kind == "isolate":
            ep["node"] = rng.randrange(n)
            ep["mode"] = rng.choice(["blackhole", "reset"])
        else:
            ep["pair"] = sorted(rng.sample(range(n), 2))
            if kind == "slow":
                ep["delay_ms"] = rng.randrange(20, 401)
        eps.append(ep)
        t += rng.uniform(1.0, 4.0)
    return eps


def describe(ep, adv):
    if "pair" in ep:
        what = f"{adv[ep['pair'][0]]}<->{adv[ep['pair'][1]]}" + (f" {ep['delay_ms']}ms" if "delay_ms" in ep else "")
    else:
        what = adv[ep["node"]] + (f" ({ep['mode']})" if "mode" in ep else "")
    return f"t={ep['t']:6.2f}s {ep['kind']:9s} {what} for {ep['duration']}s"


class Run:
    def __init__(self):
        self.so = harness.SO
        self.seconds = max(20, env_int("CHAOS_SECONDS", 120))
        seed_text = os.environ.get("CHAOS_SEED") or os.environ.get("HDBREPL_SEED")
        self.seed = int(seed_text) if seed_text and seed_text.lstrip("-").isdigit() else time.time_ns() % (1 << 31)
        self.n = min(5, max(3, env_int("CHAOS_NODES", 4)))
        self.skew = env_int("CHAOS_SKEW_MS", 5000)
        self.log_retention = os.environ.get("CHAOS_LOG_RETENTION", "").strip()
        self.converge_s = env_int("CHAOS_CONVERGE_SECONDS", max(15, self.seconds // 4))
        self.report_path = os.environ.get("CHAOS_REPORT") or os.path.abspath("chaos-report.json")
        kinds = [k.strip() for k in (os.environ.get("CHAOS_KINDS") or ",".join(KINDS)).split(",") if k.strip() in KINDS]
        self.kinds = kinds or list(KINDS)
        self.phase_s = max(8, self.seconds - self.converge_s - 8)
        self.rng = random.Random(self.seed)
        self.adv = [f"127.0.0.{2 + i}" for i in range(self.n)]
        self.binds = [f"127.0.0.{102 + i}" for i in range(self.n)]
        self.skews = [0] * self.n
        self.skews[1] = self.skew
        if self.n >= 4:
            self.skews[self.n - 1] = -(self.skew // 2)
        self.schedule = make_schedule(self.rng, self.n, self.phase_s, self.kinds)
        self.events = []       # what was done, with times
        self.anomalies = []    # crashes, hangs, failed restarts, bad exits, harness errors
        self.faults = {k: 0 for k in KINDS}
        self.skipped = {k: 0 for k in KINDS}
        self.down = set()      # nodes down on purpose
        self.pair_busy = {}
        self.node_busy = {}
        self.restarts = 0
        self.nodes = []
        self.readers = []
        self.proxy = None
        self.cluster = None
        self.t0 = time.monotonic()

    # -- helpers ---------------------------------------------------------------------------
    def now(self):
        return round(time.monotonic() - self.t0, 3)

    def event(self, what, **kw):
        e = dict(t=self.now(), what=what, **kw)
        self.events.append(e)
        log(f"{what} {' '.join(f'{k}={v}' for k, v in kw.items())}")

    def config(self, i):
        extra = dict(PING)
        if self.log_retention:
            # A short log: a peer away longer than this is sent a copy instead of a stream.
            # Tombstones stay (a copy carries them), so deletes still reach it.
            extra.update(logRetention=self.log_retention, tombstoneRetention="1d")
        return yaml_config(self.adv[i], self.cluster.port, routes=[a for j, a in enumerate(self.adv) if j != i],
                           bind=self.binds[i], extra=extra)

    def restart(self, i, why):
        node = self.nodes[i]
        last = None
        for attempt in range(5):
            try:
                node.restart(self.config(i))
                node.needs_restart = False
                self.restarts += 1
                self.event("restarted", node=node.name, why=why, attempt=attempt + 1)
                return True
            except Exception as e:
                last = f"{type(e).__name__}: {e}"
                try:
                    node.kill()
                except Exception:
                    pass
                time.sleep(0.5)
        self.anomalies.append({"kind": "restart_failed", "node": node.name, "error": last[:2000],
                               "log": node.log_tail(30)})
        self.event("restart FAILED", node=node.name, error=last[:300])
        return False

    def health(self):
        """A node that died without us, or hung (a request got no reply): recorded, restarted."""
        for i, node in enumerate(self.nodes):
            if i in self.down:
                continue
            if not node.alive():
                code = node.exit_code()
                self.anomalies.append({"kind": "crash", "node": node.name, "exit": code, "t": self.now(),
                                       "log": node.log_tail(40)})
                self.event("CRASH", node=node.name, exit=code)
                try:
                    node.kill()
                except Exception:
                    pass
                self.restart(i, "after crash")
            elif getattr(node, "needs_restart", False):
                self.anomalies.append({"kind": "hang", "node": node.name, "t": self.now(), "log": node.log_tail(40)})
                self.event("HANG (no reply): killing", node=node.name)
                node.kill()
                self.restart(i, "after hang")

    def pairs_of(self, ep):
        if "pair" in ep:
            return [tuple(ep["pair"])]
        if ep["kind"] == "isolate":
            return [tuple(sorted((ep["node"], j))) for j in range(self.n) if j != ep["node"]]
        return []

    # -- faults ----------------------------------------------------------------------------
    def fault_start(self, idx, ep):
        kind = ep["kind"]
        pairs = self.pairs_of(ep)
        node_fault = kind in ("kill", "graceful", "pause")
        if node_fault and (ep["node"] in self.node_busy or ep["node"] in self.down):
            self.skipped[kind] += 1
            self.event("skipped (node busy)", fault=describe(ep, self.adv))
            return False
        if any(p in self.pair_busy for p in pairs):
            self.skipped[kind] += 1
            self.event("skipped (link busy)", fault=describe(ep, self.adv))
            return False
        self.faults[kind] += 1
        if node_fault:
            i = ep["node"]
            self.node_busy[i] = idx
            node = self.nodes[i]
            if kind == "pause":
                self.event("SIGSTOP", node=node.name, pid=node.pid)
                os.kill(node.pid, signal.SIGSTOP)
                ep["_pid"] = node.pid
                return True
            self.down.add(i)
            if kind == "kill":
                self.event("kill -9", node=node.name, pid=node.pid)
                node.kill()
            else:
                self.event("graceful stop", node=node.name)
                node.stop()
                code = node.exit_code()
                if code not in (0, None):
                    self.anomalies.append({"kind": "bad_exit", "node": node.name, "exit": code, "t": self.now(),
                                           "log": node.log_tail(30)})
                    self.event("graceful stop: exit status", node=node.name, exit=code)
        else:
            for p in pairs:
                self.pair_busy[p] = idx
            if kind == "slow":
                state, extra = "slow", {"delay_ms": ep["delay_ms"]}
            elif kind == "isolate":
                state, extra = ep["mode"], {}
            else:
                state, extra = kind, {}
            for a, b in pairs:
                self.proxy.set_link(a, b, state, **extra)
            self.event(f"link {state}", links=";".join(f"{self.adv[a]}-{self.adv[b]}" for a, b in pairs), **extra)
        return True

    def fault_end(self, idx, ep):
        if ep["kind"] == "pause":
            self.node_busy.pop(ep["node"], None)
            node = self.nodes[ep["node"]]
            if node.pid == ep.get("_pid") and node.alive():
                os.kill(node.pid, signal.SIGCONT)
            self.event("SIGCONT", node=node.name)
        elif ep["kind"] in ("kill", "graceful"):
            i = ep["node"]
            self.down.discard(i)
            self.node_busy.pop(i, None)
            self.restart(i, ep["kind"])
        else:
            pairs = self.pairs_of(ep)
            for a, b in pairs:
                self.proxy.set_link(a, b, "up")
                self.pair_busy.pop((a, b), None)
            self.event("link up", links=";".join(f"{self.adv[a]}-{self.adv[b]}" for a, b in pairs))

    # -- phases ----------------------------------------------------------------------------
    def setup(self):
        self.cluster = harness.Cluster("chaos", self.seed, ips=self.adv + self.binds)
        self.proxy = ChaosProxy(self.adv, self.binds, self.cluster.port)
        self.proxy.start()
        for i in range(self.n):
            node = ChaosNode(self.cluster, self.adv[i], skew_ms=self.skews[i])
            node.needs_restart = False
            self.cluster.nodes.append(node)
            self.nodes.append(node)
        for i, node in enumerate(self.nodes):
            node.start(self.config(i))
        for a in self.nodes:
            for b in self.nodes:
                if a is not b:
                    harness.wait_connected(a, b, timeout=30)
        first = self.nodes[0]
        for q in workload.SCHEMA:
            first.sql(q)
        k = workload.HOT_KEYS
        rows = first.batch([("BEGIN IMMEDIATE", [])] +
                           [("INSERT INTO hot(id, val) VALUES (?, ?)", [key, f"init:{key}"]) for key in range(1, k + 1)] +
                           [("SELECT d.id, d.val, d.hdbrepl_v, o.name FROM hot_data d JOIN hdbrepl_origins o "
                             "ON o.id = d.hdbrepl_o ORDER BY d.id", [])])
        first.sql("COMMIT")
        self.init_hot = [{"key": r[0], "val": r[1], "node": first.name, "status": "committed", "hlc": r[2],
                          "origin": r[3]} for r in rows]
        for node in self.nodes:
            harness.wait_rows(node, "SELECT count(*) FROM hot", [[k]], timeout=30)
            harness.wait_rows(node, "SELECT count(*) FROM a", [[0]], timeout=30)
        for i, node in enumerate(self.nodes):
            r = ChaosNode(self.cluster, f"{node.name}-reader", db_name=f"{node.name}.db")
            self.readers.append(r)
        self.event("setup done", port=self.cluster.port,
                   skews=",".join(f"{self.adv[i]}:{s}" for i, s in enumerate(self.skews) if s))

    def run_phase(self):
        self.stop_writers = threading.Event()
        self.stop_readers = threading.Event()
        self.writers = [workload.Writer(i, n, self.seed, self.stop_writers) for i, n in enumerate(self.nodes)]
        self.reader_threads = [workload.Reader(self.nodes[i].name, r, self.stop_readers, pause_s=0.05)
                               for i, r in enumerate(self.readers)]
        for t in self.writers + self.reader_threads:
            t.start()
        phase0 = time.monotonic()
        heap = []
        for idx, ep in enumerate(self.schedule):
            heapq.heappush(heap, (ep["t"], idx, "start"))
        started = set()
        max_iter = int(self.phase_s / 0.02) + 100000
        for _ in range(max_iter):
            t = time.monotonic() - phase0
            while heap and heap[0][0] <= t:
                _, idx, what = heapq.heappop(heap)
                ep = self.schedule[idx]
                try:
                    if what == "start":
                        if self.fault_start(idx, ep):
                            started.add(idx)
                            heapq.heappush(heap, (ep["t"] + ep["duration"], idx, "end"))
                    elif idx in started:
                        self.fault_end(idx, ep)
                except Exception as e:
                    self.anomalies.append({"kind": "harness_error", "t": self.now(), "fault": describe(ep, self.adv),
                                           "error": traceback.format_exc()[-2000:]})
                    self.event("harness error", fault=describe(ep, self.adv), error=f"{type(e).__name__}: {e}")
                    if what == "start" and idx not in started:  # undo whatever part of it was done
                        started.add(idx)
                        heapq.heappush(heap, (ep["t"] + ep["duration"], idx, "end"))
            self.health()
            if t >= self.phase_s and not heap:
                break
            wait = 0.1 if not heap else max(0.0, min(0.1, heap[0][0] - t))
            time.sleep(wait)
        self.event("fault phase over", writes_so_far=sum(sum(w.ops.values()) for w in self.writers))

    def heal(self):
        self.stop_writers.set()
        for w in self.writers:
            w.join(60)
            if w.is_alive():
                self.anomalies.append({"kind": "writer_stuck", "node": w.node.name})
        self.proxy.heal_all()
        for i in sorted(self.down):
            self.down.discard(i)
            self.restart(i, "heal")
        self.health()
        self.t_heal = time.monotonic()
        self.event("healed: all links up, all nodes running")

    def converge(self):
        deadline = self.t_heal + self.converge_s
        self.converged_s = None
        last = None
        polls = 0
        for _ in range(int(self.converge_s / 0.2) + 50):
            polls += 1
            try:
                # Fingerprints, not whole snapshots: the checker compares whole snapshots after.
                # (hdbrepl_o ids are per node, so origins are compared by the checker only.)
                digests = {n.name: checker._digest(workload.fingerprint(n)) for n in self.nodes}
                last = digests
                if len(set(digests.values())) == 1:
                    self.converged_s = round(time.monotonic() - self.t_heal, 3)
                    break
            except Exception as e:
                last = f"{type(e).__name__}: {e}"
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if self.converged_s is None:
            self.event("NOT converged", within_s=self.converge_s, last=str(last)[:300])
        else:
            self.event("converged", seconds=self.converged_s, polls=polls)
        # Readers keep reading through the catch-up; stop them now.
        self.stop_readers.set()
        for r in self.reader_threads:
            r.join(60)
        # Let anything still in flight land, then take the snapshots that are checked.
        time.sleep(1.0)
        self.final = {n.name: workload.snapshot(n) for n in self.nodes}
        self.status = {}
        for n in self.nodes:
            try:
                st = n.status()
                self.status[n.name] = [(c.get("name"), bool(c.get("database_sockets") and
                                                              c["database_sockets"][0].get("connected")))
                                       for c in st.get("connections", [])]
            except Exception as e:
                self.status[n.name] = f"{type(e).__name__}: {e}"

    def log_findings(self):
        """Lines of the node logs worth a look (internal errors, asserts, sanitizer reports)."""
        alarming = ("internal error", "assert", "Segmentation", "Aborted", "AddressSanitizer", "terminate", "Traceback")
        out = {}
        for n in self.nodes + self.readers:
            lines = [l for l in n.log_text().splitlines() if any(a in l for a in alarming)]
            if lines:
                out[n.name] = lines[:10]
        return out

    def log_counts(self):
        """How often some things happened, from the node logs (copies, refusals, errors)."""
        patterns = {"copies_sent": "sending it a full copy", "copy_failed": "copy from", "refused": "refus",
                    "protocol_error": "protocol error", "cannot_connect": "cannot connect"}
        out = {}
        for n in self.nodes:
            text = n.log_text().splitlines()
            out[n.name] = {k: sum(1 for l in text if p in l and (k != "copy_failed" or "failed" in l))
                           for k, p in patterns.items()}
        return out

    def report(self):
        outcomes = {"inserts": [], "deletes": [], "mtx": [], "hot": list(self.init_hot), "bigs": []}
        for w in self.writers:
            for k, v in w.outcomes().items():
                outcomes[k].extend(v)
        readers = {self.nodes[i].name: r.stats() for i, r in enumerate(self.reader_threads)}
        result = checker.check(outcomes, self.final, readers)
        for w in self.writers:
            if w.exc:
                self.anomalies.append({"kind": "writer_error", "node": w.node.name, "error": w.exc})
        for r in self.reader_threads:
            if r.exc:
                self.anomalies.append({"kind": "reader_error", "node": r.node_name, "error": r.exc})
        rep = {
            "seed": self.seed,
            "replay": f"CHAOS_SEED={self.seed} CHAOS_SECONDS={self.seconds} CHAOS_NODES={self.n} "
                      f"CHAOS_SKEW_MS={self.skew} make chaos",
            "nodes": self.n, "seconds": self.seconds, "fault_phase_s": self.phase_s, "skews_ms": dict(zip(self.adv, self.skews)),
            "schedule": [describe(ep, self.adv) for ep in self.schedule],
            "faults_injected": self.faults, "faults_skipped": self.skipped,
            "restarts": self.restarts,
            "ops": {w.node.name: dict(w.ops, skipped_while_down=w.skipped_down, sql_errors=w.errors) for w in self.writers},
            "readers": readers,
            "checker": result,
            "converged_after_heal_s": self.converged_s,
            "anomalies": self.anomalies,
            "log_findings": self.log_findings(),
            "log_counts": self.log_counts(),
            "final_links": self.status,
            "proxy": dict(self.proxy.stats),
            "events": self.events,
            "duration_s": self.now(),
        }
        ok = result["ok"] and self.converged_s is not None and not self.anomalies
        rep["ok"] = ok
        with open(self.report_path, "w") as f:
            json.dump(rep, f, indent=1, default=str)
        v = result["violations"]
        fig = result["figures"]
        print("\n==== chaos summary ====")
        print(f"seed {self.seed}   nodes {self.n}   run {rep['duration_s']:.0f}s (faults for {self.phase_s}s)   "
              f"skews {', '.join(f'{a}:{s:+d}ms' for a, s in zip(self.adv, self.skews) if s)}")
        print(f"faults injected: {', '.join(f'{k} {n}' for k, n in self.faults.items())}  "
              f"(skipped as overlapping: {sum(self.skipped.values())}); restarts {self.restarts}")
        print(f"writes checked: {fig['writes_checked']} (committed {fig['writes_committed']}); "
              f"inserts {fig['inserts']}, deletes {fig['deletes']}, a+b transactions {fig['transactions_a_b']}, "
              f"hot-key updates {fig['hot_updates']}")
        print(f"reads of a+b in one transaction: {fig['reads']}; copies sent to nodes behind the log: "
              f"{sum(c['copies_sent'] for c in rep['log_counts'].values())}")
        print(f"lost {v['lost']} (copies {v['lost_copies']}), divergent replicas {v['divergent']}, half-applied reads "
              f"{v['half_applied']}, LWW violations {v['lww']}, resurrected {v['resurrected']}, phantom {v['phantom']}, "
              f"wrong value {v['wrong_value']}, a/b lost {v['mtx_lost']}, a/b half at the end {v['mtx_half_final']}, "
              f"a/b stale {v['mtx_stale']}")
        print(f"converged {self.converged_s}s after the last heal" if self.converged_s is not None
              else f"NOT converged within {self.converge_s}s")
        for a in self.anomalies:
            print(f"ANOMALY {a['kind']}: {json.dumps({k: x for k, x in a.items() if k != 'log'}, default=str)[:500]}")
            if a.get("log"):
                print(f"  log:{a['log']}")
        for k, s in result["samples"].items():
            print(f"VIOLATION {k}: {json.dumps(s, default=str)[:1500]}")
        print(f"report: {self.report_path}")
        print(f"replay: {rep['replay']}")
        print("RESULT:", "PASS" if ok else "FAIL", flush=True)
        return ok

    def keep_logs(self):
        """On failure: the node logs and configs next to the report (the temp dir goes away)."""
        if not self.cluster:
            return None
        dest = os.path.splitext(self.report_path)[0] + f"-logs-{self.seed}"
        os.makedirs(dest, exist_ok=True)
        for name in os.listdir(self.cluster.dir):
            if name.endswith((".log", ".yaml")):
                try:
                    with open(os.path.join(self.cluster.dir, name), "rb") as src, open(os.path.join(dest, name), "wb") as dst:
                        dst.write(src.read())
                except OSError:
                    pass
        return dest

    def close(self):
        for n in self.readers + self.nodes:
            try:
                if n.alive():
                    os.kill(n.pid, signal.SIGCONT)  # a paused process, if a failure left one
            except Exception:
                pass
            try:
                n.kill()
            except Exception:
                pass
        if self.proxy:
            self.proxy.stop()


def watchdog(run, limit):
    def fire():
        print(f"chaos: watchdog: the run exceeded {limit:.0f}s; killing its node processes", flush=True)
        for n in run.readers + run.nodes:
            try:
                if n.alive():
                    os.kill(n.pid, 9)
            except Exception:
                pass
        os._exit(3)
    t = threading.Timer(limit, fire)
    t.daemon = True
    t.start()
    return t


def main():
    if not harness.SO or not (os.path.exists(harness.SO + ".so") or os.path.exists(harness.SO)):
        print("set HDBREPL_SO to the built library without .so (e.g. build/libhdbrepl)")
        return 2
    run = Run()
    print(f"chaos: seed {run.seed} (replay with CHAOS_SEED={run.seed}), {run.n} nodes, {run.seconds}s budget, "
          f"faults for {run.phase_s}s, kinds {','.join(run.kinds)}", flush=True)
    print("chaos: fault schedule:")
    for ep in run.schedule:
        print("   ", describe(ep, run.adv))
    dog = watchdog(run, run.seconds + 120)
    ok = False
    try:
        run.setup()
        run.run_phase()
        run.heal()
        run.converge()
        ok = run.report()
    except Exception:
        print("chaos: harness failure:\n" + traceback.format_exc(), flush=True)
        for n in run.nodes:
            print(f"--- log of {n.name} ---{n.log_tail(20)}")
        ok = False
    finally:
        dog.cancel()
        run.close()
        if not ok:
            kept = run.keep_logs()
            if kept:
                print(f"chaos: node logs copied to {kept}")
        if os.environ.get("HDBREPL_KEEP") == "1" and run.cluster:
            print(f"chaos: node files kept in {run.cluster.dir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
