"""End to end through the `openai` backend against a real loopback server: the API key never lands
in results, Snakemake's logs or metadata, and every dialogue ends with a response or an error."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import yaml

from tests.servers.openai_stub import OpenAIStub
from tests.support import copy_checkout, run

pytestmark = pytest.mark.slow
KEY_VAR = "SAFEMT_CANARY_API_KEY"


def api_params(repo_root: Path, base_url: str) -> dict:
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["models"] = {"api-model": {"backend": "openai", "model_id": "stub-model", "base_url": base_url,
                                      "api_key_env": KEY_VAR, "max_new_tokens": 32, "temperature": 0.0,
                                      "concurrency": 8, "max_retries": 6,
                                      "timeout_s": 2.0}}
    params["targets"] = ["api-model"]
    params["turns"] = [1, 2, 4]
    params["dataset"]["generator_model"] = "api-model"
    # The API path alone: no guard or moderator (the default's run on the tiny models), no benign set.
    params["defenses"] = ["none"]
    for key in ("guards", "moderators", "moderation"):
        params.pop(key, None)
    return params


def test_canary_key_is_never_written(repo_root: Path, tmp_path: Path) -> None:
    checkout = copy_checkout(repo_root, tmp_path / "checkout")
    canary = f"sk-canary-{secrets.token_hex(12)}"
    with OpenAIStub(fault_rate=0.3, seed=3, retry_after=0.05, hang_s=2.5) as stub:
        config = checkout / "config" / "api.yaml"
        config.write_text(yaml.safe_dump(api_params(repo_root, stub.base_url)))
        run(["snakemake", "--cores", "2", "--configfile", str(config)], checkout, env={KEY_VAR: canary})
        assert stub.records and all(r.authorization == f"Bearer {canary}" for r in stub.records)

    generations = [line for f in sorted((checkout / "results/generations/api-model/none").glob("*.jsonl"))
                   for line in f.read_text().splitlines()]
    assert len(generations) == 34 * 3
    leaked = [str(p) for root in ("results", ".snakemake") for p in (checkout / root).rglob("*")
              if p.is_file() and canary.encode() in p.read_bytes()]
    assert not leaked, f"API key written to {leaked}"
