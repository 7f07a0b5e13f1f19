"""Metrics stage: judgments -> ASR, S1, S2, Safety Index with bootstrap CIs, breakdowns; judge agreement.

Inputs: one judge's judgments (Judgment contract), the moderation section when defenses ran.
Outputs: `<results>/metrics/<judge>/summary.json` and the CSVs of `safemt.layout.METRICS_FILES`
(rows in `safemt.records.METRICS_ROWS`), `<results>/scores/<judge>/` (DVC metrics),
`<results>/metrics/judge_agreement.csv` with two or more judges; on request, a sample of replies to
label by hand and a judge's error rates against those gold labels (`safemt gold`). Helpers:
`safemt.metrics` (`gold` for the gold labels, `calibration` for metrics corrected for a judge's errors).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from safemt.errors import SafemtError
from safemt.records import DEFAULT_SI_LABELS

if TYPE_CHECKING:
    from safemt.metrics.options import MetricsOptions


def metrics_options(params: dict[str, Any]) -> MetricsOptions:
    """The `metrics:` section as a `MetricsOptions`, the schema's defaults filled in."""
    from safemt.config import fill_defaults
    from safemt.metrics.options import MetricsOptions

    return MetricsOptions.from_config(fill_defaults(params)["metrics"])


def run(params: dict[str, Any], inputs: list[str], out_dir: str, scores_dir: str | None = None,
        moderation: str | None = None, calibration: str | None = None) -> dict[str, Any]:
    from safemt.metrics.summary import compute_metrics

    return compute_metrics(metrics_options(params), list(params["turns"]), inputs=inputs, out_dir=out_dir,
                           scores_dir=scores_dir, moderation=moderation, calibration=calibration)


def agreement(params: dict[str, Any], inputs: list[str], out: str) -> list[dict[str, Any]]:
    """Cohen's kappa and raw agreement per judge pair, overall and per scenario; with a graded and a
    binary judge among the inputs also GRADED_AGREEMENT_FILE beside OUT (the grades against each binary
    judge's labels), as the workflow declares it."""
    from safemt.metrics.agreement import write_agreement
    from safemt.metrics.graded import judges_by_kind
    from safemt.metrics.labels import load_judgments

    records = load_judgments(inputs)
    if all(judges_by_kind(records)):
        from safemt.layout import GRADED_AGREEMENT_FILE
        from safemt.metrics.graded import write_graded_agreement

        write_graded_agreement(records, Path(out).parent / GRADED_AGREEMENT_FILE)
    return write_agreement(inputs, out, records)


def gold_sample(inputs: list[str], dataset: str, generations: list[str], out: str, per_stratum: int,
                seed: int, si_labels: str = DEFAULT_SI_LABELS) -> int:
    """Write OUT, replies to label by hand: a seeded sample of each (model, turns, judge label) stratum
    of the judgments INPUTS, each with its dialogue (DATASET), answer (GENERATIONS) and `label: null`;
    a graded judge's labels follow SI_LABELS, as the metrics count them."""
    from safemt.files import read_records, write_jsonl
    from safemt.metrics.gold import gold_key, sample_for_labelling
    from safemt.metrics.labels import counted_judgments
    from safemt.records import GENERATION
    from safemt.stages.judging import load_dialogues

    if per_stratum < 1:
        raise SafemtError("--per-stratum must be at least 1")
    judgments = counted_judgments(inputs, si_labels)
    _one_judge(judgments, "sample")
    answers = {gold_key(g): g for g in read_records(generations, "generation", GENERATION.required,
                                                     key=lambda g: (*gold_key(g), g.get("method")))}
    dialogues = load_dialogues(dataset)
    rows = []
    for rec in sample_for_labelling(judgments, per_stratum, seed):
        answer, dialogue = answers.get(gold_key(rec)), dialogues.for_generation(rec)
        if answer is None or dialogue is None:
            raise SafemtError(f"no {'generation' if answer is None else 'dialogue'} for the judged reply of "
                              f"model {rec['model']} under {rec['defense']} at {rec['turns']} turns",
                              record_id=rec["id"])
        rows.append({"id": rec["id"], "turns": rec["turns"], "model": rec["model"], "defense": rec["defense"],
                     "scenario": dialogue.scenario, "question": dialogue.question,
                     "messages": [{"role": m.role, "content": m.content} for m in dialogue.messages],
                     "response": answer["response"], "judge": rec["judge"], "judge_label": rec["label"],
                     "label": None})
    write_jsonl(out, rows)
    return len(rows)


def _one_judge(judgments: list[dict[str, Any]], what: str) -> str:
    """The one judge of JUDGMENTS (else one line: gold labels are compared with one judge at a time)."""
    judges = sorted({r["judge"] for r in judgments})
    if len(judges) != 1:
        raise SafemtError(f"{what} one judge's labels at a time (the inputs hold {', '.join(judges) or 'none'})")
    return judges[0]


def gold_errors(inputs: list[str], gold: str, out: str, stratify: str = "none", min_cell: int = 20,
                si_labels: str = DEFAULT_SI_LABELS) -> dict[str, Any]:
    """Write OUT (JSON): the judge of INPUTS scored against the people's labels in GOLD, over the whole
    slice and, with STRATIFY (turns or model), per stratum (usable with MIN_CELL labels of each kind).
    A graded judge's labels follow SI_LABELS, so the rates are those of the labels the metrics count."""
    from safemt.files import write_json
    from safemt.metrics.gold import stratified_errors
    from safemt.metrics.labels import graded

    if min_cell < 1:
        raise SafemtError("--min-cell must be at least 1")
    judgments, labels = _judged_and_gold(inputs, gold, "score", si_labels)
    result = {"judge": judgments[0]["judge"], "gold": str(gold), "n_gold": len(labels),
              **({"si_labels": si_labels} if graded(judgments) else {}),
              **stratified_errors(judgments, labels, stratify, min_cell)}
    write_json(out, result)
    return result


def gold_correct(asr_csv: str, errors_json: str, out: str, n_resamples: int, seed: int, min_youden: float
                 ) -> list[dict[str, Any]]:
    """Write OUT (CSV): ASR_CSV's rows with ASR corrected for the judge's error rates (ERRORS_JSON, from
    `gold_errors`), a bootstrap interval over both samples, and why a cell is not corrected."""
    import json

    from safemt.files import read_rows, write_csv
    from safemt.metrics.gold import CORRECTED_COLUMNS, corrected_asr

    if n_resamples < 1:
        raise SafemtError("--n must be at least 1")
    try:
        errors = json.loads(Path(errors_json).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SafemtError(f"cannot read the judge's error rates ({exc})", file=str(errors_json)) from None
    rows = read_rows(asr_csv)
    corrected = corrected_asr(rows, errors, n_resamples, seed, min_youden)
    write_csv(out, corrected, list(CORRECTED_COLUMNS))
    return corrected


def _judged_and_gold(inputs: list[str], gold: str, what: str, si_labels: str = DEFAULT_SI_LABELS
                     ) -> tuple[list[dict[str, Any]], dict]:
    """One judge's judgments, labelled as the metrics count them, and the gold labels checked against
    them (every key a judged reply)."""
    from safemt.metrics.gold import gold_key, read_gold
    from safemt.metrics.labels import counted_judgments

    judgments = counted_judgments(inputs, si_labels)
    _one_judge(judgments, what)
    return judgments, read_gold(gold, known=[gold_key(r) for r in judgments])


def calibration_of(params: dict[str, Any], judge: str) -> Any:
    """`metrics.calibration.<judge>` as a `Calibration` (an unnamed judge is one line)."""
    from safemt.config import fill_defaults
    from safemt.metrics.calibration import Calibration

    section = (fill_defaults(params)["metrics"].get("calibration") or {})
    if judge not in section:
        raise SafemtError(f"judge {judge!r} has no gold labels in metrics.calibration "
                          f"(configured: {', '.join(sorted(section)) or 'none'})")
    return Calibration.from_config(section[judge])


def calibrate(params: dict[str, Any], judge: str, inputs: list[str], out_dir: str) -> dict[str, Any]:
    """Write asr_corrected.csv, si_corrected.csv and calibration.json (the summary's `calibration`
    section) into OUT_DIR: JUDGE's metrics corrected for its errors against its gold labels
    (`metrics.calibration.<judge>`). Every input is checked before anything is written."""
    from safemt.files import write_csv, write_json
    from safemt.layout import CALIBRATION_FILES
    from safemt.metrics.calibration import SI_CORRECTED_COLUMNS, compute_calibration
    from safemt.metrics.gold import CORRECTED_COLUMNS

    calibration, options = calibration_of(params, judge), metrics_options(params)
    judgments, labels = _judged_and_gold(inputs, calibration.gold, "calibrate", options.si_labels)
    if judgments[0]["judge"] != judge:
        raise SafemtError(f"the judgments are judge {judgments[0]['judge']}'s, not {judge}'s",
                          file=", ".join(inputs))
    asr_rows, si_rows, section = compute_calibration(judgments, labels, calibration, list(params["turns"]),
                                                     options)
    out = Path(out_dir)
    write_csv(out / CALIBRATION_FILES["asr"], asr_rows, list(CORRECTED_COLUMNS))
    write_csv(out / CALIBRATION_FILES["si"], si_rows, list(SI_CORRECTED_COLUMNS))
    write_json(out / CALIBRATION_FILES["section"], section)
    for row in si_rows:
        shown = "n/a" if row["si"] is None else f"{row['si']:.4f}"
        print(f"calibrate {judge}: {row['model']} [{row['defense']}] SI corrected {shown} ({row['status']})")
    return section
