"""End to end: the embedded default under Snakemake and DVC, in a copy of the working tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def checkout(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tracked and untracked-but-not-ignored files only: what a fresh clone would hold."""
    dest = tmp_path_factory.mktemp("checkout")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=repo_root,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for f in files:
        src = repo_root / f
        if src.is_file() or src.is_symlink():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f, follow_symlinks=False)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "snapshot"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest


def test_snakemake_then_dvc_from_clean(checkout: Path) -> None:
    run(["snakemake", "--cores", "2"], checkout)
    summary = checkout / "results/metrics/keyword/summary.json"
    first = summary.read_bytes()
    import json

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
