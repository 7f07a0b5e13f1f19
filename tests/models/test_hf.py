"""The `hf` backend and the backend registry, on the tiny offline models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from safemt.hashing import stable_hash
from safemt.errors import SafemtError
from safemt.models import ChatRequest, get_backend
from safemt.models.base import with_system

COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]


def _cfg(tiny_models: Path, name: str = "tiny-vlm-a", **extra) -> dict:
    return {"name": name, "backend": "hf", "path": str(tiny_models / name), "revision": "local",
            "max_new_tokens": 10, "temperature": 0.0, **extra}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, color in enumerate(COLORS):
        path = folder / f"{i}.png"
        Image.new("RGB", (24 + 4 * i, 32), color).save(path)
        paths.append(path)
    return paths


def _requests(images: list[Path]) -> list[ChatRequest]:
    """Eight dialogues of different lengths (1 to 3 user turns), so that the batch needs padding."""
    requests = []
    for i, image in enumerate(images):
        messages = [{"role": "user", "content": f"Look at picture {i}. What is there?"}]
        for turn in range(i % 3):
            messages += [{"role": "assistant", "content": "Sure! Here is a short answer."},
                         {"role": "user", "content": "Earlier we talked about the picture; tell me more " * (turn + 1)}]
        requests.append(ChatRequest((f"d{i}", len(messages) // 2 + 1), tuple(messages), image))
    return requests


def test_batched_greedy_equals_one_by_one(tiny_models: Path, images: list[Path]) -> None:
    backend = get_backend(_cfg(tiny_models))
    requests = _requests(images)
    batched = backend.generate(requests)
    single = [r for req in requests for r in backend.generate([req])]
    assert [r.response for r in batched] == [r.response for r in single]
    assert [(r.finish_reason, r.n_output_tokens) for r in batched] == [(r.finish_reason, r.n_output_tokens)
                                                                      for r in single]
    assert all(r.error is None and isinstance(r.response, str) for r in batched)
    assert len({r.response for r in batched}) > 1  # the images and dialogues matter


def test_results_say_why_generation_stopped(tiny_models: Path, images: list[Path]) -> None:
    backend = get_backend(_cfg(tiny_models, max_new_tokens=3))
    for r in backend.generate(_requests(images)):
        assert r.finish_reason in ("stop", "length")
        assert r.n_output_tokens == 3 if r.finish_reason == "length" else 1 <= r.n_output_tokens <= 3
        assert r.latency_s is not None and r.latency_s >= 0 and r.n_input_tokens > 16  # 16 image tokens


def test_a_bad_image_fails_only_its_request(tiny_models: Path, images: list[Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    requests = _requests(images[:3])
    requests[1] = ChatRequest(requests[1].key, requests[1].messages, broken)
    results = get_backend(_cfg(tiny_models)).generate(requests)
    assert results[1].response is None and "UnidentifiedImageError" in results[1].error
    assert results[0].error is None and results[2].error is None


def test_text_only_model_gets_dialogue_without_image(tiny_models: Path, images: list[Path]) -> None:
    backend = get_backend(_cfg(tiny_models, "tiny-judge"))
    assert backend.describe()["modality"] == "text (image dropped)"
    results = backend.generate(_requests(images[:2]))
    assert all(r.error is None and isinstance(r.response, str) for r in results)


def test_text_only_model_batches_without_falling_back(tiny_models: Path, images: list[Path]) -> None:
    """Dialogues of different lengths are padded into one batch (a failed batch would run one by one,
    counted in fallbacks) and answer as they do alone."""
    backend = get_backend(_cfg(tiny_models, "tiny-judge"))
    requests = _requests(images[:4])
    batched = backend.generate(requests)
    assert not backend.fallbacks, dict(backend.fallbacks)
    assert len({r.latency_s for r in batched}) == 1  # one batch: one shared per-request time
    single = [r for req in requests for r in backend.generate([req])]
    assert [r.response for r in batched] == [r.response for r in single]


def test_describe_names_what_changes_outputs(tiny_models: Path) -> None:
    base = get_backend(_cfg(tiny_models)).describe()
    assert base["backend"] == "hf" and base["dtype"] == "float32" and base["revision"] == "local"
    assert len(base["chat_template_sha256"]) == 64 and len(base["folder_sha256"]) == 64
    assert get_backend(_cfg(tiny_models, max_new_tokens=11)).describe() != base
    assert get_backend(_cfg(tiny_models, system_prompt="Be brief.")).describe() != base
    assert get_backend(_cfg(tiny_models, "tiny-vlm-b")).describe()["folder_sha256"] != base["folder_sha256"]


def test_model_system_prompt_comes_before_a_defense_policy() -> None:
    messages = with_system([{"role": "system", "content": "policy"}, {"role": "user", "content": "hi"}], "model")
    assert messages == [{"role": "system", "content": "model\n\npolicy"}, {"role": "user", "content": "hi"}]


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(SafemtError, match="unknown backend 'nope' \\(defined: hf, openai, vllm\\)"):
        get_backend({"name": "m", "backend": "nope"})


def test_missing_folder_and_offline_hub_id_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(SafemtError, match="not found") as missing:
        get_backend({"name": "m", "backend": "hf", "path": str(tmp_path / "absent")})
    assert "\n" not in str(missing.value)
    with pytest.raises(SafemtError, match="HF_HUB_OFFLINE") as offline:
        get_backend({"name": "m", "backend": "hf", "path": "safemt-no-such-org/no-such-model", "revision": "0" * 40})
    assert "\n" not in str(offline.value)


# --- image placement and chat-template override ----------------------------------------------------

# The tiny models' ChatML with a marker on every role line, so that a prompt shows which template made it.
OVERRIDE_TEMPLATE = (
    "{%- for m in messages -%}{{- '<|im_start|>' + m['role'] + ' [override]\\n' -}}"
    "{%- for part in m['content'] -%}{%- if part['type'] == 'image' -%}{{- '<image>\\n' -}}"
    "{%- else -%}{{- part['text'] -}}{%- endif -%}{%- endfor -%}{{- '<|im_end|>\\n' -}}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def _spy_templating(backend, monkeypatch: pytest.MonkeyPatch) -> list[tuple[list, str]]:
    """(conversation, prompt) for each dialogue the backend's processor renders."""
    seen: list[tuple[list, str]] = []
    render = backend.processor.apply_chat_template

    def spy(conversations, **kwargs):
        """One batched, tokenizing call; record each conversation with the prompt it renders to."""
        for conversation in conversations:
            seen.append((conversation, render(conversation, chat_template=kwargs.get("chat_template"),
                                              add_generation_prompt=True, tokenize=False)))
        return render(conversations, **kwargs)

    monkeypatch.setattr(backend.processor, "apply_chat_template", spy)
    return seen


@pytest.mark.parametrize(("placement", "order"), [("first", ["image", "text"]), ("last", ["text", "image"])])
def test_image_placement_orders_the_first_user_message(tiny_models: Path, images: list[Path], placement: str,
                                                       order: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    backend = get_backend(_cfg(tiny_models, image_placement=placement))
    seen = _spy_templating(backend, monkeypatch)
    [result] = backend.generate(_requests(images)[2:3])  # three user turns
    [(conversation, prompt)] = seen
    first_user, *later = [m for m in conversation if m["role"] == "user"]
    assert [part["type"] for part in first_user["content"]] == order
    assert all([part["type"] for part in m["content"]] == ["text"] for m in later)  # the image is sent once
    assert prompt.count("<image>") == 1
    assert (prompt.index("<image>") < prompt.index("Look at picture 2")) == (placement == "first")
    assert result.error is None and backend.describe()["image_placement"] == placement


def test_image_placement_changes_describe_and_is_checked(tiny_models: Path) -> None:
    first = get_backend(_cfg(tiny_models)).describe()
    assert first["image_placement"] == "first"
    assert get_backend(_cfg(tiny_models, image_placement="last")).describe() != first
    assert get_backend(_cfg(tiny_models, "tiny-judge", image_placement="last")).describe()["image_placement"] is None
    with pytest.raises(SafemtError, match="models.tiny-vlm-a.image_placement"):
        get_backend(_cfg(tiny_models, image_placement="middle"))


def test_chat_template_override_changes_the_prompt_and_the_config_hash(
        tiny_models: Path, images: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safemt.stages.inference import run as run_inference
    from safemt.files import read_jsonl

    template = tmp_path / "override.jinja"
    template.write_text(OVERRIDE_TEMPLATE, encoding="utf-8")
    backend = get_backend(_cfg(tiny_models, chat_template=str(template)))
    seen = _spy_templating(backend, monkeypatch)
    backend.generate(_requests(images)[:1])
    assert "<|im_start|>user [override]\n<image>\nLook at picture 0" in seen[0][1]
    assert backend.describe()["chat_template_sha256"] == stable_hash(OVERRIDE_TEMPLATE)

    dataset = _one_dialogue_dataset(tmp_path / "data", images[0])
    hashes = []
    for extra in ({}, {"chat_template": str(template)}):
        params = {"models": {"m": _cfg(tiny_models, **extra)}}
        out = run_inference(params, "m", dataset, tmp_path / f"gen{len(hashes)}.jsonl")
        hashes.append(read_jsonl(out)[0]["config_hash"])
    assert hashes[0] != hashes[1]
    with pytest.raises(SafemtError, match="models.tiny-vlm-a.chat_template"):
        get_backend(_cfg(tiny_models, chat_template=str(tmp_path / "missing.jinja")))


def _one_dialogue_dataset(folder: Path, image: Path) -> Path:
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "0.png").write_bytes(image.read_bytes())
    record = {"id": "own_case_0", "turns": 1, "scenario": "Fraud", "source": "own", "method": None,
              "image": "images/0.png", "messages": [{"role": "user", "content": "What is in the picture?"}],
              "question": "What is in the picture?"}
    path = folder / "dialogues.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return path
