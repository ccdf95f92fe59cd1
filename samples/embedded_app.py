#!/usr/bin/python3
"""Embedding hdbrepl in an application: a tiny shared to-do list.

Run two copies, each with its own database file and address, and what one adds the other
sees (Debian's /usr/bin/python3; build the library first with `make build`):

    /usr/bin/python3 samples/embedded_app.py 127.0.0.2 127.0.0.3 /tmp/todo-a.db add "buy milk"
    /usr/bin/python3 samples/embedded_app.py 127.0.0.3 127.0.0.2 /tmp/todo-b.db list

Each run starts a node for its database, waits (briefly, bounded) to catch up with its
peer, does its command and stops. The table is an ordinary replicated table created by the
app; keys are random 63-bit integers chosen by the writer (hdbrepl never assigns keys,
because two nodes would pick the same one).
"""
import json
import os
import secrets
import sqlite3
import sys
import time

LIB = os.environ.get("HDBREPL_SO", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "libhdbrepl"))
PORT = 9935


def open_node(me, peer, path):
    con = sqlite3.connect(path, isolation_level=None)
    con.enable_load_extension(True)
    con.load_extension(LIB)
    con.execute("PRAGMA busy_timeout = 5000")
    con.execute("SELECT repl_start(?)", (json.dumps({"replication": {
        "hostname": me, "port": PORT, "bind": me, "routes": [peer]}}),))
    con.execute("CREATE VIRTUAL TABLE IF NOT EXISTS todo USING hdbrepl(id INTEGER PRIMARY KEY, text TEXT NOT NULL, done INTEGER)")
    return con


def wait_for_peer(con, peer, seconds=3.0):
    """Gives the link a moment to come up and deliver what the peer has (bounded)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        status = json.loads(con.execute("SELECT repl_cluster_status()").fetchone()[0])
        for c in status["connections"]:
            if c["name"] == peer and c["database_sockets"][0]["connected"] and c["state"] == "connected":
                time.sleep(0.3)
                return True
        time.sleep(0.1)
    return False


def main():
    if len(sys.argv) < 5:
        print(__doc__)
        return 2
    me, peer, path, command, *rest = sys.argv[1:]
    con = open_node(me, peer, path)
    online = wait_for_peer(con, peer)
    if command == "add":
        con.execute("INSERT INTO todo VALUES (?, ?, 0)", (secrets.randbits(63), " ".join(rest)))
        if online:  # wait until the peer confirmed it, at most 2 s
            n = con.execute("SELECT repl_confirm(1, 2000)").fetchone()[0]
            print("added; confirmed by %d peer(s)" % n)
        else:
            print("added locally; %s is offline and will get it when both run" % peer)
    elif command == "done":
        con.execute("UPDATE todo SET done = 1 WHERE text = ?", (" ".join(rest),))
    elif command == "list":
        for text, done in con.execute("SELECT text, done FROM todo ORDER BY text"):
            print("[%s] %s" % ("x" if done else " ", text))
    con.execute("SELECT repl_stop()")
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
