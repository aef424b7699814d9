"""The quick demo's report in headless Chromium: the overview lists every section, every image loads,
and the page logs nothing to the console.

Chromium is Debian's `chromium` package (.ci/run installs it). Under CI (CI=true) a missing browser
fails the test; elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

# Appended to a copy of report.html (beside it, so relative image paths resolve): after the load
# event it writes each image's src, completeness and decoded width into the DOM that --dump-dom prints.
CHECK_SCRIPT = """
<script>
window.addEventListener('load', function () {
  var out = Array.prototype.map.call(document.images, function (im) {
    return [im.getAttribute('src'), im.complete, im.naturalWidth];
  });
  var pre = document.createElement('pre');
  pre.id = 'mmia-image-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""

# The smallest real run that has every kind of section the report joins up: blind shift checks,
# score attacks on the same data file, dataset inference (with its own shift check) and UMID.
DEMO_TESTBEDS = {"vlm", "clip-identities"}
DEMO_STEPS = {"shift", "attack", "infer", "umid"}


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package before `make test`")
    pytest.skip("chromium is not installed (Debian: apt-get install -y --no-install-recommends chromium)")


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser, looked up before the (costlier) demo run so that a skip costs nothing."""
    return _chromium()


def _run_chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [_chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
           *extra, page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _console_lines(stderr: str) -> list[str]:
    """What the page wrote to the console (errors, uncaught exceptions, logs): Chromium's CONSOLE lines."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def load_in_chromium(report: Path, tmp: Path) -> tuple[str, list, list[str]]:
    """(DOM after load, [[src, complete, naturalWidth], ...] per image, console lines) of a page."""
    probe = report.with_name(report.stem + ".browser-check.html")
    html = report.read_text(encoding="utf-8")
    assert "</body>" in html
    probe.write_text(html.replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    try:
        dom = _run_chromium(probe, tmp / "profile-dom", "--dump-dom").stdout
        # The page itself, unmodified, for console messages.
        console = _console_lines(_run_chromium(report, tmp / "profile-console", "--dump-dom").stderr)
    finally:
        probe.unlink()
    start = dom.index('<pre id="mmia-image-check">') + len('<pre id="mmia-image-check">')
    images = json.loads(_unescape(dom[start:dom.index("</pre>", start)]))
    return dom, images, console


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)


class _Page(HTMLParser):
    """The overview's rows (data-section and link), every element id, and each section block."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.overview_rows: list[dict] = []
        self.blocks: dict[str, dict] = {}
        self._in_overview = False
        self._row = None
        self._block = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "table" and "overview" in (a.get("class") or "").split():
            self._in_overview = True
        if self._in_overview and tag == "tr" and "data-section" in a:
            self._row = {"section": a["data-section"], "href": None}
            self.overview_rows.append(self._row)
        if self._row is not None and tag == "a" and self._row["href"] is None:
            self._row["href"] = a.get("href")
        if tag == "section" and "result" in (a.get("class") or "").split():
            self._block = {"id": a["id"], "imgs": []}
            self.blocks[a["data-section"]] = self._block
        if self._block is not None and tag == "img":
            self._block["imgs"].append(a["src"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_overview = False
        if tag == "tr":
            self._row = None
        if tag == "section":
            self._block = None


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def demo_dir(chromium, tmp_path_factory, request):
    """A quick demo run (real testbeds from the session's cache, real steps), on two testbeds."""
    quick_cache = request.getfixturevalue("quick_cache")  # after the browser check: a skip builds nothing
    from mmia.demo import run_demo, steps
    from mmia.testbeds import base

    steps.list_demo_steps()  # load the built-in steps before choosing among them
    specs = {s.name: s for s in base.list_testbeds()}
    out = tmp_path_factory.mktemp("report-demo") / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(steps, "_STEPS", {k: v for k, v in steps._STEPS.items() if k in DEMO_STEPS})
        for name, spec in specs.items():
            if spec.in_demo and name not in DEMO_TESTBEDS:
                mp.setitem(base._TESTBEDS, name, dataclasses.replace(spec, in_demo=False))
        outcome = run_demo(out, quick=True, cache_dir=quick_cache, jobs=2, log=lambda m: None)
    assert not outcome.failures, outcome.failures
    return out


def test_the_browser_check_catches_a_broken_page(tmp_path):
    """The checks below are not vacuous: a missing image and a script error are both seen."""
    (tmp_path / "bad.html").write_text(
        '<!doctype html><html><body><img src="missing.png"><script>undefinedFunction();</script></body></html>',
        encoding="utf-8")
    _, images, console = load_in_chromium(tmp_path / "bad.html", tmp_path)
    assert images == [["missing.png", True, 0]]
    assert any("undefinedFunction" in line for line in console), console


def test_quick_demo_report_in_chromium(demo_dir, tmp_path):
    results = json.loads((demo_dir / "results.json").read_text())
    names = [s["name"] for s in results["sections"]]
    commands = {s["command"] for s in results["sections"]}
    assert {"shift", "attack", "infer", "umid"} <= commands, commands

    # `mmia report DIR` re-renders, and leaves results.json and scores.parquet exactly as they were.
    before = {f: _sha(demo_dir / f) for f in ("results.json", "scores.parquet")}
    (demo_dir / "report.html").unlink()
    shutil.rmtree(demo_dir / "plots")
    proc = subprocess.run([sys.executable, "-m", "mmia.cli", "report", str(demo_dir)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert {f: _sha(demo_dir / f) for f in before} == before

    dom, images, console = load_in_chromium(demo_dir / "report.html", tmp_path)
    assert console == [], console
    page = _Page()
    page.feed(dom)

    # The overview lists every section once, and each row links to that section's block.
    assert sorted(r["section"] for r in page.overview_rows) == sorted(names)
    for row in page.overview_rows:
        assert row["href"] and row["href"].startswith("#"), row
        assert page.blocks[row["section"]]["id"] == row["href"][1:]
    assert {"overview", "references", "metrics"} <= page.ids

    # Every image loaded and decoded; each section with per-sample scores has its ROC and histogram.
    assert images and all(complete and width > 0 for _, complete, width in images), images
    shown = [src for b in page.blocks.values() for src in b["imgs"]]
    assert sorted(src for src, _, _ in images) == sorted(shown)
    by_name = {s["name"]: s for s in results["sections"]}
    for name, block in page.blocks.items():
        if by_name[name]["command"] in ("shift", "attack", "umid"):
            assert any(s.startswith("plots/roc-") for s in block["imgs"]), name
            assert any(s.startswith("plots/hist-") for s in block["imgs"]), name

    # The shift verdict of the same data file beside the attack sections (vlm/matched here).
    attack = next(s for s in results["sections"] if s["command"] == "attack")
    shift = next(s for s in results["sections"] if s["command"] == "shift"
                 and s["dataset"]["path"] == attack["dataset"]["path"])
    block_html = dom[dom.index(f'id="{page.blocks[attack["name"]]["id"]}"'):]
    block_html = block_html[:block_html.index("</section>")]
    assert f"Shift check of this data: {shift['verdict']}" in block_html
    assert f'href="#{page.blocks[shift["name"]]["id"]}"' in block_html

    # Each paper once in References (by its text and by its arXiv id); method rows link to them.
    refs = dom[dom.index('<ol class="references">'):]
    refs = refs[:refs.index("</ol>")]
    texts = re.findall(r'<li id="ref-(\d+)">(.*?)</li>', refs)
    assert len(texts) >= 3 and [int(n) for n, _ in texts] == list(range(1, len(texts) + 1))
    assert len({t for _, t in texts}) == len(texts)
    arxiv = [m for _, t in texts for m in re.findall(r"arXiv[:\s]*(\d{4}\.\d{4,5})", t)]
    assert len(arxiv) == len(set(arxiv)), arxiv
    cited = set(re.findall(r'href="#ref-(\d+)"', dom))
    assert cited == {n for n, _ in texts}
