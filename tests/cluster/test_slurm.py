"""The embedded default through a real Slurm cluster (Snakemake's slurm executor plugin) gives the same
metrics, byte for byte, as a local run. Skips, with the reason, where Slurm cannot be installed or started."""

from __future__ import annotations

import importlib.util
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.cluster import slurm
from tests.support import tool_missing, copy_checkout, run

pytestmark = pytest.mark.slow

PROFILE = Path(__file__).parent / "profile"
TURNS = [1, 4]  # two of the default's lengths: one turn, and a dialogue with a history


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        tool_missing("snakemake-executor-plugin-slurm is not installed (pip install -e '.[cluster]')")
    try:
        started = slurm.start(tmp_path_factory.mktemp("slurm"))
    except slurm.Unavailable as exc:
        tool_missing(f"no Slurm cluster here: {exc}")
    yield started
    started.stop()
    assert all(p.poll() is not None for p in started.procs.values()), "a daemon is still running"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_slurm_run_equals_local_run(cluster: slurm.Cluster, repo_root: Path,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    local = copy_checkout(repo_root, tmp_path_factory.mktemp("local"))
    remote = copy_checkout(repo_root, tmp_path_factory.mktemp("remote"))

    # The embedded default with the undefended target only: the executor is what is under test, and the
    # defenses' extra jobs would only lengthen the run (they are covered by tests/test_workflow.py).
    for checkout in (local, remote):
        params = yaml.safe_load((checkout / "params.yaml").read_text())
        params["defenses"] = ["none"]
        params["judges"] = {"keyword": params["judges"]["keyword"]}  # the LLM judge's jobs: as for the defenses
        params["metrics"]["judges"] = ["keyword"]
        params["workflow"] = {"inference_jobs": "file"}  # a cluster's granularity: a job per file and shard
        # no live cell: its jobs add scheduling rounds, not coverage (tests/test_profiles.py checks the slurm
        # profile's partitions for them; tests/faults/test_live_kill.py and tests/test_live.py run them)
        params["live"]["models"] = []
        # two lengths: every rule still runs through the executor, in a third of the jobs
        params["turns"] = TURNS
        (checkout / "config" / "cluster-test.yaml").write_text(yaml.safe_dump(params))
    config = ["--configfile", "config/cluster-test.yaml"]

    t0 = time.monotonic()
    run(["snakemake", "--cores", "2", *config], local)
    t1 = time.monotonic()
    out = run(["snakemake", "--executor", "slurm", "--profile", str(PROFILE), *config], remote,
              timeout=2400, env=cluster.env)
    t2 = time.monotonic()
    print(f"local run {t1 - t0:.0f} s, slurm run {t2 - t1:.0f} s")

    states = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%T"], capture_output=True, text=True,
                            env=cluster.env, check=True).stdout.split()
    # Local bookkeeping rules aside: an inference job per generations file and a judge job per target at least.
    assert len(states) >= 2 * len(TURNS) + 2 and set(states) == {"COMPLETED"}, (states, out.stderr[-2000:])

    for folder in ("metrics", "figures", "judgments"):
        want, got = _files(local / "results" / folder), _files(remote / "results" / folder)
        assert want and got == want, [k for k in sorted(set(want) | set(got)) if got.get(k) != want.get(k)]
    # Generations: the same bytes (measured times are beside them, in .journal/, never in them).
    gens = sorted((local / "results" / "generations").glob("*/*/*.jsonl"))  # <model>/<defense>/<turns>.jsonl
    assert len([g for g in gens if g.stem.isdigit()]) == 2 * len(TURNS)  # and the benign control set's answers
    for path in gens:
        twin = remote / path.relative_to(local)
        assert twin.read_bytes() == path.read_bytes(), path
