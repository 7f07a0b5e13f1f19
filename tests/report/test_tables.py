"""`safemt tables`: CSV, Markdown and LaTeX booktabs; best per column marked; optional tables."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from safemt.cli import main
from safemt.layout import table_files
from safemt.report.tables import Table, latex_escape, to_latex, to_markdown
from tests.results_tree import params_variant, single_judge_without_defenses


def _tables(tree: dict, metrics: Path, out: Path) -> int:
    return main(["tables", "--params", str(tree["params"]), "-i", str(metrics), "-o", str(out)])


def test_tables_from_metrics(results_tree: dict, tmp_path: Path) -> None:
    out = tmp_path / "tables"
    assert _tables(results_tree, results_tree["metrics"], out) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(table_files(moderation=True, agreement=True))
    summary = json.loads((results_tree["metrics"] / "summary.json").read_text())
    with open(out / "si_asr.csv") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    models = summary["models"]
    assert set(rows) == set(models)
    for model, row in rows.items():
        assert float(row["SI"]) == models[model]["none"]["si"]
        assert float(row["ASR@8"]) == models[model]["none"]["asr"]["8"]
    best_si = max(models, key=lambda m: models[m]["none"]["si"])
    lowest_asr1 = min(models, key=lambda m: models[m]["none"]["asr"]["1"])
    assert "SI" in rows[best_si]["best"].split(";") and "ASR@1" in rows[lowest_asr1]["best"].split(";")
    tex = (out / "si_asr.tex").read_text()
    for cmd in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}"):
        assert cmd in tex
    assert f"\\textbf{{{models[best_si]['none']['si']:.3f}}}" in tex
    md = (out / "si_asr.md").read_text()
    assert f"**{models[best_si]['none']['si']:.3f}**" in md
    dataset = (out / "dataset.csv").read_text().splitlines()
    assert dataset[-1].startswith("total,") and dataset[-1].endswith(",255")  # 17 x 3 ids x 5 lengths
    assert "moderator" in (out / "moderation.md").read_text()
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert _tables(results_tree, results_tree["metrics"], out) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first


def test_optional_tables_follow_the_params_not_the_folder(results_tree: dict, tmp_path: Path, capsys) -> None:
    """A run with one judge and no defense makes no moderation or agreement table, even when an earlier
    configuration left moderation.csv and judge_agreement.csv behind; a file the params make but the
    folder lacks is one line naming it, and nothing is written."""
    shutil.copytree(results_tree["metrics"].parent, tmp_path / "metrics")
    metrics = tmp_path / "metrics" / "keyword"
    plain = {"params": params_variant(results_tree, tmp_path / "plain.yaml", single_judge_without_defenses)}
    out = tmp_path / "tables"
    assert _tables(plain, metrics, out) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(table_files())
    (metrics / "moderation.csv").unlink()
    assert _tables(results_tree, metrics, tmp_path / "full") == 2
    err = capsys.readouterr().err.strip()
    assert "moderation.csv" in err and len(err.splitlines()) == 1 and not (tmp_path / "full").exists()


def test_escaping_in_markdown_and_latex() -> None:
    t = Table("x", "50% of a_b & c", ["name", "v"], [["a_b|c&d%", 0.5]], {(0, 1)})
    tex = to_latex(t)
    assert r"a\_b|c\&d\%" in tex and r"\textbf{0.500}" in tex and r"50\% of a\_b \& c" in tex
    assert r"a_b\|c&d%" in to_markdown(t)
    assert latex_escape("{~}") == r"\{\textasciitilde{}\}"


def test_moderation_without_pooled_rows_is_pooled_by_n(results_tree: dict, tmp_path: Path, capsys) -> None:
    """The contract lets moderation.csv omit the `all` rows: they are pooled by n, and that is said."""
    shutil.copytree(results_tree["metrics"].parent, tmp_path / "metrics")
    metrics = tmp_path / "metrics" / "keyword"
    lines = (metrics / "moderation.csv").read_text().splitlines()
    kept = [lines[0]] + [ln for ln in lines[1:] if ln.split(",")[3] != "all"]
    (metrics / "moderation.csv").write_text("\n".join(kept) + "\n")
    out = tmp_path / "tables"
    assert _tables(results_tree, metrics, out) == 0
    assert "no pooled rows" in capsys.readouterr().out
    with open(out / "moderation.csv") as fh:
        rows = {(r["target"], r["defense"]): r for r in csv.DictReader(fh)}
    # synthetic rows have the same ASR at every length, so pooling gives it back exactly
    assert float(rows[("vlm-weak", "moderator")]["ASR"]) == pytest.approx(0.245)
    assert float(rows[("vlm-weak", "moderator")]["ASR reduction"]) == pytest.approx(0.65)
    assert rows[("vlm-weak", "none")]["ASR reduction"] == ""
    fig = tmp_path / "fig"
    assert main(["figures", "--params", str(results_tree["params"]), "-i", str(metrics), "-o", str(fig)]) == 0
    assert (fig / "moderation.png").is_file()
