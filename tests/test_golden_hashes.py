"""Hashes as a contract: the default profile's job hashes are pinned, and spelling out a default changes none.

A generation's config_hash is the hash of (backend.describe(), defense describe) plus the dialogue;
a judgment's judge_hash is the hash of the judge's describe(). These pinned values were computed from
the default profile before the configuration refactor: a change here reruns every user's work, so it
must be deliberate (update the values in the same commit and say why)."""

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
    "generation tiny-vlm-a guard_input": "9349be8f713e194bd3d3c7d15cf511a9890a666505d0f323f35d21a4a0891f54",
    "generation tiny-vlm-a moderator": "42e6fdf9ff5541df8075425bff92a2e524aaf67013abe2e46b0a78eb0d73036c",
    "generation tiny-vlm-a none": "1fe4a912acc696a18578b3d589520091cc793d93afbbc0455dbbe8b8767f449f",
    "generation tiny-vlm-a system_prompt": "0f029ab1e218cf94788f8af27962df3e1e9e7b438a2e771236095aea1ddfeb6c",
    "generation tiny-vlm-b guard_input": "d62aef88286742958f87a1fe7a5e01109e319d1cf1ff9e35fbb0b5436715bc83",
    "generation tiny-vlm-b moderator": "e40b37be6ebc25dacc3607547c712bf4ab75c43715af532a653de16679da2d97",
    "generation tiny-vlm-b none": "28d5682649019e18d599dfcee220253e045de5441c806b792f99c5f0f5095576",
    "generation tiny-vlm-b system_prompt": "afb840f0cc306c5741dfcaca24fd218ac59f5269822be54aa5e02e38a1c2e84e",
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
