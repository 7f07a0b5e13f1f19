"""Resume on the real engine: `safemt infer` with a `backend: vllm` model, killed (SIGKILL) once its
first batch is journalled, then rerun: the rerun generates only the dialogues not yet journalled."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.vllm.conftest import engine_cfg

N, BATCH = 16, 4


def _dataset(folder: Path, pictures: list[Path]) -> Path:
    (folder / "images").mkdir(parents=True)
    for i, picture in enumerate(pictures):
        shutil.copy(picture, folder / "images" / f"{i}.png")
    path = folder / "dialogues.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(N):
            question = f"Earlier we talked about picture {i}; what is in it?"
            fh.write(json.dumps({"id": f"r{i}", "turns": 1, "scenario": "Fraud", "source": "test", "method": None,
                                 "image": f"images/{i % len(pictures)}.png",
                                 "messages": [{"role": "user", "content": question}], "question": question}) + "\n")
    return path


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def test_a_killed_vllm_job_reruns_only_the_rest(tiny_models: Path, pictures: list[Path], tmp_path: Path) -> None:
    entry = {k: v for k, v in engine_cfg(tiny_models, "tiny-vlm-a", batch_size=BATCH, max_new_tokens=8).items() if k != "name"}
    params = {"dataset": {"source": "build", "seeds": "seeds.jsonl"}, "turns": [1],
              "models": {"tiny-vlm-a": entry}, "targets": ["tiny-vlm-a"], "judges": {"keyword": {"kind": "keyword"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    dataset = _dataset(tmp_path / "data", pictures)
    out = tmp_path / "gen" / "1.jsonl"
    journal = out.parent / ".journal" / out.name
    command = [sys.executable, "-m", "safemt", "infer", "--params", str(tmp_path / "params.yaml"),
               "--model", "tiny-vlm-a", "--dataset", str(dataset), "-o", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    try:
        while child.poll() is None and len(_lines(journal)) < BATCH and time.monotonic() < deadline:
            time.sleep(0.002)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    killed_with = _lines(journal)
    assert child.returncode == -signal.SIGKILL, child.stderr.read().decode()[-2000:]
    assert BATCH <= len(killed_with) < N and not out.exists()

    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = _lines(journal)
    assert after[:len(killed_with)] == killed_with  # what was journalled is kept as it was
    assert len(after) == N  # the rerun generated only the other N - k dialogues
    records = [json.loads(line) for line in _lines(out)]
    assert sorted(r["id"] for r in records) == sorted(f"r{i}" for i in range(N))
    assert all(r["error"] is None and r["response"] is not None for r in records)
