"""Shared fixtures: the tiny offline models are built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
# A verbatim excerpt of the released files, for the tests that read real records: the folder named by
# this variable (.ci/run sets it when the development workspace has one). Unset or empty: they skip.
SAMPLE_ENV = "SAFEMT_SAMPLE_DIR"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_sample() -> Path:
    """The verbatim release excerpt named by $SAFEMT_SAMPLE_DIR; a user's clone has none, and skips."""
    value = os.environ.get(SAMPLE_ENV, "")
    if not value:
        pytest.skip(f"{SAMPLE_ENV} is not set (a folder holding a verbatim excerpt of the release)")
    sample = Path(value).resolve()
    if not (sample / "1_turn.json").exists():
        pytest.skip(f"{SAMPLE_ENV}={value} holds no 1_turn.json")
    return sample


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder holding tiny-vlm-a, tiny-vlm-b and tiny-judge, built offline once."""
    from safemt.models.tiny_weights import build_tiny_models

    out = tmp_path_factory.mktemp("models")
    build_tiny_models(out)
    return out



@pytest.fixture(scope="session")
def results_tree(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Metrics of three targets x 17 scenarios from two judges, plus a synthetic moderation.csv."""
    from tests.results_tree import build_results

    return build_results(tmp_path_factory.mktemp("tree"), REPO)
