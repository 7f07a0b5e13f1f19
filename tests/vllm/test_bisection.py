"""A batch holding one request the engine rejects (longer than max_model_len): the bisection isolates
it, the others are answered as they are alone, and the failure is an error result, counted."""

from __future__ import annotations

from safemt.models import ChatRequest
from tests.vllm.conftest import MAX_MODEL_LEN


def test_a_request_too_long_for_the_model_fails_alone(vllm_backend) -> None:
    backend = vllm_backend("tiny-judge")
    words = " ".join(f"word{i}" for i in range(MAX_MODEL_LEN))  # well over MAX_MODEL_LEN tokens
    batch = [ChatRequest((f"r{i}", 1), ({"role": "user", "content": words if i == 5 else f"question {i}"},))
             for i in range(8)]
    before = backend.fallbacks["batch_split_in_halves"]
    results = backend.generate(batch)
    assert len(results) == 8
    failed = results[5]
    assert failed.response is None and failed.error and "max" in failed.error.lower() and "\n" not in failed.error
    alone = [backend.generate([r])[0] for i, r in enumerate(batch) if i != 5]
    assert [(r.response, r.n_output_tokens) for i, r in enumerate(results) if i != 5] == [
        (r.response, r.n_output_tokens) for r in alone]
    assert all(r.error is None for i, r in enumerate(results) if i != 5)
    assert backend.fallbacks["batch_split_in_halves"] - before == 3  # 8 -> 4 -> 2 -> 1: three splits


def test_the_engine_still_answers_after_a_rejected_request(vllm_backend) -> None:
    backend = vllm_backend("tiny-judge")
    too_long = ChatRequest(("long", 1), ({"role": "user", "content": "word " * (2 * MAX_MODEL_LEN)},))
    request = ChatRequest(("after", 1), ({"role": "user", "content": "question 0"},))
    before = backend.generate([request])[0]
    assert backend.generate([too_long])[0].error is not None
    after = backend.generate([request])[0]
    assert before.error is None and (after.response, after.n_output_tokens) == (before.response, before.n_output_tokens)
