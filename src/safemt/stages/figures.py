"""Figures stage: one judge's metrics folder -> every figure as PNG (and PDF for the paper).

Inputs: `<results>/metrics/<judge>/` CSVs (and moderation.csv, judge_agreement.csv when the run makes them).
Outputs: `<results>/figures/<name>.png`, `<results>/paper/figures/<name>.pdf` (names in
`safemt.layout.FIGURE_FILES`). Helpers: `safemt.figures`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run(params: dict[str, Any], metrics_dir: str, out_dir: str, pdf_dir: str | None = None) -> list[Path]:
    """Every figure from the metrics folder (the judge is in the CSVs); of the optional ones, those the
    params make for the folder's judge, never one drawn from a file an earlier configuration left."""
    from safemt.config import optional_metrics
    from safemt.figures.plots import draw_figures

    return draw_figures(metrics_dir=metrics_dir, out_dir=out_dir, pdf_dir=pdf_dir,
                        optional=optional_metrics(params, Path(metrics_dir).name))
