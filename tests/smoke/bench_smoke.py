#!/usr/bin/python3
"""bench-smoke: every backend x scenario for a fraction of a second; the
results JSON is validated against the schema DESIGN.md promises.

Checks: every row is Google Benchmark-shaped and carries every named counter;
every available backend runs every scenario cleanly (or says `unsupported: why`);
numbers are self-consistent (ops > 0, throughput = ops / wall time)."""
import json
import os
import subprocess
import sys
import tempfile

RINGSIDE = os.environ.get("RINGSIDE", "build/release/ringside")
COUNTERS = ["ops_per_second", "bytes_per_second", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns",
            "cpu_user_s", "cpu_sys_s", "ctx_switches", "syscalls_per_op", "user_copy_bytes_per_op",
            "kernel_copy_bytes_per_op", "allocs_per_op", "violations"]
GB_FIELDS = ["name", "run_name", "run_type", "repetitions", "repetition_index", "threads", "iterations",
             "real_time", "cpu_time", "time_unit", "family_index", "per_family_instance_index"]

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg, file=sys.stderr)


def backends():
    out = subprocess.run([RINGSIDE, "list", "backends"], check=True, capture_output=True, text=True).stdout
    names = []
    for line in out.splitlines()[1:]:
        if line and not line.startswith(" "):
            names.append(line.split()[0])
    return names


def main():
    names = backends()
    if len(names) < 4:
        fail(f"expected at least 4 backends, got {names}")
    with tempfile.TemporaryDirectory(prefix="ringside-smoke-") as tmp:
        out = os.path.join(tmp, "r.json")
        # 0.15 s per combination, two repetitions so aggregates are exercised.
        # The throughput scenarios; cancel.* is the safety suite's (ringside check).
        cmd = [RINGSIDE, "run", "--backend", ",".join(names), "--scenario", "file.*,tcp.*",
               "--duration", "0.15", "--repetitions", "2",
               "--size", "4m", "--out", out]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=540)
        sys.stdout.write(p.stdout)
        sys.stderr.write(p.stderr)
        if p.returncode != 0:
            fail(f"ringside run exited {p.returncode}")
        with open(out) as f:
            doc = json.load(f)
        if "context" not in doc or "benchmarks" not in doc:
            fail("missing context or benchmarks")
            return
        rows = [b for b in doc["benchmarks"] if b.get("run_type") == "iteration"]
        aggs = [b for b in doc["benchmarks"] if b.get("run_type") == "aggregate"]
        seen = set()
        for b in rows:
            seen.add((b["scenario"], b["backend"]))
            for f in GB_FIELDS + COUNTERS + ["backend", "scenario", "verdict"]:
                if f not in b:
                    fail(f"{b.get('name')}: missing {f}")
            if b["verdict"].startswith("unsupported: "):
                continue
            if b["verdict"] != "clean":
                fail(f"{b['name']}: verdict {b['verdict']}: {b.get('violation_details')}")
            if b["iterations"] <= 0:
                fail(f"{b['name']}: no ops")
            wall = b["wall_s"]
            if wall > 0 and abs(b["ops_per_second"] - b["iterations"] / wall) > 1e-6 * b["ops_per_second"] + 1e-9:
                fail(f"{b['name']}: ops_per_second inconsistent")
            if not (b["p50_ns"] <= b["p99_ns"] <= b["max_ns"]):
                fail(f"{b['name']}: percentiles not ordered")
        scenarios = {s for s, _ in seen}
        if len(scenarios) < 8:
            fail(f"expected 8 scenarios, saw {sorted(scenarios)}")
        for s in scenarios:
            for n in names:
                if (s, n) not in seen:
                    fail(f"{s} x {n}: no row (combinations must never be dropped silently)")
        if not aggs:
            fail("no aggregates with --repetitions 2")
        for a in aggs:
            for f in COUNTERS:
                if f not in a:
                    fail(f"{a['name']}: aggregate missing {f}")

    # The opt-in detectors stay silent on every backend (uring-raw included:
    # these scenarios never cancel or drop, so its unsoundness is not exercised).
    with tempfile.TemporaryDirectory(prefix="ringside-smoke-") as tmp:
        out = os.path.join(tmp, "d.json")
        p = subprocess.run([RINGSIDE, "run", "--backend", ",".join(names), "--scenario", "file.*,tcp.*",
                            "--ops", "300", "--size", "1m",
                            "--detectors", "all", "--out", out], capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            fail(f"--detectors all: exit {p.returncode}: {p.stderr[-500:]}")
        with open(out) as f:
            for b in json.load(f)["benchmarks"]:
                if b.get("run_type") == "iteration" and b["verdict"] not in ("clean",) \
                        and not b["verdict"].startswith("unsupported"):
                    fail(f"--detectors all: {b['name']}: {b['verdict']}: {b.get('violation_details')}")

    # Bad input: one line on stderr, exit 2.
    for bad in (["run", "--backend", "nope"], ["run", "--scenario", "nope.*"], ["run", "--bs", "0"],
                ["run", "--duration", "abc"], ["run", "--qd", "-1"], ["run", "--frobnicate"],
                ["run", "--out", "/nonexistent-dir/x.json"], ["run", "--detectors", "magic"]):
        p = subprocess.run([RINGSIDE] + bad, capture_output=True, text=True, timeout=60)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        if p.returncode != 2 or len(lines) != 1:
            fail(f"{bad}: exit {p.returncode}, stderr {p.stderr!r} (want exit 2 and one line)")

    print(f"{len(failures)} failed" if failures else "bench-smoke: all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
