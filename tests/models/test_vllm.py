"""The `vllm` backend's request building and output mapping, against a stand-in `vllm` module.

vllm cannot be installed on CPU machines, so these tests put a module object named `vllm` (with `LLM`
and `SamplingParams` classes that record what they receive) into sys.modules, following vllm's
documented offline API: LLM(model=, revision=, tensor_parallel_size=, ...), LLM.chat(conversations,
sampling_params=, chat_template=), RequestOutput.outputs[0].text/.token_ids/.finish_reason.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from safemt.hashing import stable_hash
from safemt.errors import ConfigError, SafemtError
from safemt.models import ChatRequest, GenerationResult, get_backend
from safemt.models.vllm_backend import VLLMBackend, sampling_args


class FakeSamplingParams:
    def __init__(self, **kwargs: Any):
        self.kwargs = kwargs


class FakeTokenizer:
    """Token 0 decodes to nothing; every other id to the text the stand-in engine stored for it."""

    def __init__(self) -> None:
        self.texts: dict[int, str] = {0: ""}

    def add(self, text: str) -> int:
        self.texts[len(self.texts)] = text
        return len(self.texts) - 1

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return "".join(self.texts[i] for i in ids)


class FakeLLM:
    """Answers each conversation with `reply to <last text>`; LONG hits the limit, ABORT aborts, BOOM raises."""

    instances: list["FakeLLM"] = []

    def __init__(self, **kwargs: Any):
        self.kwargs = kwargs
        self.calls: list[dict[str, Any]] = []
        self.tokenizer = FakeTokenizer()
        FakeLLM.instances.append(self)

    def get_tokenizer(self) -> FakeTokenizer:
        return self.tokenizer

    def chat(self, messages: list[list[dict[str, Any]]], sampling_params: FakeSamplingParams | None = None,
             chat_template: str | None = None, use_tqdm: bool = True) -> list[Any]:
        self.calls.append({"messages": messages, "sampling_params": sampling_params, "chat_template": chat_template})
        each = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(messages)
        return [self._output(conv, params.kwargs["max_tokens"]) for conv, params in zip(messages, each)]

    def _output(self, conv: list[dict[str, Any]], max_tokens: int) -> Any:
        text = conv[-1]["content"] if isinstance(conv[-1]["content"], str) else conv[-1]["content"][-1]["text"]
        if "BOOM" in text:
            raise ValueError("prompt is longer than max_model_len")
        reason = "length" if "LONG" in text else ("abort" if "ABORT" in text else "stop")
        ids = [self.tokenizer.add(f"reply to {text}")] + [0] * ((max_tokens if reason == "length" else 3) - 1)
        completion = types.SimpleNamespace(text="engine's own detokenization", token_ids=ids, finish_reason=reason)
        return types.SimpleNamespace(outputs=[completion], prompt_token_ids=list(range(11)))


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    FakeLLM.instances = []
    monkeypatch.setitem(sys.modules, "vllm", module)
    # The stand-in hub ids have no config.json to read offline: every model here takes images.
    monkeypatch.setattr("safemt.models.vllm_backend.takes_images", lambda *args: True)
    monkeypatch.setattr("safemt.models.vllm_backend.ENGINES", {})  # each test starts its own stand-in engines
    return module


def _cfg(**extra: Any) -> dict[str, Any]:
    return {"name": "big-vlm", "backend": "vllm", "path": "org/some-vlm", "revision": "abc1230000000000000000000000000000000000",
            "max_new_tokens": 32, "temperature": 0.0, **extra}


def _request(i: int, text: str = "", image: Path | None = None, turns: int = 1) -> ChatRequest:
    messages = [{"role": "user", "content": f"q{i} turn 0 {text}".strip()}]
    for t in range(1, turns):
        messages += [{"role": "assistant", "content": f"a{t}"},
                     {"role": "user", "content": f"q{i} turn {t} {text}".strip()}]
    return ChatRequest((f"id_{i}", turns), tuple(messages), image)


def test_missing_vllm_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(SafemtError) as err:
        get_backend(_cfg())
    text = str(err.value)
    assert "\n" not in text
    assert "backend 'vllm' needs the gpu extra: pip install 'safemt[gpu]' (CUDA machine)" in text


def test_engine_arguments_come_from_config(fake_vllm, tmp_path: Path) -> None:
    backend = get_backend(_cfg(tensor_parallel_size=4, dtype="bfloat16", gpu_memory_utilization=0.8,
                               max_model_len=8192))
    assert isinstance(backend, VLLMBackend) and not FakeLLM.instances  # the engine starts on first use
    backend.generate([_request(0)])
    assert FakeLLM.instances[0].kwargs == {
        "model": "org/some-vlm", "revision": "abc1230000000000000000000000000000000000", "tokenizer_revision": "abc1230000000000000000000000000000000000", "tensor_parallel_size": 4,
        "trust_remote_code": False, "dtype": "bfloat16", "gpu_memory_utilization": 0.8,
        "enable_prefix_caching": True, "load_format": "safetensors", "seed": 0, "max_model_len": 8192}
    backend.generate([_request(1)])
    assert len(FakeLLM.instances) == 1  # started once

    local = get_backend(_cfg(path=str(tmp_path), gpus=2, trust_remote_code=True))
    local.generate([_request(0)])
    kwargs = FakeLLM.instances[1].kwargs
    assert (kwargs["revision"], kwargs["tensor_parallel_size"], kwargs["trust_remote_code"]) == (None, 2, True)


def test_sampling_parameters_map_one_to_one(fake_vllm) -> None:
    greedy = get_backend(_cfg())
    greedy.generate([_request(0)])
    assert FakeLLM.instances[0].calls[0]["sampling_params"].kwargs == {
        "temperature": 0.0, "top_p": 1.0, "max_tokens": 32, "seed": 0}
    assert sampling_args({"max_new_tokens": 7, "temperature": 0.7, "top_p": 0.9}) == {
        "temperature": 0.7, "top_p": 0.9, "max_tokens": 7, "seed": 0}


def test_image_is_a_data_url_part_first_in_the_first_user_turn(fake_vllm, tmp_path: Path) -> None:
    png_named_jpg = tmp_path / "x.jpg"
    Image.new("RGB", (8, 8), "red").save(png_named_jpg, format="PNG")
    backend = get_backend(_cfg(system_prompt="Be safe."))
    backend.generate([_request(0, image=png_named_jpg, turns=2), _request(1)])
    with_image, without = FakeLLM.instances[0].calls[0]["messages"]
    system, first_user, assistant, last_user = with_image
    assert system == {"role": "system", "content": "Be safe."}
    image_part, text_part = first_user["content"]
    assert image_part["type"] == "image_url" and image_part["image_url"]["url"].startswith("data:image/png;base64,")
    Image.open(io.BytesIO(base64.b64decode(image_part["image_url"]["url"].split(",", 1)[1]))).verify()
    assert text_part == {"type": "text", "text": "q0 turn 0"}
    assert assistant == {"role": "assistant", "content": "a1"} and last_user == {"role": "user", "content": "q0 turn 1"}
    assert without == [system, {"role": "user", "content": "q1 turn 0"}]


def test_outputs_map_to_results(fake_vllm) -> None:
    results = get_backend(_cfg()).generate([_request(0), _request(1, "LONG"), _request(2, "ABORT")])
    stop, length, aborted = results
    assert (stop.response, stop.finish_reason, stop.n_output_tokens, stop.n_input_tokens) == (
        "reply to q0 turn 0", "stop", 3, 11)
    assert (length.response, length.finish_reason, length.n_output_tokens) == ("reply to q1 turn 0 LONG", "length", 32)
    assert aborted.response is None and "finish_reason 'abort'" in aborted.error
    assert all(r.latency_s is not None for r in results)


def test_a_failing_batch_is_bisected_and_the_fallback_counted(fake_vllm, capsys) -> None:
    """One bad request among 16: the batch is split in halves down to it (9 engine calls, not 17)."""
    requests = [_request(i, "BOOM" if i == 5 else "") for i in range(16)]
    backend = get_backend(_cfg())
    results = backend.generate(requests)
    assert [r.response for r in results] == [None if i == 5 else f"reply to q{i} turn 0" for i in range(16)]
    expected = GenerationResult.failed("ValueError: prompt is longer than max_model_len", results[5].latency_s)
    assert results[5] == expected
    sizes = [len(call["messages"]) for call in FakeLLM.instances[0].calls]
    assert sizes == [16, 8, 4, 4, 2, 1, 1, 2, 8]  # depth first
    assert backend.fallbacks["batch_split_in_halves"] == 4
    err = capsys.readouterr().err
    assert err.count("batch split in halves") == 1 and "a batch of 16 failed (ValueError" in err


class FakeStructuredOutputsParams:  # vllm >= 0.12
    def __init__(self, **kwargs: Any):
        self.kwargs = kwargs


class FakeGuidedDecodingParams:  # vllm 0.10, 0.11
    def __init__(self, **kwargs: Any):
        self.kwargs = kwargs


@pytest.mark.parametrize("cls,argument", [(FakeStructuredOutputsParams, "structured_outputs"),
                                          (FakeGuidedDecodingParams, "guided_decoding")])
def test_constrained_requests_use_guided_choice(fake_vllm, monkeypatch, cls, argument) -> None:
    monkeypatch.setattr(fake_vllm, "sampling_params", types.SimpleNamespace(**{cls.__name__[4:]: cls}),
                        raising=False)
    backend = get_backend(_cfg())
    backend.generate([ChatRequest(("a", 1), ({"role": "user", "content": "judge"},), choices=("safe", "unsafe"))])
    kwargs = FakeLLM.instances[0].calls[0]["sampling_params"].kwargs
    assert set(kwargs) == {"temperature", "top_p", "max_tokens", "seed", argument}
    assert kwargs[argument].kwargs == {"choice": ["safe", "unsafe"]}
    backend.generate([_request(1)])  # unconstrained requests carry no constraint
    assert set(FakeLLM.instances[0].calls[1]["sampling_params"].kwargs) == {"temperature", "top_p", "max_tokens",
                                                                            "seed"}


def test_constrained_request_without_guided_choice_in_vllm_is_an_error(fake_vllm, monkeypatch) -> None:
    monkeypatch.setattr(fake_vllm, "sampling_params", types.SimpleNamespace(), raising=False)
    with pytest.raises(SafemtError, match="constrained: false"):
        get_backend(_cfg()).generate([ChatRequest(("a", 1), ({"role": "user", "content": "x"},),
                                                  choices=("safe", "unsafe"))])


def test_chat_template_override_is_passed_and_hashed(fake_vllm, tmp_path: Path) -> None:
    template = tmp_path / "chat.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}", encoding="utf-8")
    backend = get_backend(_cfg(chat_template=str(template)))
    backend.generate([_request(0)])
    assert FakeLLM.instances[0].calls[0]["chat_template"] == template.read_text(encoding="utf-8")
    assert backend.describe()["chat_template_sha256"] == stable_hash(template.read_text(encoding="utf-8"))
    assert get_backend(_cfg()).describe()["chat_template_sha256"] is None
    with pytest.raises(ConfigError, match="models.big-vlm.chat_template"):
        get_backend(_cfg(chat_template=str(tmp_path / "missing.jinja")))


def test_describe_pins_what_changes_outputs_without_starting_the_engine(fake_vllm, tmp_path: Path) -> None:
    hub = get_backend(_cfg()).describe()
    assert (hub["backend"], hub["path"], hub["revision"]) == ("vllm", "org/some-vlm", "abc1230000000000000000000000000000000000")
    assert hub["folder_sha256"] is None
    assert hub["generation"] == {"max_new_tokens": 32, "temperature": 0.0} and hub["trust_remote_code"] is False
    (tmp_path / "model.safetensors").write_bytes(b"weights v1")
    before = get_backend(_cfg(path=str(tmp_path))).describe()
    (tmp_path / "model.safetensors").write_bytes(b"weights v2")
    after = get_backend(_cfg(path=str(tmp_path))).describe()
    assert before["revision"] == "local" and before["folder_sha256"] != after["folder_sha256"]
    assert not FakeLLM.instances


def test_engine_load_failure_is_one_line(fake_vllm, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**kwargs: Any) -> None:
        raise ValueError("No safetensors weights found\nlong traceback text")

    monkeypatch.setattr(fake_vllm, "LLM", broken)
    with pytest.raises(SafemtError, match="vllm cannot load 'org/some-vlm': No safetensors weights found$"):
        get_backend(_cfg()).generate([_request(0)])


def test_image_placement_last_puts_the_image_after_the_text_and_is_hashed(fake_vllm, tmp_path: Path) -> None:
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8), "red").save(image)
    backend = get_backend(_cfg(image_placement="last"))
    backend.generate([_request(0, image=image, turns=2)])
    first_user, _, last_user = FakeLLM.instances[0].calls[0]["messages"][0]
    assert [part["type"] for part in first_user["content"]] == ["text", "image_url"]
    assert last_user == {"role": "user", "content": "q0 turn 1"}
    assert backend.describe()["image_placement"] == "last"
    assert get_backend(_cfg()).describe()["image_placement"] == "first"


def test_hf_and_vllm_decode_with_the_same_merged_settings(fake_vllm, tiny_models: Path, tmp_path: Path) -> None:
    """A model's generation_config extras (repetition_penalty) reach both backends and the config hash;
    params override them."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_models / "tiny-vlm-a", folder)
    shipped = json.loads((folder / "generation_config.json").read_text())
    (folder / "generation_config.json").write_text(json.dumps({**shipped, "repetition_penalty": 1.3, "top_k": 5}))
    local = {"path": str(folder), "revision": "local", "max_new_tokens": 8, "temperature": 0.0}
    hf = get_backend({"name": "m", "backend": "hf", **local})
    vllm = get_backend({"name": "m", "backend": "vllm", **local})
    expected = {"max_new_tokens": 8, "temperature": 0.0, "repetition_penalty": 1.3}  # greedy: top_k unused
    assert hf.generation_params() == vllm.generation_params() == expected
    assert hf.describe()["generation"] == vllm.describe()["generation"] == expected
    vllm.generate([_request(0)])
    sent = FakeLLM.instances[0].calls[0]["sampling_params"].kwargs
    assert (sent["repetition_penalty"], sent["temperature"]) == (1.3, 0.0)
    plain = get_backend({"name": "m", "backend": "hf", **local, "path": str(tiny_models / "tiny-vlm-a")})
    assert "repetition_penalty" not in plain.generation_params()
    overridden = get_backend({"name": "m", "backend": "hf", **local, "repetition_penalty": 1.0, "temperature": 0.5})
    assert overridden.generation_params() == {"max_new_tokens": 8, "temperature": 0.5, "top_p": 1.0, "top_k": 5}


def test_cpu_engine_variables_are_set_only_where_unset_and_said(capsys) -> None:
    from safemt.models.vllm_backend import set_cpu_engine_environment

    environ = {"VLLM_CPU_OMP_THREADS_BIND": "0"}
    chosen = set_cpu_engine_environment({"name": "m", "cpu_kvcache_space_gib": 3}, environ)
    assert chosen == {"VLLM_CPU_KVCACHE_SPACE": "3"} and environ["VLLM_CPU_OMP_THREADS_BIND"] == "0"
    err = capsys.readouterr().err
    assert err == "safemt: models.m: vLLM runs on CPU; VLLM_CPU_KVCACHE_SPACE was unset, set to 3\n"


def test_cpu_bind_list_names_every_allowed_core(monkeypatch) -> None:
    from safemt.models import vllm_backend

    monkeypatch.setattr(vllm_backend.os, "sched_getaffinity", lambda pid: {0, 1, 2, 5, 7, 8}, raising=False)
    assert vllm_backend.cpu_bind_list() == "0-2,5,7-8"


def test_in_process_engine_needs_one_worker(fake_vllm) -> None:
    backend = get_backend(_cfg(engine_in_process=True, tensor_parallel_size=2))
    with pytest.raises(ConfigError, match="engine_in_process needs tensor_parallel_size 1"):
        backend.generate([_request(0)])


def test_engine_settings_and_json_schema_reach_the_engine(fake_vllm, monkeypatch) -> None:
    class FakeStructured:
        def __init__(self, **kwargs: Any):
            self.kwargs = kwargs

    monkeypatch.setattr(fake_vllm, "sampling_params", types.SimpleNamespace(StructuredOutputsParams=FakeStructured),
                        raising=False)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "")
    backend = get_backend(_cfg(engine_in_process=True, enable_prefix_caching=False, enforce_eager=True,
                               max_num_seqs=16))
    schema = {"type": "object", "properties": {"verdict": {"enum": ["a", "b"]}}}
    backend.generate([ChatRequest(("a", 1), ({"role": "user", "content": "x"},), json_schema=schema), _request(1)])
    kwargs = FakeLLM.instances[0].kwargs
    assert (kwargs["enable_prefix_caching"], kwargs["enforce_eager"], kwargs["max_num_seqs"],
            kwargs["distributed_executor_backend"]) == (False, True, 16, "uni")
    assert kwargs["structured_outputs_config"] == {"backend": "xgrammar", "disable_any_whitespace": True}
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
    first, second = FakeLLM.instances[0].calls[0]["sampling_params"]  # one SamplingParams per request
    assert first.kwargs["structured_outputs"].kwargs == {"json": schema} and "structured_outputs" not in second.kwargs


def test_an_engine_that_loses_a_request_stops_the_run(fake_vllm, monkeypatch) -> None:
    backend = get_backend(_cfg())
    backend.generate([_request(0)])
    monkeypatch.setattr(FakeLLM, "chat", lambda self, messages, **kw: [])
    with pytest.raises(SafemtError, match="model big-vlm returned 0 results for 2 requests"):
        backend.generate([_request(1), _request(2)])
