#!/usr/bin/python3
"""Regenerates tests/report/fixtures from two real result files:

  ringside run --scenario 'file.*,tcp.*' --duration 0.2 --repetitions 5 --size 8m --out RUN.json
  ringside check --out CHECK.json
  tests/report/make_fixtures.py RUN.json CHECK.json

run.json and check.json are those files without their raw latency histograms
(latency_buckets: the report reads the percentile counters, and the buckets are
most of the bytes). run-slowed.json is run.json with uring-owned's throughput
scaled down 30% (ops_per_second and bytes_per_second x 0.7, real_time / 0.7);
its other counters are untouched. The bad/ files are hand-made from run.json."""
import copy
import json
import os
import sys

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
SLOWED_BACKEND = "uring-owned"
SLOW_FACTOR = 0.7


def strip(doc):
    for b in doc["benchmarks"]:
        b.pop("latency_buckets", None)
    return doc


def dump(name, doc):
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(doc, f, sort_keys=True)  # one line: small, and never read by hand
        f.write("\n")


def main(run_path, check_path):
    run = strip(json.load(open(run_path)))
    check = strip(json.load(open(check_path)))
    dump("run.json", run)
    dump("check.json", check)

    slowed = copy.deepcopy(run)
    for b in slowed["benchmarks"]:
        if b.get("backend") != SLOWED_BACKEND or b.get("aggregate_name") == "cv":
            continue
        for f in ("ops_per_second", "bytes_per_second"):
            b[f] *= SLOW_FACTOR
        b["real_time"] /= SLOW_FACTOR
    dump("run-slowed.json", slowed)

    os.makedirs(os.path.join(HERE, "bad"), exist_ok=True)
    text = json.dumps(run, indent=1)

    def bad(name, content):
        with open(os.path.join(HERE, "bad", name), "w") as f:
            f.write(content)

    bad("empty.json", "")
    bad("truncated.json", text[:5000])  # a file cut mid-write
    bad("not-json.json", "ringside: --backend 'nope': unknown backend\n")
    bad("top-level-list.json", json.dumps(run["benchmarks"][:2]))
    bad("no-benchmarks.json", json.dumps({"context": run["context"]}))
    bad("empty-benchmarks.json", json.dumps({"context": run["context"], "benchmarks": []}))
    bad("no-context.json", json.dumps({"benchmarks": run["benchmarks"][:4]}))
    rows = copy.deepcopy(run["benchmarks"][:4])
    del rows[2]["p99_ns"]  # a row cut short: one counter missing
    bad("partial-row.json", json.dumps({"context": run["context"], "benchmarks": rows}))
    rows = copy.deepcopy(run["benchmarks"][:4])
    rows[1]["ops_per_second"] = "fast"
    bad("counter-not-number.json", json.dumps({"context": run["context"], "benchmarks": rows}))
    rows = copy.deepcopy(run["benchmarks"][:4])
    del rows[3]["backend"]
    bad("row-without-backend.json", json.dumps({"context": run["context"], "benchmarks": rows}))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: make_fixtures.py RUN.json CHECK.json")
    main(sys.argv[1], sys.argv[2])
