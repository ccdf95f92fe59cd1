#!/usr/bin/python3
"""Makes sure the chaos checker can fail: a consistent history passes, and each kind of
damage (counted once per node that shows it, except `lost`, `mtx_lost`
and `lww`, counted per write or key: a lost row, a resurrected one, a phantom, a half-applied transaction, divergent
replicas, a wrong last-writer-wins winner...) is counted. No nodes; runs in a second.

    /usr/bin/python3 tests/chaos/checker_selftest.py
"""
import copy
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402

N1, N2 = "127.0.0.2", "127.0.0.3"


def history():
    outcomes = {
        "inserts": [
            {"id": 1, "node": N1, "val": "r1", "status": "committed"},
            {"id": 2, "node": N1, "val": "r2", "status": "committed"},  # deleted later
            {"id": 3, "node": N2, "val": "r3", "status": "maybe"},      # may or may not be there
            {"id": 4, "node": N2, "val": "r4", "status": "failed"},     # must not be there
            {"id": 20, "node": N1, "val": "g20", "status": "maybe"},    # one big transaction, 20..22:
            {"id": 21, "node": N1, "val": "g21", "status": "maybe"},    # all of it or none
            {"id": 22, "node": N1, "val": "g22", "status": "maybe"},
        ],
        "bigs": [{"first": 20, "last": 22, "status": "maybe"}],
        "deletes": [{"id": 2, "status": "committed"}],
        "mtx": [
            {"id": 10, "kind": "insert", "val": "m1", "status": "committed"},
            {"id": 10, "kind": "update", "val": "m2", "status": "committed"},
            {"id": 11, "kind": "insert", "val": "m3", "status": "maybe"},
        ],
        "hot": [
            {"key": 1, "val": "h0", "node": N1, "status": "committed", "hlc": 100, "origin": N1},
            {"key": 1, "val": "h1", "node": N2, "status": "committed", "hlc": 200, "origin": N2},
            {"key": 1, "val": "h2", "node": N1, "status": "committed", "hlc": 200, "origin": N1},  # tie: N2 wins
            {"key": 1, "val": "h3", "node": N1, "status": "maybe", "hlc": None, "origin": None},
        ],
    }
    snap = {
        "rows": {1: ["127.0.0.2", "r1", 5, N1], 3: [N2, "r3", 6, N2], 20: [N1, "g20", 9, N1], 21: [N1, "g21", 9, N1],
                 22: [N1, "g22", 9, N1]},
        "a": {10: ["m2", 7, N1]}, "b": {10: ["m2", 7, N1]},
        "hot": {1: ["h1", 200, N2]},
        "rows_tomb": {2: [8, N1]}, "a_tomb": {}, "b_tomb": {}, "hot_tomb": {},
    }
    snapshots = {N1: copy.deepcopy(snap), N2: copy.deepcopy(snap)}
    readers = {N1: {"reads": 5, "half_applied": 0, "samples": []}, N2: {"reads": 5, "half_applied": 0, "samples": []}}
    return outcomes, snapshots, readers


failures = []


def expect(name, mutate, want):
    o, s, r = history()
    mutate(o, s, r)
    got = checker.check(o, s, r)
    bad = {k: n for k, n in got["violations"].items() if n and k != "lost_copies"}
    if want is None:
        ok = got["ok"] and not bad
    else:
        ok = (not got["ok"]) and all(got["violations"].get(k) == n for k, n in want.items()) and set(bad) == set(want)
    print(f"{'ok  ' if ok else 'FAIL'} {name}: violations {bad}")
    if not ok:
        failures.append(name)


expect("consistent history", lambda o, s, r: None, None)
expect("a maybe big transaction absent everywhere is fine", lambda o, s, r: [s[n]["rows"].pop(k) for n in s for k in (20, 21, 22)],
       None)
expect("part of a big transaction", lambda o, s, r: [s[n]["rows"].pop(21) for n in s], {"big_partial": 2})
expect("maybe insert absent is fine", lambda o, s, r: [s[n]["rows"].pop(3) for n in s], None)
expect("maybe hot write winning with a greater version",
       lambda o, s, r: [s[n]["hot"].__setitem__(1, ["h3", 300, N1]) for n in s], None)
expect("committed row missing on one node",
       lambda o, s, r: s[N2]["rows"].pop(1), {"lost": 1, "divergent": 1})
expect("deleted row back", lambda o, s, r: [s[n]["rows"].__setitem__(2, [N1, "r2", 9, N1]) for n in s],
       {"resurrected": 2})
expect("failed insert present", lambda o, s, r: [s[n]["rows"].__setitem__(4, [N2, "r4", 9, N2]) for n in s],
       {"phantom": 2})
expect("row nobody wrote", lambda o, s, r: [s[n]["rows"].__setitem__(99, [N2, "x", 9, N2]) for n in s],
       {"phantom": 2})
expect("row with another value", lambda o, s, r: [s[n]["rows"].__setitem__(1, [N1, "zz", 5, N1]) for n in s],
       {"wrong_value": 2})
expect("half of a transaction at the end", lambda o, s, r: [s[n]["b"].pop(10) for n in s],
       {"mtx_half_final": 2, "mtx_lost": 1})
expect("a transaction's older value", lambda o, s, r: [(s[n]["a"].__setitem__(10, ["m1", 6, N1]),
                                                        s[n]["b"].__setitem__(10, ["m1", 6, N1])) for n in s],
       {"mtx_stale": 4})
expect("half-applied read during the run", lambda o, s, r: r[N1].update(half_applied=3), {"half_applied": 3})
expect("replicas differ in a version only", lambda o, s, r: s[N2]["a"].__setitem__(10, ["m2", 8, N1]),
       {"divergent": 1})
expect("an older committed write won", lambda o, s, r: [s[n]["hot"].__setitem__(1, ["h0", 100, N1]) for n in s],
       {"lww": 1})
expect("tie broken the wrong way", lambda o, s, r: [s[n]["hot"].__setitem__(1, ["h2", 200, N1]) for n in s],
       {"lww": 1})
expect("maybe write winning without beating the committed ones",
       lambda o, s, r: [s[n]["hot"].__setitem__(1, ["h3", 150, N1]) for n in s], {"lww": 1})

print(f"checker self-test: {'all passed' if not failures else 'FAILED: ' + ', '.join(failures)}")
sys.exit(1 if failures else 0)
