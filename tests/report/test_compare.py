"""compare: a run against itself is no regression (exit 0); against a copy with
uring-owned's throughput cut 30% (fixtures/run-slowed.json) each uring-owned
benchmark is a regression (exit 1) and nothing else is; the github-action-benchmark
export follows the custom format."""
import json
import math

from conftest import COMPARE, fixture, run_script


def test_same_run_is_no_regression(tmp_path):
    p = run_script(COMPARE, fixture("run.json"), fixture("run.json"), "--out", str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 regression(s)" in p.stdout
    assert (tmp_path / "compare.png").stat().st_size > 10_000 and (tmp_path / "index.html").exists()


def test_slowed_backend_is_a_regression(tmp_path):
    p = run_script(COMPARE, fixture("run.json"), fixture("run-slowed.json"), "--out", str(tmp_path))
    assert p.returncode == 1, p.stdout + p.stderr
    reg = [line for line in p.stdout.splitlines() if line.rstrip().endswith(")") and "regression" in line
           and not line.startswith(("compare:", "regressions:"))]
    names = [line.split()[0] for line in reg]
    run = json.load(open(fixture("run.json")))
    owned = {b["run_name"] for b in run["benchmarks"] if b.get("backend") == "uring-owned"}
    assert set(names) == owned, p.stdout
    assert all("throughput:regression" in line for line in reg)
    assert "8 regression(s)" in p.stdout


def test_threshold_above_the_slowdown_is_no_regression(tmp_path):
    p = run_script(COMPARE, fixture("run.json"), fixture("run-slowed.json"), "--threshold", "40",
                   "--out", str(tmp_path))
    assert p.returncode == 0, p.stdout


def test_alpha_below_the_smallest_p_is_no_regression(tmp_path):
    # 5 vs 5 repetitions: the smallest one-sided p is 1/252 ~ 0.004.
    p = run_script(COMPARE, fixture("run.json"), fixture("run-slowed.json"), "--alpha", "0.001",
                   "--out", str(tmp_path))
    assert p.returncode == 0, p.stdout


def test_gab_export_schema(tmp_path):
    path = tmp_path / "gab.json"
    p = run_script(COMPARE, fixture("run.json"), fixture("run-slowed.json"), "--export-gab", str(path),
                   "--out", str(tmp_path / "out"))
    assert p.returncode == 1
    assert "customBiggerIsBetter" in p.stdout
    data = json.loads(path.read_text())
    assert isinstance(data, list) and len(data) == 32
    names = set()
    for e in data:
        assert set(e) == {"name", "unit", "value", "range", "extra"}
        assert isinstance(e["name"], str) and e["name"] not in names
        names.add(e["name"])
        assert e["unit"] == "ops/s"
        assert isinstance(e["value"], (int, float)) and math.isfinite(e["value"]) and e["value"] > 0
        assert isinstance(e["range"], str) and e["range"].startswith("± ")
        assert isinstance(e["extra"], str) and "vs base" in e["extra"]
    run = json.load(open(fixture("run-slowed.json")))
    rows = [b for b in run["benchmarks"] if b["run_type"] == "iteration"
            and b["run_name"] == "tcp.echo/backend:uring-owned/msg:1024/conns:16"]
    med = sorted(b["ops_per_second"] for b in rows)[len(rows) // 2]
    assert [e["value"] for e in data if e["name"] == rows[0]["run_name"]] == [med]


def test_mann_whitney_directions():
    from ringside_report import compare
    base = [{"ops_per_second": x, "p99_ns": 100.0, "user_copies_per_byte": 0.0, "kernel_copies_per_byte": 1.0}
            for x in (100, 101, 102, 103, 104)]
    slower = [dict(m, ops_per_second=m["ops_per_second"] * 0.5) for m in base]
    faster = [dict(m, ops_per_second=m["ops_per_second"] * 2) for m in base]
    more_copies = [dict(m, user_copies_per_byte=1.0) for m in base]
    assert compare.compare_one(base, slower, 0.1, 0.05)["status"] == "regression"
    assert compare.compare_one(base, faster, 0.1, 0.05)["status"] == "improvement"
    assert compare.compare_one(base, base, 0.1, 0.05)["status"] == "ok"
    r = compare.compare_one(base, more_copies, 0.1, 0.05)
    assert r["copies"]["status"] == "regression" and r["status"] == "regression"
    assert compare.compare_one(base[:1], slower[:1], 0.1, 0.05)["throughput"]["status"] == "untested"
    assert abs(compare.min_p(3, 3) - 0.05) < 1e-12
