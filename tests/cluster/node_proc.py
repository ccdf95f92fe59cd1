#!/usr/bin/python3
"""One hdbrepl node process for the cluster tests (driven by harness.py).

    /usr/bin/python3 tests/cluster/node_proc.py <db_path>

Opens <db_path>, loads the extension named by HDBREPL_SO (the library path without .so),
sets a busy timeout and then answers requests, one JSON object per line on stdin, with
one JSON object per line on stdout:

    {"sql": "SELECT ?", "params": [1]}            -> {"rows": [[1]]}
    {"batch": [["INSERT ...", [1]], ...]}         -> {"rows": <rows of the last statement>}
                                                     (stops at the first error)
    anything that fails                           -> {"error": "message"}

A parameter {"$hex": "00ff"} is passed as a blob; blobs in results come back as hex
strings. The connection is in autocommit mode (Python's implicit transactions are off),
so BEGIN/COMMIT are sent explicitly. End of stdin closes the connection (which stops the
node if it is the file's last connection) and exits. The node logs to stderr.
"""
import json
import os
import sqlite3
import sys


def convert_param(p):
    if isinstance(p, dict) and "$hex" in p:
        return bytes.fromhex(p["$hex"])
    return p


def convert_value(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    return v


def run(con, q, params):
    cur = con.execute(q, [convert_param(p) for p in params or []])
    return [[convert_value(v) for v in row] for row in cur.fetchall()]


def die_with_parent():
    # The harness starts nodes from its main thread; if it dies, so do we (Linux).
    try:
        import ctypes
        import signal
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            os._exit(1)
    except Exception:
        pass  # end of stdin still ends us


def main():
    die_with_parent()
    if len(sys.argv) != 2:
        sys.stderr.write("usage: node_proc.py <db_path>\n")
        return 2
    so = os.environ.get("HDBREPL_SO")
    if not so:
        sys.stderr.write("node_proc.py: set HDBREPL_SO to the built library path without .so\n")
        return 2
    con = sqlite3.connect(sys.argv[1], isolation_level=None, check_same_thread=False, timeout=5.0)
    con.enable_load_extension(True)
    con.load_extension(so)
    con.enable_load_extension(False)
    con.execute("PRAGMA busy_timeout=5000")
    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if "batch" in req:
                rows = []
                for item in req["batch"]:
                    rows = run(con, item[0], item[1] if len(item) > 1 else [])
            else:
                rows = run(con, req["sql"], req.get("params"))
            reply = {"rows": rows}
        except Exception as e:  # every failure is an answer, never the end of the process
            reply = {"error": str(e) or type(e).__name__}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
