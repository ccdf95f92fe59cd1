#!/usr/bin/python3
"""A member that asks for more than its link is entitled to (real node processes, a raw
protocol client from the address of a node A knows, so it passes the plain port's IP check):

- forwarded reads (read_request) of hdbrepl's own tables (hdbrepl_meta's token_secret,
  hdbrepl_users), of a replicate=false table, of a table by a column that is not its key, of
  a table its subscription does not publish to it, of a row its residency places elsewhere,
  and of made-up names are all answered `cannot`, logged once per reason; a forwarded read of
  a replicated table by its key still answers, and A and B keep replicating;
- a replicated DROP of hdbrepl_users, and a replicated CREATE of a table whose residency
  expression reads hdbrepl_meta, change nothing on A;
- a residency expression that cannot be evaluated for a row keeps the row home (the sender
  fails closed), while rows it can place still flow.
"""
import os
import struct
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (RawWs, check, check_eq, hello_msg, run_tests, varint, wait_connected, wait_rows,  # noqa: E402
                     wait_settled, wait_until, wstr)

A_IP, B_IP, C_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4"  # C: the raw client, a node A added


# ---- wire helpers (engine/wire.hpp, engine/value.hpp, engine/txn_record.hpp) ---------------

def wvalue(v):
    """A value in the change-record encoding: tag byte, then the payload."""
    if v is None:
        return bytes([0])
    if isinstance(v, int):
        return bytes([1]) + varint((v << 1) ^ (v >> 63) if v < 0 else v << 1)
    if isinstance(v, bytes):
        return bytes([4]) + wstr(v)
    return bytes([3]) + wstr(v)


def read_request(req_id, table, key_column, key):
    return bytes([13]) + varint(req_id) + wstr(table) + wstr(key_column) + wvalue(key)


_records_made = [0]


def ddl_record(origin, table, definition, op, new_name=None):
    """One change record with a single DDL change (op 3 create, 4 drop, 5 rename), as a peer's
    log would hold it: 'H', format 1, u64le hlc, origin, tables, changes. Each record gets a
    newer HLC than the one before (a receiver skips an origin's records it is already past)."""
    _records_made[0] += 1
    hlc = ((int(time.time() * 1000) - 1000) << 16) + _records_made[0]
    body = b"H" + bytes([1]) + struct.pack("<Q", hlc) + wstr(origin)
    body += varint(1) + wstr(table) + wstr(definition)
    body += varint(1) + varint(0) + bytes([op]) + (wstr(new_name) if op == 5 else b"")
    return body


def txn_msg(seq, record):
    return bytes([3]) + varint(seq) + record


def read_value(buf, i):
    tag = buf[i]
    i += 1
    if tag == 0:
        return None, i
    if tag in (1, 3, 4):
        n, shift = 0, 0
        while True:
            b = buf[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        if tag == 1:
            return (n >> 1) ^ -(n & 1), i
        raw = buf[i:i + n]
        return (raw.decode() if tag == 3 else raw), i + n
    if tag == 2:
        return struct.unpack("<d", buf[i:i + 8])[0], i + 8
    raise ValueError(f"bad value tag {tag}")


def read_varint(buf, i):
    n, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, i


def parse_reply(payload):
    """read_reply: varint id, u8 status (0 absent, 1 found, 2 cannot), found: count + values."""
    req_id, i = read_varint(payload, 1)
    status = ["absent", "found", "cannot"][payload[i]]
    i += 1
    row = None
    if status == "found":
        n, i = read_varint(payload, i)
        row = []
        for _ in range(n):
            v, i = read_value(payload, i)
            row.append(v)
    return req_id, status, row


class Member:
    """The raw client: a hello as C, then messages; answers pings so the link stays up."""

    def __init__(self, c):
        self.w = RawWs(C_IP, A_IP, c.port)
        check_eq(self.w.status, 101, "upgrade from the address of a node A added")
        self.w.send_binary(hello_msg(C_IP))
        self.replies, self.acks = {}, []

    def pump(self, timeout):
        """Reads frames for up to `timeout` s; returns False when the node closed the link."""
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            try:
                f = self.w.recv_frame(min(left, 0.5))
            except (EOFError, OSError):
                return False
            if f is None:
                continue
            op, payload = f
            if op == 0x9:
                self.w.send_raw(RawWs.frame(0xA, payload))
            elif op == 0x8:
                return False
            elif op == 0x2 and payload[:1] == bytes([14]):
                req_id, status, row = parse_reply(payload)
                self.replies[req_id] = (status, row)
            elif op == 0x2 and payload[:1] == bytes([4]):
                self.acks.append(read_varint(payload, 1)[0])
        return True

    def ask(self, requests, timeout=10):
        """Sends read_requests {id: (table, key_column, key)}; returns {id: (status, row)}."""
        for req_id, (table, col, key) in requests.items():
            self.w.send_binary(read_request(req_id, table, col, key))
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            if all(i in self.replies for i in requests) or time.monotonic() > deadline:
                break
            check(self.pump(0.2), "A closed the member's link")
        return {i: self.replies.get(i) for i in requests}

    def close(self):
        self.w.close()


def start(c):
    a, b = c.node(A_IP), c.node(B_IP)
    a.start(routes=[B_IP])
    b.start(routes=[A_IP])
    wait_connected(a, b)
    wait_connected(b, a)
    wait_settled(a, b)  # past the opening exchange of the link (basic_test.py tests that window)
    return a, b


def flows(a, b, key, what):
    a.sql("INSERT INTO t VALUES (?, ?)", key, f"a {what}")
    b.sql("INSERT INTO t VALUES (?, ?)", key + 1, f"b {what}")
    wait_rows(b, f"SELECT v FROM t WHERE id = {key}", [[f"a {what}"]], 10, f"A->B after {what}")
    wait_rows(a, f"SELECT v FROM t WHERE id = {key + 1}", [[f"b {what}"]], 10, f"B->A after {what}")


def test_forwarded_reads_serve_only_what_the_link_may_get(c):
    a, b = start(c)
    a.sql("CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    a.sql("CREATE VIRTUAL TABLE hidden USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    a.sql("CREATE VIRTUAL TABLE loc USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT, replicate=false)")
    a.sql(f"""CREATE VIRTUAL TABLE r USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT,
              residency=iif(id % 2 = 0, '["{B_IP}"]', '["{C_IP}"]'))""")
    a.sql("""SELECT repl_add_user('{"username":"admin","password":"a long secret","role":"super_user"}')""")
    a.sql("SELECT repl_create_authentication_tokens('{\"username\":\"admin\",\"password\":\"a long secret\"}')")
    check(a.scalar("SELECT count(*) FROM hdbrepl_meta WHERE key = 'token_secret'") == 1, "A has a token secret")
    for sql in ("INSERT INTO t VALUES (1, 'one')", "INSERT INTO hidden VALUES (1, 'not published to C')",
                "INSERT INTO loc VALUES (1, 'local only')", "INSERT INTO r VALUES (1, 'lives on C')",
                "INSERT INTO r VALUES (2, 'lives on B')"):
        a.sql(sql)
    subs = [{"database": "main", "table": t, "publish": True, "subscribe": True} for t in ("t", "r")]
    a.op("add_node", {"hostname": C_IP, "subscriptions": subs})
    wait_rows(b, "SELECT count(*) FROM t", [[1]], what="t's row on B")
    m = Member(c)
    try:
        check(m.pump(1.0), "A keeps the member's link after its hello")
        got = m.ask({
            1: ("hdbrepl_meta", "key", "token_secret"),
            2: ("hdbrepl_users", "username", "admin"),
            3: ("loc", "id", 1),
            4: ("t", "v", "one"),
            5: ("hidden", "id", 1),
            6: ("t", "id", 1),
            7: ("t", "id", 999),
            8: ("r", "id", 1),
            9: ("r", "id", 2),
            10: ("sqlite_schema", "name", "t"),
            11: ("hdb_user", "username", "admin"),
            12: ('t" WHERE 1 = 1 OR "id', "id", 1),
            13: ("t", 'id" = "id" OR "id', 1),
            14: ("HDBREPL_USERS", "username", "admin"),
            15: ("hdbrepl_meta", "key", "token_secret"),  # asked again: not logged again
        })
        want = {1: ("cannot", None), 2: ("cannot", None), 3: ("cannot", None), 4: ("cannot", None), 5: ("cannot", None),
                6: ("found", [1, "one"]), 7: ("absent", None), 8: ("found", [1, "lives on C"]), 9: ("cannot", None),
                10: ("cannot", None), 11: ("cannot", None), 12: ("cannot", None), 13: ("cannot", None),
                14: ("cannot", None), 15: ("cannot", None)}
        check_eq(got, want, "forwarded-read answers to the member")
        refusals = [l for l in a.log_lines() if f"refused a forwarded read of {C_IP}" in l]
        kinds = ["hdbrepl's own tables", "replicate=false", "not the table's primary key", "does not publish this table",
                 "residency does not place", "no replicated table of that name"]
        for k in kinds:
            check_eq(len([l for l in refusals if k in l]), 1, f"log lines for the refusal '{k}'")
        check_eq(len(refusals), len(kinds), f"one log line per reason: {refusals}")
        check("token_secret" not in "".join(str(v) for v in got.values()), "no secret in any answer")
        check(m.pump(0.5), "the member's link is still open after its refused reads")
    finally:
        m.close()
    flows(a, b, 100, "the refused reads")


def test_replicated_ddl_of_hdbrepl_tables_changes_nothing(c):
    a, b = start(c)
    a.sql("CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    a.sql("""SELECT repl_add_user('{"username":"admin","password":"a long secret","role":"super_user"}')""")
    wait_rows(b, "SELECT username FROM hdb_user", [["admin"]], what="the user on B")
    a.op("add_node", {"hostname": C_IP})
    users_def = '"username" TEXT PRIMARY KEY, "role" TEXT, "password_hash" TEXT'
    evil_def = "\"id\" INTEGER PRIMARY KEY, residency=(SELECT value FROM hdbrepl_meta WHERE key = 'token_secret')"
    m = Member(c)
    try:
        check(m.pump(1.0), "A keeps the member's link after its hello")
        m.w.send_binary(txn_msg(1, ddl_record(C_IP, "hdbrepl_users", users_def, 4)))
        m.w.send_binary(txn_msg(2, ddl_record(C_IP, "hdbrepl_members", '"name" TEXT PRIMARY KEY, "url" TEXT, "shard" INTEGER, "ca" TEXT', 5,
                                              "stolen")))
        m.w.send_binary(txn_msg(3, ddl_record(C_IP, "evil", evil_def, 3)))

        def seen():
            m.pump(0.2)
            text = "\n".join(a.log_lines())
            # Acknowledged (applied or left out), or refused with a log line naming the table.
            return (m.acks and max(m.acks) >= 3) or ("hdbrepl_users" in text and "evil" in text)

        wait_until(seen, 15, "A to take in or refuse the member's records", describe=lambda: (m.acks, a.log_tail()))
    finally:
        m.close()
    check_eq(a.sql("SELECT username FROM hdb_user"), [["admin"]], "A's users after a replicated DROP of hdbrepl_users")
    check_eq(a.scalar("SELECT count(*) FROM sqlite_schema WHERE name IN ('hdbrepl_users', 'hdbrepl_members', 'stolen')"), 2,
             "hdbrepl_users and hdbrepl_members still there, nothing renamed")
    check_eq(a.scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'evil'"), 0, "no table with a residency that reads hdbrepl_meta")
    check_eq(b.sql("SELECT username FROM hdb_user"), [["admin"]], "B's users")
    flows(a, b, 200, "the replicated DDL of hdbrepl's tables")
    # Locally as well.
    check_eq(a.sql_error("DROP TABLE hdbrepl_users"), "authorization denied", "a local DROP of hdbrepl_users")
    check_eq(a.sql("SELECT username FROM hdb_user"), [["admin"]], "A's users after a local DROP")


def test_residency_that_cannot_be_evaluated_keeps_rows_home(c):
    a, b = start(c)
    a.sql("CREATE VIRTUAL TABLE t USING hdbrepl(id INTEGER PRIMARY KEY, v TEXT)")
    a.sql("CREATE VIRTUAL TABLE r USING hdbrepl(id INTEGER PRIMARY KEY, doc TEXT, residency=json_extract(doc, '$.where'))")
    wait_until(lambda: b.scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'r'") == 1, 15, "table r on B")
    a.sql("INSERT INTO r VALUES (1, ?)", '{"where": null}')        # NULL: everywhere
    a.sql("INSERT INTO r VALUES (2, ?)", "not json")               # an error: stays on A
    a.sql("INSERT INTO r VALUES (3, ?)", '{"where": "nowhere"}')   # neither a shard nor a list: stays on A
    a.sql("INSERT INTO r VALUES (4, ?)", f'{{"where": ["{B_IP}"]}}')  # on B
    a.sql("INSERT INTO t VALUES (1, 'marker')")
    wait_rows(b, "SELECT v FROM t", [["marker"]], what="the marker written after the rows")
    wait_rows(b, "SELECT id FROM r ORDER BY id", [[1], [4]], what="the rows whose residency could be evaluated, on B")
    check_eq(a.sql("SELECT id FROM r ORDER BY id"), [[1], [2], [3], [4]], "A keeps all its rows")
    lines = [l for l in a.log_lines() if "residency expression failed" in l]
    check_eq(len(lines), 1, f"one log line for the table's failing expression: {lines}")
    flows(a, b, 300, "rows kept home")


if __name__ == "__main__":
    run_tests(globals())
