"""Cluster test harness: real node processes on loopback addresses.

Each node is a child process (node_proc.py) holding one SQLite connection with the
extension loaded; the test talks to it with one JSON request per line. Nodes listen on
127.0.0.x (x >= 2), all on one plain port picked per test from 20000-40000 (derived from
the test's name and our PID, and checked free on every address the test uses), so test
files can run concurrently.

Rules kept here: every wait has a timeout, every loop is bounded in count and time, and
every child process we start is killed (by its PID, nothing else) when the test or the
process ends. Node processes must be started from the main thread (they die with it).

Tests wait for states, not for fixed times: wait_until (and wait_rows, wait_connected,
wait_settled) polls the observable state; assert_stays checks, all through a window, that
something does not happen (there the window is the point); hold() is the one fixed pause,
for where the passing time itself is what a test needs, and says why.

Run a test file with Debian's /usr/bin/python3 and HDBREPL_SO=<build>/libhdbrepl.
HDBREPL_SEED fixes the random seed; HDBREPL_KEEP=1 keeps the temp directories.
"""
import atexit
import base64
import hashlib
import json
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_PROC = os.path.join(HERE, "node_proc.py")
PYTHON = "/usr/bin/python3"  # the pyenv python3 on PATH cannot load extensions
SO = os.path.abspath(os.environ["HDBREPL_SO"]) if os.environ.get("HDBREPL_SO") else ""
# How much slower than a normal build the nodes are (set for TSan-built nodes by
# tests/CMakeLists.txt): tests that time a bulk transfer multiply their waits by it.
TIME_SCALE = max(1.0, float(os.environ.get("HDBREPL_TEST_TIME_SCALE") or 1))

# Every child we started that may still run, and every temp dir to remove.
_children = {}  # pid -> subprocess.Popen
_tempdirs = []


def _cleanup():
    for pid, proc in list(_children.items()):
        if proc.poll() is None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _children.pop(pid, None)
    if os.environ.get("HDBREPL_KEEP") != "1":
        for d in _tempdirs:
            shutil.rmtree(d, ignore_errors=True)
    _tempdirs.clear()


atexit.register(_cleanup)


def _on_signal(signum, _frame):
    _cleanup()
    sys.exit(128 + signum)


for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_s, _on_signal)


class TestFailure(AssertionError):
    pass


class SqlError(Exception):
    pass


def check(cond, message):
    if not cond:
        raise TestFailure(message)


def check_eq(got, want, what):
    if got != want:
        raise TestFailure(f"{what}: expected {want!r}, got {got!r}")


def wait_until(fn, timeout, what, interval=0.05, describe=None):
    """Polls fn() until it returns something truthy; returns that value. Bounded by
    `timeout` seconds and by a number of attempts; fails with the last value (or the last
    exception fn raised), and with describe()'s view of the state when given."""
    deadline = time.monotonic() + timeout
    max_tries = int(timeout / interval) + 10
    last = None
    for _ in range(max_tries):
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # keep polling; report it if it is the last thing seen
            last = f"<{type(e).__name__}: {e}>"
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    seen = ""
    if describe is not None:
        try:
            seen = f"; state: {describe()!r:.2000}"
        except Exception as e:
            seen = f"; state: <{type(e).__name__}: {e}>"
    raise TestFailure(f"timed out after {timeout:.1f}s waiting for {what}; last value: {last!r:.2000}{seen}")


def assert_stays(fn, seconds, what, interval=0.05):
    """For the whole window of `seconds`, fn() must stay truthy: for checks that something
    does NOT happen (a row that must not arrive, a link that must not come back), where the
    window itself is the point. Polled throughout (bounded in count and time), so it fails
    as soon as the thing happens; checked once more at the end of the window."""
    deadline = time.monotonic() + seconds
    max_tries = int(seconds / interval) + 10
    for _ in range(max_tries):
        try:
            last = fn()
            ok = bool(last)
        except Exception as e:
            last, ok = f"<{type(e).__name__}: {e}>", False
        if not ok:
            into = seconds - max(0.0, deadline - time.monotonic())
            raise TestFailure(f"{what}: no longer true {into:.2f}s into a {seconds:.1f}s window; last value: {last!r:.2000}")
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(interval, left))
    check(fn(), f"{what}: not true at the end of the {seconds:.1f}s window")


def hold(seconds, why):
    """A deliberate fixed pause, where the passing time itself is the point (a pacing gap,
    a window of the measurement). `why` says so; waits for a state use wait_until."""
    check(bool(why), "hold() needs a reason")
    time.sleep(seconds)


def wait_clock_past(ms, what, timeout=5):
    """Waits until this machine's wall clock (which the nodes stamp versions with) reads a
    later whole millisecond than `ms` (milliseconds since the epoch)."""
    wait_until(lambda: int(time.time() * 1000) > ms, timeout, f"the clock past {ms} ms ({what})", interval=0.002)


def stop_process(pid, timeout=5):
    """SIGSTOP a node process and wait until every one of its threads is stopped: kill()
    returns before the signal reaches a busy or unscheduled thread, which could still answer
    a request sent right after (on a loaded machine it can)."""
    os.kill(pid, signal.SIGSTOP)

    def all_stopped():
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
            states = []
            for t in tasks:
                with open(f"/proc/{pid}/task/{t}/stat") as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            return all(st in ("T", "t") for st in states)
        except FileNotFoundError:
            return False
    wait_until(all_stopped, timeout, f"process {pid} stopped")


def addr_free(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_port(name, ips):
    """A port in 20000-40000 derived from the test name and our PID, free on every address."""
    base = zlib.crc32(f"{name}:{os.getpid()}".encode()) % 20000
    for i in range(200):
        port = 20000 + (base + i * 7919) % 20000
        if all(addr_free(ip, port) for ip in ips):
            return port
    raise TestFailure(f"no free port found for {name} on {ips}")


def yaml_config(hostname, port, routes=(), bind=None, extra=None):
    """The replication: section for a node on `hostname` (an IP) with plain port `port`.
    routes: strings or dicts (written as YAML mappings). extra: more replication keys."""
    lines = ["replication:", f"  hostname: {hostname}", f"  port: {port}", f"  bind: {bind or hostname}"]
    if routes:
        lines.append("  routes:")
        for r in routes:
            if isinstance(r, dict):
                first = True
                for k, v in r.items():
                    lines.append(f"    {'- ' if first else '  '}{k}: {v}")
                    first = False
            else:
                lines.append(f"    - {r}")
    for k, v in (extra or {}).items():
        lines.append(f"  {k}: {v}")
    return "\n".join(lines) + "\n"


class Node:
    """A node process on one database file. `ip` is its hostname, bind address and name."""

    def __init__(self, cluster, ip, db_name=None, env=None):
        self.cluster = cluster
        self.env = dict(env or {})  # extra environment of this node's process (test hooks), kept across restarts
        self.ip = ip
        self.name = ip
        # ":memory:" and "" (a temporary database) are passed as they are.
        self.db_path = db_name if db_name in (":memory:", "") else os.path.join(cluster.dir, db_name or f"{ip}.db")
        self.log_path = os.path.join(cluster.dir, f"{ip}.log")
        self.config_path = None
        self.proc = None
        self._buf = b""
        self._lock = threading.Lock()
        self.spawn()

    # -- process ---------------------------------------------------------------------
    def spawn(self):
        check(threading.current_thread() is threading.main_thread(), "start node processes from the main thread")
        check(self.proc is None or self.proc.poll() is not None, f"node {self.ip} is already running")
        log = open(self.log_path, "ab")
        log.write(f"---- harness: node process starting at {time.strftime('%H:%M:%S')} ----\n".encode())
        log.flush()
        env = dict(os.environ, **self.env)
        env["HDBREPL_SO"] = SO
        host = os.environ.get("HDBREPL_NODE_HOST")  # a node program (node_host) instead of node_proc.py
        host = os.path.abspath(host) if host else host  # the process runs in the cluster's directory
        argv = [host, self.db_path] if host else [PYTHON, NODE_PROC, self.db_path]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log, env=env, cwd=self.cluster.dir)
        log.close()
        _children[self.proc.pid] = self.proc
        self._buf = b""
        ready = self._read_reply(20)
        check("ready" in ready, f"node {self.ip} did not start: {ready!r}; log: {self.log_tail()}")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL the node process (only ours, by PID) and reap it."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                raise TestFailure(f"node {self.ip} (pid {self.proc.pid}) did not die after SIGKILL")
            _children.pop(self.proc.pid, None)
            self._close_pipes()

    def stop(self, timeout=15):
        """Graceful: repl_stop(), close stdin, wait (bounded; SIGKILL after the timeout)."""
        if not self.alive():
            return self.kill()
        try:
            self.sql("SELECT repl_stop()", timeout=timeout)
        except Exception as e:
            sys.stdout.write(f"    (node {self.ip}: repl_stop() failed: {e})\n")
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            sys.stdout.write(f"    (node {self.ip} did not exit within {timeout}s after stdin closed; killing)\n")
        self.kill()

    def restart(self, config=None):
        """A new process on the same database file (after kill() or stop(); a running one is
        stopped first). With `config`, calls start(config) too."""
        if self.alive():
            self.stop()
        self.spawn()
        if config is not None:
            return self.start(config)
        return None

    def _close_pipes(self):
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f:
                    f.close()
            except OSError:
                pass

    # -- requests --------------------------------------------------------------------
    def _read_reply(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        for _ in range(100000):
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line, self._buf = self._buf[:nl], self._buf[nl + 1:]
                return json.loads(line)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestFailure(f"node {self.ip}: no reply within {timeout}s; log: {self.log_tail()}")
            r, _, _ = select.select([fd], [], [], min(left, 1.0))
            if r:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    code = self.proc.poll()
                    raise TestFailure(f"node {self.ip}: process ended (exit {code}); log: {self.log_tail()}")
                self._buf += chunk
        raise TestFailure(f"node {self.ip}: reply loop bound reached")

    def request(self, req, timeout=30):
        with self._lock:
            check(self.alive(), f"node {self.ip} is not running")
            self.proc.stdin.write((json.dumps(req) + "\n").encode())
            self.proc.stdin.flush()
            return self._read_reply(timeout)

    def sql(self, q, *params, timeout=30):
        reply = self.request({"sql": q, "params": list(params)}, timeout)
        if "error" in reply:
            raise SqlError(f"node {self.ip}: {q[:200]!r}: {reply['error']}")
        return reply["rows"]

    def batch(self, statements, timeout=60):
        """[(sql, [params]) ...] in one round trip; stops at the first error (raised)."""
        reply = self.request({"batch": [[q, list(p)] for q, p in statements]}, timeout)
        if "error" in reply:
            raise SqlError(f"node {self.ip}: batch: {reply['error']}")
        return reply["rows"]

    def sql_error(self, q, *params, timeout=30):
        """The error text of a statement that must fail (fails the test if it succeeds)."""
        reply = self.request({"sql": q, "params": list(params)}, timeout)
        if "error" not in reply:
            raise TestFailure(f"node {self.ip}: expected {q[:200]!r} to fail, got {reply['rows']!r}")
        return reply["error"]

    def scalar(self, q, *params, timeout=30):
        rows = self.sql(q, *params, timeout=timeout)
        check(len(rows) == 1 and len(rows[0]) == 1, f"scalar {q!r}: got {rows!r}")
        return rows[0][0]

    # -- node operations -------------------------------------------------------------
    def config(self, routes=(), extra=None):
        return yaml_config(self.ip, self.cluster.port, routes=routes, extra=dict(self.cluster.default_extra, **(extra or {})))

    def start(self, config=None, routes=(), extra=None, as_file=True):
        """repl_start with `config` (YAML text) or one built from routes/extra. The config
        is written to a file (as_file) and its path passed, or passed as text."""
        if config is None:
            config = self.config(routes, extra)
        arg = config
        if as_file:
            self.config_path = os.path.join(self.cluster.dir, f"{self.ip}.yaml")
            with open(self.config_path, "w") as f:
                f.write(config)
            arg = self.config_path
        self.last_config = config
        return json.loads(self.scalar("SELECT repl_start(?)", arg))

    def status(self):
        return json.loads(self.scalar("SELECT repl_cluster_status()"))

    def connection(self, name):
        for c in self.status().get("connections", []):
            if c.get("name") == name:
                return c
        return None

    def connected_to(self, name):
        c = self.connection(name)
        return bool(c and c.get("database_sockets") and c["database_sockets"][0].get("connected"))

    def op(self, fn, body):
        """repl_<fn>(json) -> parsed reply."""
        arg = body if isinstance(body, str) else json.dumps(body)
        return json.loads(self.scalar(f"SELECT repl_{fn}(?)", arg))

    # -- logs ------------------------------------------------------------------------
    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self):
        return [l for l in self.log_text().splitlines() if l.startswith("hdbrepl")]

    def log_tail(self, n=15):
        lines = self.log_text().splitlines()[-n:]
        return "\n      " + "\n      ".join(lines) if lines else "(empty)"


class Cluster:
    """Per-test context: a temp dir, a port, the nodes, a seeded random generator."""

    def __init__(self, test_name, seed, ips=None):
        self.test_name = test_name
        self.dir = tempfile.mkdtemp(prefix=f"hdbrepl-{test_name}-")
        _tempdirs.append(self.dir)
        self.ips = ips or [f"127.0.0.{x}" for x in range(2, 9)]
        self.port = pick_port(test_name, self.ips + ["127.0.0.9"])
        self.nodes = []
        self.rng = random.Random(seed ^ zlib.crc32(test_name.encode()))
        # Fast redial so restarts are noticed quickly in tests.
        self.default_extra = {"reconnectMaxDelay": "500ms"}

    def node(self, ip, db_name=None, env=None):
        n = Node(self, ip, db_name, env)
        self.nodes.append(n)
        return n

    def close(self):
        for n in self.nodes:
            try:
                n.kill()
            except Exception as e:
                sys.stdout.write(f"    (cleanup of {n.ip}: {e})\n")


# ---- helpers for replicated data ---------------------------------------------------------

def dump(node, table, order="id"):
    return node.sql(f"SELECT * FROM {table} ORDER BY {order}")


def table_digest(node, table, cols="*", order="id"):
    """(count, sha1 of every row) of a table, for comparing large tables cheaply."""
    rows = node.sql(f"SELECT {cols} FROM {table} ORDER BY {order}", timeout=60)
    h = hashlib.sha1(json.dumps(rows).encode()).hexdigest()
    return len(rows), h


def wait_rows(node, q, want, timeout=15, what=None):
    """Waits until node.sql(q) == want; the failure shows the last rows seen."""
    seen = []

    def same():
        seen[:] = [node.sql(q)]
        return seen[0] == want

    try:
        wait_until(same, timeout, what or f"{node.ip}: {q} == {want!r:.300}")
    except TestFailure as e:
        raise TestFailure(f"{e}\n    last rows: {seen[0] if seen else '(none)'!r:.1500}") from None
    return want


def user_log_count(node, origin):
    """Log records of `origin` about user tables (hdbrepl's own `system` tables left out:
    membership rows are re-announced as links open, and may arrive by copy)."""
    return node.scalar("SELECT count(*) FROM hdbrepl_log l JOIN hdbrepl_origins o ON o.id = l.origin WHERE o.name = ? "
                       "AND repl_record_json(l.body) NOT LIKE '%\"table\":\"hdbrepl\\_%' ESCAPE '\\'", origin)


def wait_connected(a, b, timeout=15):
    wait_until(lambda: a.connected_to(b.name), timeout, f"{a.ip} connected to {b.ip}")


def synced(node):
    return node.scalar("SELECT count(*) FROM hdbrepl_meta WHERE key = 'synced' AND value = '1'") == 1


def link_settled(a, b):
    """Both ends report the link, neither has anything the other has not confirmed (the
    opening exchange of membership rows and any initial copy is over) and both are synced."""
    for x, y in ((a, b), (b, a)):
        conn = x.connection(y.name)
        if not (conn and conn.get("state") == "connected" and conn["database_sockets"][0].get("connected")
                and conn.get("backlog") == 0 and synced(x)):
            return False
    return True


def wait_settled(a, b, timeout=15):
    """Waits until the link between a and b has settled (link_settled): tests of other themes
    then start from a quiet link instead of racing its opening exchange."""
    wait_until(lambda: link_settled(a, b), timeout, f"the link {a.ip} - {b.ip} settled (connected both ways, no backlog, synced)",
               describe=lambda: (a.connection(b.name), b.connection(a.name)))


# ---- a raw WebSocket client (for hostile peers) -------------------------------------------

class RawWs:
    """A hand-made WebSocket client: connect from `src_ip`, upgrade, send frames of any
    shape, read frames. Every read is bounded by a timeout."""

    def __init__(self, src_ip, dst_ip, port, target="/hdbrepl", timeout=5):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.bind((src_ip, 0))
        self.sock.connect((dst_ip, port))
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {target} HTTP/1.1\r\nHost: {dst_ip}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        head = self._read_until(b"\r\n\r\n", timeout)
        self.response = head.decode("latin-1")
        first = self.response.split("\r\n", 1)[0]
        parts = first.split(" ")
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            check(want in self.response, f"bad Sec-WebSocket-Accept in {self.response!r}")

    def _read_until(self, marker, timeout):
        deadline = time.monotonic() + timeout
        for _ in range(10000):
            i = self.buf.find(marker)
            if i >= 0:
                out, self.buf = self.buf[:i + len(marker)], self.buf[i + len(marker):]
                return out
            if time.monotonic() > deadline:
                break
            chunk = self._recv(deadline)
            if not chunk:
                out, self.buf = self.buf, b""
                return out
            self.buf += chunk
        return self.buf

    def _recv(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            return self.sock.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            return b""

    def _need(self, n, deadline):
        for _ in range(100000):
            if len(self.buf) >= n:
                out, self.buf = self.buf[:n], self.buf[n:]
                return out
            if time.monotonic() > deadline:
                return None
            chunk = self._recv(deadline)
            if chunk == b"":
                raise EOFError()
            if chunk:
                self.buf += chunk
        return None

    @staticmethod
    def frame(opcode, payload, fin=True, mask=True, length=None):
        """A client frame. `length` overrides the length in the header (for lies)."""
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | opcode
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if not mask:
            return head + payload
        key = os.urandom(4)
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return head + key + masked

    def send_raw(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def send_binary(self, payload):
        return self.send_raw(self.frame(0x2, payload))

    def recv_frame(self, timeout=5):
        """(opcode, payload), None on timeout, raises EOFError when the peer closed TCP."""
        deadline = time.monotonic() + timeout
        h = self._need(2, deadline)
        if h is None:
            return None
        opcode = h[0] & 0x0F
        n = h[1] & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._need(2, deadline + 5))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._need(8, deadline + 5))[0]
        if h[1] & 0x80:
            self._need(4, deadline + 5)  # servers do not mask; tolerate it anyway
        payload = self._need(n, deadline + 5) if n else b""
        return opcode, payload

    def wait_closed(self, timeout=10):
        """Reads until the server closes the connection. Returns (closed, frames seen);
        a close frame (opcode 8) is answered and counts as closed once TCP ends."""
        frames = []
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            left = deadline - time.monotonic()
            if left <= 0:
                return False, frames
            try:
                f = self.recv_frame(min(left, 1.0))
            except EOFError:
                return True, frames
            except (TypeError, OSError):
                return True, frames
            if f is None:
                continue
            frames.append(f)
            if f[0] == 0x8:
                self.send_raw(self.frame(0x8, f[1][:2]))
        return False, frames

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---- wire helpers (engine/wire.hpp) -------------------------------------------------------

def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def wstr(s):
    b = s.encode() if isinstance(s, str) else s
    return varint(len(b)) + b


def hello_msg(node_name, magic=b"HDBR", version=1, database="main", needs_copy=False, url="", db_id=""):
    body = bytes([1]) + magic + bytes([version & 0xFF, version >> 8])
    body += wstr(node_name) + wstr(url) + wstr(database) + wstr(db_id) + bytes([1 if needs_copy else 0])
    body += struct.pack("<Q", 0) + varint(0) + varint(0)  # subscription: start_after, progress, exclude
    return body


# ---- the runner ---------------------------------------------------------------------------

def run_tests(module_globals, file_budget=None):
    """Runs every test_* function of the module (in definition order, or the names given
    on the command line), each with a fresh Cluster. Prints PASS/FAIL per test with its
    time and a final 'N passed, M failed'; exits non-zero on failure."""
    if not SO:
        print("set HDBREPL_SO to the built library path without .so (e.g. build/libhdbrepl)")
        sys.exit(2)
    if not os.path.exists(SO + ".so") and not os.path.exists(SO):
        print(f"HDBREPL_SO={SO}: no such library")
        sys.exit(2)
    seed = int(os.environ.get("HDBREPL_SEED") or (time.time_ns() % (1 << 31)))
    script = os.path.basename(module_globals.get("__file__", "?"))
    print(f"{script}: seed {seed} (rerun with HDBREPL_SEED={seed})", flush=True)
    tests = [(n, f) for n, f in module_globals.items() if n.startswith("test_") and callable(f)]
    wanted = sys.argv[1:]
    if wanted:
        tests = [(n, f) for n, f in tests if n in wanted or n[5:] in wanted]
    passed = failed = 0
    t_file = time.monotonic()
    for name, fn in tests:
        t0 = time.monotonic()
        cluster = None
        err = None
        try:
            cluster = Cluster(name, seed)
            fn(cluster)
        except Exception:
            err = traceback.format_exc()
        finally:
            if cluster is not None:
                logs = [(n.ip, n.log_tail(25)) for n in cluster.nodes]
                cluster.close()
        dt = time.monotonic() - t0
        if err is None:
            passed += 1
            print(f"PASS {name} ({dt:.1f}s)", flush=True)
        else:
            failed += 1
            print(f"FAIL {name} ({dt:.1f}s)\n{err}", flush=True)
            if cluster is not None:
                for ip, tail in logs:
                    print(f"  --- log of node {ip} (last lines) ---{tail}", flush=True)
    print(f"{script}: total {time.monotonic() - t_file:.1f}s")
    print(f"{passed} passed, {failed} failed", flush=True)
    _cleanup()
    sys.exit(1 if failed else 0)
