"""Report stage: provenance of the run and one self-contained HTML page of the results.

Inputs: the whole results root of the params. Outputs: `<results>/provenance.json`,
`<results>/report/index.html`. Helpers: `safemt.report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from safemt.report.html import ReportSettings
    from safemt.report.provenance import RunConfig


def report_settings(params: dict[str, Any]) -> ReportSettings:
    """What the HTML page reads: the judge shown (figures.judge, else the first metrics judge), the
    sampled cells, report.samples_per_model / sample_seed, and the metrics judges (per-cell agreement)."""
    from safemt.config import fill_defaults, graded_judges, optional_metrics
    from safemt.report.html import ReportSettings

    full = fill_defaults(params)
    report = full.get("report", {})
    judges = tuple(full.get("metrics", {}).get("judges") or ())
    judge = full.get("figures", {}).get("judge") or (judges[0] if judges else None)
    return ReportSettings(judge=judge, targets=tuple(full.get("targets", [])),
                          defenses=tuple(full.get("defenses", ["none"])), turns=tuple(full.get("turns", [])),
                          samples_per_model=report["samples_per_model"], sample_seed=report["sample_seed"],
                          judges=judges, optional=optional_metrics(full, judge) if judge else None,
                          graded_judges=tuple(graded_judges(full)))


def run_config(params: dict[str, Any]) -> RunConfig:
    """What provenance.json records: the hash of the params as loaded, and the sections it describes."""
    from safemt.config import fill_defaults
    from safemt.hashing import stable_hash
    from safemt.report.provenance import RunConfig

    full = fill_defaults(params)
    return RunConfig(params_sha256=stable_hash(params), models=full.get("models", {}),
                     targets=tuple(full.get("targets", [])), judges=full.get("judges", {}),
                     dataset=full.get("dataset", {}))


def run(params: dict[str, Any], output: str | Path) -> Path:
    """The HTML report (`safemt report`)."""
    from safemt.layout import Layout
    from safemt.report.html import write_report

    return write_report(report_settings(params), Layout.of(params), output)


def provenance(params: dict[str, Any], params_file: str, output: str | Path) -> dict[str, Any]:
    """What produced this run's results (`safemt provenance`)."""
    from safemt.layout import Layout
    from safemt.report.provenance import write_provenance

    return write_provenance(run_config(params), params_file, Layout.of(params), output)
