"""The tiny vision-language targets through the real vLLM engine: greedy replies token-identical to
the hf backend in float32, images included; batched equals one by one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.vllm.dialogues import requests

VLMS = ["tiny-vlm-a", "tiny-vlm-b"]


def _fields(results):
    return [(r.response, r.error, r.finish_reason, r.n_output_tokens, r.n_input_tokens) for r in results]


@pytest.mark.parametrize("name", VLMS)
def test_replies_equal_the_hf_backends(name: str, vllm_backend, hf_backend, pictures: list[Path]) -> None:
    batch = requests(pictures)
    vllm_results = vllm_backend(name).generate(batch)
    hf_results = hf_backend(name).generate(batch)
    assert all(r.error is None for r in vllm_results)
    assert _fields(vllm_results) == _fields(hf_results)
    assert len({r.response for r in vllm_results}) > 1  # not one reply for every dialogue


@pytest.mark.parametrize("name", VLMS)
def test_token_ids_equal_transformers_generate(name: str, vllm_backend, hf_backend, pictures: list[Path]) -> None:
    """The engine's own token ids against transformers' generate() on the hf backend's inputs."""
    import torch
    from vllm import SamplingParams

    from safemt.models.vllm_backend import conversation

    batch = requests(pictures)[:6]
    vllm, hf = vllm_backend(name), hf_backend(name)
    outputs = vllm.llm.chat([conversation(r, None) for r in batch], SamplingParams(temperature=0.0, max_tokens=16),
                            use_tqdm=False)
    engine_ids = [list(o.outputs[0].token_ids) for o in outputs]
    model = hf.model
    inputs = hf._inputs(batch)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=16, do_sample=False, pad_token_id=hf.tokenizer.pad_token_id)
    hf_ids = out[:, inputs["input_ids"].shape[1]:].tolist()
    assert engine_ids == [ids[:len(e)] for ids, e in zip(hf_ids, engine_ids)]
    assert all(len(e) == 16 or e[-1] in (model.generation_config.eos_token_id,) for e in engine_ids)


@pytest.mark.parametrize("name", VLMS)
def test_a_batch_equals_its_requests_one_by_one(name: str, vllm_backend, pictures: list[Path]) -> None:
    backend = vllm_backend(name)
    batch = requests(pictures)[:8]
    together = backend.generate(batch)
    alone = [backend.generate([r])[0] for r in batch]
    assert _fields(together) == _fields(alone)


def test_the_image_reaches_the_engine(vllm_backend, pictures: list[Path]) -> None:
    backend = vllm_backend("tiny-vlm-a")
    base = requests(pictures)[0]
    replies = {backend.generate([replace(base, image=p)])[0].response for p in pictures[:6]}
    assert len(replies) > 1  # different pictures, different replies
    assert backend.sees_images


def test_a_text_only_model_gets_the_dialogue_without_its_image(vllm_backend, hf_backend,
                                                               pictures: list[Path]) -> None:
    backend = vllm_backend("tiny-judge")
    assert not backend.sees_images
    with_image = requests(pictures)[:4]
    without = [replace(r, image=None) for r in with_image]
    assert _fields(backend.generate(with_image)) == _fields(backend.generate(without))
    assert _fields(backend.generate(without)) == _fields(hf_backend("tiny-judge").generate(without))
