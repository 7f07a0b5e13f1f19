"""Hashes as a contract: the default profile's job hashes are pinned, and spelling out a default changes none.

A generation's config_hash is the hash of (backend.describe(), defense describe) plus the dialogue;
a judgment's judge_hash is the hash of the judge's describe(). These pinned values were computed from
the default profile before the configuration refactor: a change here reruns every user's work, so it
must be deliberate (update the values in the same commit and say why).

Changed on purpose with the vLLM work: the tiny models were rebuilt so that vLLM loads them too (text heads
32 wide instead of 16, LLaVA vision weights under their original names), which changes their folder
fingerprints and so every generation hash; the keyword judgment's is unchanged.

Changed on purpose with the planted behaviour (docs/planted.md): the default's models are now trained
checkpoints (new folders, a new tokenizer), its guard and moderator have models of their own, and a
second judge (tiny-llm) joined; the keyword judgment's hash is unchanged."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from safemt import config
from safemt.hashing import stable_hash
from safemt.models.planted import install_planted
from safemt.models import get_backend
from safemt.stages import params as sections

GOLDEN = {
    "generation tiny-vlm-a guard_input": "97baa331c4534b14cfef918630979cec2eda0e3122577234a6428b2f1b49396c",
    "generation tiny-vlm-a moderator": "c44100c77c3dee1b193499a35a175b7a53aa80daa354ccfee62040eded04e4ab",
    "generation tiny-vlm-a none": "7bb6091e40521b0c35f47f79489f59d35b42ff736fe6b507d2d789c8837f5a65",
    "generation tiny-vlm-a system_prompt": "e76ad5e129192f62bcb5f993755915f668ce35dd7fbab68b36fbb690549a7d61",
    "generation tiny-vlm-b guard_input": "fd3757856e17e9fdddee82bcef39ca4ae99fcc33e1e10d9688a713d1e3c20eb0",
    "generation tiny-vlm-b moderator": "fe298fdb0bd91039ec63b2ee86634f474c223b0242ee61fe5a83df7ea5d7b0b2",
    "generation tiny-vlm-b none": "c485ada0b71b3d1e247c8d01f7c5512c326d690bdd2684c0f6deb4cc77e12e11",
    "generation tiny-vlm-b system_prompt": "d667dd84c67de4b184acc2826117ecff60a69712553faeae6344c56aeff7af9b",
    "judgment keyword": "aa74cd9313c52640c3389a1991805c9c27cf8d2cf815afbe8431804679d9a23b",
    "judgment tiny-llm": "5a6dbe1223947eed9dc440058b4867333cd35f8f8cf5b303acb0ccfbe7009041",
}


@pytest.fixture()
def in_project(tmp_path: Path, repo_root: Path):
    """A folder where params.yaml's relative model paths (resources/models/...) name the default's
    trained models, installed as the models stage installs them."""
    install_planted(tmp_path / "resources" / "models", repo_root / "resources" / "planted")
    before = Path.cwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(before)


def job_hashes(loaded: dict) -> dict[str, str]:
    out = {}
    for model in loaded["targets"]:
        backend = get_backend(sections.model(loaded, model)).describe()
        for defense in loaded["defenses"]:
            runner = sections.defense(loaded, defense)
            out[f"generation {model} {defense}"] = stable_hash({"backend": backend, "defense": runner.describe()})
    for judge in loaded["judges"]:
        out[f"judgment {judge}"] = stable_hash(sections.judge(loaded, judge).describe())
    return out


def spelled_out(raw: dict) -> dict:
    """RAW with every schema default written out, as a user copying the documented values would."""
    return config.fill_defaults(copy.deepcopy(raw))


def test_the_default_profiles_job_hashes_are_pinned(in_project: Path, repo_root: Path) -> None:
    assert job_hashes(sections.load(repo_root / "params.yaml")) == GOLDEN


def test_writing_out_every_default_changes_no_hash(in_project: Path, repo_root: Path) -> None:
    raw = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    written = spelled_out(raw)
    assert written != raw  # there are defaults to write out
    path = in_project / "params.yaml"
    path.write_text(yaml.safe_dump(written), encoding="utf-8")
    assert job_hashes(sections.load(path)) == GOLDEN


def test_the_pin_can_fail(in_project: Path, repo_root: Path) -> None:
    """A changed decoding setting moves the hashes of that model's jobs, and only those."""
    params = sections.load(repo_root / "params.yaml")
    params["models"]["tiny-vlm-a"]["max_new_tokens"] = 25
    moved = {k for k, v in job_hashes(params).items() if GOLDEN[k] != v}
    assert moved == {k for k in GOLDEN if k.startswith("generation tiny-vlm-a ")}
