"""dvc.yaml reads its profile from dvc-profile.yaml, names the layout's folders, and the captions
of `snakemake --report` are the figures' captions."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from safemt.dvc_profile import render
from safemt.figures.plots import CAPTIONS
from safemt.layout import Layout


def test_committed_profile_is_the_default_config(repo_root: Path) -> None:
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    assert (repo_root / "dvc-profile.yaml").read_text() == render(params, "params.yaml")


def test_profile_for_paper_names_its_file_and_root(repo_root: Path) -> None:
    paper = yaml.safe_load((repo_root / "config" / "paper.yaml").read_text())
    prof = yaml.safe_load(render(paper, "config/paper.yaml"))
    assert prof == {"params": "config/paper.yaml", "results": Layout.of(paper).root}


def _declared(stage: dict, key: str) -> set[str]:
    out = set()
    for item in stage.get(key, []):
        out.add(next(iter(item)) if isinstance(item, dict) else item)
    return out


def test_dvc_yaml_uses_the_profile_and_the_layout(repo_root: Path) -> None:
    text = (repo_root / "dvc.yaml").read_text()
    dvc = yaml.safe_load(text)
    assert dvc["vars"] == ["dvc-profile.yaml"]
    assert "params.yaml" not in text.split("stages:", 1)[1], "the params file comes from the profile"
    assert not re.search(r"(^|[\s-])results/", text), "the results root comes from the profile"
    lay = Layout("${results}")
    folder = lambda pattern: pattern.split("/{")[0]  # noqa: E731
    outs, metrics, plots = set(), set(), set()
    for stage in dvc["stages"].values():
        outs |= _declared(stage, "outs")
        metrics |= _declared(stage, "metrics")
        plots |= _declared(stage, "plots")
        for entry in stage.get("params", []):
            assert list(entry) == ["${params}"], entry
        if stage["cmd"].startswith("snakemake"):
            assert stage["cmd"].endswith("--configfile ${params}")
    assert outs == {"resources/models", "resources/release", lay.dataset_dir, folder(lay.generations),
                    folder(lay.judgments), lay.path("live"), folder(lay.metrics_dir), lay.figure_pdf_dir, lay.tables_dir,
                    lay.numbers_tex, lay.numbers_json}
    assert metrics == {folder(lay.scores_dir)} and plots == {lay.figures_dir}


def test_report_captions_are_the_figure_captions(repo_root: Path) -> None:
    for name, caption in CAPTIONS.items():
        assert (repo_root / "workflow" / "report" / f"{name}.rst").read_text() == caption + "\n"
