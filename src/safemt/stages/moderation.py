"""Moderation stage: the defense comparison (ASR, over-refusal, flag rate, added cost per defense).

Inputs: one judge's judgments and generations of the harmful dialogues, the refusal judge's of the
benign ones. Outputs: `<results>/metrics/<judge>/moderation.csv` and `moderation.json` (Moderation
row, `safemt.records.MODERATION_ROW`); the measured times `<results>/timings/<judge>/moderation_latency.csv`
(Latency row). The defenses themselves run inside inference
(`safemt.moderation`); the table is computed by `safemt.metrics.moderation`.
"""

from __future__ import annotations

from typing import Any


def run(params: dict[str, Any], judgments: list[str], generations: list[str], out_dir: str,
        benign_judgments: list[str] | None = None, benign_generations: list[str] | None = None,
        latency_out: str | None = None) -> Any:
    """The table and its summary section; the measured times to `latency_out` (not a metric)."""
    from safemt.config import fill_defaults
    from safemt.metrics.moderation import write_moderation
    from safemt.stages.metrics import metrics_options

    settings = fill_defaults(params).get("moderation")
    return write_moderation(metrics_options(params), list(params["turns"]), settings, judgments, generations,
                            out_dir, benign_judgments=benign_judgments or [],
                            benign_generations=benign_generations or [], latency_out=latency_out)
