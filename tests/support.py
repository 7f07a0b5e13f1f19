"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest


def run(cmd: list[str], cwd: Path, timeout: int = 900, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    """Run a tool of this environment (snakemake, dvc, safemt) offline; fail the test with its output."""
    bin_dir = Path(sys.executable).parent
    full_env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def copy_checkout(repo_root: Path, dest: Path) -> Path:
    """Tracked and untracked-but-not-ignored files only (what a fresh clone holds), as a git repo."""
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


def make_dialogue(i: int, turns: int, scenario: str) -> dict:
    """A valid dialogue record of `turns` user turns about image `images/<i>.png` (the stage tests' data)."""
    messages = []
    for t in range(turns):
        if t:
            messages.append({"role": "assistant", "content": f"Sure! Here is answer {t}."})
        messages.append({"role": "user", "content": f"Question {t} about picture {i}?"})
    return {"id": f"own_case_{i}", "turns": turns, "scenario": scenario, "source": "own", "method": None,
            "image": f"images/{i}.png", "messages": messages, "question": f"Question about picture {i}?"}


def undefended(params: Mapping) -> dict:
    """A test profile that replaces the default's models or judges: the undefended target only, without the
    default's guard, moderator and benign set (which name the default's tiny models and keyword judge)."""
    params["defenses"] = ["none"]
    for key in ("guards", "moderators", "moderation"):
        params.pop(key, None)
    return params


def tool_missing(reason: str) -> None:
    """A test whose tool (a browser, Slurm, a server package) is absent: skipped on a developer's
    machine, failed under CI=true, where .ci/run installs every tool the suite needs."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI installs it: see .ci/run)", pytrace=False)
    pytest.skip(reason)


def paper_guard_formats(root: Path) -> dict[str, str]:
    """Make ROOT's config/paper.yaml plannable the way a user does, with stand-ins written for the tests:
    a LlavaGuard policy file in the published layout at the path the profile names, its sha256 pinned
    in the profile, and `wildguard` and `llavashield` packages holding test formats (on the returned
    PYTHONPATH)."""
    from tests.moderation.formats import fake_llavashield_package, fake_wildguard_package, write_policy

    pinned = write_policy(root / "resources" / "guards")
    profile = root / "config" / "paper.yaml"
    text = profile.read_text(encoding="utf-8")
    assert text.count("prompt_sha256: null") == 1, "the paper profile pins one guard file"
    profile.write_text(text.replace("prompt_sha256: null", f"prompt_sha256: {pinned['prompt_sha256']}"), encoding="utf-8")
    site = fake_llavashield_package(fake_wildguard_package(root / ".test-site"))
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)}


def pinned_paper(repo_root: Path, dest: Path, monkeypatch) -> Path:
    """A copy of config/paper.yaml under DEST/config with the guard formats of `paper_guard_formats`,
    DEST the working folder (the profile's file paths are relative to the project root) and the
    stand-in `wildguard` package importable."""
    (dest / "config").mkdir(parents=True, exist_ok=True)
    shutil.copy2(repo_root / "config" / "paper.yaml", dest / "config" / "paper.yaml")
    paper_guard_formats(dest)
    monkeypatch.chdir(dest)
    monkeypatch.syspath_prepend(str(dest / ".test-site"))
    return dest / "config" / "paper.yaml"
