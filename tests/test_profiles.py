"""Cluster profiles: jobs ask for the GPUs, GPU type, runtime and memory of the model they run."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

PROFILES = ("default", "slurm", "kubernetes")


def _dry_run_resources(repo_root: Path, configfile: Path, *extra: str) -> dict[str, list[dict[str, str]]]:
    """rule name -> the `resources:` of each planned job, as the dry run prints them."""
    bin_dir = Path(sys.executable).parent
    proc = subprocess.run([str(bin_dir / "snakemake"), "-n", "--configfile", str(configfile), *extra],
                          cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    jobs: dict[str, list[dict[str, str]]] = {}
    rule = None
    for line in proc.stdout.splitlines():
        if m := re.match(r"(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif (m := re.match(r"\s+resources: (.*)", line)) and rule:
            pairs = (item.split("=", 1) for item in m.group(1).split(", ") if "=" in item)
            jobs.setdefault(rule, []).append({k: v for k, v in pairs})
    return jobs


@pytest.fixture()
def cluster_params(repo_root: Path, tmp_path: Path) -> Path:
    """The embedded default with cluster settings on one target model."""
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["results_dir"] = "results-profile-test"
    params["models"]["tiny-vlm-a"].update(gpus=2, gpu_model="h100", runtime=90, mem_mb=1234)
    params["defenses"] = ["none"]  # one defense: the job counts below are per turn file and shard
    params["workflow"] = {"inference_jobs": "file"}  # a cluster's granularity: one job per file and shard
    cfg = tmp_path / "params.yaml"
    cfg.write_text(yaml.safe_dump(params))
    return cfg


def test_profiles_parse_and_name_their_executor(repo_root: Path) -> None:
    for name in PROFILES:
        prof = yaml.safe_load((repo_root / "workflow/profiles" / name / "config.yaml").read_text())
        assert prof.get("rerun-incomplete") is True, name
    slurm = yaml.safe_load((repo_root / "workflow/profiles/slurm/config.yaml").read_text())
    assert slurm["executor"] == "slurm" and slurm["retries"] >= 1
    assert slurm["set-resources"]["infer"]["slurm_partition"]
    # the live cell's rules print a message instead of their resources in a dry run: checked here
    assert all(slurm["set-resources"][r]["slurm_partition"] == slurm["set-resources"]["infer"]["slurm_partition"]
               for r in ("infer_live", "judge_live"))
    k8s = yaml.safe_load((repo_root / "workflow/profiles/kubernetes/config.yaml").read_text())
    assert k8s["executor"] == "kubernetes" and k8s["default-resources"]["gpu_manufacturer"] in ("nvidia", "amd")


def test_jobs_take_resources_from_their_model(repo_root: Path, cluster_params: Path) -> None:
    jobs = _dry_run_resources(repo_root, cluster_params)
    infer = jobs["infer"]
    # tiny-vlm-a: 5 turn files, 1 shard each; tiny-vlm-b: 5 x 2 shards, no cluster settings.
    a = [r for r in infer if r.get("gpu") == "2"]
    assert len(a) == 5, infer
    assert all(r["gpu_model"] == "h100" and r["runtime"] == "90" and r["mem_mb"] == "1234" for r in a)
    b = [r for r in infer if r.get("gpu") == "0"]
    assert len(b) == 10 and all("gpu_model" not in r for r in b)
    assert {(r["runtime"], r["mem_mb"]) for r in b} == {("240", "32000")}, "model-job defaults"
    # The keyword judge runs no model: a light job; the LLM judge's jobs take its model's (defaults).
    assert {(r["gpu"], r["runtime"], r["mem_mb"]) for r in jobs["judge"]} == {("0", "30", "4000"),
                                                                            ("0", "240", "32000")}
    assert not (repo_root / "results-profile-test").exists(), "a dry run wrote files"


@pytest.mark.skipif(importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
                    reason="snakemake-executor-plugin-slurm not installed (pip install -e '.[cluster]')")
def test_slurm_profile_plans_gpu_jobs_on_the_gpu_partition(repo_root: Path, cluster_params: Path) -> None:
    jobs = _dry_run_resources(repo_root, cluster_params, "--profile", "workflow/profiles/slurm")
    assert {r["slurm_partition"] for r in jobs["infer"]} == {"gpu"}
    assert {r["slurm_partition"] for r in jobs["dataset"]} == {"cpu"}
    assert any(r.get("gpu_model") == "h100" for r in jobs["infer"])
