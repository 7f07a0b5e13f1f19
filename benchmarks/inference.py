"""Benchmarks (not tests) of the inference backends; prints one JSON object with their ratios.

    python benchmarks/inference.py [NAME ...]     # default: every benchmark in BENCHMARKS

openai_vs_bound: 400 requests to the loopback OpenAI-compatible stub, which answers each after a
fixed 200 ms, with concurrency 32. The best any client can do is 32 / 0.2 s = 160 requests/s; the
ratio achieved / bound (target >= 0.85) shows what the backend's threads, retries bookkeeping and
HTTP client cost on top of waiting for the server.

Each benchmark is a function returning a dict of numbers; add one by writing it and naming it in
BENCHMARKS (planned: hf_batched_vs_sequential, resume_overhead).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the loopback stub lives in tests/servers

from safemt.models import ChatRequest, get_backend  # noqa: E402
from tests.servers.openai_stub import OpenAIStub  # noqa: E402

N_REQUESTS, CONCURRENCY, SERVER_DELAY_S = 400, 32, 0.2


def openai_vs_bound() -> dict[str, Any]:
    """Requests/s through the `openai` backend against a server with a fixed latency, over the bound."""
    requests = [ChatRequest((f"bench_{i}", 1), ({"role": "user", "content": f"benchmark request {i}"},))
                for i in range(N_REQUESTS)]
    with OpenAIStub(delay_s=SERVER_DELAY_S, lifetime_s=300) as stub:
        backend = get_backend({"name": "bench", "backend": "openai", "model_id": "stub", "base_url": stub.base_url,
                               "concurrency": CONCURRENCY, "max_new_tokens": 16, "timeout_s": 10})
        backend.generate([ChatRequest(("warmup", 1), ({"role": "user", "content": "warm up"},))])
        start = time.perf_counter()
        results = backend.generate(requests)
        elapsed = time.perf_counter() - start
    failed = sum(r.error is not None for r in results)
    achieved = N_REQUESTS / elapsed
    bound = CONCURRENCY / SERVER_DELAY_S
    return {"openai_vs_bound": round(achieved / bound, 3), "openai_requests_per_s": round(achieved, 1),
            "openai_bound_per_s": bound, "openai_seconds": round(elapsed, 3), "openai_failed": failed}


BENCHMARKS: dict[str, Callable[[], dict[str, Any]]] = {
    "openai_vs_bound": openai_vs_bound,
}


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r} (known: {', '.join(BENCHMARKS)})", file=sys.stderr)
        return 2
    report: dict[str, Any] = {}
    for name in names or list(BENCHMARKS):
        report.update(BENCHMARKS[name]())
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
