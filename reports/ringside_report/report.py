"""Results file(s) -> a self-contained report folder (index.html + PNG/SVG charts).

Several files may be given, typically a `ringside run` output and a `ringside
check --out` output: their rows are pooled. Rows of the safety catalogue
(cancel.* scenarios) make the safety matrix; every other scenario's measured
rows make the performance charts and the claims table; repetitions of one
benchmark found in several files all count as samples. A part with no data is
stated on the page instead of drawn."""
import os

from . import charts, claims, extras, html, load, tables
from .html import esc, num


def _inputs_section(docs, rows):
    heads = ["file", "rows", "throughput rows", "safety rows", "date", "git", "build", "sanitizer", "kernel",
             "command"]
    out = []
    for d in docs:
        c = d["context"]
        rs = d["rows"]
        cmd = " ".join(str(a) for a in c.get("command_line") or []) or "-"
        out.append([esc(d["path"]), str(len(rs)), str(sum(not r["safety"] for r in rs)),
                    str(sum(r["safety"] for r in rs)), esc(c.get("date", "-")), esc(c.get("git_revision", "-")),
                    esc(c.get("build_type", "-")), esc(c.get("sanitizer", "-")), esc(c.get("kernel", "-")),
                    (f'<span style="white-space:normal">{esc(cmd)}</span>', 'class="wrap"')])
    return html.section("inputs", "Inputs", "", html.table(heads, out))


def _perf_table(bench, fields):
    heads = ["benchmark", "backend", "n"] + [h for h, _ in fields]
    rows = []
    for r in bench:
        cells = [esc(r["case"]), esc(r["backend"]), str(r["n"])]
        for _, f in fields:
            cells.append(f(r))
        rows.append(cells)
    return html.table(heads, rows, left=2)


def _ms(r, f):
    return f"{num(r[f]['mean'])} ± {num(r[f]['stddev'], 2)}" if r["n"] > 1 else num(r[f]["mean"])


def _us(x):
    return num(x / 1e3)


def _claims_section(judged, out_dir):
    owned, raw = judged["owned"], judged["raw"]
    intro = (f"Owned-buffer io_uring (<b>{esc(owned)}</b>) against raw io_uring with borrowed buffers "
             f"(<b>{esc(raw)}</b>) on the same benchmarks: the claims are \"zero overhead, same speed as raw "
             "io_uring, one allocation per reusable buffer\" (and zero copies). Figures are medians over repetitions.")
    if judged["missing"]:
        return html.section("claims", "Owned-buffer claims", intro, html.note(judged["missing"] + "."))
    ctab = html.table(["claim", "verdict", "figures", "rule"],
                      [[esc(c["claim"]), (esc(c["verdict"]), f'class="{c["verdict"]}"'),
                        (esc(c["figures"]), 'class="wrap"'), (esc(c["rule"]), 'class="wrap"')]
                       for c in judged["claims"]], left=4)
    if judged["warning"]:
        ctab += html.note("Note: " + judged["warning"] + ".")
    names = charts.save(charts.claims_ratio(judged), out_dir, "claims_throughput_ratio")
    rows = []
    for r in judged["cases"]:
        rows.append([esc(r["case"]), f"{r['throughput_ratio']:.3f}",
                     num(r["ops_per_second"][0]), num(r["ops_per_second"][1]), f"{r['cpu_ratio']:.3f}",
                     f"{r['syscalls_per_op'][0]:.3f}", f"{r['syscalls_per_op'][1]:.3f}",
                     f"{r['allocs_per_op'][0]:.4f}", f"{r['allocs_per_op'][1]:.4f}",
                     f"{r['user_copies_per_byte'][0]:.3g}", f"{r['user_copies_per_byte'][1]:.3g}",
                     f"{r['kernel_copies_per_byte'][0]:.3g}", f"{r['kernel_copies_per_byte'][1]:.3g}",
                     f"{r['n_owned']}/{r['n_raw']}"])
    heads = ["benchmark", "throughput ratio", f"{owned} ops/s", f"{raw} ops/s", "CPU/op ratio",
             f"{owned} sys/op", f"{raw} sys/op", f"{owned} allocs/op", f"{raw} allocs/op",
             f"{owned} user copies/B", f"{raw} user copies/B", f"{owned} kernel copies/B",
             f"{raw} kernel copies/B", "n"]
    return html.section("claims", "Owned-buffer claims", intro,
                        ctab + "<p></p>" + html.pair(html.figure(names, "owned/raw throughput ratio"),
                                                     html.table(heads, rows)))


def _safety_section(matrix, out_dir):
    intro = ("Each cell is one backend running one safety scenario (the cancel.* catalogue) under the "
             "detectors; a cell merges every row given for it. Green: clean; grey: unsupported (the reason is "
             "in the table); red: violations, kinds named; purple: the run itself failed (asan, tsan, crashed, hang).")
    if not matrix["scenarios"]:
        return html.section("safety", "Safety matrix", intro, html.note(
            "No safety rows in these results: render a `ringside check --out FILE` output as well "
            "(scripts/report RUN.json CHECK.json) to get the safety matrix."))
    names = charts.save(charts.safety(matrix), out_dir, "safety_matrix")
    rows = []
    for sc in matrix["scenarios"]:
        for b in matrix["backends"]:
            c = matrix["cells"].get((sc, b))
            if c is None:
                rows.append([esc(sc), esc(b), "not run", "", ""])
                continue
            what = ", ".join(c["kinds"]) if c["kinds"] else (c["reason"] if c["class"] == "unsupported" else "")
            dets = sorted({d.get("detector", "?") for d in c["details"]})
            rows.append([esc(sc), esc(b), (esc(c["class"]), f'style="background:{html.SAFETY_CLASS_CSS[c["class"]]}"'),
                         (esc(what), 'class="wrap"'), esc(", ".join(dets))])
    tab = html.table(["scenario", "backend", "verdict", "kinds / reason", "detectors"], rows, left=5)
    return html.section("safety", "Safety matrix", intro, html.pair(html.figure(names, "safety matrix"), tab))


def _throughput_section(perf, bench, colours, out_dir):
    names = charts.save(charts.throughput(perf, colours), out_dir, "throughput")
    tab = _perf_table(bench, [("ops/s (mean ± sd)", lambda r: _ms(r, "ops_per_second")),
                              ("MB/s", lambda r: num(r["bytes_per_second"]["mean"] / 1e6)),
                              ("min ops/s", lambda r: num(r["ops_per_second"]["min"])),
                              ("max ops/s", lambda r: num(r["ops_per_second"]["max"])),
                              ("verdict", lambda r: esc(r["verdict"]))])
    return html.section("throughput", "Throughput", "Ops per second per benchmark (scenario and parameters) by "
                        "backend, over repetitions; MB/s in the table.",
                        html.pair(html.figure(names, "throughput per scenario by backend"), tab))


def _copies_section(perf, bench, colours, out_dir):
    names = charts.save(charts.copies(perf, colours), out_dir, "copies")
    tab = _perf_table(bench, [("user copies/B", lambda r: f"{r['user_copies_per_byte']['mean']:.3g}"),
                              ("kernel copies/B", lambda r: f"{r['kernel_copies_per_byte']['mean']:.3g}"),
                              ("allocs/op", lambda r: f"{r['allocs_per_op']['mean']:.4f}")])
    return html.section("copies", "Copies and allocations", "Payload copies per payload byte, user space "
                        "(copy_payload) and kernel (per completed read/write/recv/send), and heap allocations per op.",
                        html.pair(html.figure(names, "copies per byte and allocations per op"), tab))


def _latency_section(perf, bench, colours, out_dir):
    names = charts.save(charts.latency(perf, colours), out_dir, "latency")
    tab = _perf_table(bench, [(f"{label} µs", lambda r, f=field: _us(r[f]["median"]))
                              for label, field in tables.PERCENTILES])
    return html.section("latency", "Latency percentiles", "Per-op latency in microseconds, median over "
                        "repetitions (log scale on the chart).",
                        html.pair(html.figure(names, "latency percentiles"), tab))


def _syscalls_section(perf, bench, colours, out_dir):
    names = charts.save(charts.syscalls(perf, colours), out_dir, "syscalls")
    tab = _perf_table(bench, [("syscalls/op (mean ± sd)", lambda r: _ms(r, "syscalls_per_op")),
                              ("CPU ns/op", lambda r: num(r["cpu_time"]["median"]))])
    return html.section("syscalls", "Syscalls per op", "Every syscall site is counted, io_uring_enter included.",
                        html.pair(html.figure(names, "syscalls per op"), tab))


def _ratio_mark(ratio, need):
    return ("met", 'class="met"') if ratio >= need else ("missed", 'class="missed"')


def _peers_section(peers):
    intro = (f"scripts/bench-peers ({esc(peers['path'])}): ringside and the peer tool alternate on the same tmpfs "
             "file or loopback; medians over "
             f"{esc(peers.get('reps') or '?')} repetitions of {esc(peers.get('seconds') or '?')} s each. "
             "Ratio = ringside / peer (higher is better for ringside). Targets from issue 6.")
    judged = extras.judge_peers(peers)
    trows = []
    for t in judged:
        need = f"≥ {t['required']:.2f}x"
        if t["ratio"] is None:
            trows.append([esc(t["target"]), esc(t["backend"]), esc(t["peer"]), "-", need,
                          ("not measured", 'class="missed"')])
            continue
        verdict, attrs = _ratio_mark(t["ratio"], t["required"])
        trows.append([esc(t["target"]), esc(t["backend"]), esc(t["peer"]), f"{t['ratio']:.3f}x", need,
                      (("✔ " if verdict == "met" else "✘ ") + verdict, attrs)])
    ttab = html.table(["target", "ringside backend", "peer", "ratio", "required", "verdict"], trows, left=3)
    rows = []
    for r in peers["results"]:
        need = extras.target_need(r)
        mark = _ratio_mark(r["ratio"], need) if need is not None else ("", "")
        who = r["backend"] + (f" [{r['backend_opts']}]" if isinstance(r.get("backend_opts"), str) and
                              r["backend_opts"] else "")
        rows.append([esc(r["job"]), esc(who), esc(r["peer"]), esc(r["metric"]), num(r["ringside_median"]),
                     num(r["peer_median"]), f"{r['ratio']:.3f}x", (esc(mark[0]), mark[1]) if mark[1] else ""])
    jtab = html.table(["job", "ringside backend", "peer", "metric", "ringside median", "peer median", "ratio",
                       "target"], rows, left=4)
    met = sum(t["verdict"] == "met" for t in judged)
    summary = html.note(f"{met} of {len(judged)} peer targets met.")
    return html.section("peers", "Against fio and iperf3", intro, summary + ttab + "<p></p>" + jtab)


def _scale_section(scale, colours, out_dir):
    series = extras.scale_series(scale)
    ctx = scale.get("context") if isinstance(scale.get("context"), dict) else {}
    intro = (f"scripts/bench-scale ({esc(scale['path'])}): {esc(scale.get('scenario', 'tcp.echo'))} at each "
             "connection count, medians over alternating repetitions "
             f"({esc(scale.get('reps', '?'))} x {esc(scale.get('seconds', '?'))} s). CPU per op is user+sys of "
             "client and server together; RSS and threads are the ringside process's peak. A note \"timed region X s "
             "for Y s asked\" marks a cell whose ops/s and CPU per op include start-up (e.g. thousands of threads "
             "starting). Latency percentiles are per op: across I/O models, compare them with care.")
    if ctx.get("loadavg"):
        intro += f" Load average when written: {esc(', '.join(f'{x:.2f}' for x in ctx['loadavg']))}."
    for b in series["backends"]:
        colours.setdefault(b, None)
    missing = [b for b, c in colours.items() if c is None]
    if missing:  # backends only the scale file has: colours after the others
        extra = charts.backend_colours(list(colours))
        for b in missing:
            colours[b] = extra[b]
    parts = []
    lim = scale["blocking_limit"]
    if lim.get("note"):
        parts.append(html.note(str(lim["note"])))
    rows = []
    for b in series["backends"]:
        for n in series["conns"]:
            c = series["cells"].get((b, n))
            if c is None:
                continue
            if c["n"]:
                rows.append([esc(b), str(n), str(c["n"]), num(c["ops_per_second"]), f"{c['cpu_us_per_op']:.2f}",
                             f"{c['syscalls_per_op']:.2f}", num(c["p50_us"]), num(c["p99_us"]),
                             num(c.get("max_rss_mb")), esc(c.get("threads_peak", "-")),
                             (esc(c.get("reason", "")), 'class="wrap"')])
            else:
                rows.append([esc(b), str(n), "0", "-", "-", "-", "-", "-", num(c.get("max_rss_mb")),
                             esc(c.get("threads_peak", "-")),
                             (esc(f"{c['status']}: {c.get('reason', '')}"), 'class="wrap missed"')])
    for p in scale["blocking_probe"]:
        ok = p.get("status") == "ok"
        rows.append([esc(f"{p.get('backend', 'blocking')} (probe)"), esc(p.get("conns", "?")), "1" if ok else "0",
                     num(p.get("ops_per_second")) if ok else "-",
                     f"{p['cpu_us_per_op']:.2f}" if ok else "-", f"{p['syscalls_per_op']:.2f}" if ok else "-",
                     num(p.get("p50_us")) if ok else "-", num(p.get("p99_us")) if ok else "-",
                     num(p.get("max_rss_mb")), esc(p.get("threads_peak", "-")),
                     ("" if ok else (esc(f"{p.get('status')}: {p.get('reason', '')}"), 'class="wrap missed"'))])
    tab = html.table(["backend", "conns", "n", "ops/s", "CPU µs/op", "syscalls/op", "p50 µs", "p99 µs", "RSS MB",
                      "threads", "note"], rows, left=2)
    if any(c["n"] for c in scale["cells"]):
        names = charts.save(charts.scale(series, colours), out_dir, "scale")
        # chart above the table: the table is wide (11 columns) and the chart reads better large
        parts.append(html.figure(names, "tcp.echo ops/s and CPU per op vs connections") + "<p></p>" + tab)
    else:
        parts.append(html.note("No cell of the scale file could run: nothing to draw.") + tab)
    return html.section("scale", "Scaling with connections", intro, "".join(parts))


def render(paths, out_dir, owned=claims.DEFAULT_OWNED, raw=claims.DEFAULT_RAW, tolerance=0.05, loaded=None,
           peers=None, scale=None):
    """-> path of index.html. Raises load.results_error on a bad input file.
    loaded: load.load_many(paths), when the caller has it already.
    peers / scale: extras.load_peers / extras.load_scale documents (optional sections)."""
    docs, rows = loaded or load.load_many(paths)
    os.makedirs(out_dir, exist_ok=True)
    perf = tables.performance(rows)
    matrix = tables.safety_matrix(rows)
    bench = tables.benchmark_table(perf)
    colours = charts.backend_colours(perf["backends"])
    parts = ["<h1>ringside report</h1>",
             f"<p>{len(rows)} rows from {len(docs)} file(s): {len(bench)} throughput benchmark(s) over "
             f"{len(perf['backends'])} backend(s), {len(matrix['cells'])} safety cell(s).</p>",
             _inputs_section(docs, rows)]
    notes = []
    bad = [r for r in bench if r["verdict"] != "clean"]
    if bad:
        notes.append("Violations in throughput runs: " +
                     "; ".join(f"{r['case']} on {r['backend']}: {r['verdict']}" for r in bad))
    unmeasured = perf["unmeasured"]
    if unmeasured:
        notes.append(f"{len(unmeasured)} throughput row(s) without a measurement are left out of the charts "
                     "(listed at the end of the page).")
    parts += [html.note(n) for n in notes]

    if not bench:
        parts.append(html.section("throughput", "Throughput", "", html.note(
            "No measured throughput rows in these results (only safety rows, or every row unsupported, "
            "failed or interrupted): throughput, copies, latency, syscalls and the claims are not drawn.")))
    else:
        parts += [_throughput_section(perf, bench, colours, out_dir), _copies_section(perf, bench, colours, out_dir),
                  _latency_section(perf, bench, colours, out_dir), _syscalls_section(perf, bench, colours, out_dir)]
    parts.append(_claims_section(claims.judge(perf, owned, raw, tolerance), out_dir))
    if peers is not None:
        parts.append(_peers_section(peers))
    if scale is not None:
        parts.append(_scale_section(scale, dict(colours), out_dir))
    parts.append(_safety_section(matrix, out_dir))
    if unmeasured:
        parts.append(html.section("unmeasured", "Rows without a measurement", "", html.table(
            ["benchmark", "verdict"],
            [[esc(r["name"]), (esc(r["verdict"] + (" (interrupted)" if r["interrupted"] else "")), 'class="wrap"')]
             for r in unmeasured])))
    _remove_stale_charts(out_dir, parts)
    return html.write(out_dir, html.page("ringside report", parts))


# Every chart this module may write: a re-render into the same folder removes
# the ones it did not write this time (e.g. the safety matrix of an older run).
CHART_STEMS = ["throughput", "copies", "latency", "syscalls", "claims_throughput_ratio", "safety_matrix", "scale"]


def _remove_stale_charts(out_dir, parts):
    page = "".join(parts)
    for stem in CHART_STEMS:
        for ext in (".png", ".svg"):
            name = stem + ext
            if f'"{name}"' not in page and os.path.exists(os.path.join(out_dir, name)):
                os.remove(os.path.join(out_dir, name))
