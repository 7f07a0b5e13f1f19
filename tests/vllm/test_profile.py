"""config/vllm-cpu.yaml under Snakemake against the embedded default (hf), both whole: every
generation and every metrics file are equal, but for what may differ by design (the moderator's raw
reply, structured JSON on vLLM; the trained tiny moderator's verdicts are the same either way). Both profiles run one inference job per target
(workflow.inference_jobs: model), so each vLLM engine starts once per job: about 2 minutes for the two
runs on 2 cores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support import copy_checkout, run

pytestmark = pytest.mark.slow
# Fields that say when, how fast, or with which backend a record was made, not what it holds.
RUN_FIELDS = {"latency_s", "defense_latency_s", "config_hash"}


def _own_root(profile: dict, results_dir: str) -> dict:
    return {**profile, "results_dir": results_dir}


def _records(root: Path) -> dict[str, list[dict]]:
    out = {}
    for path in sorted((root / "generations").rglob("*.jsonl")):
        if ".journal" in path.parts:
            continue
        out[str(path.relative_to(root))] = [{k: v for k, v in json.loads(line).items() if k not in RUN_FIELDS}
                                            for line in path.read_text(encoding="utf-8").splitlines()]
    return out


@pytest.fixture(scope="module")
def runs(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    checkout = copy_checkout(repo_root, tmp_path_factory.mktemp("checkout"))
    roots = {}
    for name, source in (("hf", "params.yaml"), ("vllm", "config/vllm-cpu.yaml")):
        params = _own_root(yaml.safe_load((checkout / source).read_text(encoding="utf-8")), f"results-{name}")
        params["live"] = {"models": []}  # the live cell on vLLM: tests/vllm/test_live.py; here the replay grid
        (checkout / f"{name}.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
        run(["snakemake", "stage_metrics", "--cores", "2", "--configfile", f"{name}.yaml"], checkout, timeout=900)
        roots[name] = checkout / f"results-{name}"
    return roots


def test_generations_equal_the_hf_runs(runs: dict[str, Path]) -> None:
    hf, vllm = _records(runs["hf"]), _records(runs["vllm"])
    assert set(hf) == set(vllm) and hf
    for path in hf:
        assert len(hf[path]) == len(vllm[path]) > 0
        for a, b in zip(hf[path], vllm[path]):
            if "moderator" in Path(path).parts:  # the moderator's raw reply is structured JSON on vLLM
                a, b = ({**r, "defense_verdict": {k: v for k, v in r["defense_verdict"].items() if k != "raw"}}
                        for r in (a, b))
            assert a == b, path


def _without_judge_hashes(path: Path) -> dict:
    """A summary without provenance.judge_hashes: an LLM judge's hash names its backend (vllm or hf)."""
    summary = json.loads(path.read_text(encoding="utf-8"))
    summary["provenance"].pop("judge_hashes")
    return summary


def test_metrics_equal_the_hf_runs(runs: dict[str, Path]) -> None:
    hf = sorted(p.relative_to(runs["hf"]) for p in (runs["hf"] / "metrics").rglob("*") if p.is_file())
    assert hf
    for rel in hf:
        if rel.name == "summary.json" and rel.parent.name != "keyword":  # the tiny LLM judge ran on vllm
            assert _without_judge_hashes(runs["vllm"] / rel) == _without_judge_hashes(runs["hf"] / rel), rel
            continue
        assert (runs["vllm"] / rel).read_bytes() == (runs["hf"] / rel).read_bytes(), rel
