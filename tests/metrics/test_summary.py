"""summary.json and the CSVs: contract, determinism, CI seeding, error handling."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from safemt.cli import main
from safemt.jsonl import write_jsonl

K = [1, 2, 4, 6, 8]


def judgments(model: str, seed: int, n_ids: int = 30, defense: str = "none") -> list[dict]:
    rng = random.Random(seed)
    recs = []
    for k in K:
        for n in range(n_ids):
            label = rng.choices(["safe", "unsafe", "invalid", None], weights=[50, 40, 5, 5])[0]
            recs.append({"id": f"own_fraud_{n}", "turns": k, "model": model, "defense": defense,
                         "judge": "keyword", "label": label, "raw": "x", "scenario": "Fraud",
                         "method": None if k == 1 else "escalation", "error": None if label else "boom"})
    return recs


@pytest.fixture()
def files(tmp_path: Path) -> list[str]:
    paths = []
    for m, seed in (("m-a", 1), ("m-b", 2)):
        p = tmp_path / f"{m}.jsonl"
        write_jsonl(p, judgments(m, seed))
        paths.append(str(p))
    return paths


def params_file(tmp_path: Path, repo_root: Path, **metrics) -> str:
    import yaml

    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["metrics"].update(metrics)
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(params))
    return str(p)


def test_summary_contract_and_counts(tmp_path, files, repo_root) -> None:
    out = tmp_path / "m"
    assert main(["metrics", "-i", *files, "-o", str(out), "--params", params_file(tmp_path, repo_root)]) == 0
    s = json.loads((out / "summary.json").read_text())
    cell = s["models"]["m-a"]["none"]
    for key in ("si", "s1", "s2", "asr", "asr_ci95", "n", "invalid", "missing"):
        assert key in cell
    assert set(cell["asr"]) == {str(k) for k in K}
    recs = judgments("m-a", 1)
    at1 = [r["label"] for r in recs if r["turns"] == 1]
    assert cell["n"]["1"] == sum(lab in ("safe", "unsafe") for lab in at1)
    assert cell["invalid"]["1"] == at1.count("invalid")
    assert cell["missing"]["1"] == at1.count(None)
    lo, hi = cell["asr_ci95"]["1"]
    assert lo <= cell["asr"]["1"] <= hi
    assert {p.name for p in out.iterdir()} >= {"summary.json", "asr.csv", "si.csv", "asr_by_scenario.csv",
                                                 "asr_by_method.csv"}


def test_byte_identical_and_seeded_cis(tmp_path, files, repo_root) -> None:
    p0 = params_file(tmp_path, repo_root)
    for name in ("a", "b"):
        assert main(["metrics", "-i", *files, "-o", str(tmp_path / name), "--params", p0]) == 0
    for f in ("summary.json", "asr.csv", "si.csv", "asr_by_scenario.csv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    (tmp_path / "seed").mkdir()
    p1 = params_file(tmp_path / "seed", repo_root, bootstrap={"n": 200, "seed": 7})
    assert main(["metrics", "-i", *files, "-o", str(tmp_path / "c"), "--params", p1]) == 0
    a = json.loads((tmp_path / "a" / "summary.json").read_text())["models"]["m-a"]["none"]
    c = json.loads((tmp_path / "c" / "summary.json").read_text())["models"]["m-a"]["none"]
    assert a["si"] == c["si"] and a["asr"] == c["asr"]
    assert a["asr_ci95"] != c["asr_ci95"]


def test_missing_turn_length_fails_with_one_line(tmp_path, repo_root, capsys) -> None:
    recs = [r for r in judgments("m-a", 3) if r["turns"] != 8]
    write_jsonl(tmp_path / "j.jsonl", recs)
    rc = main(["metrics", "-i", str(tmp_path / "j.jsonl"), "-o", str(tmp_path / "out"),
               "--params", params_file(tmp_path, repo_root)])
    err = capsys.readouterr().err
    assert rc == 2 and "turn length(s) [8]" in err and "m-a" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_duplicate_and_bad_label_are_errors(tmp_path, repo_root, capsys) -> None:
    recs = judgments("m-a", 4)
    write_jsonl(tmp_path / "dup.jsonl", recs + recs[:1])
    p = params_file(tmp_path, repo_root)
    assert main(["metrics", "-i", str(tmp_path / "dup.jsonl"), "-o", str(tmp_path / "o"), "--params", p]) == 2
    assert "duplicate judgment" in capsys.readouterr().err
    recs[3]["label"] = "Unsafe."
    write_jsonl(tmp_path / "bad.jsonl", recs)
    assert main(["metrics", "-i", str(tmp_path / "bad.jsonl"), "-o", str(tmp_path / "o"), "--params", p]) == 2
    err = capsys.readouterr().err
    assert "record 4" in err and "own_fraud_3" in err
