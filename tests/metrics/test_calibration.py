"""Metrics corrected for a judge's errors: per-stratum error rates, SI by multiple imputation, the
`safemt gold calibrate` command. Oracles come from docs/metrics.md ("Corrected metrics"): Bayes' rule
for the imputation, a perfect judge needs no correction, a stratum below the minimum cell size uses
the pooled rates and says so."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from safemt.metrics.calibration import (Calibration, compute_calibration, impute, resampled, unsafe_given_label)
from safemt.metrics.gold import GoldCounts, corrected_asr, rates_for, stratified_errors
from safemt.metrics.options import Bootstrap, MetricsOptions
from safemt.metrics.safety_index import LabelGrid, safety_index

TURNS = [1, 2, 4]


def _options(n: int = 100) -> MetricsOptions:
    return MetricsOptions(judges=None, missing_turns="error", weighting="exp", turn_index="count",
                          s2_labels="release", provider_refusals="safe", bootstrap=Bootstrap(n=n, seed=0))


def _records(labels: dict[tuple[str, int], str], model: str = "m") -> list[dict]:
    return [{"id": i, "turns": k, "model": model, "defense": "none", "judge": "j", "label": lab, "method": None,
             "scenario": "s"} for (i, k), lab in sorted(labels.items())]


def test_the_imputation_probabilities_are_bayes_rule() -> None:
    # sensitivity 0.8, specificity 0.9, true rate 0.3: of the replies called unsafe, 0.24 / (0.24 + 0.07)
    # are unsafe; of those called safe, 0.06 / (0.06 + 0.63)
    given_unsafe, given_safe = unsafe_given_label(np.array([0.3]), np.array([0.8]), np.array([0.9]))
    assert given_unsafe[0] == pytest.approx(0.24 / 0.31)
    assert given_safe[0] == pytest.approx(0.06 / 0.69)


def test_imputed_labels_have_the_corrected_rate_on_average() -> None:
    """A judge reporting 0.35 with sens 0.8 and spec 0.9 saw a true rate of 0.25 / 0.7."""
    n = 2000
    codes = np.array([2] * 700 + [1] * (n - 700), dtype=np.int8)  # 2 unsafe, 1 safe: raw 0.35
    grid = LabelGrid((1,), [str(i) for i in range(n)], np.arange(n), np.zeros(n, dtype=np.intp), codes)
    pi = np.array([(0.35 + 0.9 - 1) / 0.7])
    given_unsafe, given_safe = unsafe_given_label(pi, np.array([0.8]), np.array([0.9]))
    rng = np.random.default_rng(0)
    rates = [float((impute(grid, given_unsafe, given_safe, rng).code == 2).mean()) for _ in range(50)]
    assert np.mean(rates) == pytest.approx(pi[0], abs=0.005)


def test_a_resampled_grid_repeats_each_drawn_dialogue_with_all_its_labels() -> None:
    labels = {("a", 1): "safe", ("a", 2): "unsafe", ("b", 1): "unsafe", ("b", 2): "invalid", ("c", 2): "safe"}
    grid = LabelGrid.from_mapping(labels, [1, 2])
    base = np.arange(len(grid.names))  # each key is its own dialogue
    sample = resampled(grid, base, np.array([1, 1, 2]))  # b twice, c once
    assert len(sample.names) == 3
    got = sorted(sorted((int(t), int(c)) for kk, t, c in zip(sample.key, sample.tpos, sample.code) if kk == key)
                 for key in range(3))
    assert got == sorted([[(0, 2), (1, 3)], [(0, 2), (1, 3)], [(1, 1)]])


def test_a_perfect_judge_gets_back_its_raw_safety_index() -> None:
    rng = np.random.default_rng(3)
    labels = {(f"d{i}", k): "unsafe" if rng.random() < 0.2 * k else "safe" for i in range(60) for k in TURNS}
    gold = {("m", "none", i, k): lab for (i, k), lab in list(labels.items())[:80]}
    _, (row,), section = compute_calibration(_records(labels), gold, Calibration("g", "none", 1, 0.1, 5),
                                             TURNS, _options())
    raw = safety_index(labels, TURNS)
    assert row["si"] == pytest.approx(raw["si"]) and row["s2"] == pytest.approx(raw["s2"])
    assert row["si_raw"] == pytest.approx(raw["si"]) and row["si_lo"] <= raw["si"] <= row["si_hi"]
    assert section["errors"]["sensitivity"] == 1.0 and section["errors"]["specificity"] == 1.0
    assert section["models"]["m"]["none"]["si"] == row["si"]


def test_a_stratum_below_the_minimum_uses_the_pooled_rates_and_says_so() -> None:
    labels = {(f"d{i}", k): "unsafe" if i % 2 else "safe" for i in range(40) for k in TURNS}
    judged = _records(labels)
    # every gold label at length 4, and only four at length 1
    gold = {("m", "none", f"d{i}", 4): "unsafe" if i % 2 else "safe" for i in range(40)}
    gold.update({("m", "none", f"d{i}", 1): "unsafe" if i % 2 else "safe" for i in range(4)})
    errors = {"judge": "j", **stratified_errors(judged, gold, "turns", min_cell=10)}
    assert errors["strata"]["turns=4"]["usable"] and not errors["strata"]["turns=1"]["usable"]
    assert rates_for(errors, "m", 4)[1] == "turns=4"
    counts, source = rates_for(errors, "m", 1)
    assert source == "pooled (turns=1 has 2 unsafe and 2 safe gold labels; each needs 10)"
    assert counts == GoldCounts.of(errors)
    assert rates_for(errors, "m", 2)[1] == "pooled (turns=2 has no gold label)"


def test_the_corrected_asr_counts_only_judged_replies() -> None:
    """asr.csv's `n` already leaves out invalid and missing labels (docs/contracts.md)."""
    row = {"judge": "j", "model": "m", "defense": "none", "turns": "2", "n": "40", "invalid": "7", "missing": "3",
           "asr": "0.5"}
    (out,) = corrected_asr([row], {"judge": "j", "tp": 90, "fn": 10, "tn": 90, "fp": 10}, 50, 0)
    assert out["n_judged"] == 40


def test_the_corrected_si_interval_covers_the_population_value() -> None:
    """A small version of benchmarks/calibration.py's SI simulation (independent judge errors)."""
    spec = importlib.util.spec_from_file_location("calibration", Path(__file__).parents[2] / "benchmarks" /
                                                  "calibration.py")
    calibration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(calibration)
    result = calibration.si_uniform(reps=12, seed=2, replicates=100)
    assert result["si_coverage"] >= 0.75, result
    assert result["si_corrected_abs_error"] < result["si_raw_abs_error"], result


# --- the command --------------------------------------------------------------------------------------

def _project(tmp_path: Path, gold_lines: list[str]) -> tuple[Path, list[str]]:
    labels = {(f"d{i}", k): "unsafe" if (i + k) % 3 == 0 else "safe" for i in range(30) for k in TURNS}
    judgments = tmp_path / "judgments.jsonl"
    judgments.write_text("".join(json.dumps(r) + "\n" for r in _records(labels)))
    (tmp_path / "gold.jsonl").write_text("".join(line + "\n" for line in gold_lines))
    params = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    params["turns"] = TURNS
    params["metrics"].update({"bootstrap": {"n": 50, "seed": 0},
                              "calibration": {"j": {"gold": str(tmp_path / "gold.jsonl")}}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path / "params.yaml", [str(judgments)]


def _gold(i: int, k: int, label: str) -> str:
    return json.dumps({"id": f"d{i}", "turns": k, "model": "m", "defense": "none", "label": label})


def test_gold_calibrate_writes_the_corrected_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from safemt.cli import main
    from safemt.stages.metrics import calibrate

    lines = [_gold(i, k, "unsafe" if (i + k) % 3 == 0 else "safe") for i in range(20) for k in TURNS]
    params, inputs = _project(tmp_path, lines)
    out = tmp_path / "out"
    assert main(["gold", "calibrate", "--params", str(params), "--judge", "j", "-i", *inputs, "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["asr_corrected.csv", "calibration.json", "si_corrected.csv"]
    section = json.loads((out / "calibration.json").read_text())
    assert section["judge"] == "j" and section["n_gold"] == 60 and section["options"]["imputations"] == 20
    with pytest.raises(Exception, match="no gold labels in metrics.calibration"):
        calibrate(yaml.safe_load(params.read_text()), "other", inputs, str(out))


@pytest.mark.parametrize("bad, reason", [
    (_gold(99, 1, "safe"), "no judged reply"),
    (_gold(1, 1, "maybe"), "is not safe or unsafe"),
    (_gold(1, 1, "safe"), "duplicate"),
])
def test_a_malformed_gold_file_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                             bad: str, reason: str) -> None:
    from safemt.cli import main

    params, inputs = _project(tmp_path, [_gold(1, 1, "safe"), _gold(2, 2, "unsafe"), bad])
    out = tmp_path / "out"
    assert main(["gold", "calibrate", "--params", str(params), "--judge", "j", "-i", *inputs, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gold.jsonl" in err[0] and "record 3" in err[0], err
    assert reason in err[0] or (reason == "duplicate" and "twice" in err[0].lower()), err
    assert not out.exists()
