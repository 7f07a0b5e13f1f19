"""Hashes as a contract: the default profile's job hashes are pinned, and spelling out a default changes none.

A generation's config_hash is the hash of (backend.describe(), defense describe) plus the dialogue;
a judgment's judge_hash is the hash of the judge's describe(). These pinned values were computed from
the default profile before the configuration refactor: a change here reruns every user's work, so it
must be deliberate (update the values in the same commit and say why).

Changed on purpose with the vLLM work: the tiny models were rebuilt so that vLLM loads them too (text heads
32 wide instead of 16, LLaVA vision weights under their original names), which changes their folder
fingerprints and so every generation hash; the keyword judgment's is unchanged."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from safemt import config
from safemt.hashing import stable_hash
from safemt.models import get_backend
from safemt.stages import params as sections

GOLDEN = {
    "generation tiny-vlm-a guard_input": "eadd413104745b10ee13baf94e2201794df43961cc78897560d52f63c2c0f63d",
    "generation tiny-vlm-a moderator": "050d1c1bf09b5f85415c2b00fec9649748f4e2f1b97eb0da2ad2aa8ac7d7a340",
    "generation tiny-vlm-a none": "bb960cf15222a0ce7ea1086a98753d0c2ca6d24cb99c352e278d5c7808a39fe6",
    "generation tiny-vlm-a system_prompt": "55b83bb3ce287ca2c46bb8181ff6077b176968ae62450db9a2c5c41d87fdcefd",
    "generation tiny-vlm-b guard_input": "a0e08b8cc50131f4e60c6ff2396d3e938c9caf250e747b4088d0e60969ae338b",
    "generation tiny-vlm-b moderator": "f5d45d7b03effbd0ca76144a802175862888223a6b7f1337db3b7a8be0e88080",
    "generation tiny-vlm-b none": "ec3440cb66c50b76dc426df93a8f22b68f5bf847797aa5c7fd5c5006cd1c4605",
    "generation tiny-vlm-b system_prompt": "2d99d6afd55879c023c8289c925b35fa37bb138826cdfdf34ed5521cfa29f624",
    "judgment keyword": "aa74cd9313c52640c3389a1991805c9c27cf8d2cf815afbe8431804679d9a23b",
}


@pytest.fixture()
def in_project(tmp_path: Path, tiny_models: Path, repo_root: Path):
    """A folder where params.yaml's relative model paths (resources/models/...) name the tiny models."""
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "models").symlink_to(tiny_models)
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
