#!/usr/bin/python3
"""hdbrepl from Python's sqlite3 module (Debian's /usr/bin/python3, which allows loading
extensions): load, create, write, query, transactions through the module's own
commit/rollback, errors as sqlite3.Error subclasses with hdbrepl's messages, repl_apply with
bytes parameters, and several connections in one process, including closing the first
connection that loaded the library and opening new ones afterwards.

Needs HDBREPL_SO = the built library without its .so suffix (set by CTest).
Prints one line per check and a summary; exits non-zero when a check fails.
"""
import os
import shutil
import sqlite3
import sys
import tempfile
import traceback

SO = os.environ.get("HDBREPL_SO")
if not SO:
    print("load_test.py: set HDBREPL_SO to the built library path without .so")
    sys.exit(2)

DOG = "CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT NOT NULL, breed TEXT INDEXED)"
TMP = tempfile.mkdtemp(prefix="hdbrepl-load-py-")
results = {"passed": 0, "failed": 0}


def connect(name, load=True):
    con = sqlite3.connect(os.path.join(TMP, name))
    con.execute("PRAGMA journal_mode=WAL")
    if load:
        con.enable_load_extension(True)
        con.load_extension(SO)
        con.enable_load_extension(False)
    return con


def check(name):
    def wrap(fn):
        try:
            fn()
            results["passed"] += 1
            print("ok   - " + name)
        except Exception:  # noqa: BLE001 - any failure is reported
            results["failed"] += 1
            print("FAIL - " + name)
            for line in traceback.format_exc().rstrip().splitlines():
                print("       " + line)
        return fn
    return wrap


def expect_error(con, sql, kind, *parts, params=()):
    try:
        con.execute(sql, params)
    except kind as e:
        for p in parts:
            assert p in str(e), "message %r lacks %r" % (str(e), p)
        assert isinstance(e, sqlite3.Error)
        return
    raise AssertionError("no %s from %s" % (kind.__name__, sql))


@check("load_extension and repl_version()")
def _():
    con = connect("a.db")
    assert con.execute("SELECT repl_version()").fetchone() == ("0.1.0",)
    con.close()


@check("create, insert with parameters of every type, query")
def _():
    con = connect("a.db")
    con.execute(DOG)
    con.execute("CREATE VIRTUAL TABLE thing USING hdbrepl(k TEXT PRIMARY KEY, i INTEGER, r REAL, b BLOB, u)")
    con.commit()
    con.execute("INSERT INTO dog VALUES (?, ?, ?)", (1, "Harper", "Labrador"))
    con.executemany("INSERT INTO dog VALUES (?, ?, ?)", [(2, "Penny", "Poodle"), (3, "Kato", "Labrador"), (4, "Billy", None)])
    con.execute("INSERT INTO thing VALUES (?, ?, ?, ?, ?)", ("a", 7, 1.5, b"\x00\xff", None))
    con.execute("INSERT INTO thing VALUES (?, ?, ?, ?, ?)", (10, "8", 2, "text", 2.5))
    con.commit()
    assert con.execute("SELECT name FROM dog WHERE breed = ? ORDER BY id", ("Labrador",)).fetchall() == [("Harper",), ("Kato",)]
    assert con.execute("SELECT * FROM dog WHERE id = ?", (4,)).fetchall() == [(4, "Billy", None)]
    rows = con.execute("SELECT k, typeof(k), i, typeof(i), r, typeof(r), b, typeof(b), u FROM thing ORDER BY k").fetchall()
    assert rows == [("10", "text", 8, "integer", 2.0, "real", "text", "text", 2.5),
                    ("a", "text", 7, "integer", 1.5, "real", b"\x00\xff", "blob", None)], rows
    cur = con.execute("UPDATE dog SET name = name || '!' WHERE breed = 'Labrador'")
    assert cur.rowcount == 2, cur.rowcount
    cur = con.execute("DELETE FROM dog WHERE id > 2")
    assert cur.rowcount == 2, cur.rowcount
    con.commit()
    assert con.execute("SELECT id, name FROM dog ORDER BY id").fetchall() == [(1, "Harper!"), (2, "Penny")]
    con.close()


@check("rollback through the sqlite3 module leaves neither data nor log")
def _():
    con = connect("a.db")
    before = con.execute("SELECT (SELECT count(*) FROM dog), (SELECT count(*) FROM hdbrepl_log)").fetchone()
    con.execute("INSERT INTO dog VALUES (10, 'Temp', 'x')")  # opens a transaction implicitly
    con.execute("UPDATE dog SET name = 'Changed' WHERE id = 1")
    assert con.in_transaction
    assert con.execute("SELECT count(*) FROM dog").fetchone()[0] == before[0] + 1
    con.rollback()
    after = con.execute("SELECT (SELECT count(*) FROM dog), (SELECT count(*) FROM hdbrepl_log)").fetchone()
    assert after == before, (before, after)
    assert con.execute("SELECT name FROM dog WHERE id = 1").fetchone() == ("Harper!",)
    # A context-manager transaction that raises is rolled back too.
    try:
        with con:
            con.execute("INSERT INTO dog VALUES (11, 'Temp', 'x')")
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert con.execute("SELECT count(*) FROM dog WHERE id = 11").fetchone() == (0,)
    # And one that succeeds is one log record.
    with con:
        con.execute("INSERT INTO dog VALUES (12, 'A', 'x')")
        con.execute("INSERT INTO dog VALUES (13, 'B', 'x')")
    assert con.execute("SELECT count(*) FROM hdbrepl_log").fetchone()[0] == before[1] + 1
    con.close()


@check("explicit BEGIN / SAVEPOINT / ROLLBACK TO in autocommit mode")
def _():
    con = connect("a.db")
    con.isolation_level = None
    n = con.execute("SELECT count(*) FROM hdbrepl_log").fetchone()[0]
    con.execute("BEGIN")
    con.execute("INSERT INTO dog VALUES (20, 'kept', 'x')")
    con.execute("SAVEPOINT s")
    con.execute("INSERT INTO dog VALUES (21, 'dropped', 'x')")
    con.execute("ROLLBACK TO s")
    con.execute("RELEASE s")
    con.execute("COMMIT")
    assert con.execute("SELECT count(*) FROM hdbrepl_log").fetchone()[0] == n + 1
    last = con.execute("SELECT repl_record_json(body) FROM hdbrepl_log ORDER BY seq DESC LIMIT 1").fetchone()[0]
    assert '"kept"' in last and '"dropped"' not in last, last
    con.close()


@check("errors are sqlite3.Error subclasses with hdbrepl's messages")
def _():
    con = connect("a.db")
    expect_error(con, "INSERT INTO dog VALUES (1, 'Dup', 'x')", sqlite3.IntegrityError, "UNIQUE constraint failed: dog.id")
    expect_error(con, "INSERT INTO dog VALUES (?, ?, ?)", sqlite3.IntegrityError, "NOT NULL constraint failed: dog.name", params=(30, None, "x"))
    expect_error(con, "INSERT INTO dog VALUES (NULL, 'NoKey', 'x')", sqlite3.IntegrityError, "NOT NULL constraint failed: dog.id")
    expect_error(con, "CREATE VIRTUAL TABLE bad USING hdbrepl(a, b)", sqlite3.OperationalError, "exactly one PRIMARY KEY")
    expect_error(con, "CREATE VIRTUAL TABLE bad USING hdbrepl(a PRIMARY KEY, b DEFAULT 1)", sqlite3.OperationalError, "DEFAULT")
    expect_error(con, "SELECT repl_config('nope')", sqlite3.OperationalError, "unknown setting 'nope'")
    expect_error(con, "SELECT repl_apply(?)", sqlite3.DatabaseError, "malformed change record", params=(b"garbage",))
    expect_error(con, "SELECT repl_apply(?)", sqlite3.OperationalError, "must be a change record", params=("text",))
    con.rollback()
    assert con.execute("SELECT count(*) FROM dog WHERE id IN (30)").fetchone() == (0,)
    con.close()


@check("repl_apply with bytes parameters copies one database into another")
def _():
    src = connect("a.db")
    dst = connect("copy.db")
    for (body,) in src.execute("SELECT body FROM hdbrepl_log ORDER BY seq").fetchall():
        assert isinstance(body, bytes)
        res = dst.execute("SELECT repl_apply(?)", (body,)).fetchone()[0]
        assert '"logged":true' in res, res
    dst.commit()
    for table in ("dog", "thing"):
        q = "SELECT * FROM %s ORDER BY 1" % table
        assert dst.execute(q).fetchall() == src.execute(q).fetchall(), table
    # Again: nothing changes.
    for (body,) in src.execute("SELECT body FROM hdbrepl_log ORDER BY seq").fetchall():
        assert '"applied":0' in dst.execute("SELECT repl_apply(?)", (body,)).fetchone()[0]
    src.close()
    dst.close()


@check("two connections in one process: isolation and visibility")
def _():
    a = connect("two.db")
    b = connect("two.db")
    a.execute(DOG)
    a.commit()
    a.execute("INSERT INTO dog VALUES (1, 'A', 'x')")  # uncommitted
    assert b.execute("SELECT count(*) FROM dog").fetchone() == (0,)
    a.commit()
    assert b.execute("SELECT name FROM dog").fetchall() == [("A",)]
    b.execute("INSERT INTO dog VALUES (2, 'B', 'y')")
    b.commit()
    assert a.execute("SELECT id FROM dog ORDER BY id").fetchall() == [(1,), (2,)]
    assert a.execute("SELECT count(*) FROM hdbrepl_log").fetchone() == (3,)
    a.close()
    b.close()


@check("closing the first connection that loaded the library leaves the second working")
def _():
    first = connect("close.db")
    second = connect("close.db")
    first.execute(DOG)
    first.commit()
    first.close()
    second.execute("INSERT INTO dog VALUES (1, 'after close', 'x')")
    second.commit()
    assert second.execute("SELECT name FROM dog").fetchall() == [("after close",)]
    assert second.execute("SELECT repl_version()").fetchone() == ("0.1.0",)
    assert second.execute("SELECT count(*) FROM hdbrepl_log").fetchone() == (2,)
    second.close()


@check("connections opened after others were closed can load and use the library")
def _():
    # A closed connection's memory is commonly reused for the next one.
    for i in range(5):
        con = connect("reopen.db")
        if i == 0:
            con.execute(DOG)
        con.execute("INSERT INTO dog VALUES (?, 'n', 'b')", (i,))
        con.commit()
        assert con.execute("SELECT count(*) FROM dog").fetchone() == (i + 1,)
        con.close()


@check("a nonexistent library path is an error, and nothing is registered")
def _():
    con = sqlite3.connect(os.path.join(TMP, "noload.db"))
    con.enable_load_extension(True)
    try:
        con.load_extension(os.path.join(TMP, "no", "such", "libhdbrepl"))
        raise AssertionError("a nonexistent library loaded")
    except sqlite3.OperationalError as e:
        assert "cannot open" in str(e) or "No such file" in str(e), str(e)
    try:
        con.execute("SELECT repl_version()")
        raise AssertionError("repl_version exists without loading")
    except sqlite3.OperationalError as e:
        assert "no such function" in str(e)
    con.close()


shutil.rmtree(TMP, ignore_errors=True)
print("load_test.py: %d passed, %d failed" % (results["passed"], results["failed"]))
sys.exit(1 if results["failed"] else 0)
