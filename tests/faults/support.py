"""Fault-suite helpers: a small dataset with images, params on the tiny models, and `safemt` run as
a real subprocess with a fault injected at an exact point (inject/sitecustomize.py)."""

from __future__ import annotations

from collections.abc import Mapping

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
INJECT = Path(__file__).resolve().parent / "inject"
SCENARIOS = ["Fraud", "Violence", "Privacy Violation", "Malware", "Bias", "Threat"]
COLORS = ["red", "green", "blue", "yellow", "purple", "orange"]


def dialogue(i: int, turns: int) -> dict[str, Any]:
    messages: list[dict[str, str]] = []
    for t in range(turns):
        if t:
            messages.append({"role": "assistant", "content": f"Sure, part {t} follows."})
        messages.append({"role": "user", "content": f"Case {i}, step {t}: what is shown here?"})
    return {"id": f"own_case_{i}", "turns": turns, "scenario": SCENARIOS[i], "source": "own", "method": None,
            "image": f"images/{i}.png", "messages": messages, "question": f"What is shown in picture {i}?"}


def make_dataset(tmp_path: Path) -> Path:
    """Twelve dialogues (six ids x 1 and 2 turns), each with its own small image."""
    folder = tmp_path / "dataset"
    (folder / "images").mkdir(parents=True)
    for i, color in enumerate(COLORS):
        Image.new("RGB", (16, 16), color).save(folder / "images" / f"{i}.png")
    path = folder / "dialogues.jsonl"
    records = [dialogue(i, t) for i in range(6) for t in (1, 2)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def params_dict(tiny_models: Path, **extra_models: dict[str, Any]) -> dict[str, Any]:
    """The repository's params.yaml on the tiny models, batches of 2 (six journal batches for 12 items)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["models"] = {name: {"backend": "hf", "path": str(tiny_models / name), "revision": "local",
                               "max_new_tokens": 4, "temperature": 0.0, "batch_size": 2}
                        for name in ("tiny-vlm-a", "tiny-judge")}
    for name in ("tiny-guard-lm", "tiny-moderator-lm"):  # the default's guard and moderator, on the tiny judge
        params["models"][name] = {**params["models"]["tiny-judge"]}
    params["models"].update(extra_models)
    params["targets"] = ["tiny-vlm-a"]
    params["judges"] = {"keyword": {"kind": "keyword"},
                        "tiny-llm": {"kind": "llm", "model": "tiny-judge", "batch_size": 2}}
    return params


def write_params(folder: Path, params: Mapping[str, Any]) -> Path:
    path = folder / f"params-{len(list(folder.glob('params-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def safemt(*args: str, fault: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m safemt ARGS` in a fresh interpreter; SAFEMT_FAULT set only when a fault is asked for."""
    env = {k: v for k, v in os.environ.items() if k != "SAFEMT_FAULT"}
    env.update(PYTHONPATH=os.pathsep.join([str(INJECT), str(REPO / "src"), str(REPO)]),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if fault is not None:
        env["SAFEMT_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "safemt", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def without_latency(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "latency_s"} for r in records]
