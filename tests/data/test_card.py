"""`safemt data card`: counts, shares, lengths, rejects, classifier accuracy and the figure."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from PIL import Image

from safemt.cli import main
from safemt.stages.dataset import build_options
from safemt.stages.dataset import card as card_stage
from safemt.data.build import build_dataset
from safemt.data.card import WORDS
from safemt.errors import SafemtError


@pytest.fixture(scope="module")
def params(repo_root):
    with (repo_root / "params.yaml").open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def seeds(repo_root) -> Path:
    return repo_root / "resources" / "seeds" / "seeds.jsonl"


@pytest.fixture(scope="module")
def built(tmp_path_factory, seeds, params) -> Path:
    out = tmp_path_factory.mktemp("built") / "dialogues.jsonl"
    build_dataset(seeds, out, build_options(params))
    return out


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_card_of_a_build(tmp_path, built, params, seeds):
    fixture = seeds.parent / "hand_labelled_methods.jsonl"
    card = card_stage(params, built, tmp_path / "card.json", figure=tmp_path / "dataset.png", reference=seeds,
                     fixture=fixture)
    recs = records(built)
    assert card == json.loads((tmp_path / "card.json").read_text(encoding="utf-8"))
    assert card["dialogues"] == len(recs)
    cells = [n for by_m in card["counts"].values() for by_t in by_m.values() for n in by_t.values()]
    assert sum(cells) == len(recs)
    some = recs[-1]
    assert card["counts"][some["scenario"]][some["method"]][str(some["turns"])] >= 1
    assert card["by_turns"] == {str(t): len(recs) // len(params["turns"]) for t in params["turns"]}
    assert card["sources"] == {"own": {"dialogues": len(recs), "share": 1.0}}
    lengths = card["tokens"]["mean_per_dialogue"]
    assert card["tokens"]["definition"] == WORDS
    assert list(lengths) == [str(t) for t in sorted(params["turns"])]
    assert all(a < b for a, b in zip(lengths.values(), list(lengths.values())[1:]))
    assert card["rejects"]["total"] == 0 and card["rejects"]["file"].endswith("dialogues.rejects.jsonl")
    clf = card["method_classifier"]
    assert clf["accuracy"] >= 0.9 and "every method" in clf["evaluated_on"]
    assert clf["dialogues"] == sum(c["dialogues"] for c in clf["per_method"].values())
    hand = clf["hand_labelled"]
    fixture_rows = records(fixture)
    assert hand["dialogues"] == len(fixture_rows) >= 40
    matrix = hand["confusion_matrix"]["counts"]
    assert {true: sum(row.values()) for true, row in matrix.items()} == Counter(r["label"] for r in fixture_rows)
    assert hand["correct"] == sum(row.get(true, 0) for true, row in matrix.items())
    assert "unknown" in hand["confusion_matrix"]["labels"]
    image = Image.open(tmp_path / "dataset.png")
    assert image.format == "PNG" and image.size[0] > 600


def test_card_is_byte_identical_on_rerun(tmp_path, built, params):
    card_stage(params, built, tmp_path / "a.json", figure=tmp_path / "a.png")
    card_stage(params, built, tmp_path / "b.json", figure=tmp_path / "b.png")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_without_reference_the_classifier_is_scored_on_known_methods(tmp_path, built, params):
    clf = card_stage(params, built, tmp_path / "card.json")["method_classifier"]
    assert clf["dialogues"] == sum(r["turns"] > 1 for r in records(built))
    assert clf["accuracy"] >= 0.9 and "known" in clf["evaluated_on"]


def test_rejects_are_counted_by_check_and_method(tmp_path, built, params):
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "dialogues.jsonl").write_bytes(built.read_bytes())
    rows = [{"id": "a", "turns": 2, "method": "roleplay", "check": "refusal", "reason": "x"},
            {"id": "b", "turns": 4, "method": "roleplay", "check": "unparseable", "reason": "y"},
            {"id": "c", "turns": 4, "method": "in_context", "check": "refusal", "reason": "z"}]
    (folder / "dialogues.rejects.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    card = card_stage(params, folder / "dialogues.jsonl", tmp_path / "card.json")
    assert card["rejects"]["total"] == 3
    assert card["rejects"]["by_check"] == {"refusal": 2, "unparseable": 1}
    assert card["rejects"]["by_method"] == {"in_context": 1, "roleplay": 2}


def test_a_configured_tokenizer_counts_its_tokens(tmp_path, built, params, tiny_models):
    p = copy.deepcopy(params)
    p["dataset"]["tokenizer"] = "tiny-judge"
    p["models"]["tiny-judge"]["path"] = str(tiny_models / "tiny-judge")
    card = card_stage(p, built, tmp_path / "card.json")
    words = card_stage(params, built, tmp_path / "words.json")
    assert "tiny-judge" in card["tokens"]["definition"]
    assert card["tokens"]["mean_per_dialogue"] != words["tokens"]["mean_per_dialogue"]


def test_unknown_tokenizer_model_is_a_config_error(tmp_path, built, params):
    p = copy.deepcopy(params)
    p["dataset"]["tokenizer"] = "nope"
    with pytest.raises(SafemtError, match="unknown model"):
        card_stage(p, built, tmp_path / "card.json")
    assert not (tmp_path / "card.json").exists()


def test_cli_card_and_its_errors(tmp_path, built, seeds, capsys):
    out, figure = tmp_path / "card.json", tmp_path / "fig" / "dataset.png"
    assert main(["data", "card", str(built), "-o", str(out), "--figure", str(figure), "--reference", str(seeds),
                 "--fixture", str(seeds.parent / "hand_labelled_methods.jsonl")]) == 0
    stdout = capsys.readouterr().out
    assert out.exists() and figure.exists() and "classifier accuracy" in stdout and "hand-labelled" in stdout
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["data", "card", str(empty), "-o", str(tmp_path / "e.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no dialogues" in err and not (tmp_path / "e.json").exists()


def test_card_of_the_imported_sample(tmp_path, shared_sample, params, seeds, capsys):
    imported = tmp_path / "sample.jsonl"
    assert main(["data", "import", str(shared_sample), "-o", str(imported), "--allow-missing-images"]) == 0
    labelled = tmp_path / "labelled.jsonl"
    assert main(["data", "classify", str(imported), "-o", str(labelled)]) == 0
    card = card_stage(params, labelled, tmp_path / "card.json", reference=seeds)
    assert set(card["sources"]) == {"mm", "jbv", "mllm", "beaver"}
    assert sum(s["share"] for s in card["sources"].values()) == pytest.approx(1.0, abs=1e-3)
    assert card["rejects"] == {"file": None, "total": 0, "by_check": {}, "by_method": {}}
    assert card["methods_inferred"] == sum(r["turns"] > 1 for r in records(imported))
    assert card["method_classifier"]["accuracy"] >= 0.9
    inferred = card["method_classifier"]["labels_inferred_here"]
    assert sum(inferred.values()) == card["methods_inferred"] and inferred.get("unknown", 0) > 0
