"""One figure per function (STYLE.md 13), each drawn from tables.py's data and
saved as PNG and SVG. Backends get colours by their order of appearance, so a
new backend needs no edit here."""
import math
import os
import textwrap

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator  # noqa: E402

from . import tables  # noqa: E402

# Same bytes for the same input: SVG ids are hashed from this salt, not random.
matplotlib.rcParams["svg.hashsalt"] = "ringside"
matplotlib.rcParams["font.size"] = 9

# 4 panels a row keeps each panel wide enough for 6+ backend bars at 100 dpi.
PANELS_PER_ROW = 4
# Inches above the panels for the title and the legend.
HEADER_IN = 0.55
SAFETY_COLOURS = {"clean": "#4caf50", "unsupported": "#bdbdbd", "interrupted": "#ffb74d",
                  "violation": "#e53935", "failed": "#6a1b9a"}


def backend_colours(backends):
    cmap = plt.get_cmap("tab10" if len(backends) <= 10 else "tab20")
    return {b: cmap(i % cmap.N) for i, b in enumerate(backends)}


def save(fig, out_dir, stem):
    """-> (png name, svg name), relative to out_dir."""
    names = (stem + ".png", stem + ".svg")
    fig.savefig(os.path.join(out_dir, names[0]), dpi=100)
    fig.savefig(os.path.join(out_dir, names[1]), metadata={"Date": None})
    plt.close(fig)
    return names


def _grid(n, panel_w=3.6, panel_h=2.9):
    cols = max(1, min(PANELS_PER_ROW, n))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(panel_w * cols, panel_h * rows + HEADER_IN), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _header(fig, title, handles):
    """Title on top, the legend under it, the panels below both."""
    h = fig.get_figheight()
    fig.suptitle(title, y=1 - 0.08 / h, va="top", fontsize=10)
    fig.legend(handles=handles, loc="upper center", ncol=min(len(handles), 8), frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.3 / h), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - HEADER_IN / h))


def _title(ax, case):
    ax.set_title("\n".join(textwrap.wrap(case, 34)), fontsize=8.5)


def _backend_handles(backends, colours):
    return [Patch(color=colours[b], label=b) for b in backends]


def _present(perf, case):
    return [b for b in perf["backends"] if (case, b) in perf["cells"]]


def throughput(perf, colours):
    """Ops per second per scenario by backend: mean over repetitions, error bar
    one sample standard deviation, dots the repetitions themselves."""
    fig, axes = _grid(len(perf["cases"]))
    for ax, case in zip(axes, perf["cases"]):
        bs = _present(perf, case)
        for i, b in enumerate(bs):
            cell = perf["cells"][(case, b)]
            s = tables.metric(cell, "ops_per_second")
            ax.bar(i, s["mean"], yerr=s["stddev"] if s["n"] > 1 else None, color=colours[b], capsize=3,
                   edgecolor="black", linewidth=0.4)
            ax.plot([i] * s["n"], [x["ops_per_second"] for x in cell["samples"]], "k.", markersize=3)
        ax.set_xticks(range(len(bs)), bs, rotation=30, ha="right", fontsize=7.5)
        ax.yaxis.set_major_formatter(EngFormatter())
        ax.set_ylabel("ops/s")
        _title(ax, case)
    _header(fig, "Throughput (mean ± 1 sd over repetitions; dots: repetitions)", _backend_handles(perf["backends"], colours))
    return fig


def copies(perf, colours):
    """Copies per payload byte, user-space (hatched) under kernel (solid), with
    allocations per op as diamonds on the right axis."""
    fig, axes = _grid(len(perf["cases"]))
    for ax, case in zip(axes, perf["cases"]):
        bs = _present(perf, case)
        user = [tables.metric(perf["cells"][(case, b)], "user_copies_per_byte")["mean"] for b in bs]
        kern = [tables.metric(perf["cells"][(case, b)], "kernel_copies_per_byte")["mean"] for b in bs]
        alloc = [tables.metric(perf["cells"][(case, b)], "allocs_per_op")["mean"] for b in bs]
        x = range(len(bs))
        ax.bar(x, user, color=[colours[b] for b in bs], hatch="///", edgecolor="black", linewidth=0.4, alpha=0.6)
        ax.bar(x, kern, bottom=user, color=[colours[b] for b in bs], edgecolor="black", linewidth=0.4)
        ax.set_xticks(list(x), bs, rotation=30, ha="right", fontsize=7.5)
        ax.set_ylabel("copies / payload byte")
        top_y = max([u + k for u, k in zip(user, kern)] + [1.0])
        ax.set_ylim(0, top_y * 1.15)
        ax2 = ax.twinx()
        ax2.plot(list(x), alloc, "kD", markersize=4, linestyle="none")
        ax2.set_ylim(0, max(alloc + [0.01]) * 1.3)
        ax2.set_ylabel("allocs / op", fontsize=7.5)
        ax2.tick_params(labelsize=7)
        _title(ax, case)
    handles = [Patch(facecolor="white", edgecolor="black", hatch="///", label="user copies/byte"),
               Patch(facecolor="grey", edgecolor="black", label="kernel copies/byte"),
               plt.Line2D([], [], color="black", marker="D", linestyle="none", label="allocs/op (right axis)")]
    _header(fig, "Copies per payload byte (hatched: user space, solid: kernel) and allocations per op (diamonds)",
            handles + _backend_handles(perf["backends"], colours))
    return fig


def latency(perf, colours):
    """p50..p99.9 per backend on a log scale: median over repetitions, the band
    spans the repetitions' minimum to maximum."""
    fig, axes = _grid(len(perf["cases"]))
    labels = [lab for lab, _ in tables.PERCENTILES]
    for ax, case in zip(axes, perf["cases"]):
        for b in _present(perf, case):
            cell = perf["cells"][(case, b)]
            st = [tables.metric(cell, f) for _, f in tables.PERCENTILES]
            med = [max(s["median"], 1.0) for s in st]
            ax.plot(labels, med, marker="o", markersize=3, color=colours[b], label=b)
            if st[0]["n"] > 1:
                ax.fill_between(labels, [max(s["min"], 1.0) for s in st], [max(s["max"], 1.0) for s in st],
                                color=colours[b], alpha=0.15, linewidth=0)
        ax.set_yscale("log")
        # Latencies are in ns; the formatter wants seconds. Minor ticks (2x, 5x) are
        # labelled too: most panels span only one or two decades.
        fmt = FuncFormatter(lambda v, _: EngFormatter(unit="s")(v * 1e-9))
        ax.yaxis.set_major_formatter(fmt)
        ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        ax.yaxis.set_minor_formatter(fmt)
        ax.tick_params(axis="y", which="minor", labelsize=6.5)
        ax.set_ylabel("latency")
        ax.grid(True, which="major", axis="y", alpha=0.3)
        _title(ax, case)
    _header(fig, "Latency percentiles, log scale (median over repetitions; band: min to max)",
            _backend_handles(perf["backends"], colours))
    return fig


def syscalls(perf, colours):
    """Syscalls per op (io_uring_enter counted), mean ± 1 sd."""
    fig, axes = _grid(len(perf["cases"]))
    for ax, case in zip(axes, perf["cases"]):
        bs = _present(perf, case)
        for i, b in enumerate(bs):
            s = tables.metric(perf["cells"][(case, b)], "syscalls_per_op")
            ax.bar(i, s["mean"], yerr=s["stddev"] if s["n"] > 1 else None, color=colours[b], capsize=3,
                   edgecolor="black", linewidth=0.4)
            ax.annotate(f"{s['mean']:.2f}", (i, s["mean"]), ha="center", va="bottom", fontsize=7,
                        xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(range(len(bs)), bs, rotation=30, ha="right", fontsize=7.5)
        ax.set_ylabel("syscalls / op")
        ax.margins(y=0.15)
        _title(ax, case)
    _header(fig, "Syscalls per op (mean ± 1 sd over repetitions)", _backend_handles(perf["backends"], colours))
    return fig


def _cell_text(c):
    if c["class"] == "unsupported":
        return "unsupported"
    if c["kinds"]:
        return "\n".join(c["kinds"])
    return c["class"]


def safety(matrix):
    """Backend x scenario, coloured by verdict, with the violation kinds written in."""
    scen, backs, cells = matrix["scenarios"], matrix["backends"], matrix["cells"]
    # Rows as tall as the most kinds in one cell (one line each).
    lines = max([1] + [len(c["kinds"]) for c in cells.values()])
    row_h = 0.18 + 0.13 * lines
    col_w = [max([1.1] + [0.075 * max(len(s) for s in _cell_text(cells[(sc, b)]).split("\n"))
                          for sc in scen if (sc, b) in cells]) for b in backs]
    label_w = 0.075 * max(len(s) for s in scen) + 0.3
    fig_w = label_w + sum(col_w) + 0.4
    fig_h = row_h * len(scen) + 1.6
    fig = plt.figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((label_w / fig_w, 0.7 / fig_h, sum(col_w) / fig_w, row_h * len(scen) / fig_h))
    xs = [sum(col_w[:i]) for i in range(len(backs) + 1)]
    for i, sc in enumerate(scen):
        for j, b in enumerate(backs):
            c = cells.get((sc, b))
            colour = SAFETY_COLOURS[c["class"]] if c else "white"
            ax.add_patch(Rectangle((xs[j], i), col_w[j], 1, facecolor=colour, edgecolor="white", linewidth=1.5))
            text = _cell_text(c) if c else "not run"
            dark = c is not None and c["class"] in ("violation", "failed")
            ax.text(xs[j] + col_w[j] / 2, i + 0.5, text, ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    ax.set_xlim(0, xs[-1])
    ax.set_ylim(len(scen), 0)
    ax.set_yticks([i + 0.5 for i in range(len(scen))], scen, fontsize=8)
    ax.set_xticks([(xs[j] + xs[j + 1]) / 2 for j in range(len(backs))], backs, fontsize=8.5)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)
    handles = [Patch(color=v, label=k) for k, v in SAFETY_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=8)
    fig.suptitle("Safety matrix: verdict per backend x scenario (violation kinds named)", fontsize=10,
                 y=1 - 0.12 / fig_h)
    return fig


def claims_ratio(judged):
    """uring-owned / uring-raw median throughput per benchmark, with the 1.0 line
    and the tolerance the 'same speed' claim is judged with."""
    rows = judged["cases"]
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 1.4))
    ys = range(len(rows))
    ratios = [r["throughput_ratio"] for r in rows]
    tol = judged["tolerance"]
    ax.barh(list(ys), ratios, color=["#4caf50" if x >= 1 - tol else "#e53935" for x in ratios],
            edgecolor="black", linewidth=0.4)
    for y, x in zip(ys, ratios):
        ax.annotate(f"{x:.3f}x", (x, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7.5)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.axvline(1 - tol, color="black", linewidth=0.8, linestyle="--")
    ax.set_yticks(list(ys), [r["case"] for r in rows], fontsize=7.5)
    ax.invert_yaxis()
    # Zoomed on the interesting range (a bar from 0 hides a 3% gap), always showing 1 - tolerance.
    finite = [x for x in ratios if math.isfinite(x)] or [1.0]
    ax.set_xlim(min(min(finite) - 0.05, 1 - 2 * tol), max(max(finite) + 0.08, 1 + 2 * tol))
    ax.set_xlabel(f"{judged['owned']} / {judged['raw']} throughput (dashed: 1 - tolerance)")
    ax.set_title("Owned-buffer claim: same speed as raw io_uring", fontsize=10)
    fig.tight_layout()
    return fig


def scale(series, colours):
    """tcp.echo against connections, one line per backend: ops/s and CPU per op
    (medians over repetitions; log x, linear y from 0). A cell that could not
    run is an x on the x axis (the table beside the chart says why). series['probe']:
    blocking's runs past the grid (bench-scale --probe), dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.9 + HEADER_IN), squeeze=False)
    panels = [("ops_per_second", "ops/s", "Throughput"), ("cpu_us_per_op", "CPU µs / op (user+sys)", "CPU per op")]
    for ax, (field, ylabel, title) in zip(axes[0], panels):
        for i, b in enumerate(series["backends"]):
            cells = [(n, series["cells"][(b, n)]) for n in series["conns"] if (b, n) in series["cells"]]
            pts = [(n, c[field]) for n, c in cells if c.get("n", 0) > 0]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=4, color=colours[b], label=b)
            failed = [n for n, c in cells if not c.get("n", 0)]
            if failed:
                # side by side, not on top of each other, when several backends failed at one size
                nudge = 1 + 0.04 * (i - (len(series["backends"]) - 1) / 2)
                ax.plot([n * nudge for n in failed], [0] * len(failed), "x", color=colours[b], markersize=9, mew=2, clip_on=False)
        probe = [p for p in series.get("probe", []) if p.get("status") == "ok" and field in p]
        ticks = list(series["conns"])
        if probe:  # one run each past the grid: dashed, from the grid's last blocking point
            b = probe[0].get("backend", "blocking")
            last = [(n, series["cells"][(b, n)][field]) for n in series["conns"]
                    if series["cells"].get((b, n), {}).get("n", 0) > 0][-1:]
            xs = last + [(p["conns"], p[field]) for p in probe]
            ax.plot([x for x, _ in xs], [y for _, y in xs], linestyle="--", marker="o", markersize=3,
                    color=colours.get(b, "grey"))
            for p in probe:  # no label crowding its neighbour (8000 beside 9968)
                if p["conns"] > ticks[-1] * 1.5:
                    ticks.append(p["conns"])
        ax.set_xscale("log")
        ax.set_xticks(ticks, [str(n) for n in ticks], fontsize=7.5)
        ax.xaxis.set_minor_locator(plt.NullLocator())
        if probe and field == "cpu_us_per_op":
            # the probe's CPU per op is ~10x the grid's: log scale keeps the grid's lines apart
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(plt.NullFormatter())
        else:
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_formatter(EngFormatter())
        ax.set_xlabel("connections (x on the axis: could not run; dashed: blocking probe, 1 run each)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.grid(True, alpha=0.25)
    _header(fig, "tcp.echo vs connections (medians over repetitions)",
            _backend_handles(series["backends"], colours))
    return fig
