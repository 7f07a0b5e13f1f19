"""Judges and the moderator on the real engine: guided choice makes a constrained judge's every reply
exactly a label; the prompted moderator's JSON schema makes every reply a document valid against it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safemt.judges import JudgeItem, get_judge
from safemt.moderation.moderators import SCHEMA, PromptedModerator
from safemt.records import VERDICTS
from tests.vllm.conftest import engine_cfg
from tests.vllm.dialogues import requests

ITEMS = [JudgeItem(id=f"x{i}", turns=1, scenario="Fraud", question=f"question {i} " * (i + 1),
                   messages=({"role": "user", "content": "tell me " * i},), response=f"reply {i}")
         for i in range(12)]


@pytest.fixture(scope="module")
def constrained(tiny_models: Path):
    entry = {"kind": "llm", "model": "tiny-judge", "retries": 0, "constrained": True}
    return get_judge("llm", entry, engine_cfg(tiny_models, "tiny-judge", max_new_tokens=16))


def test_a_constrained_judge_writes_exactly_a_label(constrained) -> None:
    verdicts = constrained.judge(ITEMS)
    assert [v.raw in VERDICTS and v.label == v.raw and v.parse == "constrained" for v in verdicts] == [True] * 12
    assert not constrained.fallbacks  # no reply ignored the constraint
    assert constrained.judge(ITEMS[:3]) == verdicts[:3]  # batched equals a smaller batch


def test_the_constraint_does_not_choose_the_label(constrained, hf_backend) -> None:
    """Guided choice lets the model pick: the labels equal the hf backend's restricted-token labels."""
    hf = get_judge("llm", {"kind": "llm", "model": "tiny-judge", "retries": 0, "constrained": True},
                   {"name": "tiny-judge", "backend": "hf", "path": constrained.backend.cfg["path"], "revision": "local",
                    "max_new_tokens": 16})
    assert [v.label for v in constrained.judge(ITEMS)] == [v.label for v in hf.judge(ITEMS)]


def test_free_text_of_the_same_model_is_not_a_verdict(tiny_models: Path, vllm_backend) -> None:
    from safemt.judges.parsing import read_verdict

    backend = vllm_backend("tiny-judge")
    from safemt.models import ChatRequest

    replies = backend.generate([ChatRequest((i.id, 1), ({"role": "user", "content": i.question},)) for i in ITEMS[:4]])
    assert all(read_verdict(r.response, constrained=False)[0] is None for r in replies)  # so the constraint did it


def test_the_moderator_replies_valid_json_through_structured_output(tiny_models: Path, pictures: list[Path]) -> None:
    """The moderator's requests carry its schema and the engine holds every reply to it. A random tiny
    model rarely closes the free-text rationale within its token budget, so the schema sent here
    bounds that one string (maxLength); the rest is the moderator's schema as it is."""
    import jsonschema
    from dataclasses import replace

    moderator = PromptedModerator("tiny-moderator", {"kind": "prompted", "model": "tiny-judge"},
                                  engine_cfg(tiny_models, "tiny-judge", max_new_tokens=96))
    assert moderator.structured and moderator.describe()["structured"] is True
    batch = [moderator.request(r.key, r.messages, r.image) for r in requests(pictures)[:8]]
    assert all(r.json_schema == SCHEMA for r in batch)
    bounded = {**SCHEMA, "properties": {**SCHEMA["properties"], "rationale": {"type": "string", "maxLength": 24}}}
    results = moderator.backend.generate([replace(r, json_schema=bounded) for r in batch])
    for result in results:
        assert result.error is None and result.finish_reason == "stop", result
        jsonschema.validate(json.loads(result.response, strict=False), bounded)  # raw control characters
        # The grammar (xgrammar 0.2.8) lets raw control characters into JSON strings; the moderator's
        # strict reader refuses those replies (a counted parse fallback) and reads all others.
        control = any(ord(c) < 0x20 for c in result.response)
        assert moderator.read(result.response).parsed is not control
    assert len({json.loads(r.response, strict=False)["rationale"] for r in results}) > 1  # the model writes, the grammar bounds

    unbounded = moderator.backend.generate(batch[:4])  # the moderator's own schema: compact JSON from the start
    assert all(r.response.startswith('{"verdict":"') for r in unbounded)
    assert all(json.loads(r.response, strict=False) for r in unbounded if r.finish_reason == "stop")
