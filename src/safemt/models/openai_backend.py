"""The `openai` backend: any OpenAI-compatible chat endpoint (OpenAI, `vllm serve`, TGI, ...).

Requests of a batch run concurrently (`concurrency` threads). Retries, backoff and timeouts are the
client's own (`max_retries`, `timeout_s` from params): it retries 408/409/429/5xx, timeouts and
connection errors with exponential backoff and jitter, honouring `Retry-After`. The one fault it
cannot see is a 200 reply whose body is malformed (not JSON, no choices, no content): that request
is sent again, up to `max_retries` more times. A reply the provider filtered or refused and a
request whose retries ran out both become results with an `error`, never a `response`, so they are
never judged as answers. Every attempt the client makes is counted (`usage["attempts"]`).

Requests go through the client's plain `post` (its documented way to send any body) and the reply's
JSON is read here: the client's typed `chat.completions.create` spends about a third of each
request's CPU on transforming parameters and building response models, which on a small machine
caps throughput under high concurrency (benchmarks/inference.py, openai_vs_bound).

The image goes first in the first user message, or last (`image_placement`). A `chat_template`
file is sent as the request's `chat_template` field, which `vllm serve` takes (started with
--trust-request-chat-template); hosted APIs apply their own and reject it.

A request with `choices` (a constrained judge) asks for JSON `{"label": ...}` with the label an
enum of the choices (`response_format` json_schema); a server that ignores it answers free text,
which the judge reads and counts as not constrained.

The API key comes from the environment variable `api_key_env` names; it never enters describe(),
results or error text.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image

from safemt.errors import ConfigError, SafemtError
from safemt.models.base import BACKENDS, Backend, ChatRequest, GenerationResult, with_system
from safemt.hashing import stable_hash
from safemt.models.message_images import chat_messages, image_data_url, image_placement, read_chat_template

MAX_ERROR_CHARS = 500  # an error page's body is not worth keeping whole in every record
KEY_LIKE = re.compile(r"\bsk-[\w*.-]{4,}")  # key-shaped tokens a provider may echo back in an error


class _Malformed(Exception):
    """A 200 reply that holds no usable completion: the client does not retry it, so we do."""


@BACKENDS.register("openai")
class OpenAIBackend(Backend):
    """Chat completions through the `openai` client; one thread per in-flight request."""

    required_keys = ("model_id", "base_url")

    structured_output = True  # response_format json_schema (servers that ignore it still get strict parsing)

    def __init__(self, cfg: dict[str, Any]):
        super().__init__(cfg)
        for needed in ("model_id", "base_url"):
            if not cfg.get(needed):
                raise ConfigError(f"backend 'openai' needs {needed!r}", key=f"models.{cfg.get('name')}")
        self._openai = _import_openai(cfg)
        self._secret = _api_key(cfg)
        self.concurrency = int(cfg.get("concurrency", 8))
        self.max_retries = int(cfg.get("max_retries", 5))
        self.timeout_s = float(cfg.get("timeout_s", 120.0))
        self.image_placement = image_placement(cfg)
        self.chat_template = read_chat_template(cfg)
        # A server that needs no key (a local `vllm serve`) still gets a placeholder, so that the
        # client never falls back to OPENAI_API_KEY: secrets come only from the variable config names.
        http = self._openai.DefaultHttpxClient(event_hooks={"request": [self._on_attempt]})
        self._client = self._openai.OpenAI(base_url=cfg["base_url"], api_key=self._secret or "EMPTY",
                                           timeout=self.timeout_s, max_retries=self.max_retries, http_client=http)
        self._lock = threading.Lock()
        self._local = threading.local()
        self.usage = {"requests": 0, "attempts": 0, "prompt_tokens": 0, "completion_tokens": 0}

    @property
    def batch_size(self) -> int:
        """Enough requests per batch to keep every concurrent slot busy."""
        return int(self.cfg.get("batch_size", self.concurrency * 4))

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model_id": self.cfg["model_id"],
            "base_url": self.cfg["base_url"],
            "generation": self.generation_params(),
            "system_prompt": self.cfg.get("system_prompt"),
            "chat_template_sha256": stable_hash(self.chat_template) if self.chat_template else None,
            "image_placement": self.image_placement,
        }

    def generate(self, requests: list[ChatRequest]) -> list[GenerationResult]:
        """One result per request, in order; up to `concurrency` requests in flight at once."""
        workers = max(1, min(self.concurrency, len(requests)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="safemt-openai") as pool:
            return list(pool.map(self._answer, requests))

    # --- one request ---------------------------------------------------------------------------

    def _answer(self, request: ChatRequest) -> GenerationResult:
        """The client retries transport faults itself; a malformed 200 reply is sent again here."""
        start = time.perf_counter()
        if request.score is not None:  # refused at plan time for guards; never sent as an empty chat
            return self._failed("backend openai cannot score images (use backend hf)", start)
        self._count(requests=1)
        try:
            body = self._body(request)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:  # missing or undecodable image
            return self._failed(f"cannot read image {request.image}: {exc}", start)
        self._local.attempts = 0  # the event hook counts this thread's HTTP attempts
        reason = "no attempt made"
        while self._local.attempts <= self.max_retries:  # one budget for the client's retries and ours
            try:
                return self._attempt(body, start, retries_left=self.max_retries - self._local.attempts)
            except _Malformed as exc:
                reason = str(exc)
        return self._failed(f"gave up after {self._local.attempts} attempts: {reason}", start)

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        """The chat.completions.create arguments: the image in the first user message, greedy by default."""
        messages = with_system(request.messages, self.cfg.get("system_prompt"))
        url = image_data_url(request.image) if request.image is not None else None
        params = self.generation_params()
        body: dict[str, Any] = {"model": self.cfg["model_id"],
                                "messages": chat_messages(messages, url, self.image_placement),
                                "max_tokens": params["max_new_tokens"], "temperature": params["temperature"]}
        if "top_p" in params:
            body["top_p"] = params["top_p"]
        if self.chat_template:
            body["chat_template"] = self.chat_template
        if request.choices:
            body["response_format"] = label_schema(request.choices)
        elif request.json_schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "verdict", "schema": request.json_schema,
                                                       "strict": True}}
        return body

    def _attempt(self, body: dict[str, Any], start: float, retries_left: int) -> GenerationResult:
        """One call through the client (with its own retries): a final result, or _Malformed."""
        openai = self._openai
        try:
            raw = self._client.post("/chat/completions", body=body, cast_to=bytes,
                                    options={"max_retries": retries_left})
            completion = json.loads(raw)
        except openai.APIStatusError as exc:
            tries = f"after {self._local.attempts} attempts"
            retried = f" ({tries})" if exc.status_code in (408, 409, 429) or exc.status_code >= 500 else ""
            return self._failed(f"HTTP {exc.status_code}: {exc.message}{retried}", start)
        except openai.APITimeoutError:
            return self._failed(f"no reply within {self.timeout_s:g} s (after {self._local.attempts} attempts)", start)
        except openai.APIConnectionError as exc:
            return self._failed(f"connection error (after {self._local.attempts} attempts): {exc}", start)
        except ValueError:  # a body that is not valid JSON
            raise _Malformed("malformed reply (not valid JSON)") from None
        return self._result(completion, start)

    def _result(self, completion: Any, start: float) -> GenerationResult:
        """Map a chat.completion (parsed JSON) to a result; one without choices or content is retried."""
        choice = _first_choice(completion)
        if choice is None:
            raise _Malformed("malformed reply (no choices)")
        message = choice.get("message")
        message = message if isinstance(message, dict) else {}
        content, refusal, finish_reason = message.get("content"), message.get("refusal"), choice.get("finish_reason")
        n_in, n_out = _usage(completion)
        self._count(prompt_tokens=n_in or 0, completion_tokens=n_out or 0)
        latency = round(time.perf_counter() - start, 4)
        if finish_reason == "content_filter":
            return GenerationResult(None, "filtered by provider (content_filter)", "content_filter", n_out,
                                    latency, n_in)
        if not content and refusal:
            return GenerationResult(None, "refused by provider", "refusal", n_out, latency, n_in)
        if not isinstance(content, str):
            raise _Malformed("malformed reply (no content)")
        return GenerationResult(content, None, finish_reason, n_out, latency, n_in)

    def _failed(self, error: str, start: float) -> GenerationResult:
        return GenerationResult.failed(self._scrub(error)[:MAX_ERROR_CHARS], round(time.perf_counter() - start, 4))

    def _scrub(self, text: str) -> str:
        """Error text without the key, even where a provider echoes it back."""
        if self._secret:
            text = text.replace(self._secret, "***")
        return KEY_LIKE.sub("***", text)

    def _on_attempt(self, _request: Any) -> None:
        """httpx event hook, run in the sending thread for every HTTP request, retries included."""
        self._local.attempts = getattr(self._local, "attempts", 0) + 1
        self._count(attempts=1)

    def _count(self, **amounts: int) -> None:
        with self._lock:
            for name, amount in amounts.items():
                self.usage[name] += amount


# --- pure helpers ----------------------------------------------------------------------------------

def label_schema(choices: tuple[str, ...]) -> dict[str, Any]:
    """Structured output (OpenAI `response_format`, also taken by `vllm serve`): {"label": <one of choices>}."""
    return {"type": "json_schema",
            "json_schema": {"name": "verdict", "strict": True,
                            "schema": {"type": "object", "properties": {"label": {"type": "string",
                                                                                  "enum": list(choices)}},
                                       "required": ["label"], "additionalProperties": False}}}


def _first_choice(completion: Any) -> dict[str, Any] | None:
    choices = completion.get("choices") if isinstance(completion, dict) else None
    return choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None


def _usage(completion: dict[str, Any]) -> tuple[int | None, int | None]:
    """Prompt and completion token counts, where the server reports them (as integers)."""
    usage = completion.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return _token_count(usage.get("prompt_tokens")), _token_count(usage.get("completion_tokens"))


def _token_count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _import_openai(cfg: dict[str, Any]) -> Any:
    try:
        import openai
    except ImportError:
        raise SafemtError("backend 'openai' needs the openai package: reinstall safemt (`pip install -e .`), it is a base dependency",
                          key=f"models.{cfg.get('name')}.backend") from None
    return openai


def _api_key(cfg: dict[str, Any]) -> str | None:
    """The key from the variable `api_key_env` names; None when the entry names none (a local server)."""
    var = cfg.get("api_key_env")
    if not var:
        return None
    value = os.environ.get(var, "").strip()
    if not value:
        raise SafemtError(f"environment variable {var} is not set (it must hold the API key for "
                          f"{cfg.get('base_url')})", key=f"models.{cfg.get('name')}.api_key_env")
    return value
