"""The two entry points (scripts/report, scripts/compare). Exit codes follow
ringside's: 0 ok, 1 a regression (compare), 2 bad usage or an unusable
results file (one line on stderr)."""
import argparse
import os
import sys

from . import claims, extras, load


class _parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like ringside's CLI
        sys.stderr.write(f"{self.prog}: {message}\n")
        sys.exit(2)


def _pct(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if not 0 <= v < 100:
        raise argparse.ArgumentTypeError(f"must be in [0, 100): {text}")
    return v


def _alpha(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1): {text}")
    return v


def report_main(argv=None):
    p = _parser(prog="report", description=(
        "Render ringside results JSON into a self-contained folder: index.html plus PNG and SVG charts "
        "(throughput, copies per byte with allocations per op, latency percentiles, syscalls per op, "
        "the owned-buffer claims table, the safety matrix)."),
        epilog=("Several files may be given, e.g. a `ringside run --out` file and a `ringside check --out` file: "
                "rows are pooled; cancel.* scenarios (the safety catalogue) make the safety matrix, all other "
                "scenarios the performance charts; repetitions of one benchmark in several files are all samples. "
                "--peers adds the scripts/bench-peers ratios with issue 6's targets marked met or missed; --scale "
                "adds the scripts/bench-scale table and chart. "
                "Exit: 0 written, 2 bad usage or an unusable results file (malformed, empty, partial)."))
    p.add_argument("results", nargs="+", metavar="RESULTS.json", help="results file(s) from ringside run / check")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RESULTS-report next to the first file)")
    p.add_argument("--owned", default=claims.DEFAULT_OWNED, metavar="BACKEND",
                   help=f"owned-buffer backend of the claims table (default {claims.DEFAULT_OWNED})")
    p.add_argument("--raw", default=claims.DEFAULT_RAW, metavar="BACKEND",
                   help=f"raw io_uring backend it is judged against (default {claims.DEFAULT_RAW})")
    p.add_argument("--tolerance", type=_pct, default=5.0, metavar="PCT",
                   help="how far (percent) owned may trail raw and still be 'same speed' / 'zero overhead' (default 5)")
    p.add_argument("--peers", metavar="PEERS.json",
                   help="a scripts/bench-peers --out file: ratios to fio / iperf3 against issue 6's targets")
    p.add_argument("--scale", metavar="SCALE.json",
                   help="a scripts/bench-scale --out file: tcp.echo per backend vs connections (table and chart)")
    a = p.parse_args(argv)
    out = a.out or os.path.splitext(a.results[0])[0] + "-report"
    try:
        loaded = load.load_many(a.results)
        peers = extras.load_peers(a.peers) if a.peers else None
        scale = extras.load_scale(a.scale) if a.scale else None
        from . import report  # matplotlib loads only once the inputs are known to be good
        index = report.render(a.results, out, a.owned, a.raw, a.tolerance / 100, loaded=loaded, peers=peers,
                              scale=scale)
    except load.results_error as e:
        sys.stderr.write(f"report: {e}\n")
        return 2
    except OSError as e:
        sys.stderr.write(f"report: {out}: {e.strerror or e}\n")
        return 2
    print(f"report: {os.path.abspath(index)}")
    return 0


def compare_main(argv=None):
    p = _parser(prog="compare", description=(
        "Compare two ringside results files benchmark by benchmark (scenario x backend x parameters): "
        "ratios NEW/BASE of median throughput, p99 latency and copies per byte, a one-sided Mann-Whitney U "
        "test over the repetitions, a chart and an HTML table."),
        epilog=("A regression is a benchmark whose throughput fell, or whose p99 rose, by more than the threshold "
                "with p < alpha (one-sided: 'NEW is worse'), or whose copies per byte rose by more than the "
                "threshold (copies are counted exactly, so no test). With n repetitions a side the smallest "
                "possible p is 1/C(2n, n): 0.05 at n=3, 0.014 at n=4, 0.004 at n=5; use --repetitions 5. "
                "Exit: 0 no regression, 1 regression(s), 2 bad usage or an unusable results file."))
    p.add_argument("base", metavar="BASE.json")
    p.add_argument("new", metavar="NEW.json")
    p.add_argument("--threshold", type=_pct, default=10.0, metavar="PCT",
                   help="smallest change (percent) that counts as a regression (default 10)")
    p.add_argument("--alpha", type=_alpha, default=0.05, metavar="P",
                   help="significance level of the Mann-Whitney U test (default 0.05)")
    p.add_argument("--export-gab", metavar="FILE",
                   help="write NEW's throughput in github-action-benchmark's customBiggerIsBetter JSON")
    p.add_argument("--out", metavar="DIR",
                   help="folder for the chart and its index.html (default: NEW-vs-BASE next to NEW)")
    a = p.parse_args(argv)
    from . import compare
    try:
        return compare.main(a)
    except load.results_error as e:
        sys.stderr.write(f"compare: {e}\n")
        return 2
    except OSError as e:
        sys.stderr.write(f"compare: {e.filename or ''}: {e.strerror or e}\n")
        return 2
