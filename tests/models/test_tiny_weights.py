"""The tiny offline models: reload offline, generate, deterministic bytes, images matter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from safemt.models.tiny_weights import build_tiny_models

VLMS = ["tiny-vlm-a", "tiny-vlm-b"]


def _conversation(question: str = "What is in the picture?") -> list[dict]:
    return [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A red door."}]},
        {"role": "user", "content": [{"type": "text", "text": "Tell me more."}]},
    ]


def _vlm(folder: Path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    return processor, model.eval()


def _inputs(processor, image: Image.Image):
    text = processor.apply_chat_template(_conversation(), add_generation_prompt=True, tokenize=False)
    return processor(images=[image], text=[text], return_tensors="pt")


def test_build_writes_three_model_folders(tiny_models: Path) -> None:
    names = sorted(p.name for p in tiny_models.iterdir())
    assert names == ["tiny-judge", "tiny-vlm-a", "tiny-vlm-b"]
    for name in names:
        files = {p.name for p in (tiny_models / name).iterdir()}
        assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= files


@pytest.mark.parametrize("name", VLMS)
def test_vlm_reloads_offline_and_generates(tiny_models: Path, name: str) -> None:
    processor, model = _vlm(tiny_models / name)
    inputs = _inputs(processor, Image.new("RGB", (40, 30), "red"))
    image_id = model.config.image_token_index
    assert int((inputs["input_ids"] == image_id).sum()) == 16  # 32x32 image, 8x8 patches
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:]
    assert 1 <= len(new) <= 12
    assert len(set(new.tolist())) > 1  # the init scale gives varied text, not one repeated token


def test_judge_reloads_offline_and_generates(tiny_models: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_models / "tiny-judge"
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, use_safetensors=True)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Is this safe?"}],
                                         add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nIs this safe?<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer([text], return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_chat_template_takes_strings_and_parts(tiny_models: Path) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_models / "tiny-vlm-a", local_files_only=True)
    as_parts = [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    as_string = [{"role": "user", "content": "Hello"}]
    rendered = [processor.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
                for conv in (as_parts, as_string)]
    assert rendered == ["<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"] * 2


def test_two_builds_are_byte_identical(tiny_models: Path, tmp_path: Path) -> None:
    build_tiny_models(tmp_path)
    first = sorted(p.relative_to(tiny_models) for p in tiny_models.rglob("*") if p.is_file())
    second = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert first == second
    for rel in first:
        assert (tiny_models / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_images_change_logits_and_models_differ(tiny_models: Path) -> None:
    logits = {}
    for name in VLMS:
        processor, model = _vlm(tiny_models / name)
        with torch.no_grad():
            for color in ("red", "blue"):
                inputs = _inputs(processor, Image.new("RGB", (32, 32), color))
                logits[name, color] = model(**inputs).logits[0, -1]
    assert not torch.allclose(logits["tiny-vlm-a", "red"], logits["tiny-vlm-a", "blue"], atol=1e-4)
    assert not torch.allclose(logits["tiny-vlm-b", "red"], logits["tiny-vlm-b", "blue"], atol=1e-4)
    assert not torch.allclose(logits["tiny-vlm-a", "red"], logits["tiny-vlm-b", "red"], atol=1e-4)
