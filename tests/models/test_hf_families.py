"""The hf backend batches every vision-language family whose processor runs offline: LLaVA, LLaVA-NeXT,
Gemma 3, Idefics3 and Mllama (tiny configs built like `safemt models tiny`). Inputs come from the
processor's own apply_chat_template with each image inside its conversation; a batch must give the
same greedy replies as its requests one at a time, with no fallback; a forced failure is reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from safemt.models import ChatRequest, get_backend
from safemt.models.hf import HFBackend
from tests.models.families import FAMILIES


@pytest.fixture(scope="module")
def family_models(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("families")
    return {"llava": tiny_models / "tiny-vlm-a", **{name: build(out / name) for name, build in FAMILIES.items()}}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Images of different sizes and aspect ratios, as the release has."""
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, (size, color) in enumerate([((50, 30), "red"), ((20, 60), "blue"), ((32, 32), "green")]):
        paths.append(folder / f"{i}.png")
        Image.new("RGB", size, color).save(paths[-1])
    return paths


def requests_for(images: list[Path]) -> list[ChatRequest]:
    """Dialogues of different lengths (so padding matters), each with its own image."""
    out = []
    for i, image in enumerate(images):
        messages = [{"role": "user", "content": f"What is in picture {i}? " * (i + 1)}]
        for t in range(i):
            messages += [{"role": "assistant", "content": "A few shapes."}, {"role": "user", "content": f"And {t}?"}]
        out.append(ChatRequest((f"own_case_{i}", i + 1), tuple(messages), image))
    return out


@pytest.mark.parametrize("family", ["llava", *FAMILIES])
def test_a_batch_of_each_family_runs_as_one_batch_with_the_replies_of_single_requests(
        family: str, family_models: dict[str, Path], images: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    backend = get_backend({"name": family, "backend": "hf", "path": str(family_models[family]),
                           "max_new_tokens": 6, "batch_size": 3})
    assert backend.vision
    calls = []
    original = HFBackend._generate_batch
    monkeypatch.setattr(HFBackend, "_generate_batch", lambda self, reqs: calls.append(len(reqs)) or original(self, reqs))
    requests = requests_for(images)
    batched = backend.generate(requests)
    assert calls == [3] and not backend.fallbacks, backend.fallbacks  # one batch, no fallback
    singles = [backend.generate([r])[0] for r in requests]
    assert all(r.error is None and r.n_output_tokens for r in batched)
    assert [r.response for r in batched] == [r.response for r in singles]


def test_a_forced_batch_failure_is_logged_with_its_cause_and_counted(family_models, images, tmp_path, capsys) -> None:
    backend = get_backend({"name": "mllama", "backend": "hf", "path": str(family_models["mllama"]),
                           "max_new_tokens": 4, "batch_size": 3})
    requests = requests_for(images)
    broken = ChatRequest(requests[1].key, requests[1].messages, tmp_path / "missing.png")
    results = backend.generate([requests[0], broken, requests[2]])
    assert results[0].error is None and results[2].error is None
    assert results[1].response is None and "missing.png" in results[1].error
    assert backend.fallbacks["batch_run_one_by_one"] == 1
    err = capsys.readouterr().err
    assert "batch run one by one" in err and "a batch of 3 failed" in err and "missing.png" in err
