"""The paper profile from a fresh clone: planned whole (fetch included), never reusing the default's files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import copy_checkout, paper_guard_formats, run


@pytest.fixture(scope="module")
def fresh(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone, as it comes: no guard format saved."""
    return copy_checkout(repo_root, tmp_path_factory.mktemp("paper-fresh"))


@pytest.fixture(scope="module")
def formats(fresh: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A clone where the user saved and pinned the guards' formats (test-made stand-ins here)."""
    clone = copy_checkout(fresh, tmp_path_factory.mktemp("paper-clone"))
    return clone, paper_guard_formats(clone)


def test_planning_without_the_llavaguard_policy_stops_with_one_line_naming_it(fresh: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(["snakemake", "-n", "--configfile", "config/paper.yaml"], cwd=fresh, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "llavaguard-policy.txt" in line]
    assert lines and "guard llavaguard" in lines[0] and "AIML-TUDA/LlavaGuard-v1.2-7B-OV-hf" in lines[0], proc.stderr[-2000:]


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Snakemake's "Job stats" table of a dry run, rule -> count."""
    table = dry_run_output.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def defense_jobs(dry_run_output: str, component: str) -> dict[tuple[str, str], int]:
    """(rule, defense) -> planned jobs, for the defenses of COMPONENT (a guard or moderator name)."""
    counts: dict[tuple[str, str], int] = {}
    for rule, defense in re.findall(r"^rule (\w+):\n(?:    .*\n)*?    wildcards: .*?defense=([\w.-]+)",
                                    dry_run_output, re.M):
        if defense.split(".", 1)[-1] == component:
            counts[(rule, defense)] = counts.get((rule, defense), 0) + 1
    return counts


def test_fresh_clone_plans_the_whole_paper_chain(formats: tuple[Path, dict[str, str]]) -> None:
    clone, env = formats
    out = run(["snakemake", "-n", "--configfile", "config/paper.yaml"], clone, env=env)
    jobs = job_counts(out.stdout + out.stderr)
    assert jobs["fetch_release"] == 1 and jobs["dataset"] == 1
    for stage in ("infer", "merge_generations"):
        assert jobs[stage] >= 50, jobs  # 10 targets x 5 turn lengths at least
    assert jobs["judge"] >= 10  # one job per judge and target: a local judge model loads once per job
    assert jobs["metrics"] >= 1 and jobs["figures"] == 1
    # the live variant of the open-model sweep (docs/live.md): one job per open target answers its live cell
    # (3 defenses x 4 lengths), one per judge and target labels it (final and every turn), one per judge sums up
    assert (jobs["infer_live"], jobs["judge_live"], jobs["live_metrics"]) == (9, 36, 4), jobs
    assert jobs["total"] > 100
    # LLaVAShield as a guard (both stages) and as the moderator: each of its three defenses adds, per
    # target, the cell's inference jobs (8 shards over the 5 lengths), one merge per length and one
    # benign job: 3 x 10 x (8 + 5 + 1) = 420 of the plan's jobs
    shield = defense_jobs(out.stdout + out.stderr, "llavashield")
    for defense in ("guard_input.llavashield", "guard_output.llavashield", "moderator.llavashield"):
        assert (shield[("infer", defense)], shield[("merge_generations", defense)],
                shield[("infer_benign", defense)]) == (80, 50, 10), shield


def test_paper_plans_its_own_dataset_after_the_default_ran(formats: tuple[Path, dict[str, str]]) -> None:
    """The default's results/ (stood in for by its dataset files) is no input of the paper profile."""
    clone, env = formats
    (clone / "results/dataset/images").mkdir(parents=True, exist_ok=True)
    (clone / "results/dataset/dialogues.jsonl").write_text("", encoding="utf-8")
    out = run(["snakemake", "-n", "--configfile", "config/paper.yaml"], clone, env=env)
    assert job_counts(out.stdout + out.stderr)["dataset"] == 1
    assert "results-paper/dataset/dialogues.jsonl" in out.stdout


def test_offline_fetch_stops_with_one_line_saying_what_to_download(formats: tuple[Path, dict[str, str]]) -> None:
    clone, formats_env = formats
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", **formats_env}
    proc = subprocess.run(["snakemake", "--cores", "1", "--configfile", "config/paper.yaml", "--", "fetch_release"],
                          cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("safemt: error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "offline" in lines[0] and "hf download HappyCorpse/SafeMT" in lines[0] and "resources/release" in lines[0]
    assert not (clone / "resources/release/safemt_fetch.json").exists()
