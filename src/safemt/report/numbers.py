"""Every number a paper's text quotes, as LaTeX macros (numbers.tex) and JSON (numbers.json).

Macro names are built deterministically from the quantity and the model (and defense, judge):
`\\siQwenTwoFiveVLSevenB` for the SI of "Qwen2.5-VL-7B": each run of letters keeps its letters with
the first upper-cased, each digit becomes its English word, everything else separates words.
Two names that collide are an error rather than a silent overwrite. Each JSON entry says where its
value comes from (file, row, column, or the formula of a derived number).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from safemt.errors import SafemtError
from safemt.files import atomic_write_text
from safemt.layout import (AGREEMENT_FILE, CALIBRATION_FILES, GRADED_AGREEMENT_FILE, GRADED_FILE, METRICS_FILES,
                           MODERATION_FILE, OptionalMetrics)
from safemt.metrics.moderation import pooled_moderation
from safemt.report.tables import num, read_rows

DIGITS = ["Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine"]
DECIMALS = 3


def camel(text: str) -> str:
    """'Qwen2.5-VL-7B' -> 'QwenTwoFiveVLSevenB'; 'guard_input' -> 'GuardInput'."""
    out = []
    for token in re.findall(r"[A-Za-z]+|\d", text):
        out.append(DIGITS[int(token)] if token.isdigit() else token[0].upper() + token[1:])
    return "".join(out)


def number_word(k: int) -> str:
    return camel(str(k))


def who(model: str, defense: str) -> str:
    """The macro part naming a model x defense cell: the model alone without a defense."""
    return camel(model) + ("" if defense == "none" else camel(defense))


class Numbers:
    """Collects macros; a second macro with the same name is an error."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def add(self, name: str, value: float | int | None, source: str, digits: int = DECIMALS) -> None:
        if value is None:
            return
        if not re.fullmatch(r"[a-z][A-Za-z]*", name):
            raise SafemtError(f"macro name {name!r} is not letters only")
        if name in self.items:
            raise SafemtError(f"two numbers map to the macro \\{name} ({self.items[name]['source']}; {source}); "
                              "rename a model or defense")
        text = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
        self.items[name] = {"value": value, "text": text, "source": source}


def per_model(n: Numbers, asr: list[dict[str, str]], si_ci: list[dict[str, str]]) -> None:
    for r in si_ci:
        cell = who(r["model"], r["defense"])
        where = f"{METRICS_FILES['si_ci']}: model={r['model']}, defense={r['defense']}"
        for col, q in (("si", "si"), ("s1", "sOne"), ("s2", "sTwo"), ("si_lo", "siLow"), ("si_hi", "siHigh")):
            n.add(f"{q}{cell}", num(r[col]), f"{where}, column {col}")
    by_cell: dict[tuple[str, str], dict[int, float]] = {}
    for r in asr:
        value = num(r["asr"])
        n.add(f"asr{number_word(int(r['turns']))}{who(r['model'], r['defense'])}", value,
              f"{METRICS_FILES['asr']}: model={r['model']}, defense={r['defense']}, turns={r['turns']}, column asr")
        if value is not None:
            by_cell.setdefault((r["model"], r["defense"]), {})[int(r["turns"])] = value
    increases = []
    for (model, defense), by_turn in sorted(by_cell.items()):
        if len(by_turn) < 2:
            continue
        lo, hi = min(by_turn), max(by_turn)
        slope = (by_turn[hi] - by_turn[lo]) / (hi - lo)
        n.add(f"asrPerTurn{who(model, defense)}", slope, f"derived: (asr at {hi} - asr at {lo}) / ({hi} - {lo}), "
              f"{METRICS_FILES['asr']} model={model}, defense={defense}", digits=4)
        if defense == "none":
            increases.append(slope)
    if increases:
        n.add("asrPerTurnMean", sum(increases) / len(increases),
              "derived: mean of asrPerTurn over the models without defense", digits=4)
    plain = [r for r in si_ci if r["defense"] == "none"]
    n.add("nModels", len(plain), f"{METRICS_FILES['si_ci']}: rows with defense=none")


def dataset(n: Numbers, comp: list[dict[str, str]]) -> None:
    n.add("nDialogues", sum(int(r["dialogues"]) for r in comp), f"{METRICS_FILES['composition']}: sum of dialogues")
    n.add("nScenarios", len({r["scenario"] for r in comp}), f"{METRICS_FILES['composition']}: distinct scenarios")
    for k in sorted({int(r["turns"]) for r in comp}):
        n.add(f"nDialogues{number_word(k)}Turn", sum(int(r["dialogues"]) for r in comp if int(r["turns"]) == k),
              f"{METRICS_FILES['composition']}: sum of dialogues at turns={k}")


def moderation(n: Numbers, mod: list[dict[str, str]]) -> None:
    pooled = pooled_moderation(mod)
    reductions: dict[str, list[float]] = {}
    for r in pooled:
        name = camel(r["target"]) + camel(r["defense"])
        where = f"{MODERATION_FILE}: target={r['target']}, defense={r['defense']}, turns=all"
        n.add(f"modAsr{name}", num(r["asr"]), f"{where}, column asr")
        n.add(f"modOverRefusal{name}", num(r["over_refusal"]), f"{where}, column over_refusal")
        red = num(r["asr_reduction"])
        if red is not None:
            n.add(f"modReduction{name}", red, f"{where}, column asr_reduction")
            reductions.setdefault(r["defense"], []).append(red)
    for defense, values in sorted(reductions.items()):
        n.add(f"modReductionMean{camel(defense)}", sum(values) / len(values),
              f"derived: mean of asr_reduction over targets, {MODERATION_FILE} defense={defense}, turns=all")


def agreement(n: Numbers, agree: list[dict[str, str]]) -> None:
    for r in agree:
        if r["scenario"] != "(all)":
            continue
        name = camel(r["judge_a"]) + camel(r["judge_b"])
        where = f"{AGREEMENT_FILE}: judge_a={r['judge_a']}, judge_b={r['judge_b']}, scenario=(all)"
        n.add(f"kappa{name}", num(r["kappa"]), f"{where}, column kappa")
        n.add(f"agreement{name}", num(r["agreement"]), f"{where}, column agreement")


def corrected(n: Numbers, asr: list[dict[str, str]], si: list[dict[str, str]]) -> None:
    """The metrics corrected for the judge's errors (a judge with gold labels): `corrSi...`, `corrAsr...`."""
    for r in si:
        cell = who(r["model"], r["defense"])
        where = f"{CALIBRATION_FILES['si']}: model={r['model']}, defense={r['defense']}"
        for col, q in (("si", "corrSi"), ("s1", "corrSOne"), ("s2", "corrSTwo"), ("si_lo", "corrSiLow"),
                       ("si_hi", "corrSiHigh")):
            n.add(f"{q}{cell}", num(r[col]), f"{where}, column {col}")
    for r in asr:
        where = f"{CALIBRATION_FILES['asr']}: model={r['model']}, defense={r['defense']}, turns={r['turns']}"
        name = f"{number_word(int(r['turns']))}{who(r['model'], r['defense'])}"
        n.add(f"corrAsr{name}", num(r["asr_corrected"]), f"{where}, column asr_corrected")
        n.add(f"corrAsrLow{name}", num(r["ci_low"]), f"{where}, column ci_low")
        n.add(f"corrAsrHigh{name}", num(r["ci_high"]), f"{where}, column ci_high")


def graded(n: Numbers, rows: list[dict[str, str]]) -> None:
    """A graded judge's hard and soft ASR with their intervals: `hardAsr...`, `softAsrLow...`."""
    for r in rows:
        where = f"{GRADED_FILE}: model={r['model']}, defense={r['defense']}, turns={r['turns']}"
        name = f"{number_word(int(r['turns']))}{who(r['model'], r['defense'])}"
        for kind in ("hard", "soft"):
            n.add(f"{kind}Asr{name}", num(r[f"{kind}_asr"]), f"{where}, column {kind}_asr")
            n.add(f"{kind}AsrLow{name}", num(r[f"{kind}_ci_low"]), f"{where}, column {kind}_ci_low")
            n.add(f"{kind}AsrHigh{name}", num(r[f"{kind}_ci_high"]), f"{where}, column {kind}_ci_high")


def graded_agreement(n: Numbers, agree: list[dict[str, str]]) -> None:
    """A binary judge's agreement with a graded judge under each reading of the grade."""
    for r in agree:
        if r["scenario"] != "(all)":
            continue
        name = camel(r["judge_binary"]) + camel(r["judge_graded"])
        where = (f"{GRADED_AGREEMENT_FILE}: judge_binary={r['judge_binary']}, judge_graded={r['judge_graded']}, "
                 "scenario=(all)")
        for kind, word in (("hard", "Hard"), ("soft", "Soft")):
            n.add(f"gradedAgreement{word}{name}", num(r[f"agreement_{kind}"]), f"{where}, column agreement_{kind}")
            n.add(f"gradedKappa{word}{name}", num(r[f"kappa_{kind}"]), f"{where}, column kappa_{kind}")


def collect(metrics_dir: str | Path, optional: OptionalMetrics | None = None) -> Numbers:
    """Every number of the run (OPTIONAL: the optional files it made; None: whatever the folder holds)."""
    mdir = Path(metrics_dir)
    made = optional or OptionalMetrics.found(mdir)
    n = Numbers()
    per_model(n, read_rows(mdir / METRICS_FILES["asr"]), read_rows(mdir / METRICS_FILES["si_ci"]))
    dataset(n, read_rows(mdir / METRICS_FILES["composition"]))
    if made.moderation:
        moderation(n, read_rows(mdir / MODERATION_FILE))
    if made.agreement:
        agreement(n, read_rows(mdir.parent / AGREEMENT_FILE))
    if made.graded:
        graded(n, read_rows(mdir / GRADED_FILE))
    if made.graded_agreement:
        graded_agreement(n, read_rows(mdir.parent / GRADED_AGREEMENT_FILE))
    if made.calibrated:
        corrected(n, read_rows(mdir / CALIBRATION_FILES["asr"]), read_rows(mdir / CALIBRATION_FILES["si"]))
    return n


def to_tex(n: Numbers, judge: str) -> str:
    lines = [f"% generated by `safemt numbers` from the metrics of judge {judge}; do not edit",
             "% \\input{numbers.tex} in the paper, then write e.g. \\siTinyVlmA in the text"]
    for name in sorted(n.items):
        lines.append(f"\\newcommand{{\\{name}}}{{{n.items[name]['text']}}}  % {n.items[name]['source']}")
    return "\n".join(lines) + "\n"


def write_numbers(metrics_dir: str | Path, tex: str | Path, js: str | Path,
                  optional: OptionalMetrics | None = None) -> dict[str, dict[str, Any]]:
    n = collect(metrics_dir, optional)
    judge = Path(metrics_dir).name
    atomic_write_text(tex, to_tex(n, judge))
    atomic_write_text(js, json.dumps({"judge": judge, "numbers": dict(sorted(n.items.items()))}, indent=2,
                                     sort_keys=False) + "\n")
    print(f"numbers: {len(n.items)} macros in {tex} and {js}")
    return n.items
