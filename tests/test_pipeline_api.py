"""End to end through the `openai` backend against a real loopback server: the API key never lands
in results, logs, provenance, the report, Snakemake's or DVC's metadata, dvc.lock, an experiment or
the run's bundle, and every dialogue ends with a response or an error."""

from __future__ import annotations

import secrets
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.servers.openai_stub import OpenAIStub
from tests.support import copy_checkout, run

pytestmark = pytest.mark.slow
KEY_VAR = "SAFEMT_CANARY_API_KEY"


def api_params(repo_root: Path, base_url: str) -> dict:
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    default_models = params["models"]
    params["models"] = {"api-model": {"backend": "openai", "model_id": "stub-model", "base_url": base_url,
                                      "api_key_env": KEY_VAR, "max_new_tokens": 32, "temperature": 0.0,
                                      "concurrency": 8, "max_retries": 6,
                                      "timeout_s": 2.0}}
    params["targets"] = ["api-model"]
    params["turns"] = [1, 2, 4]
    params["dataset"]["generator_model"] = "api-model"
    # The API target undefended (the defenses run on the tiny models in tests/test_workflow.py); the default's
    # guard and moderator stay configured, so their model stays defined.
    params["defenses"] = ["none"]
    for name in ("tiny-judge", "tiny-guard-lm", "tiny-moderator-lm"):
        params["models"][name] = default_models[name]
    params["judges"] = {"keyword": params["judges"]["keyword"]}  # the API target's replies, by the keyword judge
    params["metrics"]["judges"] = ["keyword"]
    return params


def test_canary_key_is_never_written(repo_root: Path, tmp_path: Path) -> None:
    checkout = copy_checkout(repo_root, tmp_path / "checkout")
    canary = f"sk-canary-{secrets.token_hex(12)}"
    with OpenAIStub(fault_rate=0.3, seed=3, retry_after=0.05, hang_s=2.5) as stub:
        config = checkout / "config" / "api.yaml"
        config.write_text(yaml.safe_dump(api_params(repo_root, stub.base_url)))
        run(["snakemake", "--cores", "2", "--configfile", str(config)], checkout, env={KEY_VAR: canary})
        assert stub.records and all(r.authorization == f"Bearer {canary}" for r in stub.records)
        # The run's bundle (docs/bundles.md), exported with the key in the environment: no member holds it.
        run(["safemt", "bundle", "export", "--params", str(config), "-o", "api-bundle.tar.gz"], checkout,
            env={KEY_VAR: canary})
        with tarfile.open(checkout / "api-bundle.tar.gz", "r:gz") as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        assert "params/api.yaml" in members and any(n.startswith("results/generations/") for n in members)
        assert not [n for n, data in members.items() if canary.encode() in data or canary[10:].encode() in data]
        # The same profile through DVC: dvc.lock, DVC's cache and an experiment's metadata hold no key either.
        run(["safemt", "dvc-profile", "--params", "config/api.yaml"], checkout)
        run(["dvc", "repro"], checkout, env={KEY_VAR: canary})
        run(["dvc", "exp", "run", "-S", "config/api.yaml:metrics.bootstrap.seed=1"], checkout, env={KEY_VAR: canary})
    exps = run(["dvc", "exp", "show", "--json"], checkout).stdout
    history = subprocess.run(["git", "log", "--all", "-p", "--format=%H %s"], cwd=checkout, capture_output=True,
                             check=True).stdout  # bytes: the experiments' commits hold PNG files too
    assert "refs/exps" in run(["git", "for-each-ref"], checkout).stdout, "dvc exp run saved no experiment"
    assert canary not in exps and canary.encode() not in history
    lock = (checkout / "dvc.lock").read_text()
    assert "api-model" in lock and canary not in lock

    generations = [line for f in sorted((checkout / "results/generations/api-model/none").glob("*.jsonl"))
                   if f.stem.isdigit() for line in f.read_text().splitlines()]  # not benign.jsonl
    assert len(generations) == 34 * 3
    # Every file the runs left (results, logs, provenance, the report, .snakemake, .dvc), outside git's store.
    leaked = [str(p) for p in checkout.rglob("*")
              if ".git" not in p.relative_to(checkout).parts[:1] and p.is_file()
              and canary.encode() in p.read_bytes()]
    assert not leaked, f"API key written to {leaked}"
