"""Metrics stage: judgments -> summary.json (full precision) plus tidy CSVs for plots and tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from safemt import __version__
from safemt.hashing import stable_hash
from safemt.errors import SafemtError
from safemt.layout import GRADED_FILE, METRICS_FILES
from safemt.files import write_csv, write_json
from safemt.metrics import extras
from safemt.metrics.bootstrap import Scratch, count_ci, rng_for
from safemt.metrics.labels import counted_judgments, graded
from safemt.metrics.options import MetricsOptions
from safemt.metrics.safety_index import LabelGrid, MissingTurnError, grid_scores
from safemt.metrics.table import JudgmentTable, group_sort_key
from safemt.records import ASR_ROW, METHOD_ROW, SCENARIO_ROW, SI_ROW

_ZERO = {"records": 0, "n": 0, "unsafe": 0, "invalid": 0, "missing": 0, "refused": 0}


def _cell_stats(t: dict[str, int], cell: tuple, n_resamples: int, seed: int) -> dict[str, Any]:
    """ASR with CI and the counts behind it, for one group of judgments (its `JudgmentTable.tally`)."""
    ci = count_ci(t["unsafe"], t["n"], n_resamples, rng_for(seed, *cell)) if n_resamples and t["n"] else None
    return {
        "n": t["n"],
        "unsafe": t["unsafe"],
        "invalid": t["invalid"],
        "missing": t["missing"],
        "refused_by_provider": t["refused"],
        "asr": t["unsafe"] / t["n"] if t["n"] else None,
        "ci95": list(ci) if ci else None,
    }


def model_metrics(table: JudgmentTable, rows: Any, counts: dict[tuple, dict[str, int]], model: str, defense: str,
                  turns: list[int], options: MetricsOptions) -> tuple[dict, tuple[LabelGrid, LabelGrid, dict]]:
    """SI, S1, S2 and ASR with CIs per length for one model x defense (its records `rows` of `table`,
    `counts` the table's tally by (model, defense, turns)), and its label grids and full-data scores
    for the SI bootstrap."""
    turns = list(turns)
    s1_grid, s2_grid, chains = table.grids(rows, turns)
    missing_turns = options.missing_turns
    try:
        si = grid_scores(s1_grid, turns, **options.si_options())
    except MissingTurnError as exc:
        hint = ("; run those turns or set metrics.missing_turns: renormalize"
                if missing_turns == "error" and "any turn length" not in str(exc) else "")
        raise SafemtError(f"{exc} for model {model!r}, defense {defense!r}{hint}") from None
    if si["missing_turns"]:
        print(f"safemt: metrics: {model} [{defense}] has no valid labels at turn length(s) {si['missing_turns']}; "
              f"weights renormalized over {[int(k) for k in si['weights']]}", file=sys.stderr)
    if chains:  # several methods share a length: S2 per (id, method), SI from it
        si = {**si, "s2": s2_grid.s2(options.s2_labels)}
        si["si"] = si["s1"] * si["s2"]
    boot = options.bootstrap
    cells = {k: _cell_stats(counts.get((model, defense, k), _ZERO), (model, defense, k), boot.n, boot.seed)
             for k in turns}
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
        "s2_per": "id" if not chains else "id, method",
    }, (s1_grid, s2_grid, si)


def breakdown_rows(judge: str, table: JudgmentTable, field: str) -> list[dict]:
    """ASR by model x defense x turns x <field> (scenario or method); no CIs at this grain."""
    rows = []
    tallies = table.tally("model", "defense", "turns", field)
    for (model, defense, turns, value), t in sorted(tallies.items(), key=lambda kv: group_sort_key(kv[0])):
        c = _cell_stats(t, (), 0, 0)
        rows.append({"judge": judge, "model": model, "defense": defense, "turns": turns, field: value,
                     "n": c["n"], "unsafe": c["unsafe"], "invalid": c["invalid"], "missing": c["missing"],
                     "refused_by_provider": c["refused_by_provider"], "asr": c["asr"]})
    return rows


def write_extras(out: Path, scores_dir: str | None, judge: str, table: JudgmentTable, grids: dict[tuple, tuple],
                 summary: dict[str, Any], turns: list[int], options: MetricsOptions) -> None:
    """SI bootstrap CIs, dataset composition and (if asked) the flat per-cell scores for DVC."""
    scratch = Scratch()
    si_ci = [{"judge": judge, "model": model, "defense": defense,
              **extras.grid_bootstrap(s1_grid, s2_grid, full, list(turns), options, (judge, model, defense), scratch)}
             for (model, defense), (s1_grid, s2_grid, full) in grids.items()]
    write_csv(out / METRICS_FILES["si_ci"], si_ci, extras.SI_CI_COLUMNS)
    write_csv(out / METRICS_FILES["composition"], extras.tally_rows(table.dialogues(turns)),
              extras.COMPOSITION_COLUMNS)
    if scores_dir is not None:
        extras.write_scores(summary, scores_dir)


def compute_metrics(options: MetricsOptions, turns: list[int], inputs: list[str], out_dir: str,
                    scores_dir: str | None = None, moderation: str | None = None, calibration: str | None = None
                    ) -> dict[str, Any]:
    """summary.json and the metrics CSVs of one judge's judgments, counted at `turns` under `options`."""
    turns = list(turns)
    # each file read once; a graded judge's binary labels follow metrics.si_labels (docs/metrics.md)
    recs = counted_judgments(inputs, options.si_labels)
    if not recs:
        raise SafemtError("no judgments in the input files", file=", ".join(inputs))
    is_graded = graded(recs)
    table = JudgmentTable(recs, options.provider_refusals)
    judges = sorted(set(table.values("judge")))
    if len(judges) > 1:
        raise SafemtError(f"inputs mix judges {judges}; run metrics once per judge")
    judge = judges[0]

    by_turns = table.tally("turns")
    outside = sorted({k for (k,) in by_turns} - set(turns))
    n_outside = sum(t["records"] for (k,), t in by_turns.items() if k in outside)
    if outside:
        print(f"safemt: metrics: {n_outside} judgments at turn length(s) {outside} are not in turns: "
              f"{turns} and are not counted", file=sys.stderr)
    summary: dict[str, Any] = {"judge": judge, "turns": turns, "models": {}}
    asr_rows, si_rows, grids = [], [], {}
    counts = table.tally("model", "defense", "turns")
    for (model, defense), rows in table.groups():
        m, grids[(model, defense)] = model_metrics(table, rows, counts, model, defense, turns, options)
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
        "judge_hashes": sorted({h or "" for h in table.values("judge_hash")}),
        "metrics_params_hash": stable_hash({"turns": turns, "metrics": options.as_config()}),
        "options": options.recorded(),
        "bootstrap": options.bootstrap.as_dict(),
        "n_judgments": len(table),
        "n_judgments_outside_turns": n_outside,
        "parse_counts": table.parse_counts(),  # how this judge's labels were read (issue 8)
    }

    graded_rows = None
    if is_graded:  # hard and soft ASR per cell, beside the binary ones (absent for a binary judge)
        from safemt.metrics.graded import GRADED_COLUMNS, graded_rows as rows_of, graded_section

        graded_rows = rows_of(judge, recs, turns, options.provider_refusals, options.bootstrap.n,
                              options.bootstrap.seed)
        summary["graded"] = graded_section(graded_rows, options.si_labels)
    if moderation:  # the moderation table's section (safemt moderation), copied as it is
        summary["moderation"] = json.loads(Path(moderation).read_text(encoding="utf-8"))
    if calibration:  # the judge's corrected metrics (safemt gold calibrate), beside the raw ones
        section = json.loads(Path(calibration).read_text(encoding="utf-8"))
        if section.get("judge") != judge:
            raise SafemtError(f"the calibration section is judge {section.get('judge')}'s, not {judge}'s",
                              file=calibration)
        summary["calibration"] = section
    out = Path(out_dir)
    write_json(out / METRICS_FILES["summary"], summary)
    write_csv(out / METRICS_FILES["asr"], asr_rows, list(ASR_ROW.names))
    write_csv(out / METRICS_FILES["si"], si_rows, list(SI_ROW.names))
    if graded_rows is not None:
        write_csv(out / GRADED_FILE, graded_rows, GRADED_COLUMNS)
    for field, contract in (("scenario", SCENARIO_ROW), ("method", METHOD_ROW)):
        write_csv(out / METRICS_FILES[f"by_{field}"], breakdown_rows(judge, table, field), list(contract.names))
    write_extras(out, scores_dir, judge, table, grids, summary, turns, options)
    for row in si_rows:
        print(f"metrics {judge}: {row['model']} [{row['defense']}] SI {row['si']:.4f} "
              f"(S1 {row['s1']:.4f}, S2 {row['s2']:.4f})")
    return summary
