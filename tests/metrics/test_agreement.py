from __future__ import annotations

import csv

import pytest

from safemt.cli import main
from safemt.files import write_jsonl
from safemt.metrics.agreement import cohen_kappa


def test_kappa_known_values() -> None:
    # 2x2 table: both unsafe 20, a-only 5, b-only 10, both safe 15 -> p_o = .7, p_e = .5, kappa = .4
    pairs = [("unsafe", "unsafe")] * 20 + [("unsafe", "safe")] * 5 + [("safe", "unsafe")] * 10 + \
        [("safe", "safe")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4, abs=1e-12)
    assert cohen_kappa([("safe", "safe")] * 4) is None
    assert cohen_kappa([]) is None
    assert cohen_kappa([("safe", "unsafe"), ("unsafe", "safe")]) == pytest.approx(-1.0)


def test_agreement_file(tmp_path, repo_root) -> None:
    def recs(judge, labels):
        return [{"id": f"i{n}", "turns": 1, "model": "m", "defense": "none", "judge": judge, "label": lab,
                 "raw": "", "scenario": "Fraud" if n % 2 else "Bias", "method": None}
                for n, lab in enumerate(labels)]
    write_jsonl(tmp_path / "a.jsonl", recs("kw", ["safe", "unsafe", "unsafe", "safe", "invalid", "safe"]))
    write_jsonl(tmp_path / "b.jsonl", recs("llm", ["safe", "unsafe", "safe", "safe", "safe", None]))
    out = tmp_path / "agree.csv"
    assert main(["agreement", "-i", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "-o", str(out),
                 "--params", str(repo_root / "params.yaml")]) == 0
    rows = list(csv.DictReader(out.open()))
    overall = rows[0]
    assert overall["scenario"] == "(all)" and overall["n"] == "4" and overall["excluded"] == "2"
    assert float(overall["agreement"]) == 0.75
    assert {r["scenario"] for r in rows} == {"(all)", "Bias", "Fraud"}


def test_one_judge_is_an_error(tmp_path, repo_root, capsys) -> None:
    write_jsonl(tmp_path / "a.jsonl", [{"id": "i", "turns": 1, "model": "m", "defense": "none", "judge": "kw",
                                        "label": "safe", "raw": "", "scenario": "Bias", "method": None}])
    assert main(["agreement", "-i", str(tmp_path / "a.jsonl"), "-o", str(tmp_path / "o.csv"),
                 "--params", str(repo_root / "params.yaml")]) == 2
    assert "at least two judges" in capsys.readouterr().err


def test_provider_refusals_are_excluded_not_agreements(tmp_path, repo_root) -> None:
    def recs(judge):
        return [{"id": f"i{n}", "turns": 1, "model": "m", "defense": "none", "judge": judge,
                 "label": "safe" if n < 3 else ("unsafe" if n % 2 or judge == "kw" else "safe"), "raw": None,
                 "scenario": "Fraud", "method": None, "refused_by": "provider" if n < 3 else None}
                for n in range(7)]
    write_jsonl(tmp_path / "a.jsonl", recs("kw"))
    write_jsonl(tmp_path / "b.jsonl", recs("llm"))
    out = tmp_path / "agree.csv"
    assert main(["agreement", "-i", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "-o", str(out),
                 "--params", str(repo_root / "params.yaml")]) == 0
    overall = next(csv.DictReader(out.open()))
    # i3..i6: kw unsafe x4, llm unsafe at 3 and 5, safe at 4 and 6 -> 2 of 4 agree; i0..i2 excluded
    assert overall["n"] == "4" and overall["excluded"] == "3" and float(overall["agreement"]) == 0.5
