"""GPU check (not a test; for a session that has a CUDA device): the `hf` backend on CUDA.

Builds the tiny models and the embedded-default dataset, then prints one JSON object:
- cuda_fp32_equals_cpu: share of greedy replies identical between CPU and CUDA in float32;
- bf16_batch_invariance: share identical between batch size 1 and 16 on CUDA in bfloat16;
- cuda_bf16_batched_vs_sequential: throughput with batch 32 divided by batch 1.
Run as: PYTHONPATH=src python benchmarks/gpu_check.py   (or benchmarks/gpu_check.sh)
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from safemt.stages.dataset import build_options
from safemt.data.build import build_dataset  # noqa: E402
from safemt.data.validate import read_dialogues  # noqa: E402
from safemt.models import ChatRequest  # noqa: E402
from safemt.models.hf import HFBackend  # noqa: E402
from safemt.models.tiny_weights import build_tiny_models  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def requests_for(dataset: Path) -> list[ChatRequest]:
    items = read_dialogues(dataset)
    return [ChatRequest(key=it.dialogue.key,
                        messages=tuple({"role": m.role, "content": m.content} for m in it.dialogue.messages),
                        image=dataset.parent / it.dialogue.image) for it in items]


def replies(model: Path, requests: list[ChatRequest], device: str, dtype: str, batch: int) -> tuple[list, float]:
    backend = HFBackend({"name": model.name, "backend": "hf", "path": str(model), "device": device,
                         "dtype": dtype, "max_new_tokens": 32, "batch_size": batch})
    backend.generate(requests[:batch])  # warm-up: load weights, compile kernels
    start = time.perf_counter()
    out = []
    for i in range(0, len(requests), batch):
        out += backend.generate(requests[i:i + batch])
    return [r.response for r in out], time.perf_counter() - start


def share_equal(a: list, b: list) -> float:
    return sum(x == y for x, y in zip(a, b)) / len(a)


def main() -> None:
    import torch

    assert torch.cuda.is_available(), "no CUDA device"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = build_tiny_models(tmp / "models")
        params = {"turns": [1, 2, 4, 6, 8], "dataset": {"source": "build", "generator": "template",
                                                        "method_assignment": "round_robin", "seed": 0}}
        build_dataset(REPO / "resources/seeds/seeds.jsonl", tmp / "data" / "dialogues.jsonl", build_options(params))
        reqs = requests_for(tmp / "data" / "dialogues.jsonl")
        report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "dialogues": len(reqs)}
        for model in models[:2]:
            cpu, _ = replies(model, reqs, "cpu", "float32", 8)
            gpu, _ = replies(model, reqs, "cuda", "float32", 8)
            one, t_one = replies(model, reqs, "cuda", "bfloat16", 1)
            many, _ = replies(model, reqs, "cuda", "bfloat16", 16)
            _, t_32 = replies(model, reqs, "cuda", "bfloat16", 32)
            report[model.name] = {"cuda_fp32_equals_cpu": share_equal(cpu, gpu),
                                  "bf16_batch_invariance": share_equal(one, many),
                                  "cuda_bf16_batched_vs_sequential": round(t_one / t_32, 2)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
