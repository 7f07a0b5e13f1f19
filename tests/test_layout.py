"""One results root per profile: every planned output lies under the profile's `results_dir`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from safemt.layout import DEFAULT_RESULTS_DIR, FIGURE_FILES, METRICS_FILES, Layout, results_dir


def test_default_root_and_patterns() -> None:
    lay = Layout.of({})
    assert lay.root == DEFAULT_RESULTS_DIR == "results"
    assert lay.dataset == "results/dataset/dialogues.jsonl"
    assert lay.generations.format(model="m", defense="d", turns=4) == "results/generations/m/d/4.jsonl"
    assert lay.judgments.format(judge="j", model="m", defense="d", turns=1) == "results/judgments/j/m/d/1.jsonl"
    assert results_dir({"results_dir": "results-paper/"}) == "results-paper"
    assert Layout.of({"results_dir": "out"}).metrics_file(METRICS_FILES["summary"]) == "out/metrics/{judge}/summary.json"


def test_profiles_name_different_roots(repo_root: Path) -> None:
    default = yaml.safe_load((repo_root / "params.yaml").read_text())
    paper = yaml.safe_load((repo_root / "config" / "paper.yaml").read_text())
    assert results_dir(default) == "results"
    assert results_dir(paper) != results_dir(default)


def _planned_outputs(repo_root: Path, configfile: Path) -> set[str]:
    bin_dir = Path(sys.executable).parent
    proc = subprocess.run([str(bin_dir / "snakemake"), "-n", "--configfile", str(configfile)], cwd=repo_root,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outs: set[str] = set()
    for line in proc.stdout.splitlines():
        m = re.match(r"\s+(output|log): (.*)", line)
        if m:
            outs.update(p.strip() for p in m.group(2).split(","))
    return outs


def test_dry_run_plans_everything_under_the_profile_root(repo_root: Path, tmp_path: Path) -> None:
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["results_dir"] = "results-layout-test"
    cfg = tmp_path / "params.yaml"
    cfg.write_text(yaml.safe_dump(params))
    outs = _planned_outputs(repo_root, cfg)
    assert outs, "the dry run planned nothing"
    outside = sorted(o for o in outs if not (o.startswith("results-layout-test/") or o.startswith("resources/")))
    assert not outside, outside
    lay = Layout("results-layout-test")
    for name in FIGURE_FILES:
        assert lay.figure(name) in outs
    for path in (lay.numbers_tex, lay.numbers_json, lay.report, lay.provenance, lay.table("si_asr.tex")):
        assert path in outs, path
    assert not (repo_root / "results-layout-test").exists(), "a dry run wrote files"
