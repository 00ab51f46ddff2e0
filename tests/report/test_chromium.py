"""The report opened in headless Chromium: screenshotted, and every image
loaded (complete and with a natural width). Skips (exit 77 for ctest) without
Chromium; scripts/setup-deps installs it."""
import os
import re
import shutil
import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import pytest  # noqa: E402

from conftest import find_chromium  # noqa: E402

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/setup-deps installs it)")
# Chromium's cold start on a loaded 2-core machine takes a few seconds.
CHROMIUM_TIMEOUT_S = 90
# Marks the body once every image has settled (loaded or failed).
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
});
</script>"""


def chromium(tmp_path, *args):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", "--no-first-run", "--disable-extensions", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S,
                          env=dict(os.environ, HOME=str(tmp_path)))


def test_screenshot(rendered, tmp_path):
    out, _ = rendered
    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1600,3200", "--virtual-time-budget=5000",
             (out / "index.html").as_uri())
    assert shot.is_file() and shot.stat().st_size > 20_000
    img = matplotlib.image.imread(str(shot))
    assert img.shape[:2] == (3200, 1600)
    assert img.std() > 0.05, "screenshot is blank"
    keep = os.environ.get("RINGSIDE_REPORT_SCREENSHOT")
    if keep:  # for a person to look at
        shutil.copy(shot, keep)


def test_every_image_loads(rendered, tmp_path):
    out, _ = rendered
    page = (out / "index.html").read_text()
    probe = out / "_probe.html"  # beside index.html so relative links resolve the same
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    try:
        p = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    finally:
        probe.unlink()
    m = re.search(r'data-images-loaded="(\d+)/(\d+)"', p.stdout)
    assert m, f"probe did not run: {p.stderr[-800:]}"
    loaded, total = int(m.group(1)), int(m.group(2))
    assert total >= 6 and loaded == total, f"{loaded} of {total} images loaded"
