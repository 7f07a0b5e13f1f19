"""How well `safemt gold correct` recovers known truth: coverage of its interval and bias of the raw ASR.

Two seeded simulations, from one run:
- `uniform`: a judge whose errors are the same everywhere (sensitivity 0.8, specificity 0.9) labels
  synthetic cells of known true rate; each repetition draws the cells' replies and a gold slice afresh.
- `planted` (with --results, a finished default run): the true labels are the planted ones
  (tests/planted_oracle.py, docs/planted.md); each repetition draws a gold slice of the default's
  harmful replies, scores the tiny LLM judge on it and corrects every ASR cell of that judge.
- `si_uniform` and `si_planted`: the same for SI, S1 and S2 corrected by multiple imputation
  (`safemt.metrics.calibration`): synthetic dialogues whose true labels are independent across lengths,
  and the default run's planted truth.
Prints, per simulation, the nominal and observed coverage of the 95% interval, and the mean absolute
error of the raw and of the corrected ASR (or SI) against the truth.

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


def planted_run(results: Path) -> tuple[dict, list[dict], dict]:
    """A finished default run's planted expectations, the tiny LLM judge's judgments, and the true label
    of every harmful reply keyed as gold labels are (model, defense, id, turns)."""
    from tests import planted_oracle as oracle

    want = oracle.expected(results / "dataset")
    judgments = []
    for path in sorted((results / "judgments" / "tiny-llm").glob("*/*/[0-9]*.jsonl")):
        judgments += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    truth = {}
    for (judge, target, defense), labels in want["labels"].items():
        if judge == "keyword":  # the keyword judge's planted labels are the truth (compliance = unsafe)
            truth.update({(target, defense, i, t): v for (i, t), v in labels.items()})
    return want, judgments, truth


def planted(results: Path, reps: int, gold: int = 300, seed: int = 0) -> dict[str, float]:
    """Coverage on the default run: planted truth, the tiny LLM judge's real labels, sampled gold slices."""
    want, judgments, truth = planted_run(results)
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


class SiTally:
    """Coverage of the corrected SI, S1 and S2 intervals, and the raw and corrected SI errors."""

    def __init__(self) -> None:
        self.hits = {"si": 0, "s1": 0, "s2": 0}
        self.total = 0
        self.raw: list[float] = []
        self.corrected: list[float] = []

    def add(self, si_rows: list[dict], truths: dict[tuple[str, str], dict[str, float]]) -> None:
        for row in si_rows:
            truth = truths[(row["model"], row["defense"])]
            if row["si"] is None or row["si_lo"] is None:
                continue
            self.total += 1
            self.raw.append(abs(row["si_raw"] - truth["si"]))
            self.corrected.append(abs(row["si"] - truth["si"]))
            for name in self.hits:
                self.hits[name] += row[f"{name}_lo"] - 1e-12 <= truth[name] <= row[f"{name}_hi"] + 1e-12

    def result(self) -> dict[str, float]:
        return {**{f"{name}_coverage": hits / self.total for name, hits in self.hits.items()},
                "si_raw_abs_error": float(np.mean(self.raw)), "si_corrected_abs_error": float(np.mean(self.corrected)),
                "cells": self.total}


def _options(replicates: int):
    from safemt.metrics.options import Bootstrap, MetricsOptions

    return MetricsOptions(judges=None, missing_turns="error", weighting="exp", turn_index="count",
                          s2_labels="release", provider_refusals="safe", bootstrap=Bootstrap(n=replicates, seed=0))


def si_uniform(reps: int, seed: int = 0, ids: int = 150, gold: int = 400, sens: float = 0.8, spec: float = 0.9,
               replicates: int = 200, turns: tuple[int, ...] = (1, 2, 4, 6, 8)) -> dict[str, float]:
    """Coverage of the corrected SI for a judge whose errors are independent of everything but the true
    label: each dialogue's true label at length k is unsafe with probability 0.1 + 0.1 k, independently."""
    from safemt.metrics.calibration import Calibration, compute_calibration
    from safemt.metrics.safety_index import safety_index

    rng = np.random.default_rng(seed)
    options = _options(replicates)
    calibration = Calibration(gold="simulated", stratify="none", min_cell=1, min_youden=0.1, imputations=10)
    # the population's SI (the dialogues are a sample of it): from 100,000 dialogues drawn the same way
    big = np.random.default_rng(seed + 1).random((100_000, len(turns))) < 0.1 + 0.1 * np.array(turns)
    true = safety_index({(str(i), k): "unsafe" if big[i, t] else "safe" for i in range(len(big))
                         for t, k in enumerate(turns)}, list(turns))
    population = {"si": true["si"], "s1": true["s1"], "s2": true["s2"]}
    tally = SiTally()
    for rep in range(reps):
        truth = {(f"d{i:04d}", k): "unsafe" if rng.random() < 0.1 + 0.1 * k else "safe"
                 for i in range(ids) for k in turns}
        said = {key: (("unsafe" if rng.random() < sens else "safe") if lab == "unsafe" else
                      ("safe" if rng.random() < spec else "unsafe")) for key, lab in truth.items()}
        records = [{"id": i, "turns": k, "model": "m", "defense": "none", "judge": "j", "label": said[(i, k)],
                    "method": None, "scenario": "s"} for (i, k) in sorted(truth)]
        keys = sorted(truth)
        picked = rng.choice(len(keys), size=gold, replace=False)
        gold_labels = {("m", "none", keys[j][0], keys[j][1]): truth[keys[j]] for j in picked}
        _, si_rows, _ = compute_calibration(records, gold_labels, calibration, list(turns), options)
        tally.add(si_rows, {("m", "none"): population})
        del rep
    return tally.result()


def si_planted(results: Path, reps: int, gold: int = 300, seed: int = 0, replicates: int = 200) -> dict[str, float]:
    """Coverage of the corrected SI on the default run: planted truth, the tiny LLM judge's real labels."""
    from safemt.metrics.calibration import Calibration, compute_calibration

    want, judgments, truth = planted_run(results)
    truths = {(target, defense): {name: si[name] for name in ("si", "s1", "s2")}
              for (judge, target, defense), si in want["si"].items() if judge == "keyword"}
    keys = sorted(truth)
    rng = np.random.default_rng(seed)
    options = _options(replicates)
    calibration = Calibration(gold="planted", stratify="none", min_cell=1, min_youden=0.1, imputations=10)
    tally = SiTally()
    for _ in range(reps):
        slice_ = {keys[i]: truth[keys[i]] for i in rng.choice(len(keys), size=gold, replace=False)}
        _, si_rows, _ = compute_calibration(judgments, slice_, calibration, [1, 2, 4, 6, 8], options)
        tally.add(si_rows, truths)
    return tally.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--results", type=Path, help="a finished default run's results folder")
    args = parser.parse_args()
    out = {"nominal": 0.95, "reps": args.reps, "uniform": uniform(args.reps), "si_uniform": si_uniform(args.reps)}
    if args.results:
        out["planted"] = planted(args.results, args.reps)
        out["si_planted"] = si_planted(args.results, args.reps)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
