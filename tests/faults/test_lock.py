"""Two Snakemake runs on the same results folder: while the first one runs a job, the second refuses
(Snakemake's lock on the working directory) and changes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.faults.support import INJECT, REPO
from tests.support import copy_checkout


def snakemake(checkout: Path, env: dict[str, str], **kw) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "snakemake"), "--cores", "1"], cwd=checkout,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def files(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


def test_a_second_run_on_the_same_results_folder_refuses(tmp_path) -> None:
    checkout = copy_checkout(REPO, tmp_path / "checkout")
    marker = tmp_path / "first-job-running"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(INJECT), str(REPO / "src")]), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    first = snakemake(checkout, {**env, "SAFEMT_FAULT": f"hang:{marker}"}, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():  # the first run holds its lock and is inside its first job
            assert first.poll() is None, first.stdout.read()
            assert time.monotonic() < deadline, "the first run never started a job"
            time.sleep(0.2)
        before = files(checkout / "results") | files(checkout / "resources")
        second = snakemake(checkout, {k: v for k, v in env.items() if k != "SAFEMT_FAULT"})
        out, _ = second.communicate(timeout=120)
        assert second.returncode != 0, out
        assert "cannot be locked" in out, out
        assert files(checkout / "results") | files(checkout / "resources") == before
        assert first.poll() is None  # the first run was left alone
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGTERM)  # our own session: snakemake and its job
        first.communicate(timeout=60)
