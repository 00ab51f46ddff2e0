"""Reads and validates ringside results files (Google Benchmark's JSON schema,
DESIGN.md "Results").

Anything wrong with a file raises results_error with a one-line message; the
entry points print it and exit 2. Rows are turned into plain dicts with the
fields the rest of the package uses, so nothing else touches raw JSON."""
import json
import math
import os

# The counters DESIGN.md names as a public interface; every measured row has them.
COUNTERS = ["ops_per_second", "bytes_per_second", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns",
            "cpu_user_s", "cpu_sys_s", "ctx_switches", "syscalls_per_op", "user_copy_bytes_per_op",
            "kernel_copy_bytes_per_op", "allocs_per_op", "violations"]
# Added later (results.cpp k_counter_names); derived from the per-op bytes when absent.
PER_BYTE = ["user_copies_per_byte", "kernel_copies_per_byte"]
ROW_STRINGS = ["name", "run_name", "run_type", "backend", "scenario", "verdict"]
ROW_NUMBERS = ["iterations", "real_time", "cpu_time"]

# The safety catalogue is the cancel.* family (DESIGN.md, "Safety catalogue"):
# its rows feed the safety matrix; every other scenario is a throughput scenario.
SAFETY_PREFIX = "cancel."


class results_error(Exception):
    """A results file that cannot be used; str() is one line."""


def _one_line(text):
    return " ".join(str(text).split())


def _number(row_label, row, field):
    v = row.get(field)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise results_error(f"{row_label}: '{field}' is not a finite number: {_one_line(repr(v))[:60]}")
    return float(v)


def case_of(run_name):
    """The benchmark without its backend: 'tcp.echo/backend:epoll/msg:1024' -> 'tcp.echo/msg:1024'.
    Backends of one case are drawn side by side."""
    parts = [p for p in run_name.split("/") if not p.startswith("backend:")]
    return "/".join(parts)


def violation_kinds(raw):
    """Kinds named by the verdict (check's cells: 'asan', 'hang', ... exist only there),
    then any further kinds in violation_details, in order, without repeats."""
    verdict = raw.get("verdict", "")
    kinds = []
    if verdict != "clean" and not verdict.startswith("unsupported"):
        kinds = [k.strip() for k in verdict.split(",") if k.strip()]
    for v in raw.get("violation_details") or []:
        k = v.get("kind") if isinstance(v, dict) else None
        if k and k not in kinds:
            kinds.append(k)
    return kinds


def _row(raw, index, path):
    label = f"{path}: benchmarks[{index}]"
    if not isinstance(raw, dict):
        raise results_error(f"{label}: not an object")
    if isinstance(raw.get("name"), str):
        label += f" ({raw['name']})"
    for f in ROW_STRINGS:
        if f not in raw:
            raise results_error(f"{label}: missing '{f}' (partial results?)")
        if not isinstance(raw[f], str) or not raw[f]:
            raise results_error(f"{label}: '{f}' is not a non-empty string")
    error = bool(raw.get("error_occurred", False))
    interrupted = bool(raw.get("interrupted", False))
    metrics = {}
    # Unsupported or failed rows carry no measurement (Google Benchmark's
    # error_occurred); their counters are not required.
    if not error:
        for f in ROW_NUMBERS + COUNTERS:
            if f not in raw:
                raise results_error(f"{label}: missing '{f}' (partial results?)")
            metrics[f] = _number(label, raw, f)
        ops = metrics["iterations"]
        nbytes = float(raw.get("bytes", metrics["bytes_per_second"] * raw.get("wall_s", 0.0)))
        for f, per_op in zip(PER_BYTE, ["user_copy_bytes_per_op", "kernel_copy_bytes_per_op"]):
            if f in raw:
                metrics[f] = _number(label, raw, f)
            else:
                metrics[f] = metrics[per_op] * ops / nbytes if nbytes > 0 else 0.0
    verdict = raw["verdict"]
    return {
        "name": raw["name"],
        "run_name": raw["run_name"],
        "case": case_of(raw["run_name"]),
        "backend": raw["backend"],
        "scenario": raw["scenario"],
        "verdict": verdict,
        "kinds": violation_kinds(raw),
        "unsupported": verdict.startswith("unsupported"),
        "error": error,
        "interrupted": interrupted,
        # A repetition counts as a sample only when it measured a whole run.
        "measured": not error and not interrupted and metrics.get("iterations", 0) > 0,
        "safety": raw["scenario"].startswith(SAFETY_PREFIX),
        "metrics": metrics,
        "params": raw.get("params") if isinstance(raw.get("params"), dict) else {},
        "repetition_index": raw.get("repetition_index", 0),
        "details": [d for d in raw.get("violation_details") or [] if isinstance(d, dict)],
        "source": path,
    }


def read_json(path, what=""):
    """The JSON document at path; unreadable, empty, not UTF-8 or malformed -> results_error (one line).
    what names the kind of file in the message ("bench-peers": "not valid bench-peers JSON")."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise results_error(f"{path}: cannot read: {e.strerror or e}")
    if not data.strip():
        raise results_error(f"{path}: empty file")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise results_error(f"{path}: not UTF-8 text")
    except json.JSONDecodeError as e:
        kind = f"{what} JSON" if what else "JSON"
        raise results_error(f"{path}: not valid {kind} (truncated or malformed): {e.msg} at line {e.lineno} "
                            f"column {e.colno}")


def load_results(path):
    """One results file -> {'path', 'context', 'rows'}; rows are the iteration
    rows (aggregates are recomputed from them, so they are skipped)."""
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise results_error(f"{path}: not a results file: top level is {type(doc).__name__}, expected an object")
    if not isinstance(doc.get("context"), dict):
        raise results_error(f"{path}: no 'context' object (partial results?)")
    benchmarks = doc.get("benchmarks")
    if not isinstance(benchmarks, list):
        raise results_error(f"{path}: no 'benchmarks' array (partial results?)")
    if not benchmarks:
        raise results_error(f"{path}: no benchmark rows (empty results)")
    rows = []
    for i, raw in enumerate(benchmarks):
        if isinstance(raw, dict) and raw.get("run_type") == "aggregate":
            continue
        rows.append(_row(raw, i, path))
    if not rows:
        raise results_error(f"{path}: only aggregate rows, no repetitions")
    return {"path": path, "context": doc["context"], "rows": rows}


def load_many(paths):
    """Several files (e.g. a `ringside run` and a `ringside check` output): rows
    are pooled; repetitions of the same benchmark from several files are all samples."""
    unique = []
    for p in paths:  # the same file twice would count its repetitions twice
        if os.path.realpath(p) not in {os.path.realpath(u) for u in unique}:
            unique.append(p)
    docs = [load_results(p) for p in unique]
    rows = [r for d in docs for r in d["rows"]]
    return docs, rows
