"""The owned-buffer claims, judged with figures: an owned-buffer io_uring API
(tokio-uring, compio; here `uring-owned`) is said to run at the same speed as
raw io_uring (`uring-raw`) with zero copies, zero overhead, and one allocation
per reusable buffer rather than per op. Each claim is confirmed or refuted from
the benchmarks both backends ran, and the rule used is printed beside it."""
import math

from . import tables

DEFAULT_OWNED = "uring-owned"
DEFAULT_RAW = "uring-raw"
# An allocation per op would add >= 1 alloc/op; setup allocations (buffers,
# rings, connections) spread over the run stay far below this.
ALLOCS_PER_OP_SLACK = 0.01
# A copy per payload byte is counted exactly; below this it is rounding of setup copies.
COPIES_EPSILON = 1e-6


def _geomean(xs):
    xs = [x for x in xs if x > 0 and math.isfinite(x)]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else math.nan


def _ratio(a, b):
    return a / b if b > 0 else math.nan


def _median_cv(rows):
    cvs = sorted(r["cv"] for r in rows if math.isfinite(r["cv"]))
    return cvs[len(cvs) // 2] if cvs else math.nan


def case_rows(perf, owned, raw):
    """Per benchmark both backends ran: medians of owned and raw, and their ratios."""
    out = []
    for case in perf["cases"]:
        o = perf["cells"].get((case, owned))
        r = perf["cells"].get((case, raw))
        if o is None or r is None:
            continue
        row = {"case": case, "n_owned": len(o["samples"]), "n_raw": len(r["samples"])}
        for f in ["ops_per_second", "cpu_time", "syscalls_per_op", "allocs_per_op",
                  "user_copies_per_byte", "kernel_copies_per_byte"]:
            row[f] = (tables.metric(o, f)["median"], tables.metric(r, f)["median"])
        row["throughput_ratio"] = _ratio(*row["ops_per_second"])
        # How noisy the two backends' throughput was: a ratio is worth no more than this.
        cv = [tables.metric(c, "ops_per_second") for c in (o, r)]
        row["cv"] = max(s["stddev"] / s["mean"] if s["mean"] > 0 else math.nan for s in cv)
        row["cpu_ratio"] = _ratio(*row["cpu_time"])
        out.append(row)
    return out


def judge(perf, owned=DEFAULT_OWNED, raw=DEFAULT_RAW, tolerance=0.05):
    """-> {'owned', 'raw', 'tolerance', 'cases': case_rows, 'claims': [{'claim', 'verdict',
    'figures', 'rule'}], 'missing': why there is nothing to judge, or ''}."""
    res = {"owned": owned, "raw": raw, "tolerance": tolerance, "cases": [], "claims": [], "missing": "",
           "warning": ""}
    have = set(perf["backends"])
    absent = [b for b in (owned, raw) if b not in have]
    if absent:
        res["missing"] = (f"no measured throughput rows for {', '.join(absent)} in these results, "
                          "so the owned-buffer claims cannot be judged")
        return res
    rows = case_rows(perf, owned, raw)
    res["cases"] = rows
    if not rows:
        res["missing"] = f"{owned} and {raw} ran no benchmark in common"
        return res
    pct = f"{tolerance * 100:g}%"

    def extreme(key, pick):
        r = pick(rows, key=lambda x: x[key] if math.isfinite(x[key]) else 1.0)
        return f"{r[key]:.3f}x in {r['case']}"

    if _median_cv(rows) > tolerance:
        res["warning"] = (f"the repetitions' throughput varies by {_median_cv(rows):.0%} (median cv), more than the "
                          f"{pct} tolerance: the speed and overhead verdicts rest on noisy figures; run longer "
                          "(--duration) with more --repetitions on a quiet machine")
    thr = _geomean(r["throughput_ratio"] for r in rows)
    slower = [r for r in rows if r["throughput_ratio"] < 1 - tolerance]
    res["claims"].append({
        "claim": "same speed as raw io_uring",
        "verdict": "confirmed" if thr >= 1 - tolerance else "refuted",
        "figures": (f"{owned}/{raw} throughput: geometric mean {thr:.3f}x over {len(rows)} benchmark(s); "
                    f"lowest {extreme('throughput_ratio', min)}, highest {extreme('throughput_ratio', max)}; "
                    f"{len(slower)} benchmark(s) below {1 - tolerance:.2f}x"
                    + (" (" + ", ".join(f"{r['case']} {r['throughput_ratio']:.3f}x" for r in slower) + ")"
                       if slower else "")
                    + f"; repetitions' spread (cv, median over benchmarks): {_median_cv(rows):.1%}"),
        "rule": f"confirmed when the geometric mean of the median-throughput ratios is at least {1 - tolerance:.2f} (tolerance {pct})",
    })

    cpu = _geomean(r["cpu_ratio"] for r in rows)
    extra_sys = max(r["syscalls_per_op"][0] - r["syscalls_per_op"][1] for r in rows)
    worst_sys = max(rows, key=lambda r: r["syscalls_per_op"][0] - r["syscalls_per_op"][1])
    sys_ok = all(r["syscalls_per_op"][0] <= r["syscalls_per_op"][1] * (1 + tolerance) + 1e-9 for r in rows)
    res["claims"].append({
        "claim": "zero overhead",
        "verdict": "confirmed" if cpu <= 1 + tolerance and sys_ok else "refuted",
        "figures": (f"CPU time per op {owned}/{raw}: geometric mean {cpu:.3f}x; syscalls per op: "
                    f"at most {extra_sys:+.3f} more than {raw} (in {worst_sys['case']}: "
                    f"{worst_sys['syscalls_per_op'][0]:.3f} vs {worst_sys['syscalls_per_op'][1]:.3f})"),
        "rule": (f"confirmed when CPU time per op is within {pct} of {raw}'s (geometric mean) and "
                 f"no benchmark needs more than {pct} more syscalls per op"),
    })

    max_user = max(r["user_copies_per_byte"][0] for r in rows)
    extra_kernel = max(r["kernel_copies_per_byte"][0] - r["kernel_copies_per_byte"][1] for r in rows)
    res["claims"].append({
        "claim": "zero copies",
        "verdict": "confirmed" if max_user <= COPIES_EPSILON and extra_kernel <= COPIES_EPSILON else "refuted",
        "figures": (f"user-space copies per payload byte: at most {max_user:.3g} in {owned}; kernel copies per "
                    f"byte: at most {extra_kernel:+.3g} beyond {raw}'s"),
        "rule": f"confirmed when {owned} makes no user-space payload copy and no kernel copy that {raw} does not",
    })

    extra_alloc = max(r["allocs_per_op"][0] - r["allocs_per_op"][1] for r in rows)
    worst_alloc = max(rows, key=lambda r: r["allocs_per_op"][0])
    res["claims"].append({
        "claim": "one allocation per reusable buffer (none per op)",
        "verdict": "confirmed" if extra_alloc <= ALLOCS_PER_OP_SLACK else "refuted",
        "figures": (f"allocations per op: at most {worst_alloc['allocs_per_op'][0]:.4f} in {owned} "
                    f"({worst_alloc['case']}; {raw}: {worst_alloc['allocs_per_op'][1]:.4f}); "
                    f"largest excess over {raw}: {extra_alloc:+.4f}"),
        "rule": (f"confirmed when {owned} allocates at most {ALLOCS_PER_OP_SLACK} per op more than {raw} in every "
                 "benchmark: an allocation per op would add at least 1"),
    })
    return res
