"""Shared pieces of the report tests: paths, running the entry points, and a
report rendered once per session from the fixture results (real runs)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(HERE, "fixtures")
REPORT = os.path.join(ROOT, "scripts", "report")
COMPARE = os.path.join(ROOT, "scripts", "compare")
PYTHON = "/usr/bin/python3"
# Each entry point renders charts; a generous bound that still catches a hang.
SCRIPT_TIMEOUT_S = 60


def fixture(name):
    return os.path.join(FIXTURES, name)


def subset(tmp_path, scenarios, rename=None):
    """run.json cut to a few scenarios (fewer panels: faster to draw), backends
    optionally renamed {old: new}; -> path of the new file."""
    doc = json.load(open(fixture("run.json")))
    doc["benchmarks"] = [b for b in doc["benchmarks"] if b["scenario"] in scenarios]
    for b in doc["benchmarks"]:
        for old, new in (rename or {}).items():
            if b["backend"] == old:
                b["backend"] = new
                for f in ("name", "run_name"):
                    b[f] = b[f].replace(f"backend:{old}", f"backend:{new}")
    path = tmp_path / "subset.json"
    path.write_text(json.dumps(doc))
    return str(path)


def run_script(script, *args):
    """Runs an entry point the way a user does (its shebang interpreter)."""
    return subprocess.run([PYTHON, script, *args], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))


def stderr_lines(p):
    return [line for line in p.stderr.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """scripts/report run.json check.json --out DIR -> DIR (rendered once)."""
    out = tmp_path_factory.mktemp("report")
    p = run_script(REPORT, fixture("run.json"), fixture("check.json"), "--out", str(out))
    assert p.returncode == 0, p.stderr
    return out, p


def find_chromium():
    """RINGSIDE_CHROMIUM names the browser (or, set to something not executable,
    hides it: that is how the skip path is exercised); else the usual names on PATH."""
    forced = os.environ.get("RINGSIDE_CHROMIUM")
    if forced is not None:
        return forced if os.access(forced, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def pytest_sessionfinish(session, exitstatus):
    """ctest reads exit 77 as 'skipped' (SKIP_RETURN_CODE): when every test of the
    session was skipped (e.g. no chromium), say so instead of passing."""
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is None or exitstatus != 0:
        return
    if tr.stats.get("skipped") and not tr.stats.get("passed") and not tr.stats.get("failed"):
        session.exitstatus = 77


sys.path.insert(0, os.path.join(ROOT, "reports"))
