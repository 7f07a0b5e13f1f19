"""Paper stage: the paper's tables and a LaTeX macro for every number it quotes.

Inputs: `<results>/metrics/<judge>/` CSVs. Outputs: `<results>/tables/<table>.csv|.md|.tex`,
`<results>/paper/numbers.tex` and `numbers.json`. Helpers: `safemt.report.tables`, `safemt.report.numbers`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run(params: dict[str, Any], metrics_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """The tables (`safemt tables`): of the optional files, those the params make for the folder's judge,
    never one an earlier configuration left there."""
    from safemt.config import optional_metrics
    from safemt.report.tables import write_tables

    return write_tables(metrics_dir, out_dir, optional_metrics(params, Path(metrics_dir).name))


def numbers(params: dict[str, Any], metrics_dir: str | Path, tex: str | Path, js: str | Path) -> dict[str, Any]:
    """The numbers as LaTeX macros and JSON with their sources (`safemt numbers`), optional files as for
    the tables."""
    from safemt.config import optional_metrics
    from safemt.report.numbers import write_numbers

    return write_numbers(metrics_dir, tex, js, optional_metrics(params, Path(metrics_dir).name))
