"""The `openai` backend against a real loopback HTTP server: images, retries, faults, secrets."""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from safemt.config import check_schema
from safemt.errors import ConfigError, SafemtError
from safemt.models import ChatRequest, GenerationResult, get_backend
from safemt.models.openai_backend import OpenAIBackend
from tests.servers.openai_stub import OpenAIStub, last_user_text

KEY_VAR = "SAFEMT_TEST_API_KEY"


def _cfg(stub: OpenAIStub, **extra) -> dict:
    return {"name": "api-model", "backend": "openai", "model_id": "stub-model", "base_url": stub.base_url,
            "max_new_tokens": 64, "temperature": 0.0, "timeout_s": 2.0, "max_retries": 3,
            **extra}


def _request(i: int, image: Path | None = None, turns: int = 1) -> ChatRequest:
    messages = [{"role": "user", "content": f"request {i} turn 0"}]
    for t in range(1, turns):
        messages += [{"role": "assistant", "content": f"answer {t}"},
                     {"role": "user", "content": f"request {i} turn {t}"}]
    return ChatRequest((f"id_{i}", turns), tuple(messages), image)


def _echo(request: ChatRequest) -> str:
    return f"echo: {request.messages[-1]['content']}"


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    """A PNG named .jpg (the type must come from the bytes), a JPEG, and a BMP (re-encoded as PNG)."""
    paths = {"png_named_jpg": tmp_path / "a.jpg", "jpeg": tmp_path / "b.jpeg", "bmp": tmp_path / "c.bmp"}
    Image.new("RGB", (8, 8), "red").save(paths["png_named_jpg"], format="PNG")
    Image.new("RGB", (8, 8), "green").save(paths["jpeg"], format="JPEG")
    Image.new("RGB", (8, 8), "blue").save(paths["bmp"], format="BMP")
    return paths


# --- the happy path --------------------------------------------------------------------------------

def test_images_are_data_urls_with_their_real_type_first_in_the_first_user_message(images) -> None:
    requests = [_request(0, images["png_named_jpg"], turns=2), _request(1, images["jpeg"]),
                _request(2, images["bmp"], turns=3), _request(3)]
    with OpenAIStub() as stub:
        backend = get_backend(_cfg(stub, system_prompt="Be brief."))
        results = backend.generate(requests)
        bodies = {last_user_text(rec.body): rec.body for rec in stub.records}
    assert [r.response for r in results] == [_echo(r) for r in requests]
    assert all(r.error is None and r.finish_reason == "stop" for r in results)
    assert all(r.n_output_tokens and r.n_input_tokens for r in results)
    expected_mime = {0: "image/png", 1: "image/jpeg", 2: "image/png"}
    for i, request in enumerate(requests):
        body = bodies[request.messages[-1]["content"]]
        assert body["model"] == "stub-model" and body["temperature"] == 0.0 and body["max_tokens"] == 64
        assert "top_p" not in body  # greedy
        system, first_user, *rest = body["messages"]
        assert system == {"role": "system", "content": "Be brief."}
        if i in expected_mime:
            image_part, text_part = first_user["content"]
            url = image_part["image_url"]["url"]
            assert image_part["type"] == "image_url" and url.startswith(f"data:{expected_mime[i]};base64,")
            Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).verify()
            assert text_part == {"type": "text", "text": f"request {i} turn 0"}
        else:
            assert first_user == {"role": "user", "content": "request 3 turn 0"}
        assert all(isinstance(m["content"], str) for m in rest)  # the image is sent once, in the first turn
    assert backend.usage["requests"] == backend.usage["attempts"] == 4
    assert backend.usage["completion_tokens"] == sum(r.n_output_tokens for r in results)


def test_length_limited_reply_is_a_response_with_finish_reason_length() -> None:
    with OpenAIStub() as stub:
        [result] = get_backend(_cfg(stub, max_new_tokens=2)).generate([_request(0)])
    assert result == GenerationResult("echo: request", None, "length", 2, result.latency_s, result.n_input_tokens)


def test_sampling_parameters_are_sent_when_temperature_is_positive() -> None:
    with OpenAIStub() as stub:
        get_backend(_cfg(stub, temperature=0.7, top_p=0.9)).generate([_request(0)])
        body = stub.records[0].body
    assert (body["temperature"], body["top_p"]) == (0.7, 0.9)


# --- retries ---------------------------------------------------------------------------------------

def test_429_waits_as_long_as_retry_after_says() -> None:
    with OpenAIStub(script=["429", "ok"], retry_after=1) as stub:
        start = time.perf_counter()
        [result] = get_backend(_cfg(stub)).generate([_request(0)])
        waited = time.perf_counter() - start
        outcomes = [r.outcome for r in stub.records]
    assert result.response == "echo: request 0 turn 0" and outcomes == ["429", "ok"]
    assert 0.9 <= waited < 5


@pytest.mark.parametrize("fault", ["500", "503", "timeout"])
def test_transient_fault_then_success(fault: str) -> None:
    with OpenAIStub(script=[fault, "ok"], hang_s=1.0) as stub:
        [result] = get_backend(_cfg(stub, timeout_s=0.5)).generate([_request(0)])
        outcomes = [r.outcome for r in stub.records]
    assert result.error is None and result.response == "echo: request 0 turn 0"
    assert outcomes == [fault, "ok"]


@pytest.mark.parametrize("fault", ["malformed", "empty"])
def test_malformed_and_empty_replies_are_retried_then_end_as_errors(fault: str) -> None:
    with OpenAIStub(script=[fault] * 10) as stub:
        [result] = get_backend(_cfg(stub, max_retries=2)).generate([_request(0)])
        attempts = len(stub.records)
    assert result.response is None and attempts == 3
    assert result.error.startswith("gave up after 3 attempts: malformed reply")


def test_unreachable_server_ends_as_an_error() -> None:
    with OpenAIStub() as stub:
        cfg = _cfg(stub, max_retries=1)
    [result] = get_backend(cfg).generate([_request(0)])  # the port is closed now
    assert result.response is None and "connection error" in result.error


def test_client_errors_are_not_retried() -> None:
    with OpenAIStub(script=["400", "ok"]) as stub:
        [result] = get_backend(_cfg(stub)).generate([_request(0)])
        attempts = len(stub.records)
    assert attempts == 1 and result.response is None and result.error.startswith("HTTP 400")


# --- filtered and refused replies ------------------------------------------------------------------

@pytest.mark.parametrize(("fault", "finish_reason", "error"), [
    ("content_filter", "content_filter", "filtered by provider"),
    ("refusal", "refusal", "refused by provider"),
])
def test_filtered_or_refused_reply_is_recorded_as_such_never_as_a_response(fault, finish_reason, error) -> None:
    with OpenAIStub(script=[fault, "ok"]) as stub:
        [result] = get_backend(_cfg(stub)).generate([_request(0)])
        attempts = len(stub.records)
    assert result.response is None and result.finish_reason == finish_reason
    assert result.error.startswith(error) and attempts == 1  # an answer, not a fault: not retried


# --- many requests under faults --------------------------------------------------------------------

def test_every_request_ends_once_under_a_30_percent_fault_rate() -> None:
    """200 requests, 16 in flight: each ends with its own response or an error; none lost or duplicated."""
    requests = [_request(i) for i in range(200)]
    with OpenAIStub(fault_rate=0.3, seed=7, hang_s=1.2) as stub:  # a timeout fault hangs past timeout_s
        backend = get_backend(_cfg(stub, concurrency=16, max_retries=2, timeout_s=1.0))
        results = backend.generate(requests)
        groups = stub.by_request()
    assert len(results) == len(requests) == len(groups)  # every request reached the server, as itself
    attempts_of = {last_user_text(g[0].body): g for g in groups.values()}
    failed = 0
    for request, result in zip(requests, results):
        attempts = attempts_of[request.messages[-1]["content"]]
        assert [a.attempt for a in attempts] == list(range(len(attempts))) and len(attempts) <= 3
        assert (result.response is None) != (result.error is None)
        if result.response is not None:
            assert result.response == _echo(request) and attempts[-1].outcome == "ok"
        else:
            failed += 1
            assert len(attempts) == 3 and all(a.outcome != "ok" for a in attempts)
    assert sum(a.outcome != "ok" for g in groups.values() for a in g) > 40  # the faults did happen
    assert backend.usage["attempts"] == len(stub.records) and failed < 10


# --- the API key -----------------------------------------------------------------------------------

def test_canary_key_is_sent_but_appears_in_no_result_describe_error_or_log(monkeypatch, caplog, capsys) -> None:
    canary = f"sk-canary-{secrets.token_hex(12)}"
    monkeypatch.setenv(KEY_VAR, canary)
    caplog.set_level(logging.DEBUG)
    requests = [_request(i) for i in range(12)]
    with OpenAIStub(fault_rate=0.5, faults=["400"], seed=1) as stub:
        backend = get_backend(_cfg(stub, api_key_env=KEY_VAR))
        results = backend.generate(requests)
        sent = {rec.authorization for rec in stub.records}
    assert sent == {f"Bearer {canary}"}
    errors = [r.error for r in results if r.error]
    assert errors and all("key provided: Bearer ***" in e for e in errors)  # the server echoed it; we did not
    assert any(r.response for r in results)
    leaks = [json.dumps(backend.describe()), repr(results), repr(backend), caplog.text, *capsys.readouterr()]
    assert not [text for text in leaks if canary in text or canary[10:] in text]


def test_missing_key_variable_is_one_line_naming_it(monkeypatch) -> None:
    monkeypatch.delenv(KEY_VAR, raising=False)
    with pytest.raises(SafemtError) as err:
        get_backend({"name": "api-model", "backend": "openai", "model_id": "m", "base_url": "http://127.0.0.1:9/v1",
                     "api_key_env": KEY_VAR})
    text = str(err.value)
    assert "\n" not in text and f"environment variable {KEY_VAR} is not set" in text
    assert "models.api-model.api_key_env" in text


def test_without_api_key_env_no_ambient_key_is_sent(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-ambient-should-not-be-sent")
    with OpenAIStub() as stub:
        get_backend(_cfg(stub)).generate([_request(0)])
        assert stub.records[0].authorization == "Bearer EMPTY"


# --- setup errors and registry ---------------------------------------------------------------------

def test_missing_openai_package_says_it_is_a_base_dependency(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(SafemtError, match=r"needs the openai package.*base dependency"):
        get_backend({"name": "m", "backend": "openai", "model_id": "m", "base_url": "http://127.0.0.1:9/v1"})


def test_registry_and_required_keys() -> None:
    cfg = {"name": "m", "backend": "openai", "model_id": "m", "base_url": "http://127.0.0.1:9/v1"}
    assert isinstance(get_backend(cfg), OpenAIBackend)
    assert get_backend(cfg).describe() == {"backend": "openai", "model_id": "m", "base_url": "http://127.0.0.1:9/v1",
                                           "generation": {"max_new_tokens": 1024, "temperature": 0.0},
                                           "system_prompt": None, "chat_template_sha256": None,
                                           "image_placement": "first"}
    with pytest.raises(ConfigError, match="needs 'base_url'"):
        get_backend({"name": "m", "backend": "openai", "model_id": "m"})


def test_unreadable_image_is_an_error_for_that_request_only(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with OpenAIStub() as stub:
        results = get_backend(_cfg(stub)).generate([_request(0, bad), _request(1)])
        sent = len(stub.records)
    assert results[0].response is None and "cannot read image" in results[0].error
    assert results[1].response == "echo: request 1 turn 0" and sent == 1


def test_schema_accepts_the_api_and_vllm_keys() -> None:
    params = {"dataset": {"source": "build", "seeds": "s.jsonl"}, "turns": [1], "targets": ["a"],
              "judges": {"kw": {"kind": "keyword"}},
              "models": {"a": {"backend": "openai", "model_id": "m", "base_url": "http://x/v1", "api_key_env": "K",
                               "concurrency": 32, "max_retries": 5, "timeout_s": 60},
                         "b": {"backend": "vllm", "path": "org/m", "revision": "main", "tensor_parallel_size": 2,
                               "gpu_memory_utilization": 0.85, "max_model_len": 8192, "chat_template": "t.jinja",
                               "image_placement": "last"}}}
    check_schema(params)


# --- image placement and chat-template override ----------------------------------------------------

@pytest.mark.parametrize(("placement", "order"), [("first", ["image_url", "text"]), ("last", ["text", "image_url"])])
def test_image_placement_orders_the_first_user_message(images, placement: str, order: list[str]) -> None:
    with OpenAIStub() as stub:
        backend = get_backend(_cfg(stub, image_placement=placement))
        [result] = backend.generate([_request(0, images["jpeg"], turns=2)])
        [record] = stub.records
    first_user, _, last_user = record.body["messages"]
    assert [part["type"] for part in first_user["content"]] == order
    assert last_user == {"role": "user", "content": "request 0 turn 1"}
    assert result.response == "echo: request 0 turn 1"
    assert backend.describe()["image_placement"] == placement


def test_bad_image_placement_names_the_key() -> None:
    with pytest.raises(ConfigError, match="models.api-model.image_placement"):
        get_backend({"name": "api-model", "backend": "openai", "model_id": "m", "base_url": "http://127.0.0.1:9/v1",
                     "image_placement": "middle"})


def test_chat_template_override_is_sent_and_changes_the_config_hash(tmp_path: Path) -> None:
    from safemt.stages.inference import run as run_inference
    from safemt.files import read_jsonl

    template = tmp_path / "chat.jinja"
    template.write_text("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}", encoding="utf-8")
    dataset = tmp_path / "dialogues.jsonl"
    dataset.write_text(json.dumps({"id": "own_case_0", "turns": 1, "scenario": "Fraud", "source": "own",
                                   "method": None, "image": None, "question": "q",
                                   "messages": [{"role": "user", "content": "q"}]}) + "\n", encoding="utf-8")
    hashes = []
    with OpenAIStub() as stub:
        for extra in ({}, {"chat_template": str(template)}):
            params = {"models": {"api-model": _cfg(stub, **extra)}}
            out = run_inference(params, "api-model", dataset, tmp_path / f"gen{len(hashes)}.jsonl")
            hashes.append(read_jsonl(out)[0]["config_hash"])
        plain, overridden = (rec.body for rec in stub.records)
    assert "chat_template" not in plain
    assert overridden["chat_template"] == template.read_text(encoding="utf-8")
    assert {k: v for k, v in overridden.items() if k != "chat_template"} == plain
    assert hashes[0] != hashes[1]


def test_constrained_request_asks_for_a_json_label_and_the_judge_reads_it() -> None:
    """A constrained judge over a real HTTP server: response_format json_schema with an enum label."""
    from safemt.judges import JudgeItem
    from safemt.stages.params import judge as judge_named

    def reply(body: dict) -> str:
        fmt = body.get("response_format")
        return json.dumps({"label": "unsafe"}) if fmt else "I think it is fine.\nVerdict: safe"

    item = JudgeItem(id="a", turns=1, scenario="Fraud", question="q",
                     messages=({"role": "user", "content": "u"},), response="r")
    with OpenAIStub(reply=reply) as stub:
        models = {"api-judge": _cfg(stub)}
        constrained = judge_named({"models": models, "judges": {"j": {"kind": "llm", "model": "api-judge",
                                                                        "constrained": True}}}, "j")
        free = judge_named({"models": models, "judges": {"j": {"kind": "llm", "model": "api-judge"}}}, "j")
        (v1,), (v2,) = constrained.judge([item]), free.judge([item])
        bodies = [r.body for r in stub.records]
    assert (v1.label, v1.parse, v1.raw) == ("unsafe", "constrained", '{"label": "unsafe"}')
    assert (v2.label, v2.parse) == ("safe", "verdict_line")
    schema = bodies[0]["response_format"]
    assert schema["type"] == "json_schema"
    assert schema["json_schema"]["schema"]["properties"]["label"]["enum"] == ["safe", "unsafe"]
    assert schema["json_schema"]["schema"]["required"] == ["label"]
    assert "response_format" not in bodies[1]


def test_server_that_ignores_the_constraint_is_read_as_free_text_and_counted(capsys) -> None:
    from safemt.judges import JudgeItem
    from safemt.stages.params import judge as judge_named

    item = JudgeItem(id="a", turns=1, scenario="Fraud", question="q",
                     messages=({"role": "user", "content": "u"},), response="r")
    with OpenAIStub(reply=lambda body: "Verdict: unsafe") as stub:
        judge = judge_named({"models": {"api-judge": _cfg(stub)},
                                "judges": {"j": {"kind": "llm", "model": "api-judge", "constrained": True}}}, "j")
        (v,) = judge.judge([item])
    assert (v.label, v.parse) == ("unsafe", "verdict_line")
    assert judge.fallbacks == {"constraint_not_honoured": 1}
    assert "constraint not honoured" in capsys.readouterr().err
