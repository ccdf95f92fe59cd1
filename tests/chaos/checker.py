"""The chaos checker: compares what the writers were told (committed / failed / maybe) with
what every node holds once the faults have healed and the cluster has converged.

Pure functions over plain data, so tests/chaos/checker_selftest.py can feed it histories
that are wrong on purpose and make sure each kind of violation is caught.

Inputs
  outcomes   {"inserts": [{id, node, val, status}], "deletes": [{id, status}],
              "mtx": [{id, kind, val, status}] (per id in issue order; one writer per id),
              "hot": [{key, val, node, status, hlc, origin}]}
  snapshots  {node name: workload.snapshot()}: table -> {id: [columns..., hlc, origin]}
  readers    {node name: Reader.stats()}

Violations (each must be 0; counted per node that shows them, except lost, mtx_lost and lww,
which count writes or keys)
  lost            a committed insert, not deleted by a committed or maybe delete, missing on
                  a node (counted per write; `lost_copies` counts write x node)
  wrong_value     a row present with a value no write of it had
  resurrected     a row whose delete committed is present on a node
  phantom         a row present whose insert failed (the client was told so) or that nobody wrote
  mtx_lost        a committed a+b transaction missing (in a or in b) on a node
  mtx_half_final  at the end, a and b disagree for an id on a node
  mtx_stale       a/b hold a value older than the last committed update of that id
  divergent       nodes whose contents (rows, versions) differ from the largest group of
                  identical nodes
  half_applied    reads (in one read transaction) that saw a and b disagree, during the run
  lww             hot keys whose final row is not the write with the greatest (hlc, origin)
                  among the committed writes (a maybe write may win only if it beats them all)
"""
import hashlib
import json

DATA_TABLES = ("rows", "a", "b", "hot")


def _digest(obj):
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _sample(lst, item, cap=10):
    if len(lst) < cap:
        lst.append(item)


def check(outcomes, snapshots, readers, compare_tombstones=True):
    v = {k: 0 for k in ("lost", "lost_copies", "wrong_value", "resurrected", "phantom", "mtx_lost", "mtx_half_final",
                        "mtx_stale", "divergent", "half_applied", "lww", "big_partial")}
    samples = {k: [] for k in v}
    figures = {}
    nodes = sorted(snapshots)

    # -- unique inserts and deletes ------------------------------------------------------
    inserts = {w["id"]: w for w in outcomes["inserts"]}
    deletes = {}
    for d in outcomes["deletes"]:
        deletes.setdefault(d["id"], []).append(d["status"])
    count = {s: 0 for s in ("committed", "maybe", "failed")}
    for w in outcomes["inserts"]:
        count[w["status"]] += 1
    figures["inserts"] = dict(count)
    dcount = {s: 0 for s in ("committed", "maybe", "failed")}
    for d in outcomes["deletes"]:
        dcount[d["status"]] += 1
    figures["deletes"] = dcount

    lost_ids = set()
    for rid, w in inserts.items():
        dst = deletes.get(rid, [])
        del_committed = "committed" in dst
        del_maybe = "maybe" in dst
        for n in nodes:
            row = snapshots[n]["rows"].get(rid)
            if row is not None and row[1] != w["val"]:
                v["wrong_value"] += 1
                _sample(samples["wrong_value"], {"table": "rows", "id": rid, "node": n, "got": row[1], "want": w["val"]})
            if w["status"] == "failed":
                if row is not None:
                    v["phantom"] += 1
                    _sample(samples["phantom"], {"table": "rows", "id": rid, "node": n, "why": "insert reported failed"})
                continue
            if del_committed:
                if row is not None:
                    v["resurrected"] += 1
                    _sample(samples["resurrected"], {"id": rid, "node": n, "row": row})
                continue
            if w["status"] == "committed" and not del_maybe and row is None:
                v["lost_copies"] += 1
                if rid not in lost_ids:
                    lost_ids.add(rid)
                    _sample(samples["lost"], {"table": "rows", "id": rid, "origin": w["node"], "missing_on": n,
                                              "tombstone": snapshots[n]["rows_tomb"].get(rid)})
    v["lost"] += len(lost_ids)
    for n in nodes:
        for rid in snapshots[n]["rows"]:
            if rid not in inserts:
                v["phantom"] += 1
                _sample(samples["phantom"], {"table": "rows", "id": rid, "node": n, "why": "never written"})

    # -- multi-table transactions --------------------------------------------------------
    per_id = {}
    for w in outcomes["mtx"]:
        per_id.setdefault(w["id"], []).append(w)
    mcount = {s: 0 for s in ("committed", "maybe", "failed")}
    for w in outcomes["mtx"]:
        mcount[w["status"]] += 1
    figures["transactions_a_b"] = mcount
    mtx_lost_ids = set()
    for mid, ws in per_id.items():
        last = max((i for i, w in enumerate(ws) if w["status"] == "committed"), default=None)
        acceptable = set()
        if last is not None:
            acceptable.add(ws[last]["val"])
        acceptable |= {w["val"] for i, w in enumerate(ws) if w["status"] == "maybe" and (last is None or i > last)}
        known = {w["val"] for w in ws if w["status"] != "failed"}
        for n in nodes:
            ra, rb = snapshots[n]["a"].get(mid), snapshots[n]["b"].get(mid)
            va, vb = (ra[0] if ra else None), (rb[0] if rb else None)
            if va != vb:
                v["mtx_half_final"] += 1
                _sample(samples["mtx_half_final"], {"id": mid, "node": n, "a": va, "b": vb})
            for tv, t in ((va, "a"), (vb, "b")):
                if tv is None:
                    if last is not None:
                        v["mtx_lost"] += 1 if mid not in mtx_lost_ids else 0
                        mtx_lost_ids.add(mid)
                        _sample(samples["mtx_lost"], {"id": mid, "table": t, "missing_on": n})
                elif tv not in acceptable:
                    if tv in known:
                        v["mtx_stale"] += 1
                        _sample(samples["mtx_stale"], {"id": mid, "table": t, "node": n, "got": tv,
                                                       "want_one_of": sorted(acceptable)})
                    else:
                        v["phantom"] += 1
                        _sample(samples["phantom"], {"table": t, "id": mid, "node": n, "got": tv,
                                                     "why": "value of a failed or unknown write"})
    for n in nodes:
        for t in ("a", "b"):
            for mid in snapshots[n][t]:
                if mid not in per_id:
                    v["phantom"] += 1
                    _sample(samples["phantom"], {"table": t, "id": mid, "node": n, "why": "never written"})

    # -- hot keys: last writer wins ------------------------------------------------------
    by_key = {}
    for w in outcomes["hot"]:
        by_key.setdefault(w["key"], []).append(w)
    hcount = {s: 0 for s in ("committed", "maybe", "failed")}
    for w in outcomes["hot"]:
        hcount[w["status"]] += 1
    figures["hot_updates"] = hcount
    lww_keys = set()
    for key, ws in sorted(by_key.items()):
        committed = [w for w in ws if w["status"] == "committed"]
        best = max(committed, key=lambda w: (w["hlc"], w["origin"]), default=None)
        by_val = {w["val"]: w for w in ws}
        for n in nodes:
            row = snapshots[n]["hot"].get(key)
            problem = None
            if row is None:
                problem = "row missing"
            else:
                val, hlc, origin = row[0], row[1], row[2]
                w = by_val.get(val)
                final_v = (hlc, origin)
                if w is None:
                    problem = "final value written by no recorded write"
                elif w["status"] == "failed":
                    problem = "final value is a write that was reported failed"
                elif w["hlc"] is not None and (w["hlc"], w["origin"]) != final_v:
                    problem = f"final version {final_v} is not the version of its write {(w['hlc'], w['origin'])}"
                elif w["status"] == "committed" and w is not best:
                    problem = f"a committed write lost to an older one: best {(best['hlc'], best['origin'], best['val'])}"
                elif w["status"] == "maybe" and best is not None and final_v <= (best["hlc"], best["origin"]):
                    problem = "a maybe-write won without beating every committed write"
            if problem:
                lww_keys.add(key)
                _sample(samples["lww"], {"key": key, "node": n, "row": row, "problem": problem})
    v["lww"] = len(lww_keys)

    # -- replicas ------------------------------------------------------------------------
    tables = list(DATA_TABLES) + ([t + "_tomb" for t in DATA_TABLES] if compare_tombstones else [])
    digests = {n: _digest({t: sorted(snapshots[n][t].items()) for t in tables}) for n in nodes}
    groups = {}
    for n, d in digests.items():
        groups.setdefault(d, []).append(n)
    largest = max(groups.values(), key=len) if groups else []
    v["divergent"] = len(nodes) - len(largest)
    if v["divergent"]:
        ref = largest[0]
        for n in nodes:
            if n in largest:
                continue
            diff = {}
            for t in tables:
                a, b = snapshots[ref][t], snapshots[n][t]
                only_ref = [k for k in a if k not in b]
                only_n = [k for k in b if k not in a]
                changed = [k for k in a if k in b and a[k] != b[k]]
                if only_ref or only_n or changed:
                    diff[t] = {"only_on_" + ref: only_ref[:5], "only_on_" + n: only_n[:5],
                               "different": [(k, a[k], b[k]) for k in changed[:3]],
                               "counts": [len(only_ref), len(only_n), len(changed)]}
            _sample(samples["divergent"], {"node": n, "reference": ref, "diff": diff})
    figures["rows_per_node"] = {n: {t: len(snapshots[n][t]) for t in tables} for n in nodes}

    # -- big transactions (several parts each): all of one or none of it, on every node ----
    bcount = {s: 0 for s in ("committed", "maybe", "failed")}
    for g in outcomes.get("bigs", []):
        bcount[g["status"]] += 1
        for n in nodes:
            have = sum(1 for rid in range(g["first"], g["last"] + 1) if rid in snapshots[n]["rows"])
            if have not in (0, g["last"] - g["first"] + 1):
                v["big_partial"] += 1
                _sample(samples["big_partial"], {"node": n, "first": g["first"], "rows": have, "of": g["last"] - g["first"] + 1,
                                                 "status": g["status"]})
    figures["big_transactions"] = bcount

    # -- reads during the run ------------------------------------------------------------
    reads = 0
    for n, st in sorted(readers.items()):
        reads += st["reads"]
        v["half_applied"] += st["half_applied"]
        for s in st.get("samples", []):
            _sample(samples["half_applied"], dict(s, node=n))
    figures["reads"] = reads
    figures["writes_checked"] = (sum(1 for w in outcomes["inserts"] if w["status"] != "failed") +
                                 sum(1 for w in outcomes["deletes"] if w["status"] != "failed") +
                                 sum(1 for w in outcomes["mtx"] if w["status"] != "failed") +
                                 sum(1 for w in outcomes["hot"] if w["status"] != "failed"))
    figures["writes_committed"] = (figures["inserts"]["committed"] + figures["deletes"]["committed"] +
                                   mcount["committed"] + hcount["committed"])
    failing = {k: n for k, n in v.items() if n and k != "lost_copies"}
    return {"violations": v, "samples": {k: s for k, s in samples.items() if s}, "figures": figures,
            "ok": not failing}
