"""End to end: the embedded default under Snakemake and DVC, in a copy of the working tree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support import copy_checkout, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkout(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_checkout(repo_root, tmp_path_factory.mktemp("checkout"))


def test_snakemake_then_dvc_from_clean(checkout: Path) -> None:
    run(["snakemake", "--cores", "2"], checkout)
    summary = checkout / "results/metrics/keyword/summary.json"
    first = summary.read_bytes()
    s = json.loads(first)
    assert set(s["models"]) == {"tiny-vlm-a", "tiny-vlm-b"}
    for cell in (s["models"][m]["none"] for m in s["models"]):
        assert {"si", "s1", "s2", "asr"} <= set(cell) and set(cell["asr"]) == {"1", "2", "4", "6", "8"}
    assert (checkout / "results/figures/asr_vs_turns.png").stat().st_size > 1000

    again = run(["snakemake", "--cores", "2"], checkout)
    assert "Nothing to be done" in again.stdout + again.stderr

    for path in ("results", "resources/models", ".snakemake"):
        shutil.rmtree(checkout / path, ignore_errors=True)
    run(["dvc", "repro"], checkout)
    assert summary.read_bytes() == first, "a clean rerun must give a byte-identical summary.json"
    second = run(["dvc", "repro"], checkout)
    out = second.stdout + second.stderr
    assert "Running stage" not in out, out
