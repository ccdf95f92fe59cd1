#!/usr/bin/python3
"""One hdbrepl node in its own process, driven line by line on stdin.

Usage: cluster_node.py LIBRARY DATABASE CONFIG
Each input line is a JSON array [sql, param, ...]; each output line is a JSON object
{"rows": [...]} or {"error": "..."}. Used by samples/demo.py; an example of embedding
hdbrepl in a Python program (Debian's /usr/bin/python3 can load extensions).
"""
import json
import sqlite3
import sys


def main():
    lib, db_path, config = sys.argv[1:4]
    con = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    con.enable_load_extension(True)
    con.load_extension(lib)
    con.execute("PRAGMA busy_timeout=5000")
    con.execute("SELECT repl_start(?)", (config,))
    print(json.dumps({"rows": [["started"]]}), flush=True)
    for line in sys.stdin:
        try:
            sql, *params = json.loads(line)
            rows = [list(r) for r in con.execute(sql, params).fetchall()]
            print(json.dumps({"rows": rows}), flush=True)
        except Exception as e:  # every error goes back to the driver, the node keeps serving
            print(json.dumps({"error": str(e)}), flush=True)
    con.execute("SELECT repl_stop()")
    con.close()


if __name__ == "__main__":
    main()
