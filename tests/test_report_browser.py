"""The report in a real browser: headless Chromium renders every figure, table and thumbnail, logs
no error, and paints a non-blank page. `make test` installs Chromium (Debian package `chromium`)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from report_run import make_run
from vscn.report import FIGURE_NAMES, write_report

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0")
BROWSER_TIMEOUT = 60  # seconds per Chromium run; one takes about 2 s
WINDOW = (1280, 2400)
# Records script errors and failed loads (capture phase), then writes what rendered into the DOM.
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || e.target.outerHTML)), true);
window.addEventListener("load", () => {
  const box = el => { const r = el.getBoundingClientRect(); return [r.width, r.height]; };
  const report = {
    errors: window.__errors,
    figures: [...document.querySelectorAll("figure")].map(f => [f.id, ...box(f.querySelector("svg"))]),
    images: [...document.querySelectorAll("img")].map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
    tables: [...document.querySelectorAll("table")].map(t => t.rows.length),
  };
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(report);
  document.body.appendChild(out);
});
</script>"""


def chromium(page: Path, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: this test needs Debian's chromium package, which `make test` installs "
                    "(apt-get install -y --no-install-recommends chromium); run the tests through `make test`")
    profile = work / "profile"
    shutil.rmtree(profile, ignore_errors=True)
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=BROWSER_TIMEOUT, check=True)


def probe(page: Path, work: Path) -> tuple[dict, list[str]]:
    """What the page rendered (see PROBE) and the console lines Chromium logged."""
    probed = work / f"probe-{page.name}"
    probed.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    result = chromium(probed, work, "--dump-dom")
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert found, f"the probe did not run; DOM starts {result.stdout[:300]!r}"
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(html.unescape(found.group(1))), console


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    return write_report(make_run(root), root / "report.html")


def test_report_renders_without_errors(report: Path, tmp_path: Path) -> None:
    rendered, console = probe(report, tmp_path)
    assert rendered["errors"] == [] and console == []
    assert [figure[0] for figure in rendered["figures"]] == [f"figure-synthetic-{name}" for name in FIGURE_NAMES]
    assert all(width > 100 and height > 100 for _, width, height in rendered["figures"])
    assert rendered["images"] and all(done and width > 0 and height > 0 for done, width, height in rendered["images"])
    assert len(rendered["tables"]) >= 8 and all(rows >= 2 for rows in rendered["tables"])


def test_probe_sees_errors(tmp_path: Path) -> None:
    """The checks above can fail: a broken image and a script error are caught."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head></head><body><img src="data:image/png;base64,AAAA">'
                    "<script>console.error('logged'); missingFunction();</script></body></html>")
    rendered, console = probe(page, tmp_path)
    assert len(rendered["errors"]) == 2 and any("missingFunction" in error for error in rendered["errors"])
    assert rendered["images"] == [[True, 0, 0]]
    assert any("logged" in line for line in console)


def test_screenshot_is_not_blank(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    chromium(report, tmp_path, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}")
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == WINDOW
        pixels = np.asarray(image.convert("RGB"))
    assert (pixels < 250).any(axis=2).mean() > 0.02  # text, tables and figures, not an empty white page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # figure colours, not one flat colour
