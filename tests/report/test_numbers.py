"""numbers.tex / numbers.json: every macro equals its JSON value and the metrics it comes from."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from safemt.cli import main
from safemt.report.numbers import Numbers, camel
from safemt.errors import SafemtError

MACRO = re.compile(r"^\\newcommand\{\\([A-Za-z]+)\}\{([^}]*)\}", re.M)


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def numbers(results_tree: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("paper")
    assert main(["numbers", "--params", str(results_tree["params"]), "-i", str(results_tree["metrics"]),
                 "-o", str(out / "numbers.tex"), "--json", str(out / "numbers.json")]) == 0
    return {"tex": (out / "numbers.tex").read_text(), "json": json.loads((out / "numbers.json").read_text())}


def test_macro_names_from_model_and_quantity() -> None:
    # the example the issue gives: the SI of Qwen2.5-VL-7B is \siQwenTwoFiveVLSevenB
    assert "si" + camel("Qwen2.5-VL-7B") == "siQwenTwoFiveVLSevenB"
    assert camel("guard_input") == "GuardInput" and camel("tiny-vlm-a") == "TinyVlmA"
    n = Numbers()
    n.add("siAOne", 0.5, "first")
    with pytest.raises(SafemtError, match="two numbers"):
        n.add("siAOne", 0.6, "second")


def test_every_macro_equals_json_and_metrics(numbers: dict, results_tree: dict) -> None:
    macros = dict(MACRO.findall(numbers["tex"]))
    entries = numbers["json"]["numbers"]
    assert macros and set(macros) == set(entries)
    mdir = results_tree["metrics"]
    for name, text in macros.items():
        entry = entries[name]
        assert entry["text"] == text
        decimals = len(text.split(".")[1]) if "." in text else 0
        assert abs(float(text) - entry["value"]) <= 0.5 * 10 ** -decimals + 1e-12, name
        source = entry["source"]
        if source.startswith("derived:"):
            continue  # checked below from the contract's definition
        m = re.fullmatch(r"([\w.]+): (.*), column (\w+)", source) or re.fullmatch(r"([\w.]+): (.*)", source)
        assert m, source
        path = mdir / m.group(1) if (mdir / m.group(1)).exists() else mdir.parent / m.group(1)
        rows = _csv(path)
        if m.lastindex == 3:
            filters = dict(kv.split("=", 1) for kv in m.group(2).split(", "))
            hits = [r for r in rows if all(r[k] == v for k, v in filters.items())]
            assert len(hits) == 1, (name, source)
            assert float(hits[0][m.group(3)]) == entry["value"], name


def test_headline_numbers_against_summary(numbers: dict, results_tree: dict) -> None:
    """SI and ASR at 1 and 8 turns per model, and the mean ASR increase per added turn, from summary.json."""
    entries = numbers["json"]["numbers"]
    models = json.loads((results_tree["metrics"] / "summary.json").read_text())["models"]
    slopes = []
    for model, cells in models.items():
        cell = cells["none"]
        assert entries[f"si{camel(model)}"]["value"] == cell["si"]
        assert entries[f"asrOne{camel(model)}"]["value"] == cell["asr"]["1"]
        assert entries[f"asrEight{camel(model)}"]["value"] == cell["asr"]["8"]
        slope = (cell["asr"]["8"] - cell["asr"]["1"]) / 7
        assert entries[f"asrPerTurn{camel(model)}"]["value"] == pytest.approx(slope, abs=1e-12)
        slopes.append(slope)
    assert entries["asrPerTurnMean"]["value"] == pytest.approx(sum(slopes) / len(slopes), abs=1e-12)
    reductions = [float(r["asr_reduction"]) for r in _csv(results_tree["metrics"] / "moderation.csv")
                  if r["defense"] == "moderator" and r["turns"] == "all"]
    assert entries["modReductionMeanModerator"]["value"] == pytest.approx(sum(reductions) / len(reductions))
    kappa = [r for r in _csv(results_tree["results"] / "metrics" / "judge_agreement.csv") if r["scenario"] == "(all)"]
    assert entries["kappaKeywordLlm"]["value"] == float(kappa[0]["kappa"])
    assert entries["nDialogues"]["value"] == 255 and entries["nScenarios"]["value"] == 17


def test_files_an_earlier_configuration_left_are_not_read(results_tree: dict, tmp_path: Path) -> None:
    """A run without a graded judge or gold labels quotes no hard, soft or corrected number, whatever
    asr_graded.csv, graded_agreement.csv or asr_corrected.csv an earlier configuration left on disk."""
    import shutil

    shutil.copytree(results_tree["metrics"].parent, tmp_path / "metrics")
    metrics = tmp_path / "metrics" / "keyword"
    for stale in (metrics / "asr_graded.csv", metrics.parent / "graded_agreement.csv", metrics / "si_corrected.csv",
                  metrics / "asr_corrected.csv"):
        stale.write_text("left,by,an,earlier,run\n")
    out = tmp_path / "paper"
    assert main(["numbers", "--params", str(results_tree["params"]), "-i", str(metrics), "-o", str(out / "n.tex"),
                 "--json", str(out / "n.json")]) == 0
    names = json.loads((out / "n.json").read_text())["numbers"]
    assert names and not [n for n in names if n.startswith(("hardAsr", "softAsr", "graded", "corr"))]
