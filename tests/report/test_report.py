"""The HTML report (self-contained, data escaped; opened in headless Chromium) and provenance.json."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import tool_missing

from safemt.cli import main
from safemt.layout import figure_files
from tests.results_tree import HOSTILE


@pytest.fixture(scope="module")
def report(results_tree: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = results_tree["params"].parent
    cfg = str(results_tree["params"])
    cwd = Path.cwd()
    try:
        import os

        os.chdir(root)
        assert main(["figures", "--params", cfg, "-i", "results/metrics/keyword", "-o", "results/figures"]) == 0
        assert main(["provenance", "--params", cfg, "-o", "results/provenance.json"]) == 0
        assert main(["report", "--params", cfg, "-o", "results/report/index.html"]) == 0
    finally:
        os.chdir(cwd)
    return {"root": root, "html": (root / "results/report/index.html").read_text(encoding="utf-8"),
            "provenance": json.loads((root / "results/provenance.json").read_text())}


def test_report_is_self_contained_and_escaped(report: dict) -> None:
    html = report["html"]
    names = [f for f in figure_files(moderation=True, agreement=True) if f.endswith(".png")]
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', html)) == len(names) == 7
    assert not re.search(r'(src|href)="(https?:)?//', html), "nothing may load from the network"
    assert "<script" not in html.lower(), "no script at all, and data markup shows as text"
    assert "&lt;script&gt;document.body.setAttribute" in html
    assert "Content-Security-Policy" in html
    for table in ("si_asr", "dataset", "moderation", "judge_agreement"):
        assert f'id="table-{table}"' in html
    # five samples per model (report.samples_per_model), with responses and verdicts
    assert html.count("<details>") == 15 and html.count("<b>response</b>: reply &lt;script&gt;") == 15
    assert report["provenance"]["git"]["commit"] is None or len(report["provenance"]["git"]["commit"]) == 40


def test_provenance_fields(report: dict, results_tree: dict) -> None:
    p = report["provenance"]
    for key in ("git", "params_sha256", "packages", "targets", "judges", "dataset", "times", "machine"):
        assert key in p
    assert set(p["targets"]) == {"vlm-safe", "vlm-mid", "vlm-weak"}
    assert p["targets"]["vlm-safe"]["id"] == "vlm-safe" and p["targets"]["vlm-safe"]["backend"] == "openai"
    assert p["packages"]["numpy"] and p["packages"]["python"]
    import hashlib

    data = (results_tree["results"] / "dataset" / "dialogues.jsonl").read_bytes()
    assert p["dataset"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert p["times"]["first_output"] <= p["times"]["last_output"] <= p["times"]["recorded"]
    assert "<h2>Provenance</h2>" in report["html"] and p["params_sha256"] in report["html"]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_renders_in_headless_chromium(report: dict, tmp_path: Path) -> None:
    """Figures decode and show, and no script carried by the data runs (the CSP is removed for the
    probe, so escaping alone must keep the data's markup inert)."""
    browser = _chromium()
    if browser is None:
        tool_missing("no Chromium on this machine (apt-get install chromium)")
    probe = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.setAttribute('data-images', String(imgs.length));
  document.body.setAttribute('data-rendered', String(imgs.filter(i => i.complete && i.naturalWidth > 100).length));
});
</script></body>"""
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", report["html"])
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", probe), encoding="utf-8")
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = re.search(r"<body[^>]*>", proc.stdout).group(0)
    assert 'data-images="7"' in body and 'data-rendered="7"' in body, body
    assert "data-pwned" not in body
    assert HOSTILE.split(">")[0].replace("<", "&lt;") in proc.stdout  # the markup shows as text
