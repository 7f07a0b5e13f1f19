"""LLaVAShield's own family, LLaVA-OneVision, batched against alone through the adapter and the hf
backend. It lives in the vLLM step because .venv-vllm is the environment with torchvision, which the
OneVision processor's video half needs (the core environment runs the LLaVA-NeXT stand-in in
tests/moderation/test_llavashield.py). Anyres tiling gives each image size its own number of image
tokens, so a batch pads prompts of different lengths: any padding or ordering fault shows as a changed
or swapped verdict."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from safemt.moderation.guards.runner import GuardItem
from tests.models.families import llava_onevision
from tests.moderation.formats import LLAVASHIELD_PROMPT, write_policy
from tests.moderation.test_llavashield import DIALOGUE, tiny_guard


@pytest.fixture(scope="module")
def onevision(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return llava_onevision(tmp_path_factory.mktemp("onevision") / "tiny-llava-onevision")


def test_a_batch_equals_each_dialogue_alone_on_a_tiny_llava_onevision(onevision: Path, tmp_path: Path) -> None:
    options = write_policy(tmp_path / "guards", LLAVASHIELD_PROMPT, "llavashield-prompt.txt")
    guard = tiny_guard(tmp_path, options, path=str(onevision), max_new_tokens=12)
    items = []
    for i, size in enumerate([(50, 30), (20, 60), (32, 32), (64, 64)]):
        Image.new("RGB", size, ["red", "green", "blue", "white"][i]).save(tmp_path / f"{i}.png")
        items.append(GuardItem((f"d{i}", 3), (*DIALOGUE[:2], {"role": "user", "content": "And then? " * (i + 1)}),
                               tmp_path / f"{i}.png", response=f"Answer {i}."))
    prompts = guard.backend.processor(text=["<image>x"], images=[Image.open(tmp_path / "0.png")], return_tensors="pt")
    assert prompts["pixel_values"].shape[1] > 1, "anyres tiling did not run: the test would not exercise padding"
    for stage in ("input", "output"):
        together = [o.verdict.to_dict() for o in guard.classify(items, stage)]
        alone = [guard.classify([item], stage)[0].verdict.to_dict() for item in items]
        assert together == alone and len({v["raw"] for v in alone}) > 1
    assert not guard.backend.fallbacks
