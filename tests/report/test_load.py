"""Unusable results files give one line on stderr and exit 2, from both entry
points; usage errors too; --help works."""
import glob
import os

import pytest

from conftest import COMPARE, FIXTURES, REPORT, fixture, run_script, stderr_lines

BAD = sorted(glob.glob(os.path.join(FIXTURES, "bad", "*.json")))


def test_bad_fixtures_present():
    names = {os.path.basename(p) for p in BAD}
    assert {"empty.json", "truncated.json", "partial-row.json", "empty-benchmarks.json"} <= names


@pytest.mark.parametrize("path", BAD, ids=[os.path.basename(p) for p in BAD])
def test_report_rejects_bad_file(path, tmp_path):
    p = run_script(REPORT, path, "--out", str(tmp_path / "out"))
    assert p.returncode == 2, p.stdout + p.stderr
    lines = stderr_lines(p)
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("report: ") and os.path.basename(path) in lines[0]
    assert not (tmp_path / "out" / "index.html").exists()


@pytest.mark.parametrize("path", BAD, ids=[os.path.basename(p) for p in BAD])
def test_compare_rejects_bad_file(path, tmp_path):
    p = run_script(COMPARE, fixture("run.json"), path, "--out", str(tmp_path))
    assert p.returncode == 2, p.stdout + p.stderr
    assert len(stderr_lines(p)) == 1, p.stderr


def test_report_bad_file_among_good_ones(tmp_path):
    p = run_script(REPORT, fixture("run.json"), fixture("bad/partial-row.json"), "--out", str(tmp_path))
    assert p.returncode == 2
    assert len(stderr_lines(p)) == 1 and "missing 'p99_ns'" in p.stderr


@pytest.mark.parametrize("args", [["/nonexistent/r.json"], [], ["--frobnicate", "x.json"],
                                  ["--tolerance", "abc", "x.json"]])
def test_report_usage_errors(args):
    p = run_script(REPORT, *args)
    assert p.returncode == 2 and len(stderr_lines(p)) == 1, p.stderr


@pytest.mark.parametrize("args", [["only-one.json"], ["a.json", "b.json", "--threshold", "x"],
                                  ["a.json", "b.json", "--alpha", "2"]])
def test_compare_usage_errors(args):
    p = run_script(COMPARE, *args)
    assert p.returncode == 2 and len(stderr_lines(p)) == 1, p.stderr


@pytest.mark.parametrize("script", [REPORT, COMPARE])
def test_help(script):
    p = run_script(script, "--help")
    assert p.returncode == 0 and "usage:" in p.stdout and "Exit:" in p.stdout


def test_loader_pools_files_and_skips_aggregates():
    from ringside_report import load
    docs, rows = load.load_many([fixture("run.json"), fixture("check.json")])
    assert len(docs) == 2
    assert all(r["run_name"] for r in rows)
    assert any(r["safety"] for r in rows) and any(not r["safety"] for r in rows)
    # 5 repetitions of each throughput benchmark, aggregates not counted as samples.
    by_name = {}
    for r in rows:
        by_name.setdefault(r["run_name"], []).append(r)
    assert all(len(v) == 5 for k, v in by_name.items() if not k.startswith("cancel."))
