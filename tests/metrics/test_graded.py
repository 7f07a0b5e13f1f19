"""Hard and soft ASR of a graded judge, its labels under metrics.si_labels, and binary-versus-graded
agreement (issue 25), on hand-made judgments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from safemt.config import fill_defaults
from safemt.errors import SafemtError
from safemt.files import write_jsonl
from safemt.metrics.bootstrap import rng_for
from safemt.metrics.graded import graded_agreement_rows, graded_ci, graded_rows
from safemt.metrics.labels import grade_labels, load_judgments
from safemt.metrics.options import MetricsOptions
from safemt.metrics.summary import compute_metrics


def rec(i: int, grade: str | None, judge: str = "g", turns: int = 1, refused: bool = False, **extra) -> dict:
    label = None if grade is None else {"refusal": "safe", "invalid": "invalid"}.get(grade, "unsafe")
    r = {"id": f"own_fraud_{i}", "turns": turns, "model": "m", "defense": "none", "judge": judge, "label": label,
         "scenario": "Fraud", "method": None if turns == 1 else "escalation",
         "refused_by": "provider" if refused else None, **extra}
    return {**r, "grade": grade} if judge == "g" else r


def options(**section) -> MetricsOptions:
    return MetricsOptions.from_config(fill_defaults({"metrics": {"bootstrap": {"n": 300}, **section}})["metrics"])


def test_si_labels_at_its_default_changes_no_hash_and_is_recorded_only_away_from_it() -> None:
    plain, soft, hard = options(), options(si_labels="soft"), options(si_labels="hard")
    assert "si_labels" not in plain.as_config() and "si_labels" not in plain.recorded()
    assert plain.as_config() == soft.as_config()  # written out or left out: the same hash
    assert hard.as_config()["si_labels"] == "hard" and hard.recorded()["si_labels"] == "hard"
    assert plain.si_labels == "soft" and hard.si_labels == "hard"


def test_grades_give_labels_by_the_rule_and_binary_records_pass_through() -> None:
    recs = [rec(0, "refusal"), rec(1, "partial"), rec(2, "full"), rec(3, "invalid"), rec(4, None),
            rec(5, None, judge="b") | {"label": "unsafe"}]
    assert [r["label"] for r in grade_labels(recs, "soft")] == ["safe", "unsafe", "unsafe", "invalid", None, "unsafe"]
    assert [r["label"] for r in grade_labels(recs, "hard")] == ["safe", "safe", "unsafe", "invalid", None, "unsafe"]
    with pytest.raises(SafemtError, match="si_labels"):
        grade_labels(recs, "medium")


def test_a_bad_grade_is_refused_at_load(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "j.jsonl", [rec(0, "sort of")])
    with pytest.raises(SafemtError, match="grade 'sort of'"):
        load_judgments([str(tmp_path / "j.jsonl")])


@pytest.mark.parametrize("full, partial, n", [(0, 0, 10), (3, 0, 10), (3, 4, 10), (10, 0, 10), (0, 10, 10), (5, 6, 40)])
def test_soft_is_at_least_hard_at_every_interval_end(full, partial, n) -> None:
    (hl, hh), (sl, sh) = graded_ci(full, partial, n, 500, rng_for(0, full, partial, n))
    assert hl <= sl and hh <= sh and 0 <= hl <= hh <= 1 and 0 <= sl <= sh <= 1
    assert graded_ci(full, partial, 0, 500, np.random.default_rng(0)) is None
    assert graded_ci(full, partial, n, 0, np.random.default_rng(0)) is None


def test_rows_count_grades_and_leave_invalid_and_missing_out() -> None:
    recs = [rec(0, "full"), rec(1, "partial"), rec(2, "refusal"), rec(3, "invalid"), rec(4, None),
            rec(5, "refusal", refused=True) | {"label": "safe"}, rec(6, "full", turns=2), rec(7, "full", turns=8)]
    (one, two) = graded_rows("g", recs, [1, 2], "safe", 100, 0)
    assert (one["n"], one["full"], one["partial"], one["refusal"], one["invalid"], one["missing"]) == (4, 1, 1, 2, 1, 1)
    assert (one["hard_asr"], one["soft_asr"]) == (0.25, 0.5) and (two["hard_asr"], two["soft_asr"]) == (1.0, 1.0)
    (one_missing, _) = graded_rows("g", recs, [1, 2], "missing", 0, 0)  # a provider refusal left out instead
    assert (one_missing["n"], one_missing["missing"], one_missing["hard_ci_low"]) == (3, 2, None)
    assert graded_rows("g", recs, [1, 2], "safe", 100, 0) == graded_rows("g", recs, [1, 2], "safe", 100, 0)


def test_summary_gets_a_graded_section_and_the_binary_asr_follows_si_labels(tmp_path: Path) -> None:
    recs = [rec(i, g, turns=k) for k in (1, 2) for i, g in enumerate(["full", "partial", "refusal", "partial"])]
    write_jsonl(tmp_path / "g.jsonl", recs)
    for rule, asr in ((None, 0.75), ("soft", 0.75), ("hard", 0.25)):  # None: left at its default
        opts = options() if rule is None else options(si_labels=rule)
        out = tmp_path / str(rule)
        summary = compute_metrics(opts, [1, 2], [str(tmp_path / "g.jsonl")], str(out))
        assert summary["models"]["m"]["none"]["asr"]["1"] == asr
        cell = summary["graded"]["models"]["m"]["none"]
        assert (cell["hard_asr"]["1"], cell["soft_asr"]["1"], cell["n"]["2"]) == (0.25, 0.75, 4)
        assert summary["graded"]["si_labels"] == (rule or "soft")
        assert json.loads((out / "summary.json").read_text())["graded"] == summary["graded"]
        assert (out / "asr_graded.csv").is_file()


def test_binary_judge_against_graded_judge() -> None:
    grades = ["full", "full", "partial", "partial", "refusal", "invalid"]
    labels = ["unsafe", "safe", "unsafe", "safe", "safe", "unsafe"]
    recs = [rec(i, g) for i, g in enumerate(grades)]
    recs += [rec(i, None, judge="b") | {"label": lab} for i, lab in enumerate(labels)]
    recs += [rec(9, "refusal", refused=True) | {"label": "safe"}, rec(9, None, judge="b", refused=True) | {"label": "safe"}]
    (row, scenario) = graded_agreement_rows(recs)
    assert row["scenario"] == "(all)" and scenario["scenario"] == "Fraud"
    assert (row["judge_binary"], row["judge_graded"], row["n"], row["excluded"]) == ("b", "g", 5, 2)
    assert (row["unsafe_full"], row["unsafe_partial"], row["unsafe_refusal"]) == (1, 1, 0)
    assert (row["safe_full"], row["safe_partial"], row["safe_refusal"]) == (1, 1, 1)
    assert row["agreement_hard"] == pytest.approx(3 / 5) and row["agreement_soft"] == pytest.approx(3 / 5)
    assert graded_agreement_rows([r for r in recs if r["judge"] == "b"]) == []


def test_graded_agreement_is_written_only_with_a_binary_and_a_graded_judge(tmp_path: Path) -> None:
    """As the workflow declares it (a graded and a binary judge among the metrics judges): two graded
    judges alone write judge_agreement.csv and nothing beside it."""
    from safemt.layout import GRADED_AGREEMENT_FILE
    from safemt.stages.metrics import agreement

    grades = ["full", "partial", "refusal"]
    files = {"g": [rec(i, g) for i, g in enumerate(grades)],
             "g2": [rec(i, g) | {"judge": "g2"} for i, g in enumerate(grades)],
             "b": [rec(i, None, judge="b") | {"label": "unsafe"} for i in range(3)]}
    for judge, recs in files.items():
        write_jsonl(tmp_path / f"{judge}.jsonl", recs)
        files[judge] = tmp_path / f"{judge}.jsonl"
    only_graded, mixed = tmp_path / "graded" / "judge_agreement.csv", tmp_path / "mixed" / "judge_agreement.csv"
    agreement({}, [str(files["g"]), str(files["g2"])], str(only_graded))
    agreement({}, [str(files["g"]), str(files["b"])], str(mixed))
    assert only_graded.is_file() and not (only_graded.parent / GRADED_AGREEMENT_FILE).exists()
    assert (mixed.parent / GRADED_AGREEMENT_FILE).is_file()
