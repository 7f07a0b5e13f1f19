"""The `openai` backend against a real OpenAI-compatible server that is not the project's stub:
`transformers serve` (FastAPI + uvicorn) on loopback, serving a tiny model offline. Inference and
the LLM judge run through it with the `safemt` commands; the server is stopped by its process id."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support import run, undefended

pytestmark = pytest.mark.slow
N_SEEDS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory):
    """`transformers serve MODEL` on 127.0.0.1; yields (base_url, served model name, log path)."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    cli = shutil.which("transformers", path=str(Path(sys.executable).parent))
    assert cli, "the transformers CLI is installed with transformers"
    model = str(tiny_models / "tiny-vlm-a")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen([cli, "serve", model, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, f"transformers serve exited:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"transformers serve did not start:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1", model, log
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # by its process id, nothing broader
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def params_for(repo_root: Path, tmp_path: Path, base_url: str, model: str) -> Path:
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    served = {"backend": "openai", "model_id": model, "base_url": base_url, "max_new_tokens": 8,
              "temperature": 0.0, "concurrency": 2, "max_retries": 1, "timeout_s": 60}
    params["models"] = {"served-vlm": served, "served-judge": {**served, "max_new_tokens": 4}}
    params["targets"] = ["served-vlm"]
    params["dataset"].update(generator="template", generator_model=None)
    params["turns"] = [1, 2]
    params["judges"] = {"served-llm": {"kind": "llm", "model": "served-judge", "retries": 1}}
    params["metrics"]["judges"] = ["served-llm"]
    params["figures"]["judge"] = "served-llm"
    undefended(params)
    seeds = [json.loads(line) for line in (repo_root / params["dataset"]["seeds"]).read_text().splitlines()]
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seeds[:N_SEEDS]))
    params["dataset"]["seeds"] = str(tmp_path / "seeds.jsonl")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_inference_and_llm_judge_through_transformers_serve(server, repo_root: Path, tmp_path: Path) -> None:
    base_url, model, log = server
    params = params_for(repo_root, tmp_path, base_url, model)
    dataset, gens, labels = tmp_path / "ds/dialogues.jsonl", tmp_path / "gen.jsonl", tmp_path / "judged.jsonl"
    run(["safemt", "data", "build", str(tmp_path / "seeds.jsonl"), "-o", str(dataset), "--params", str(params)],
        repo_root)
    run(["safemt", "infer", "--model", "served-vlm", "--dataset", str(dataset), "-o", str(gens),
         "--params", str(params)], repo_root)
    generations = [json.loads(line) for line in gens.read_text().splitlines()]
    assert len(generations) == N_SEEDS * 2
    assert all(g["error"] is None and isinstance(g["response"], str) for g in generations), generations
    assert all(g["n_output_tokens"] and g["n_output_tokens"] <= 8 for g in generations)

    run(["safemt", "judge", "--judge", "served-llm", "--dataset", str(dataset), "-i", str(gens), "-o", str(labels),
         "--params", str(params)], repo_root)
    judgments = [json.loads(line) for line in labels.read_text().splitlines()]
    assert len(judgments) == len(generations)
    # A tiny random model rarely says safe/unsafe: whatever it said is kept raw and labelled, none lost.
    assert all(j["label"] in ("safe", "unsafe", "invalid") and j["raw"] for j in judgments), judgments
    served = log.read_text()
    assert served.count("POST /v1/chat/completions") >= 2 * len(generations)  # both stages went through it
