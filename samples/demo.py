#!/usr/bin/python3
"""`make demo`: three hdbrepl nodes on 127.0.0.2-4, each its own process and database file,
configured from samples/node-*.yaml. Writes on one node, shows the rows arriving on the
others, an update flowing back, and the cluster status; then stops the nodes cleanly."""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/libhdbrepl")


class Node:
    def __init__(self, ip, workdir):
        self.ip = ip
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "cluster_node.py"), LIB,
             os.path.join(workdir, ip + ".db"), os.path.join(HERE, "node-%s.yaml" % ip)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(os.path.join(workdir, ip + ".log"), "w"),
            text=True)
        self._read()  # "started"

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("node %s exited" % self.ip)
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError("%s: %s" % (self.ip, reply["error"]))
        return reply["rows"]

    def sql(self, q, *params):
        self.proc.stdin.write(json.dumps([q, *params]) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wait_for(node, query, expected, timeout=10.0):
    deadline = time.time() + timeout
    rows = None
    while time.time() < deadline:
        try:
            rows = node.sql(query)
        except RuntimeError as e:  # e.g. "no such table" until the CREATE arrives
            rows = str(e)
        if rows == expected:
            return rows
        time.sleep(0.05)
    raise RuntimeError("%s never showed %r for %s (last: %r)" % (node.ip, expected, query, rows))


def show(title, node, query):
    print("  %-10s %s" % (node.ip, node.sql(query)))


def main():
    with tempfile.TemporaryDirectory(prefix="hdbrepl-demo-") as workdir:
        print("== logs in", workdir)
        nodes = [Node(ip, workdir) for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4")]
        a, b, c = nodes
        try:
            print("== three nodes started; creating a replicated table on %s" % a.ip)
            a.sql("CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT, breed TEXT INDEXED)")
            a.sql("INSERT INTO dog VALUES (1,'Harper','Labrador'), (2,'Penny','Poodle'), (3,'Kato','Labrador')")
            start = time.time()
            query = "SELECT * FROM dog ORDER BY id"
            expected = a.sql(query)
            for n in (b, c):
                wait_for(n, query, expected)
            print("== rows written on %s, visible everywhere after %.0f ms:" % (a.ip, 1000 * (time.time() - start)))
            for n in nodes:
                show("", n, query)
            print("== update on %s, delete on %s" % (c.ip, b.ip))
            c.sql("UPDATE dog SET name='Penny Lane' WHERE id=2")
            b.sql("DELETE FROM dog WHERE id=3")
            expected = [[1, "Harper", "Labrador"], [2, "Penny Lane", "Poodle"]]
            for n in nodes:
                wait_for(n, query, expected)
                show("", n, query)
            # Pings measure a link's round trip once it has been quiet for a second, and
            # the backlog empties as the peers confirm: give both a moment (bounded).
            deadline = time.time() + 5
            while True:
                status = json.loads(a.sql("SELECT repl_cluster_status()")[0][0])
                settled = all(c["backlog"] == 0 and (c["database_sockets"][0].get("latency") is not None and
                                                     c["database_sockets"][0]["latency"] >= 0)
                              for c in status["connections"])
                if settled or time.time() > deadline:
                    break
                time.sleep(0.1)
            print("== cluster status of %s:" % a.ip)
            for conn in status["connections"]:
                sock = conn["database_sockets"][0]
                print("  %-10s state=%s connected=%s latency=%s ms backlog=%s lastCommitConfirmed=%s" % (
                    conn["name"], conn["state"], sock["connected"], sock["latency"], conn["backlog"],
                    sock["lastCommitConfirmed"]))
            print("== hdb_nodes seen from %s:" % a.ip)
            print("  " + a.sql("SELECT repl_operation(?)", json.dumps({
                "operation": "search_by_value", "database": "system", "table": "hdb_nodes",
                "search_attribute": "name", "search_value": "*"}))[0][0])
        finally:
            for n in nodes:
                n.stop()
        print("== nodes stopped")


if __name__ == "__main__":
    main()
