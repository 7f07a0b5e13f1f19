"""Benchmarks (not tests) of the inference backends; prints one JSON object with their ratios.

    python benchmarks/inference.py [NAME ...]     # default: every benchmark in BENCHMARKS

openai_vs_bound: 400 requests to the loopback OpenAI-compatible stub, which answers each after a
fixed 200 ms (in a child process, as a real server runs in its own), with concurrency 32. No client
can do better than 32 / 0.2 s = 160 requests/s; the ratio achieved / bound (target >= 0.85) shows
what the backend's threads, bookkeeping and HTTP client cost on top of waiting for the server.

Each benchmark is a function returning a dict of numbers; add one by writing it and naming it in
BENCHMARKS (planned: hf_batched_vs_sequential, resume_overhead).
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the loopback stub lives in tests/servers

from safemt.models import ChatRequest, get_backend  # noqa: E402
from tests.servers.openai_stub import serve_in_subprocess  # noqa: E402

N_REQUESTS, CONCURRENCY, SERVER_DELAY_S = 400, 32, 0.2


def openai_vs_bound() -> dict[str, Any]:
    """Requests/s through the `openai` backend against a server with a fixed latency, over the bound.

    The same load through the bare openai client and a thread pool is measured beside it, so that
    what the backend adds can be told from what the client itself costs on this machine.
    """
    requests = [ChatRequest((f"bench_{i}", 1), ({"role": "user", "content": f"benchmark request {i}"},))
                for i in range(N_REQUESTS)]
    with serve_in_subprocess(delay_s=SERVER_DELAY_S) as base_url:
        backend = get_backend({"name": "bench", "backend": "openai", "model_id": "stub", "base_url": base_url,
                               "concurrency": CONCURRENCY, "max_new_tokens": 16, "timeout_s": 10})
        backend.generate(requests[:CONCURRENCY])  # open the connections: a long run reuses them
        start = time.perf_counter()
        results = backend.generate(requests)
        elapsed = time.perf_counter() - start
        raw_elapsed = _bare_client_seconds(base_url)
    bound = CONCURRENCY / SERVER_DELAY_S
    return {"openai_vs_bound": round(N_REQUESTS / elapsed / bound, 3),
            "openai_bare_client_vs_bound": round(N_REQUESTS / raw_elapsed / bound, 3),
            "openai_requests_per_s": round(N_REQUESTS / elapsed, 1), "openai_bound_per_s": bound,
            "openai_failed": sum(r.error is not None for r in results)}


def _bare_client_seconds(base_url: str) -> float:
    """Seconds for the same requests through openai.OpenAI alone, CONCURRENCY threads."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="EMPTY", timeout=10, max_retries=0)

    def one(i: int) -> None:
        client.chat.completions.create(model="stub", messages=[{"role": "user", "content": f"benchmark request {i}"}],
                                       max_tokens=16, temperature=0.0)

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        list(pool.map(one, range(CONCURRENCY)))
        start = time.perf_counter()
        list(pool.map(one, range(N_REQUESTS)))
        return time.perf_counter() - start


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
