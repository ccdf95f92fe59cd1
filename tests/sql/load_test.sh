#!/usr/bin/env bash
# The sqlite3 shell tour: `.load $HDBREPL_SO`, create a replicated table, write, query,
# check the output exactly; errors; a nonexistent library; the demo tour script.
# Needs HDBREPL_SO = the built library without its .so suffix (set by CTest).
set -u
so=${HDBREPL_SO:?set HDBREPL_SO to the built library path without .so}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d /tmp/hdbrepl-load-sh-XXXXXX)
trap 'rm -rf "$dir"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok   - $1"; }
bad() {
    fail=$((fail + 1))
    echo "FAIL - $1"
    shift
    for line in "$@"; do echo "       $line"; done
}
# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
    if [ "$2" == "$3" ]; then ok "$1"; else bad "$1" "expected: $(printf '%q' "$2")" "actual:   $(printf '%q' "$3")"; fi
}
# Runs SQL (stdin) in the shell on a database with the library loaded; stdout+stderr.
shell() { sqlite3 -batch -bail "$1" -cmd ".load $so" 2>&1; }

if ! command -v sqlite3 >/dev/null; then
    echo "load_test.sh: the sqlite3 shell is not installed"
    exit 1
fi

db=$dir/tour.db

# 1. load and answer
expect_eq "repl_version() after .load" "0.1.0" "$(echo "SELECT repl_version();" | shell "$db")"

# 2. create, insert, select: exact output
out=$(shell "$db" <<'SQL'
PRAGMA journal_mode=WAL;
CREATE VIRTUAL TABLE dog USING hdbrepl(id INTEGER PRIMARY KEY, name TEXT NOT NULL, breed TEXT INDEXED);
BEGIN;
INSERT INTO dog VALUES (1, 'Harper', 'Labrador'), (2, 'Penny', 'Poodle'), (3, 'Kato', 'Labrador');
COMMIT;
UPDATE dog SET name = 'Penny Lane' WHERE id = 2;
DELETE FROM dog WHERE id = 3;
INSERT OR REPLACE INTO dog VALUES (4, 'Billy', 'Pug');
.mode list
.separator |
SELECT * FROM dog ORDER BY id;
SELECT name FROM dog WHERE breed = 'Labrador';
SELECT count(*) FROM hdbrepl_log;
SELECT count(*) FROM dog_tomb;
SQL
)
expected="wal
1|Harper|Labrador
2|Penny Lane|Poodle
4|Billy|Pug
Harper
5
1"
if diff <(echo "$expected") <(echo "$out") >"$dir/diff.txt"; then ok "tour output"; else bad "tour output" "$(cat "$dir/diff.txt")"; fi

# 3. the query plan names the key plan
plan=$(echo "EXPLAIN QUERY PLAN SELECT * FROM dog WHERE id = 2;" | shell "$db")
if grep -q "VIRTUAL TABLE INDEX .*:key id =" <<<"$plan"; then ok "key plan in EXPLAIN QUERY PLAN"; else bad "key plan in EXPLAIN QUERY PLAN" "$plan"; fi

# 4. the change log decodes
json=$(echo "SELECT repl_record_json(body) FROM hdbrepl_log ORDER BY seq DESC LIMIT 1;" | shell "$db")
if grep -q '"op":"put","row":\[4,"Billy","Pug"\]' <<<"$json"; then ok "repl_record_json of the last record"; else bad "repl_record_json of the last record" "$json"; fi

# 5. a constraint error: message on stderr, non-zero exit with -bail, nothing changed
out=$(echo "INSERT INTO dog VALUES (1, 'Dup', 'x');" | shell "$db")
rc=$?
if [ $rc -ne 0 ] && grep -q "UNIQUE constraint failed: dog.id" <<<"$out"; then ok "duplicate key is an error"; else bad "duplicate key is an error" "rc=$rc" "$out"; fi
out=$(echo "INSERT INTO dog VALUES (NULL, 'NoKey', 'x');" | shell "$db")
if grep -q "NOT NULL constraint failed: dog.id" <<<"$out"; then ok "NULL key is an error"; else bad "NULL key is an error" "$out"; fi
out=$(echo "CREATE VIRTUAL TABLE bad USING hdbrepl(a, b);" | shell "$db")
if grep -q "exactly one PRIMARY KEY" <<<"$out"; then ok "missing primary key is an error"; else bad "missing primary key is an error" "$out"; fi
expect_eq "nothing changed by the errors" "3|5" "$(echo "SELECT (SELECT count(*) FROM dog) || '|' || (SELECT count(*) FROM hdbrepl_log);" | shell "$db")"

# 6. a second process reopens the file and writes; a third sees it
out=$(echo "INSERT INTO dog VALUES (5, 'Rex', 'Collie');" | shell "$db")
expect_eq "another process writes" "" "$out"
out=$(shell "$db" <<'SQL'
SELECT group_concat(name, '|') || '|' || (SELECT count(*) FROM hdbrepl_log) FROM (SELECT name FROM dog WHERE id IN (1, 4, 5) ORDER BY id);
SQL
)
expect_eq "the second process's write is there" "Harper|Billy|Rex|6" "$out"

# 7. without the library the table cannot be used
out=$(echo "SELECT * FROM dog;" | sqlite3 -batch -bail "$db" 2>&1)
if grep -q "no such module: hdbrepl" <<<"$out"; then ok "no module without .load"; else bad "no module without .load" "$out"; fi

# 8. .load with the .so suffix and with an explicit entry point
expect_eq ".load with the .so suffix" "0.1.0" "$(echo "SELECT repl_version();" | sqlite3 -batch -bail "$dir/x.db" -cmd ".load $so.so" 2>&1)"
expect_eq ".load with the entry point" "0.1.0" "$(echo "SELECT repl_version();" | sqlite3 -batch -bail "$dir/x.db" -cmd ".load $so sqlite3_hdbrepl_init" 2>&1)"

# 9. .load of a nonexistent path fails, with a message, and the function is absent
out=$(echo "SELECT repl_version();" | sqlite3 -batch -bail "$dir/y.db" -cmd ".load $dir/no/such/libhdbrepl" 2>&1)
rc=$?
if [ $rc -ne 0 ] && grep -qi "cannot open\|no such file\|error" <<<"$out" && ! grep -q "0.1.0" <<<"$out"; then
    ok ".load of a nonexistent path fails"
else
    bad ".load of a nonexistent path fails" "rc=$rc" "$out"
fi

# 10. the demo tour runs to the end
tour=$here/../../samples/tour.sql
if [ -f "$tour" ]; then
    out=$(sqlite3 -batch -bail "$dir/demo.db" -cmd ".load $so" <"$tour" 2>&1)
    rc=$?
    if [ $rc -eq 0 ] && grep -q "Penny Lane" <<<"$out" && ! grep -q "Rolled" <<<"$out"; then ok "samples/tour.sql"; else bad "samples/tour.sql" "rc=$rc" "$(tail -5 <<<"$out")"; fi
fi

echo "load_test.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
