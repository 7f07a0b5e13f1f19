"""Fixtures of the fault suite (helpers in support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.support import make_dataset, params_dict, write_params


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path)


@pytest.fixture
def params_file(tmp_path: Path, tiny_models: Path) -> Path:
    return write_params(tmp_path, params_dict(tiny_models))
