"""The default's trained models: installed only when every file has the sha256 it was trained with."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from safemt.errors import SafemtError
from safemt.models.planted import SUMS, checked_files, install_planted


@pytest.fixture()
def planted_copy(repo_root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "planted"
    shutil.copytree(repo_root / "resources" / "planted", copy)
    return copy


def test_the_committed_models_match_their_checksums(repo_root: Path) -> None:
    sums = checked_files(repo_root / "resources" / "planted")
    names = {name.split("/", 1)[0] for name in sums}
    assert names == {"tiny-vlm-a", "tiny-vlm-b", "tiny-guard-lm", "tiny-moderator-lm", "tiny-judge", "tiny-grader"}
    assert all(f"{n}/model.safetensors" in sums for n in names)


def test_install_copies_every_model(planted_copy: Path, tmp_path: Path) -> None:
    paths = install_planted(tmp_path / "models", planted_copy)
    assert [p.name for p in paths] == sorted(p.name for p in paths) and len(paths) == 6
    for path in paths:
        assert (path / "model.safetensors").read_bytes() == (planted_copy / path.name / "model.safetensors").read_bytes()


def test_a_changed_weight_file_is_refused_by_name(planted_copy: Path, tmp_path: Path) -> None:
    weights = planted_copy / "tiny-guard-lm" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(SafemtError, match="the trained weights were changed") as err:
        install_planted(tmp_path / "models", planted_copy)
    assert str(weights) in str(err.value)
    assert not (tmp_path / "models").exists(), "nothing is installed from a tampered folder"


def test_unlisted_and_missing_files_are_refused(planted_copy: Path, tmp_path: Path) -> None:
    (planted_copy / "tiny-judge" / "extra.bin").write_bytes(b"x")
    with pytest.raises(SafemtError, match="not in SHA256SUMS.json"):
        checked_files(planted_copy)
    (planted_copy / "tiny-judge" / "extra.bin").unlink()
    (planted_copy / "tiny-judge" / "config.json").unlink()
    with pytest.raises(SafemtError, match="missing"):
        checked_files(planted_copy)
    (planted_copy / SUMS).unlink()
    with pytest.raises(SafemtError, match="checksum list is missing"):
        checked_files(planted_copy)
