"""The bad-input corpus (tests/data/bad/manifest.yaml): every malformed release folder, seed file,
params file, model config and dialogue file is rejected with one line naming the place, exit status 2,
and nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from safemt.cli import main

BAD = Path(__file__).parent / "bad"
CASES = yaml.safe_load((BAD / "manifest.yaml").read_text())
REPO = Path(__file__).resolve().parents[2]


def test_corpus_is_large_and_every_folder_is_listed() -> None:
    assert len(CASES) >= 25
    listed = {c["case"] for c in CASES}
    on_disk = {str(p.relative_to(BAD)) for p in BAD.glob("*/*") if p.is_dir()}
    assert listed == on_disk
    assert {c["kind"] for c in CASES} >= {"release", "seeds", "params", "model"}


@pytest.fixture(scope="module")
def good_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid dataset built from the project's seeds (for the model-config cases)."""
    out = tmp_path_factory.mktemp("good") / "dialogues.jsonl"
    assert main(["data", "build", str(REPO / "resources/seeds/seeds.jsonl"), "-o", str(out),
                 "--params", str(REPO / "params.yaml")]) == 0
    return out


def _argv(case: dict, here: Path, out: Path, good_dataset: Path | None) -> list[str]:
    params = str(REPO / "params.yaml")
    if case["kind"] == "release":
        return ["data", "import", str(here), "-o", str(out / "dialogues.jsonl"), "--params", params, *case["args"]]
    if case["kind"] == "seeds":
        return ["data", "build", str(here / "seeds.jsonl"), "-o", str(out / "dialogues.jsonl"), "--params", params]
    if case["kind"] == "params":
        return ["data", "build", str(REPO / "resources/seeds/seeds.jsonl"), "-o", str(out / "dialogues.jsonl"),
                "--params", str(here / "params.yaml")]
    if case["kind"] == "model":
        return ["infer", "--model", case["model"], "--dataset", str(good_dataset), "-o", str(out / "g.jsonl"),
                "--params", str(here / "params.yaml")]
    if case["kind"] == "dialogues":
        return ["infer", "--model", "tiny-vlm-a", "--dataset", str(here / "dialogues.jsonl"),
                "-o", str(out / "g.jsonl"), "--params", params]
    raise AssertionError(f"unknown kind {case['kind']}")


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written(case: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture, request) -> None:
    good = request.getfixturevalue("good_dataset") if case["kind"] == "model" else None
    here = tmp_path / "case"
    shutil.copytree(BAD / case["case"], here, symlinks=True)
    before = sorted(p.relative_to(here) for p in here.rglob("*"))
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    status = main(_argv(case, here, out, good))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("safemt: error: "), lines[0]
    assert case["expect"] in lines[0], lines[0]
    assert case["where"] in lines[0], lines[0]
    assert not out.exists() or not any(out.iterdir()), sorted(out.rglob("*"))
    assert sorted(p.relative_to(here) for p in here.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case"] + (["out"] if out.exists() else [])
