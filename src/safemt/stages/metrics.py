"""Metrics stage: judgments -> ASR, S1, S2, Safety Index with bootstrap CIs, breakdowns; judge agreement.

Inputs: one judge's judgments (Judgment contract), the moderation section when defenses ran.
Outputs: `<results>/metrics/<judge>/summary.json` and the CSVs of `safemt.layout.METRICS_FILES`
(rows in `safemt.records.METRICS_ROWS`), `<results>/scores/<judge>/` (DVC metrics),
`<results>/metrics/judge_agreement.csv` with two or more judges. Helpers: `safemt.metrics`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from safemt.metrics.options import MetricsOptions


def metrics_options(params: dict[str, Any]) -> MetricsOptions:
    """The `metrics:` section as a `MetricsOptions`, the schema's defaults filled in."""
    from safemt.config import fill_defaults
    from safemt.metrics.options import MetricsOptions

    return MetricsOptions.from_config(fill_defaults(params)["metrics"])


def run(params: dict[str, Any], inputs: list[str], out_dir: str, scores_dir: str | None = None,
        moderation: str | None = None) -> dict[str, Any]:
    from safemt.metrics.summary import compute_metrics

    return compute_metrics(metrics_options(params), list(params["turns"]), inputs=inputs, out_dir=out_dir,
                           scores_dir=scores_dir, moderation=moderation)


def agreement(params: dict[str, Any], inputs: list[str], out: str) -> list[dict[str, Any]]:
    """Cohen's kappa and raw agreement per judge pair, overall and per scenario."""
    from safemt.metrics.agreement import write_agreement

    return write_agreement(inputs, out)
