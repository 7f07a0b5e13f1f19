"""summary.json and the CSVs: contract, determinism, CI seeding, error handling."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from safemt.cli import main
from safemt.files import write_jsonl

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


def contract_records(model: str, seed: int) -> list[dict]:
    """Judgments with invalid and null labels, provider refusals, ids missing at some lengths."""
    rng = random.Random(seed)
    recs = []
    p_unsafe = rng.random()
    for n in range(rng.randint(3, 25)):
        for k in K:
            if rng.random() < 0.15:
                continue
            roll = rng.random()
            refused = roll < 0.1
            label = ("safe" if refused else "invalid" if roll < 0.15 else None if roll < 0.2
                     else "unsafe" if rng.random() < p_unsafe else "safe")
            recs.append({"id": f"own_fraud_{n}", "turns": k, "model": model, "defense": "none", "judge": "keyword",
                         "label": label, "raw": None, "scenario": "Fraud", "method": None,
                         "error": "refused by provider" if refused else None if label else "boom",
                         "refused_by": "provider" if refused else None})
    for k in K:  # every length keeps a safe/unsafe label that is not a refusal
        recs.append({"id": f"own_fraud_anchor{k}", "turns": k, "model": model, "defense": "none",
                     "judge": "keyword", "label": rng.choice(["safe", "unsafe"]), "raw": None, "scenario": "Fraud",
                     "method": None, "error": None, "refused_by": None})
    return recs


METRIC_OPTIONS = [dict(s2_labels=a, missing_turns=b, weighting=c, turn_index=d, provider_refusals=e)
                  for a in ("release", "valid_only") for b in ("error", "renormalize") for c in ("exp", "uniform")
                  for d in ("count", "first_is_zero") for e in ("safe", "missing")]


@pytest.mark.parametrize("options", METRIC_OPTIONS, ids=lambda o: "-".join(o.values()))
def test_summary_equals_the_contract_reference_for_every_option(tmp_path, repo_root, options) -> None:
    from tests.metrics.contract_reference import reference_metrics

    recs = contract_records("m-a", 1) + contract_records("m-b", 2)
    write_jsonl(tmp_path / "j.jsonl", recs)
    p = params_file(tmp_path, repo_root, **options)
    assert main(["metrics", "-i", str(tmp_path / "j.jsonl"), "-o", str(tmp_path / "out"), "--params", p]) == 0
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["provenance"]["options"] == options
    for model in ("m-a", "m-b"):
        want = reference_metrics([r for r in recs if r["model"] == model], K, **options)
        got = s["models"][model]["none"]
        for key in ("s1", "s2", "si"):
            assert abs(got[key] - want[key]) < 1e-12
        for k in K:
            assert abs(got["asr"][str(k)] - want["asr"][str(k)]) < 1e-12


def test_provider_refusals_are_counted_per_model_and_length(tmp_path, repo_root) -> None:
    import csv

    recs = contract_records("m-a", 5)
    write_jsonl(tmp_path / "j.jsonl", recs)
    for mode in ("safe", "missing"):
        out = tmp_path / mode
        assert main(["metrics", "-i", str(tmp_path / "j.jsonl"), "-o", str(out),
                     "--params", params_file(tmp_path, repo_root, provider_refusals=mode)]) == 0
        cell = json.loads((out / "summary.json").read_text())["models"]["m-a"]["none"]
        rows = {int(r["turns"]): r for r in csv.DictReader((out / "asr.csv").open())}
        for k in K:
            at_k = [r for r in recs if r["turns"] == k]
            refused = sum(r["refused_by"] == "provider" for r in at_k)
            valid = sum(r["label"] in ("safe", "unsafe") for r in at_k)
            nulls = sum(r["label"] is None for r in at_k)
            assert cell["refused_by_provider"][str(k)] == refused == int(rows[k]["refused_by_provider"])
            assert cell["n"][str(k)] == (valid if mode == "safe" else valid - refused)
            assert cell["missing"][str(k)] == (nulls if mode == "safe" else nulls + refused)
        assert sum(r["refused_by"] == "provider" for r in recs) > 0


def test_renormalize_with_nothing_valid_is_one_line_not_nan(tmp_path, repo_root, capsys) -> None:
    recs = [{**r, "label": "invalid"} for r in judgments("m-a", 6)]
    write_jsonl(tmp_path / "j.jsonl", recs)
    rc = main(["metrics", "-i", str(tmp_path / "j.jsonl"), "-o", str(tmp_path / "out"),
               "--params", params_file(tmp_path, repo_root, missing_turns="renormalize")])
    err = capsys.readouterr().err
    assert rc == 2 and "no valid labels at any turn length" in err and "m-a" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_renormalized_lengths_are_logged_and_recorded(tmp_path, repo_root, capsys) -> None:
    recs = [r for r in judgments("m-a", 7) if r["turns"] != 8]
    write_jsonl(tmp_path / "j.jsonl", recs)
    assert main(["metrics", "-i", str(tmp_path / "j.jsonl"), "-o", str(tmp_path / "out"),
                 "--params", params_file(tmp_path, repo_root, missing_turns="renormalize")]) == 0
    assert "no valid labels at turn length(s) [8]; weights renormalized over [1, 2, 4, 6]" in capsys.readouterr().err
    text = (tmp_path / "out" / "summary.json").read_text()
    assert "NaN" not in text and json.loads(text)["models"]["m-a"]["none"]["missing_turns"] == [8]


def test_judgments_outside_turns_are_logged_and_counted(tmp_path, repo_root, capsys) -> None:
    recs = judgments("m-a", 8)
    recs += [{**r, "turns": 3} for r in recs if r["turns"] == 2]
    write_jsonl(tmp_path / "j.jsonl", recs)
    assert main(["metrics", "-i", str(tmp_path / "j.jsonl"), "-o", str(tmp_path / "out"),
                 "--params", params_file(tmp_path, repo_root)]) == 0
    assert "30 judgments at turn length(s) [3] are not in turns" in capsys.readouterr().err
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["provenance"]["n_judgments_outside_turns"] == 30


def test_metrics_page_lists_every_metrics_option_with_its_contract_default_and_existing_tests(repo_root) -> None:
    """The deviations table of docs/metrics.md is a claim: each enum option of `metrics` is there, its
    default is the schema's and params.yaml's, and every test it names exists."""
    import re

    import yaml

    from safemt.records import DEFAULT_SI_LABELS

    page = (repo_root / "docs" / "metrics.md").read_text(encoding="utf-8")
    table = page.split("## Deviations and options", 1)[1].split("\n\n", 2)[2]
    rows = {m.group(1): line for line in table.splitlines()
            if (m := re.match(r"\| `(\w+)` \| `(\w+)`", line))}
    schema = yaml.safe_load((repo_root / "workflow/schemas/params.schema.yaml").read_text())
    options = {k: v for k, v in schema["properties"]["metrics"]["properties"].items() if "enum" in v}
    params = yaml.safe_load((repo_root / "params.yaml").read_text())["metrics"]
    assert set(rows) == set(options)
    # No schema default, so that leaving it out changes no hash (like `judges`): the rule the code applies.
    unset = {"si_labels": DEFAULT_SI_LABELS}
    for name, spec in options.items():
        default = re.match(r"\| `\w+` \| `(\w+)`", rows[name]).group(1)
        expected = spec["default"] if "default" in spec else unset[name]
        assert default == expected == params.get(name, expected), name
        tests = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`|`::(\w+)`", rows[name])
        assert tests, name
        current = None
        for path, func, same_file_func in tests:
            current = path or current
            source = (repo_root / current).read_text(encoding="utf-8")
            assert f"def {func or same_file_func}(" in source, (name, current, func or same_file_func)


def test_nothing_valid_is_the_same_one_line_under_either_missing_turns(tmp_path, repo_root, capsys) -> None:
    recs = [{**r, "label": None} for r in judgments("m-a", 9)]
    write_jsonl(tmp_path / "j.jsonl", recs)
    for mode in ("error", "renormalize"):
        assert main(["metrics", "-i", str(tmp_path / "j.jsonl"), "-o", str(tmp_path / "out"),
                     "--params", params_file(tmp_path, repo_root, missing_turns=mode)]) == 2
        err = capsys.readouterr().err.strip()
        assert "no valid labels at any turn length" in err and "renormalize" not in err


# --- several methods at one length (dataset.method_assignment: all): S2 per (id, method) -------------

def _j(id_: str, turns: int, method: str | None, label: str) -> dict:
    return {"id": id_, "turns": turns, "model": "m", "defense": "none", "judge": "keyword", "label": label,
            "raw": "x", "scenario": "Fraud", "method": method, "error": None}


def test_s2_is_per_id_and_method_when_methods_share_a_length(tmp_path, repo_root) -> None:
    """Oracle from the S2 of docs/metrics.md, applied to each (id, method) chain with the id's 1-turn label:
    A: 1 unsafe, 2 unsafe, 4 safe -> r = [1, 1, 0], sigma = sqrt(2)/3; B: 1 unsafe, 2 safe, 4 safe ->
    r = [1, 0, 0], sigma = sqrt(2)/3. S2 = 1 - sqrt(2)/3."""
    recs = [_j("s", 1, None, "unsafe"), _j("s", 2, "roleplay", "unsafe"), _j("s", 4, "roleplay", "safe"),
            _j("s", 2, "escalation", "safe"), _j("s", 4, "escalation", "safe")]
    write_jsonl(tmp_path / "j.jsonl", recs)
    params = params_file(tmp_path, repo_root)
    import yaml

    p = yaml.safe_load(Path(params).read_text())
    p["turns"] = [1, 2, 4]
    Path(params).write_text(yaml.safe_dump(p))
    assert main(["metrics", "-i", str(tmp_path / "j.jsonl"), "-o", str(tmp_path / "m"), "--params", params]) == 0
    m = json.loads((tmp_path / "m" / "summary.json").read_text())["models"]["m"]["none"]
    assert m["s2_per"] == "id, method"
    assert m["s2"] == pytest.approx(1 - 2 ** 0.5 / 3)
    assert m["asr"] == {"1": 1.0, "2": 0.5, "4": 0.0}  # each dialogue counted once
    assert m["si"] == pytest.approx(m["s1"] * m["s2"])


def test_one_method_per_length_keeps_s2_per_id(tmp_path, files, repo_root) -> None:
    assert main(["metrics", "-i", *files, "-o", str(tmp_path / "m"), "--params", params_file(tmp_path, repo_root)]) == 0
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert {d["s2_per"] for per in summary["models"].values() for d in per.values()} == {"id"}


def _schema_defaults(repo_root: Path) -> dict:
    """The `metrics:` section with every default of the schema written out (`judges` has none)."""
    import yaml

    schema = yaml.safe_load((repo_root / "workflow/schemas/params.schema.yaml").read_text())
    props = schema["properties"]["metrics"]["properties"]
    written = {k: v["default"] for k, v in props.items() if "default" in v and k != "bootstrap"}
    written["bootstrap"] = {k: v["default"] for k, v in props["bootstrap"]["properties"].items()}
    return written


def test_a_default_written_out_changes_no_byte(tmp_path, files, repo_root) -> None:
    """Defaults live in the schema: no metrics section at all and one that writes out every schema
    default give the same bytes in every file, summary.json's params hash included."""
    import yaml

    base = yaml.safe_load((repo_root / "params.yaml").read_text())
    written = _schema_defaults(repo_root)
    outputs = {}
    for name, section in (("left_out", None), ("written", written)):
        p = {k: v for k, v in base.items() if k != "metrics"}
        if section is not None:
            p["metrics"] = section
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(p))
        out = tmp_path / name
        assert main(["metrics", "-i", *files, "-o", str(out / "m"), "--scores", str(out / "s"),
                     "--params", str(tmp_path / f"{name}.yaml")]) == 0
        outputs[name] = {str(f.relative_to(out)): f.read_bytes() for f in sorted(out.rglob("*")) if f.is_file()}
    assert outputs["left_out"] == outputs["written"] and len(outputs["written"]) >= 9
    s = json.loads(outputs["written"]["m/summary.json"])
    assert s["provenance"]["bootstrap"] == written["bootstrap"]
    assert s["provenance"]["options"] == {k: v for k, v in written.items() if k != "bootstrap"}
