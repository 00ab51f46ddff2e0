"""Rows -> per-benchmark statistics and the safety matrix: plain data the
charts, the HTML tables and the claims all read, so every number on the page
comes from one place."""
import math

# Percentiles drawn on the latency chart, in order: (label, counter).
PERCENTILES = [("p50", "p50_ns"), ("p90", "p90_ns"), ("p99", "p99_ns"), ("p99.9", "p999_ns")]


def ordered_unique(items):
    seen, out = set(), []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def stats(values):
    """n, mean, median, sample stddev (0 for one value), min, max."""
    xs = sorted(float(v) for v in values)
    n = len(xs)
    if n == 0:
        return {"n": 0, "mean": math.nan, "median": math.nan, "stddev": math.nan, "min": math.nan, "max": math.nan}
    mean = sum(xs) / n
    median = xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    return {"n": n, "mean": mean, "median": median, "stddev": sd, "min": xs[0], "max": xs[-1]}


def performance(rows):
    """The throughput scenarios' measured repetitions grouped per benchmark.

    Returns {'cases': [case...], 'backends': [backend...] (first-seen order, so a
    new backend shows up without any list to edit), 'cells': {(case, backend):
    {'run_name', 'samples': [metrics...], 'verdicts': set}}, 'unmeasured':
    [rows that are unsupported, failed or interrupted]}."""
    perf = [r for r in rows if not r["safety"]]
    cells = {}
    for r in perf:
        if not r["measured"]:
            continue
        cell = cells.setdefault((r["case"], r["backend"]),
                                {"run_name": r["run_name"], "samples": [], "verdicts": set(), "kinds": []})
        cell["samples"].append(r["metrics"])
        cell["verdicts"].add(r["verdict"])
        cell["kinds"] = ordered_unique(cell["kinds"] + r["kinds"])
    measured = [r for r in perf if r["measured"]]
    return {
        "cases": ordered_unique(r["case"] for r in measured),
        "backends": ordered_unique(r["backend"] for r in measured),
        "cells": cells,
        "unmeasured": [r for r in perf if not r["measured"]],
    }


def metric(cell, field):
    return stats(s[field] for s in cell["samples"])


def benchmark_table(perf):
    """One row per (case, backend) for the page's tables."""
    out = []
    for case in perf["cases"]:
        for b in perf["backends"]:
            cell = perf["cells"].get((case, b))
            if cell is None:
                continue
            row = {"case": case, "backend": b, "run_name": cell["run_name"], "n": len(cell["samples"]),
                   "verdict": "clean" if not cell["kinds"] else ",".join(cell["kinds"])}
            for f in ["ops_per_second", "bytes_per_second", "p50_ns", "p90_ns", "p99_ns", "p999_ns",
                      "syscalls_per_op", "user_copies_per_byte", "kernel_copies_per_byte", "allocs_per_op",
                      "cpu_time"]:
                row[f] = metric(cell, f)
            out.append(row)
    return out


# Verdict classes of a safety cell, worst last: the colour of a cell is its worst row's.
SAFETY_CLASSES = ["clean", "unsupported", "interrupted", "violation", "failed"]
# Verdicts `ringside check` gives a cell whose child died (README, check): worse than a violation.
FAILED_KINDS = {"asan", "tsan", "crashed", "hang", "error"}


def _row_class(r):
    if r["unsupported"]:
        return "unsupported"
    if any(k in FAILED_KINDS for k in r["kinds"]):
        return "failed"
    if r["kinds"]:
        return "violation"
    if r["interrupted"]:
        return "interrupted"
    if r["error"]:
        return "failed"
    return "clean"


def safety_matrix(rows):
    """The safety scenarios' rows -> {'scenarios', 'backends', 'cells': {(scenario,
    backend): {'class', 'kinds', 'reason', 'runs', 'details'}}}. Several rows of one cell
    (repetitions, several files) merge: kinds are united, the worst class wins."""
    safety = [r for r in rows if r["safety"]]
    cells = {}
    for r in safety:
        c = cells.setdefault((r["scenario"], r["backend"]),
                             {"class": "clean", "kinds": [], "reason": "", "runs": 0, "details": []})
        c["runs"] += 1
        cls = _row_class(r)
        if SAFETY_CLASSES.index(cls) > SAFETY_CLASSES.index(c["class"]):
            c["class"] = cls
        c["kinds"] = ordered_unique(c["kinds"] + r["kinds"])
        if r["unsupported"]:
            c["reason"] = r["verdict"][len("unsupported"):].lstrip(": ")
        c["details"].extend(r["details"])
    # Backends in the order of all rows (a run file's, when one is given, first):
    # `ringside check` writes its cells as they finish, in no stable order.
    in_safety = {r["backend"] for r in safety}
    return {
        "scenarios": ordered_unique(r["scenario"] for r in safety),
        "backends": [b for b in ordered_unique(r["backend"] for r in rows) if b in in_safety],
        "cells": cells,
    }
