"""Run A (BASE) against run B (NEW), benchmark by benchmark.

A benchmark is one scenario x backend x parameter set (the row's run_name);
its repetitions are the samples. Per benchmark: NEW/BASE ratios of median
throughput, p99 latency and copies per payload byte (user + kernel), and a
one-sided Mann-Whitney U test ("NEW is worse") over the repetitions for the
two measured quantities. Copies are counted exactly, so they get no test: any
rise beyond the threshold is a regression."""
import json
import math
import os

from . import html, load, tables
from .html import esc

# (key, label, counter, higher_is_better)
METRICS = [("throughput", "throughput", "ops_per_second", True),
           ("p99", "p99 latency", "p99_ns", False),
           ("copies", "copies/byte", None, False)]
# A rise in copies per byte smaller than this is not a copy (setup copies spread over the run).
COPIES_FLOOR = 0.01


def _copies(m):
    return m["user_copies_per_byte"] + m["kernel_copies_per_byte"]


def samples(rows):
    """Measured throughput-scenario rows -> {run_name: {'backend', 'scenario', 'metrics': [..]}}."""
    out = {}
    for r in rows:
        if r["safety"] or not r["measured"]:
            continue
        out.setdefault(r["run_name"], {"backend": r["backend"], "scenario": r["scenario"], "metrics": []})
        out[r["run_name"]]["metrics"].append(r["metrics"])
    return out


def min_p(n1, n2):
    """Smallest one-sided exact Mann-Whitney p-value n1 vs n2 samples can give."""
    return 1.0 / math.comb(n1 + n2, n1) if n1 and n2 else 1.0


def _one_sided(new, base, worse_is_less):
    """p-values of 'NEW is worse' and 'NEW is better'; nan when either side has < 2 samples."""
    if len(new) < 2 or len(base) < 2:
        return math.nan, math.nan
    if len(set(new) | set(base)) == 1:
        return 1.0, 1.0  # all equal: nothing to test (scipy would divide by a zero variance)
    from scipy.stats import mannwhitneyu  # scipy loads only when there is something to test
    less = mannwhitneyu(new, base, alternative="less").pvalue
    greater = mannwhitneyu(new, base, alternative="greater").pvalue
    return (less, greater) if worse_is_less else (greater, less)


def compare_one(base, new, threshold, alpha):
    """base/new: lists of metrics dicts. -> {metric key: {...}, 'status'}."""
    out = {"n_base": len(base), "n_new": len(new)}
    worst = "ok"
    for key, _, counter, higher_better in METRICS:
        get = _copies if counter is None else (lambda m, c=counter: m[c])
        b = [get(m) for m in base]
        n = [get(m) for m in new]
        bm, nm = tables.stats(b)["median"], tables.stats(n)["median"]
        ratio = nm / bm if bm > 0 else (1.0 if nm == bm else math.inf)
        worse_change = (1 - ratio) if higher_better else (ratio - 1)
        if counter is None:
            p_worse = p_better = math.nan
            if nm - bm > COPIES_FLOOR and worse_change > threshold:
                status = "regression"
            elif bm - nm > COPIES_FLOOR and -worse_change > threshold:
                status = "improvement"
            else:
                status = "ok"
        else:
            p_worse, p_better = _one_sided(n, b, worse_is_less=higher_better)
            if math.isnan(p_worse):
                status = "untested"
            elif worse_change > threshold and p_worse < alpha:
                status = "regression"
            elif -worse_change > threshold and p_better < alpha:
                status = "improvement"
            else:
                status = "ok"
        out[key] = {"base": bm, "new": nm, "ratio": ratio, "p_worse": p_worse, "p_better": p_better,
                    "status": status, "base_sd": tables.stats(b)["stddev"], "new_sd": tables.stats(n)["stddev"]}
        if status == "regression" or (status == "improvement" and worst in ("ok", "untested")) or \
                (status == "untested" and worst == "ok"):
            worst = status
    out["status"] = worst
    return out


def compare(base_rows, new_rows, threshold, alpha):
    bs, ns = samples(base_rows), samples(new_rows)
    names = [n for n in ns if n in bs]
    results = []
    for name in names:
        r = compare_one([m for m in bs[name]["metrics"]], [m for m in ns[name]["metrics"]], threshold, alpha)
        r["name"] = name
        r["backend"] = ns[name]["backend"]
        results.append(r)
    return {"results": results, "only_base": [n for n in bs if n not in ns],
            "only_new": [n for n in ns if n not in bs], "new_samples": ns}


def verdict_changes(base_rows, new_rows):
    """Benchmarks whose verdict (clean / violation kinds) differs between the runs."""
    def verdicts(rows):
        v = {}
        for r in rows:
            if r["unsupported"]:
                continue
            v.setdefault(r["run_name"], set()).update(r["kinds"] or ["clean"])
        return v
    vb, vn = verdicts(base_rows), verdicts(new_rows)
    return [(n, ",".join(sorted(vb[n])), ",".join(sorted(vn[n]))) for n in vn if n in vb and vb[n] != vn[n]]


def _fmt_ratio(m):
    if m["ratio"] == math.inf:
        return "inf"
    return f"{m['ratio']:.3f}"


def _fmt_p(p):
    return "-" if math.isnan(p) else f"{p:.3f}"


def text_table(cmp):
    w = max([9] + [len(r["name"]) for r in cmp["results"]])
    lines = [f"{'benchmark':<{w}}  {'thr new/base':>12} {'p(worse)':>8}  {'p99 new/base':>12} {'p(worse)':>8}  "
             f"{'copies':>7}  {'n':>5}  status"]
    for r in cmp["results"]:
        flags = [f"{k}:{r[k]['status']}" for k, *_ in METRICS if r[k]["status"] in ("regression", "improvement")]
        lines.append(f"{r['name']:<{w}}  {_fmt_ratio(r['throughput']):>12} {_fmt_p(r['throughput']['p_worse']):>8}  "
                     f"{_fmt_ratio(r['p99']):>12} {_fmt_p(r['p99']['p_worse']):>8}  {_fmt_ratio(r['copies']):>7}  "
                     f"{r['n_base']:>2}/{r['n_new']:<2}  {r['status']}{(' (' + ', '.join(flags) + ')') if flags else ''}")
    return "\n".join(lines)


def gab_export(cmp, path):
    """github-action-benchmark's custom format, customBiggerIsBetter: one entry per
    benchmark of NEW, value = median ops/s, range = ± one sample sd; p99, copies and
    the comparison with BASE go into `extra` (the format has one value per entry)."""
    by_name = {r["name"]: r for r in cmp["results"]}
    out = []
    for name, s in cmp["new_samples"].items():
        thr = tables.stats(m["ops_per_second"] for m in s["metrics"])
        p99 = tables.stats(m["p99_ns"] for m in s["metrics"])
        cop = tables.stats(_copies(m) for m in s["metrics"])
        extra = [f"repetitions: {thr['n']}", f"p99: {p99['median']:.0f} ns", f"copies/byte: {cop['median']:.3g}"]
        r = by_name.get(name)
        if r:
            extra.append(f"vs base: throughput {_fmt_ratio(r['throughput'])}x (p={_fmt_p(r['throughput']['p_worse'])}), "
                         f"p99 {_fmt_ratio(r['p99'])}x, status {r['status']}")
        out.append({"name": name, "unit": "ops/s", "value": thr["median"],
                    "range": f"± {thr['stddev']:.6g}", "extra": "\n".join(extra)})
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return out


def chart(cmp, threshold):
    """NEW/BASE throughput (bars) and p99 (diamonds) per benchmark, log2 axis so
    x2 and /2 are the same length; red bars are regressions."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colours = {"regression": "#e53935", "improvement": "#43a047", "ok": "#90a4ae", "untested": "#cfd8dc"}
    rs = cmp["results"]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(rs) + 1.6))
    ys = list(range(len(rs)))
    # Ratios beyond 4x either way are drawn at the edge with their value written:
    # one outlier must not squash every other bar to a line.
    lo, hi = 0.25, 4.0
    thr = [min(max(r["throughput"]["ratio"], lo), hi) for r in rs]
    p99 = [min(max(r["p99"]["ratio"], lo), hi) for r in rs]
    ax.barh(ys, [x - 1 for x in thr], left=1, color=[colours[r["throughput"]["status"]] for r in rs],
            edgecolor="black", linewidth=0.3, label="throughput NEW/BASE")
    ax.scatter(p99, ys, marker="D", s=12, zorder=3, label="p99 NEW/BASE",
               color=["#e53935" if r["p99"]["status"] == "regression" else "black" for r in rs])
    for y, r in zip(ys, rs):
        for k, x in (("throughput", thr[y]), ("p99", p99[y])):
            if x in (lo, hi):
                ax.annotate(f"{k} {_fmt_ratio(r[k])}x", (x, y), xytext=(-3 if x == hi else 3, 0),
                            textcoords="offset points", ha="right" if x == hi else "left", va="center", fontsize=6)
    ax.set_xlim(lo / 1.1, hi * 1.1)
    ax.axvline(1.0, color="black", linewidth=0.8)
    for x in (1 - threshold, 1 + threshold):
        ax.axvline(x, color="black", linewidth=0.6, linestyle="--")
    ax.set_xscale("log", base=2)
    ax.set_yticks(ys, [r["name"] for r in rs], fontsize=6.5)
    ax.invert_yaxis()
    ax.set_xlabel(f"NEW / BASE (dashed: ± threshold {threshold * 100:g}%; red: significant regression)")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title("compare: throughput and p99 ratios per benchmark", fontsize=10)
    fig.tight_layout()
    return fig


def write_html(out_dir, a, cmp, changes, names, summary):
    rows = []
    for r in cmp["results"]:
        cells = [esc(r["name"])]
        for k, *_ in METRICS:
            m = r[k]
            style = {"regression": "background:#ffcdd2", "improvement": "background:#c8e6c9"}.get(m["status"], "")
            cells += [html.num(m["base"]), html.num(m["new"]), (esc(_fmt_ratio(m)), f'style="{style}"')]
            if k != "copies":
                cells.append(_fmt_p(m["p_worse"]))
        cells += [f"{r['n_base']}/{r['n_new']}", esc(r["status"])]
        rows.append(cells)
    heads = ["benchmark", "base ops/s", "new ops/s", "ratio", "p(worse)", "base p99 ns", "new p99 ns", "ratio",
             "p(worse)", "base copies/B", "new copies/B", "ratio", "n base/new", "status"]
    parts = ["<h1>ringside compare</h1>",
             f"<p>BASE: {esc(a.base)}<br>NEW: {esc(a.new)}</p>", f"<p>{esc(summary)}</p>"]
    parts += [html.note(f"only in BASE: {n}") for n in cmp["only_base"]]
    parts += [html.note(f"only in NEW: {n}") for n in cmp["only_new"]]
    parts += [html.note(f"verdict changed: {n}: {b} -> {v}") for n, b, v in changes]
    parts.append(html.pair(html.figure(names, "NEW/BASE ratios"), html.table(heads, rows)))
    return html.write(out_dir, html.page("ringside compare", parts))


def main(a):
    _, base_rows = load.load_many([a.base])
    _, new_rows = load.load_many([a.new])
    threshold, alpha = a.threshold / 100, a.alpha
    cmp = compare(base_rows, new_rows, threshold, alpha)
    if not cmp["results"]:
        raise load.results_error(f"{a.base} and {a.new} have no measured benchmark in common")
    changes = verdict_changes(base_rows, new_rows)
    print(text_table(cmp))
    for n in cmp["only_base"]:
        print(f"only in BASE: {n}")
    for n in cmp["only_new"]:
        print(f"only in NEW: {n}")
    for n, b, v in changes:
        print(f"verdict changed: {n}: {b} -> {v}")
    reg = [r for r in cmp["results"] if r["status"] == "regression"]
    imp = [r for r in cmp["results"] if r["status"] == "improvement"]
    lowest = min(min_p(r["n_base"], r["n_new"]) for r in cmp["results"])
    if lowest >= alpha:
        print(f"note: with these repetition counts no p-value can be below {lowest:.3f} >= alpha {alpha}: "
              "only copy regressions can be found; run with --repetitions 5")
    summary = (f"{len(cmp['results'])} benchmark(s) compared: {len(reg)} regression(s), {len(imp)} improvement(s) "
               f"(threshold {a.threshold:g}%, alpha {alpha:g}, one-sided Mann-Whitney U over repetitions)")
    out_dir = a.out or os.path.join(os.path.dirname(os.path.abspath(a.new)),
                                    f"{os.path.splitext(os.path.basename(a.new))[0]}-vs-"
                                    f"{os.path.splitext(os.path.basename(a.base))[0]}")
    os.makedirs(out_dir, exist_ok=True)
    from .charts import save
    names = save(chart(cmp, threshold), out_dir, "compare")
    index = write_html(out_dir, a, cmp, changes, names, summary)
    if a.export_gab:
        gab_export(cmp, a.export_gab)
        print(f"github-action-benchmark (customBiggerIsBetter): {os.path.abspath(a.export_gab)}")
    print(f"compare: {os.path.abspath(index)}")
    print(f"compare: {summary}")
    if reg:
        print("regressions: " + ", ".join(r["name"] for r in reg))
    return 1 if reg else 0
