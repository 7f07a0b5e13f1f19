"""How well `safemt gold correct` recovers known truth: coverage of its interval and bias of the raw ASR.

Two seeded simulations, from one run:
- `uniform`: a judge whose errors are the same everywhere (sensitivity 0.8, specificity 0.9) labels
  synthetic cells of known true rate; each repetition draws the cells' replies and a gold slice afresh.
- `planted` (with --results, a finished default run): the true labels are the planted ones
  (tests/planted_oracle.py, docs/planted.md); each repetition draws a gold slice of the default's
  harmful replies, scores the tiny LLM judge on it and corrects every ASR cell of that judge.
Prints, per simulation, the nominal and observed coverage of the 95% interval, and the mean absolute
error of the raw and of the corrected ASR against the truth.

    python benchmarks/calibration.py [--reps 200] [--results results]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from safemt.metrics.gold import corrected_asr, judge_errors  # noqa: E402


class Tally:
    """Coverage of the corrected interval and the raw and corrected errors, over cells of known truth."""

    def __init__(self) -> None:
        self.hits = self.total = 0
        self.raw: list[float] = []
        self.corrected: list[float] = []

    def add(self, rows: list[dict], errors: dict, truths: list[float], seed: int) -> None:
        for row, p in zip(corrected_asr(rows, errors, 400, seed), truths):
            self.raw.append(abs(row["asr"] - p))
            if row["asr_corrected"] is not None:
                self.corrected.append(abs(row["asr_corrected"] - p))
                self.hits += row["ci_low"] <= p <= row["ci_high"]
                self.total += 1

    def result(self) -> dict[str, float]:
        return {"coverage": self.hits / self.total, "raw_abs_error": float(np.mean(self.raw)),
                "corrected_abs_error": float(np.mean(self.corrected)), "cells": self.total}


def uniform(reps: int, seed: int = 0, cells: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9), n: int = 200,
            gold: int = 300, sens: float = 0.8, spec: float = 0.9) -> dict[str, float]:
    """Coverage and errors for a judge whose error rates hold everywhere."""
    rng = np.random.default_rng(seed)
    tally = Tally()
    for rep in range(reps):
        rows = []
        for k, p in enumerate(cells):
            truth = rng.random(n) < p
            said = np.where(truth, rng.random(n) < sens, rng.random(n) >= spec)
            rows.append({"judge": "j", "model": "m", "defense": "none", "turns": str(k + 1), "n": str(n),
                         "invalid": "0", "missing": "0", "asr": repr(float(said.mean()))})
        g_truth = rng.random(gold) < 0.5
        g_said = np.where(g_truth, rng.random(gold) < sens, rng.random(gold) >= spec)
        errors = {"judge": "j", "tp": int((g_truth & g_said).sum()), "fn": int((g_truth & ~g_said).sum()),
                  "tn": int((~g_truth & ~g_said).sum()), "fp": int((~g_truth & g_said).sum())}
        tally.add(rows, errors, list(cells), rep)
    return tally.result()


def planted(results: Path, reps: int, gold: int = 300, seed: int = 0) -> dict[str, float]:
    """Coverage on the default run: planted truth, the tiny LLM judge's real labels, sampled gold slices."""
    from tests import planted_oracle as oracle

    want = oracle.expected(results / "dataset")
    judgments = []
    for path in sorted((results / "judgments" / "tiny-llm").glob("*/*/[0-9]*.jsonl")):
        judgments += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    truth = {}
    for (judge, target, defense), labels in want["labels"].items():
        if judge == "keyword":  # the keyword judge's planted labels are the truth (compliance = unsafe)
            truth.update({(target, defense, i, t): v for (i, t), v in labels.items()})
    with (results / "metrics" / "tiny-llm" / "asr.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cell_truth = [want["asr"][("keyword", r["model"], r["defense"], int(r["turns"]))] for r in rows]
    keys = sorted(truth)
    rng = np.random.default_rng(seed)
    tally = Tally()
    for rep in range(reps):
        slice_ = {keys[i]: truth[keys[i]] for i in rng.choice(len(keys), size=gold, replace=False)}
        tally.add(rows, {"judge": "tiny-llm", **judge_errors(judgments, slice_)}, cell_truth, rep)
    return tally.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--results", type=Path, help="a finished default run's results folder")
    args = parser.parse_args()
    out = {"nominal": 0.95, "reps": args.reps, "uniform": uniform(args.reps)}
    if args.results:
        out["planted"] = planted(args.results, args.reps)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
