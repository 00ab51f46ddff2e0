"""Charts are rendered from the fixture results (real runs): each PNG decodes to
a real image, each SVG parses; missing parts are stated on the page, not crashed on."""
import json
import shutil
import xml.etree.ElementTree as ET

import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402

from conftest import REPORT, fixture, run_script, subset  # noqa: E402

CHARTS = ["throughput", "copies", "latency", "syscalls", "safety_matrix", "claims_throughput_ratio"]


def test_every_chart_rendered(rendered):
    out, p = rendered
    assert str(out / "index.html") in p.stdout  # says where the page is
    for stem in CHARTS:
        png, svg = out / f"{stem}.png", out / f"{stem}.svg"
        assert png.stat().st_size > 10_000, stem
        img = matplotlib.image.imread(str(png))
        assert img.shape[0] > 200 and img.shape[1] > 300, (stem, img.shape)
        assert img.std() > 0.01, f"{stem}.png is blank"
        root = ET.parse(str(svg)).getroot()
        assert root.tag.endswith("svg"), stem


def test_page_names_every_backend_and_scenario(rendered):
    out, _ = rendered
    page = (out / "index.html").read_text()
    run = json.load(open(fixture("run.json")))
    for b in run["benchmarks"]:
        assert b["backend"] in page and b["scenario"] in page
    for kind in ("stream_integrity", "ledger", "canary", "connection_leak"):  # uring-raw's, from check
        assert kind in page


def test_claims_have_verdicts_with_figures(rendered):
    out, _ = rendered
    page = (out / "index.html").read_text()
    for claim in ("same speed as raw io_uring", "zero overhead", "zero copies", "one allocation per reusable buffer"):
        assert claim in page
    assert page.count('class="confirmed"') + page.count('class="refuted"') == 4
    assert "geometric mean" in page


def test_run_only_states_missing_safety(rendered, tmp_path):
    """Rendered over an older report with a safety matrix: the page says there are no
    safety rows, and the old matrix is gone from the folder."""
    out = tmp_path / "out"
    shutil.copytree(rendered[0], out)
    assert (out / "safety_matrix.png").exists()
    p = run_script(REPORT, subset(tmp_path, {"tcp.rr", "file.rand_read"}), "--out", str(out))
    assert p.returncode == 0, p.stderr
    page = (out / "index.html").read_text()
    assert "No safety rows" in page
    assert (out / "throughput.png").exists()
    assert not (out / "safety_matrix.png").exists() and not (out / "safety_matrix.svg").exists()


def test_check_only_states_missing_throughput(tmp_path):
    p = run_script(REPORT, fixture("check.json"), "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    page = (tmp_path / "index.html").read_text()
    assert "No measured throughput rows" in page and "no measured throughput rows for uring-owned" in page
    assert (tmp_path / "safety_matrix.png").exists() and not (tmp_path / "throughput.png").exists()


def test_new_backend_needs_no_edit(tmp_path):
    """Backends come from the data: a backend the code never heard of (as asio-uring
    will be) is drawn and tabled, and --owned puts it in the claims table."""
    path = subset(tmp_path, {"tcp.rr", "file.rand_read"}, rename={"uring-owned": "asio-uring"})
    p = run_script(REPORT, path, "--owned", "asio-uring", "--out", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    page = (tmp_path / "out" / "index.html").read_text()
    assert "tcp.rr/msg:64</td><td class=\"l\">asio-uring" in page
    assert "asio-uring/uring-raw throughput" in page


def test_unmeasured_rows_are_listed_not_drawn(tmp_path):
    """An unsupported row and an interrupted one (what ringside writes on SIGINT)
    are left out of the statistics and listed; the rest is drawn as usual."""
    doc = json.load(open(subset(tmp_path, {"tcp.rr", "file.rand_read"})))
    rows = [b for b in doc["benchmarks"] if b["run_type"] == "iteration"]
    rows[0].update(error_occurred=True, error_message="unsupported: test", verdict="unsupported: test")
    rows[1]["interrupted"] = True
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(doc))
    p = run_script(REPORT, str(path), "--out", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    page = (tmp_path / "out" / "index.html").read_text()
    assert "Rows without a measurement" in page and "unsupported: test" in page and "(interrupted)" in page
    # 5 repetitions in the file, 4 measured for those two benchmarks.
    assert f'{rows[0]["scenario"]}' in page and "<td>4</td>" in page
