"""A live run of the default's live cell (both tiny targets, every length, docs/live.md), SIGKILLed at three
points mid-dialogue (after a journal batch, twice, and inside a batch's write: a torn line) with a rerun
after each: the finished files equal an undisturbed run's byte for byte, and the journals hold every
turn exactly once, so no finished turn was generated twice (counted: journal lines = turns, and the
last run's provenance says it generated only what the kills left undone)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from safemt.cli import main
from safemt.models.planted import install_planted
from safemt.journal import read_journal
from tests.faults.support import INJECT, REPO

MODELS = ("tiny-vlm-a", "tiny-vlm-b")
# Kill points, each in a fresh process resuming the last one's journal: the 7th batch (inside the 2-turn
# dialogues' first turn), the 9th, then a torn write of the 12th.
POINTS = ["kill-after:7", "kill-after:9", "torn:12"]


def project(folder: Path) -> Path:
    """params.yaml of the default in FOLDER, its models installed there, its dataset built."""
    install_planted(folder / "resources" / "models", REPO / "resources" / "planted")
    (folder / "resources" / "seeds").symlink_to(REPO / "resources" / "seeds")
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    (folder / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    before = Path.cwd()
    os.chdir(folder)
    try:
        assert main(["data", "build", "resources/seeds/seeds.jsonl", "-o", "results/dataset/dialogues.jsonl"]) == 0
    finally:
        os.chdir(before)
    return folder


def live_cell(folder: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SAFEMT_FAULT"}
    env.update(PYTHONPATH=os.pathsep.join([str(INJECT), str(REPO / "src"), str(REPO)]), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if fault:
        env["SAFEMT_FAULT"] = fault
    args = [a for m in MODELS for a in ("--model", m)]
    return subprocess.run([sys.executable, "-m", "safemt", "infer", "--params", "params.yaml", *args, "--live-cell",
                           "--dataset", "results/dataset/dialogues.jsonl"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)


def outputs(folder: Path) -> dict[str, bytes]:
    """Every finished live file (generations, every turn's answers, transcripts), by relative path."""
    root = folder / "results" / "live"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jsonl")) if ".journal" not in p.parts}


def journal_lines(folder: Path) -> list[dict]:
    return [r for p in sorted((folder / "results" / "live").rglob(".journal/*.jsonl"))
            if not p.name.endswith(".timings.jsonl") for r in read_journal(p)]


@pytest.mark.slow
def test_a_killed_live_run_resumes_at_the_first_unanswered_turn(tmp_path: Path) -> None:
    clean = project(tmp_path / "clean")
    run = live_cell(clean)
    assert run.returncode == 0, run.stderr[-2000:]
    expected = outputs(clean)
    dialogues = [json.loads(x) for x in (clean / "results" / "dataset" / "dialogues.jsonl").read_text().splitlines()]
    total = len(MODELS) * sum(d["turns"] for d in dialogues)
    assert len(journal_lines(clean)) == total

    folder = project(tmp_path / "killed")
    for point in POINTS:
        proc = live_cell(folder, point)
        assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stderr[-2000:])
        answered = Counter((r["model"], r["id"], r["turns"], r["method"]) for r in journal_lines(folder))
        # mid-dialogue: some dialogue has some of its turns answered and not all
        assert any(0 < n < key[2] for key, n in answered.items()), point
    last = live_cell(folder)
    assert last.returncode == 0, last.stderr[-2000:]
    assert outputs(folder) == expected
    journalled = journal_lines(folder)
    keys = [(r["model"], r["defense"], r["id"], r["turns"], r["method"], r["turn_index"]) for r in journalled]
    assert len(keys) == len(set(keys)) == total  # every turn once: none generated twice
    provenance = [json.loads(p.read_text()) for p in (folder / "results" / "live").rglob("*.provenance.json")]
    generated = sum(p["turns_generated_this_run"] for p in provenance)
    reused = sum(p["turns_reused"] for p in provenance)
    assert generated + reused == total and 0 < generated < total
    assert "dropped a torn last line" in last.stderr
