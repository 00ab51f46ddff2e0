"""The two optional inputs of the report besides results files:

  --peers FILE  scripts/bench-peers --out FILE: ringside against fio / iperf3,
                medians and ratios; judged against the targets of issue 6.
  --scale FILE  scripts/bench-scale --out FILE: tcp.echo per backend at growing
                connection counts.

Both are validated here; anything wrong raises load.results_error with a
one-line message (the entry point prints it and exits 2)."""
import math

from .load import read_json, results_error

# Issue 6's targets: (label, job (None: every job with that peer), backend (None: the best backend of the
# job), peers (the strongest of them counts), minimum ratio). Within one peer the best ringside row counts
# (e.g. uring-raw with or without its io_uring options); across peers the strongest peer; across jobs
# (job None) the worst job: "on every throughput scenario".
PEER_TARGETS = [
    ("blocking >= 0.95x fio psync (4k random read, QD1)", "4k randread QD1", "blocking", ("fio psync",), 0.95),
    ("uring-raw >= 1.2x fio io_uring, default options (4k random read, QD32)", "4k randread QD32", "uring-raw",
     ("fio io_uring default",), 1.2),
    ("uring-raw >= 1.0x fio io_uring, best options with and without sqthread_poll (4k random read, QD32)",
     "4k randread QD32", "uring-raw", ("fio io_uring best", "fio io_uring best sqpoll"), 1.0),
    ("best tcp.stream backend >= 0.9x iperf3 (128 KiB, loopback)", "tcp.stream 128k", None, ("iperf3",), 0.9),
    ("uring-owned >= 0.97x uring-raw on every throughput scenario", None, "uring-owned", ("uring-raw",), 0.97),
]

PEER_STRINGS = ["job", "backend", "peer", "metric"]
PEER_NUMBERS = ["ringside_median", "peer_median", "ratio"]
SCALE_METRICS = ["ops_per_second", "cpu_us_per_op", "syscalls_per_op", "p50_us", "p99_us"]


def _read_json(path, what):
    doc = read_json(path, what)
    if not isinstance(doc, dict):
        raise results_error(f"{path}: not {what} JSON: top level is {type(doc).__name__}, expected an object")
    return doc


def _finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def load_peers(path):
    """scripts/bench-peers --out FILE -> {'path', 'reps', 'seconds', 'results': [row...]}."""
    doc = _read_json(path, "bench-peers")
    rows = doc.get("results")
    if not isinstance(rows, list):
        raise results_error(f"{path}: no 'results' array: not a scripts/bench-peers --out file")
    if not rows:
        raise results_error(f"{path}: no results (empty bench-peers file)")
    for i, r in enumerate(rows):
        label = f"{path}: results[{i}]"
        if not isinstance(r, dict):
            raise results_error(f"{label}: not an object")
        for f in PEER_STRINGS:
            if not isinstance(r.get(f), str) or not r[f]:
                raise results_error(f"{label}: '{f}' is missing or not a non-empty string")
        for f in PEER_NUMBERS:
            if not _finite(r.get(f)) or r[f] < 0:
                raise results_error(f"{label}: '{f}' is missing or not a finite number >= 0")
    return {"path": path, "reps": doc.get("reps"), "seconds": doc.get("seconds"), "results": rows}


def judge_peers(peers):
    """-> [{'target', 'required', 'ratio' (None: not measured), 'verdict' met/missed/not measured,
    'backend', 'peer', 'job', 'row'}], one per issue-6 target; 'row' is the deciding row."""
    out = []
    for label, job, backend, peer_names, need in PEER_TARGETS:
        rows = [r for r in peers["results"] if r["peer"] in peer_names and (job is None or r["job"] == job)
                and (backend is None or r["backend"] == backend)]
        # The best ringside row per (job, peer), then the worst of those: the strongest peer, the worst job.
        best = {}
        for r in rows:
            k = (r["job"], r["peer"])
            if k not in best or r["ratio"] > best[k]["ratio"]:
                best[k] = r
        decisive = min(best.values(), key=lambda r: r["ratio"], default=None)
        peer_label = " / ".join(peer_names)
        if decisive is None:
            out.append({"target": label, "required": need, "ratio": None, "verdict": "not measured",
                        "backend": backend or "-", "peer": peer_label, "job": job or "-", "row": None})
            continue
        out.append({"target": label, "required": need, "ratio": decisive["ratio"],
                    "verdict": "met" if decisive["ratio"] >= need else "missed",
                    "backend": decisive["backend"], "peer": decisive["peer"], "job": decisive["job"],
                    "row": decisive})
    return out


def target_need(row):
    """The minimum ratio of the issue-6 target a bench-peers row counts towards, or None."""
    for _, job, backend, peer_names, need in PEER_TARGETS:
        if row["peer"] in peer_names and (job is None or row["job"] == job) and \
                (backend is None or row["backend"] == backend):
            return need
    return None


def load_scale(path):
    """scripts/bench-scale --out FILE -> the document, cells checked."""
    doc = _read_json(path, "bench-scale")
    cells = doc.get("cells")
    if not isinstance(cells, list):
        raise results_error(f"{path}: no 'cells' array: not a scripts/bench-scale --out file")
    if not cells:
        raise results_error(f"{path}: no cells (empty bench-scale file)")
    for i, c in enumerate(cells):
        label = f"{path}: cells[{i}]"
        if not isinstance(c, dict):
            raise results_error(f"{label}: not an object")
        if not isinstance(c.get("backend"), str) or not c["backend"]:
            raise results_error(f"{label}: 'backend' is missing or not a non-empty string")
        if not isinstance(c.get("conns"), int) or isinstance(c["conns"], bool) or c["conns"] < 1:
            raise results_error(f"{label}: 'conns' is missing or not an integer >= 1")
        if not isinstance(c.get("status"), str):
            raise results_error(f"{label}: 'status' is missing or not a string")
        if not isinstance(c.get("n"), int) or c["n"] < 0:
            raise results_error(f"{label}: 'n' is missing or not an integer >= 0")
        if c["n"] > 0:
            for f in SCALE_METRICS:
                if not _finite(c.get(f)):
                    raise results_error(f"{label}: '{f}' is missing or not a finite number")
    lim = doc.get("blocking_limit")
    doc["blocking_limit"] = lim if isinstance(lim, dict) else {}
    probe = doc.get("blocking_probe")
    doc["blocking_probe"] = [p for p in probe if isinstance(p, dict)] if isinstance(probe, list) else []
    doc["path"] = path
    return doc


def scale_series(doc):
    """-> {'backends': [...], 'conns': [...], 'cells': {(backend, conns): cell}} in file order."""
    backends, conns, cells = [], [], {}
    for c in doc["cells"]:
        if c["backend"] not in backends:
            backends.append(c["backend"])
        if c["conns"] not in conns:
            conns.append(c["conns"])
        cells[(c["backend"], c["conns"])] = c
    probe = [p for p in doc["blocking_probe"] if isinstance(p.get("conns"), int) and p.get("status") == "ok"
             and all(_finite(p.get(f)) for f in SCALE_METRICS)]
    return {"backends": backends, "conns": sorted(conns), "cells": cells,
            "probe": sorted(probe, key=lambda p: p["conns"])}
