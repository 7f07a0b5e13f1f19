"""Metrics stage: judgments -> summary.json (full precision) plus tidy CSVs for plots and tables."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from safemt import __version__
from safemt.hashing import stable_hash
from safemt.errors import SafemtError
from safemt.layout import METRICS_FILES
from safemt.files import write_csv, write_json
from safemt.judges.parsing import parse_counts
from safemt.metrics import extras
from safemt.metrics.bootstrap import proportion_ci, rng_for
from safemt.metrics.labels import effective_labels, group_by, load_judgments, method_chains, provider_refused
from safemt.metrics.options import Bootstrap, MetricsOptions
from safemt.metrics.safety_index import MissingTurnError, s2, safety_index
from safemt.records import ASR_ROW, METHOD_ROW, SCENARIO_ROW, SI_ROW, VERDICTS


def _cell_stats(recs: list[dict[str, Any]], cell: tuple, boot: Bootstrap) -> dict[str, Any]:
    """ASR with CI and the counts behind it, for one group of judgments."""
    labels = [r["label"] for r in recs]
    valid = np.array([lab == "unsafe" for lab in labels if lab in VERDICTS], dtype=float)
    ci = proportion_ci(valid, boot.n, rng_for(boot.seed, *cell))
    return {
        "n": int(len(valid)),
        "unsafe": int(valid.sum()),
        "invalid": sum(lab == "invalid" for lab in labels),
        "missing": sum(lab is None for lab in labels),
        "refused_by_provider": sum(provider_refused(r) for r in recs),
        "asr": float(valid.mean()) if len(valid) else None,
        "ci95": list(ci) if ci else None,
    }


def model_metrics(recs: list[dict[str, Any]], model: str, defense: str, turns: list[int],
                  options: MetricsOptions) -> dict:
    """SI, S1, S2 and ASR with CIs per length for one model x defense."""
    turns = list(turns)
    labels, chains = method_chains(recs)
    missing_turns = options.missing_turns
    try:
        si = safety_index(labels, turns, **options.si_options())
    except MissingTurnError as exc:
        hint = ("; run those turns or set metrics.missing_turns: renormalize"
                if missing_turns == "error" and "any turn length" not in str(exc) else "")
        raise SafemtError(f"{exc} for model {model!r}, defense {defense!r}{hint}") from None
    if si["missing_turns"]:
        print(f"safemt: metrics: {model} [{defense}] has no valid labels at turn length(s) {si['missing_turns']}; "
              f"weights renormalized over {[int(k) for k in si['weights']]}", file=sys.stderr)
    if chains is not None:  # several methods share a length: S2 per (id, method), SI from it
        si = {**si, "s2": s2({k: lab for k, lab in chains.items() if k[1] in turns}, options.s2_labels)}
        si["si"] = si["s1"] * si["s2"]
    by_turn = defaultdict(list)
    for r in recs:
        by_turn[r["turns"]].append(r)
    cells = {k: _cell_stats(by_turn.get(k, []), (model, defense, k), options.bootstrap) for k in turns}
    return {
        "si": si["si"], "s1": si["s1"], "s2": si["s2"],
        "asr": si["asr"],
        "asr_ci95": {str(k): c["ci95"] for k, c in cells.items()},
        "n": {str(k): c["n"] for k, c in cells.items()},
        "invalid": {str(k): c["invalid"] for k, c in cells.items()},
        "missing": {str(k): c["missing"] for k, c in cells.items()},
        "refused_by_provider": {str(k): c["refused_by_provider"] for k, c in cells.items()},
        "weights": si["weights"],
        "missing_turns": si["missing_turns"],
        "s2_per": "id" if chains is None else "id, method",
    }


def breakdown_rows(judge: str, recs: list[dict[str, Any]], field: str) -> list[dict]:
    """ASR by model x defense x turns x <field> (scenario or method); no CIs at this grain."""
    rows = []
    no_boot = Bootstrap(n=0, seed=0)
    for (model, defense, turns, value), group in group_by(recs, "model", "defense", "turns", field).items():
        c = _cell_stats(group, (model, defense, turns, field, value), no_boot)
        rows.append({"judge": judge, "model": model, "defense": defense, "turns": turns, field: value,
                     "n": c["n"], "unsafe": c["unsafe"], "invalid": c["invalid"], "missing": c["missing"],
                     "refused_by_provider": c["refused_by_provider"], "asr": c["asr"]})
    return rows


def write_extras(out: Path, scores_dir: str | None, judge: str, recs: list[dict[str, Any]],
                 summary: dict[str, Any], turns: list[int], options: MetricsOptions) -> None:
    """SI bootstrap CIs, dataset composition and (if asked) the flat per-cell scores for DVC."""
    si_ci = extras.si_ci_rows(judge, group_by(recs, "model", "defense"), turns, options)
    write_csv(out / METRICS_FILES["si_ci"], si_ci, extras.SI_CI_COLUMNS)
    counted = [r for r in recs if r["turns"] in turns]
    write_csv(out / METRICS_FILES["composition"], extras.composition_rows(counted), extras.COMPOSITION_COLUMNS)
    if scores_dir is not None:
        extras.write_scores(summary, scores_dir)


def compute_metrics(options: MetricsOptions, turns: list[int], inputs: list[str], out_dir: str,
                    scores_dir: str | None = None, moderation: str | None = None) -> dict[str, Any]:
    """summary.json and the metrics CSVs of one judge's judgments, counted at `turns` under `options`."""
    turns = list(turns)
    recs = load_judgments(inputs)
    if not recs:
        raise SafemtError("no judgments in the input files", file=", ".join(inputs))
    recs = effective_labels(recs, options.provider_refusals)
    judges = sorted({r["judge"] for r in recs})
    if len(judges) > 1:
        raise SafemtError(f"inputs mix judges {judges}; run metrics once per judge")
    judge = judges[0]

    outside = sorted({r["turns"] for r in recs} - set(turns))
    n_outside = sum(r["turns"] in outside for r in recs)
    if outside:
        print(f"safemt: metrics: {n_outside} judgments at turn length(s) {outside} are not in turns: "
              f"{turns} and are not counted", file=sys.stderr)
    summary: dict[str, Any] = {"judge": judge, "turns": turns, "models": {}}
    asr_rows, si_rows = [], []
    for (model, defense), group in group_by(recs, "model", "defense").items():
        m = model_metrics(group, model, defense, turns, options)
        summary["models"].setdefault(model, {})[defense] = m
        si_rows.append({"judge": judge, "model": model, "defense": defense,
                        "s1": m["s1"], "s2": m["s2"], "si": m["si"]})
        for k in turns:
            ci = m["asr_ci95"][str(k)] or [None, None]
            asr_rows.append({"judge": judge, "model": model, "defense": defense, "turns": k,
                             "n": m["n"][str(k)], "invalid": m["invalid"][str(k)],
                             "missing": m["missing"][str(k)],
                             "refused_by_provider": m["refused_by_provider"][str(k)], "asr": m["asr"][str(k)],
                             "ci_low": ci[0], "ci_high": ci[1]})
    summary["provenance"] = {
        "safemt": __version__,
        "judge_hashes": sorted({r.get("judge_hash") or "" for r in recs}),
        "metrics_params_hash": stable_hash({"turns": turns, "metrics": options.as_config()}),
        "options": options.recorded(),
        "bootstrap": options.bootstrap.as_dict(),
        "n_judgments": len(recs),
        "n_judgments_outside_turns": n_outside,
        "parse_counts": parse_counts(recs),  # how this judge's labels were read (issue 8)
    }

    if moderation:  # the moderation table's section (safemt moderation), copied as it is
        summary["moderation"] = json.loads(Path(moderation).read_text(encoding="utf-8"))
    out = Path(out_dir)
    write_json(out / METRICS_FILES["summary"], summary)
    write_csv(out / METRICS_FILES["asr"], asr_rows, list(ASR_ROW.names))
    write_csv(out / METRICS_FILES["si"], si_rows, list(SI_ROW.names))
    for field, contract in (("scenario", SCENARIO_ROW), ("method", METHOD_ROW)):
        write_csv(out / METRICS_FILES[f"by_{field}"], breakdown_rows(judge, recs, field), list(contract.names))
    write_extras(out, scores_dir, judge, recs, summary, turns, options)
    for row in si_rows:
        print(f"metrics {judge}: {row['model']} [{row['defense']}] SI {row['si']:.4f} "
              f"(S1 {row['s1']:.4f}, S2 {row['s2']:.4f})")
    return summary
