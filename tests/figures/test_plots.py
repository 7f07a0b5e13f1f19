"""`safemt figures`: every figure from the tidy metrics CSVs, PNG and PDF, byte-stable, sized for a column."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from safemt.cli import main
from safemt.figures.plots import CAPTIONS, WIDTH_COLUMNS
from safemt.figures.style import COLUMN_WIDTH_IN, DPI
from safemt.layout import FIGURE_NAMES, OPTIONAL_FIGURES, figure_files
from tests.results_tree import params_variant, single_judge_without_defenses


def _draw(tree: dict, metrics: Path, out: Path) -> int:
    return main(["figures", "--params", str(tree["params"]), "-i", str(metrics), "-o", str(out)])


def test_all_seven_figures_png_and_pdf_byte_stable(results_tree: dict, tmp_path: Path) -> None:
    out = tmp_path / "fig"
    assert _draw(results_tree, results_tree["metrics"], out) == 0
    expected = figure_files(moderation=True, agreement=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    assert len(expected) == 14 and set(CAPTIONS) == set(FIGURE_NAMES + OPTIONAL_FIGURES) == set(WIDTH_COLUMNS)
    first = {name: (out / name).read_bytes() for name in expected}
    for name in sorted({f.rsplit(".", 1)[0] for f in expected}):  # replay_vs_live: tests/test_live.py
        assert first[f"{name}.pdf"].startswith(b"%PDF") and b"CreationDate" not in first[f"{name}.pdf"]
        with Image.open(out / f"{name}.png") as im:
            assert im.format == "PNG"
            width_in = im.size[0] / DPI
        # readable at the width it is drawn for: at most that many columns (plus tick-label overhang)
        assert width_in <= WIDTH_COLUMNS[name] * COLUMN_WIDTH_IN * 1.25, (name, width_in)
    assert _draw(results_tree, results_tree["metrics"], out) == 0
    assert {name: (out / name).read_bytes() for name in expected} == first


def test_optional_figures_follow_the_params_not_the_folder(results_tree: dict, tmp_path: Path) -> None:
    """One judge and no defense: no moderation or agreement figure, though their CSVs are on disk."""
    shutil.copytree(results_tree["metrics"].parent, tmp_path / "metrics")
    metrics = tmp_path / "metrics" / "keyword"
    plain = {"params": params_variant(results_tree, tmp_path / "plain.yaml", single_judge_without_defenses)}
    out = tmp_path / "fig"
    assert _draw(plain, metrics, out) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(figure_files())


def test_missing_metrics_is_one_line_and_writes_nothing(results_tree: dict, tmp_path: Path, capsys) -> None:
    metrics = tmp_path / "metrics" / "keyword"
    shutil.copytree(results_tree["metrics"], metrics)
    (metrics / "composition.csv").unlink()
    out = tmp_path / "fig"
    assert _draw(results_tree, metrics, out) == 2
    err = capsys.readouterr().err.strip()
    assert "composition.csv" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_the_corrected_asr_figure_is_drawn_when_its_csv_exists(results_tree: dict, tmp_path: Path) -> None:
    """asr_corrected.csv (a judge with gold labels) adds raw vs corrected ASR; byte-stable like the rest."""
    from safemt.files import read_rows, write_csv
    from safemt.metrics.gold import CORRECTED_COLUMNS, corrected_asr

    shutil.copytree(results_tree["metrics"].parent, tmp_path / "metrics")
    metrics = tmp_path / "metrics" / "keyword"
    gold = {"params": params_variant(results_tree, tmp_path / "gold.yaml", lambda p: p["metrics"].update(
        calibration={"keyword": {"gold": "gold.jsonl"}}))}
    errors = {"judge": "keyword", "tp": 80, "fn": 20, "tn": 95, "fp": 5}
    write_csv(metrics / "asr_corrected.csv", corrected_asr(read_rows(metrics / "asr.csv"), errors, 200, 0),
              list(CORRECTED_COLUMNS))
    out = tmp_path / "fig"
    assert _draw(gold, metrics, out) == 0
    first = (out / "asr_corrected.png").read_bytes()
    with Image.open(out / "asr_corrected.png") as im:
        assert im.size[0] / DPI <= WIDTH_COLUMNS["asr_corrected"] * COLUMN_WIDTH_IN * 1.25
    assert _draw(gold, metrics, out) == 0
    assert (out / "asr_corrected.png").read_bytes() == first
