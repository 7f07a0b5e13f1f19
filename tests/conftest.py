"""Shared fixtures: the tiny offline models are built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_SAMPLE = REPO.parent / "shared" / "safemt-sample"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_sample() -> Path:
    """The verbatim release excerpt beside the checkout; absent in a user's clone."""
    if not (SHARED_SAMPLE / "1_turn.json").exists():
        pytest.skip("../shared/safemt-sample is not present (only in the development workspace)")
    return SHARED_SAMPLE


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
