"""The interface every model backend implements: chat requests in, final replies out."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safemt.config import fill_defaults
from safemt.errors import ConfigError
from safemt.hashing import stable_hash
from safemt.progress import note_fallback
from safemt.registry import Registry


@dataclass(frozen=True)
class ChatRequest:
    """One dialogue to answer: the messages so far (ending with a user turn) and its image, if any.

    `messages` already carry any system message a defense added; the image belongs to the first
    user message, where each backend puts it in its own way.
    """

    key: tuple[str, int]
    messages: tuple[dict[str, str], ...]
    image: Path | None = None
    choices: tuple[str, ...] | None = None  # constrained output: the reply must be exactly one of these
    json_schema: dict[str, Any] | None = None  # structured output, where the backend offers it
    # A scoring request (image classifiers such as ShieldGemma 2): no reply is generated; the result's
    # response is a JSON object {policy: P(Yes)} for these policy names, in this order. `custom_policies`
    # adds or overrides definitions (name, text) beside the model's own.
    score: tuple[str, ...] | None = None
    custom_policies: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class GenerationResult:
    """A reply, or an error instead of one (never both): an error is never judged as an answer."""

    response: str | None
    error: str | None = None
    finish_reason: str | None = None  # "stop", "length"; API backends also "content_filter", "refusal"
    n_output_tokens: int | None = None
    latency_s: float | None = None
    n_input_tokens: int | None = None  # prompt tokens, where the engine reports them (usage accounting)

    @classmethod
    def failed(cls, error: str, latency_s: float | None = None) -> "GenerationResult":
        return cls(response=None, error=" ".join(error.split()) or "error", latency_s=latency_s)


class Backend(ABC):
    """A model behind some inference engine, configured by one `models.<name>` entry of params.

    To add one: write `src/safemt/models/<name>.py` with a subclass decorated
    `@BACKENDS.register("<name>")` that implements `generate`, and set `backend: <name>` on a model
    (docs/extending.md). `self.cfg` is the model's config entry plus its `name`. Override
    `describe` when something besides the config changes outputs (weights, a chat template), set
    `sees_images = False` for a text-only model, and count degraded paths with `fallback`.
    """

    name = "base"  # the registered name (set by BACKENDS.register)
    required_keys: tuple[str, ...] = ()  # entry keys this backend cannot run without (checked at load)
    sees_images = True  # False: text-only models get the dialogue without its image
    structured_output = False  # True: a request's json_schema constrains the reply (else it is ignored)
    can_score = False  # True: answers scoring requests (ChatRequest.score) for the models that take them
    usage: dict[str, int] | None = None  # running totals (requests, tokens) where a backend counts them

    def __init__(self, cfg: Mapping[str, Any]):
        self.cfg = fill_defaults(dict(cfg), at=("models", "*"))  # the loader's values; the same for a hand-made entry
        self.fallbacks: Counter[str] = Counter()  # degraded paths taken, by kind (stage provenance)

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], where: str) -> None:
        """Config-time check of one `models.<name>` entry (no load): the keys this backend needs."""
        for key in cls.required_keys:
            if key not in cfg:
                raise ConfigError(f"backend {cls.name!r} needs {key!r}", key=where)

    def fallback(self, kind: str, cause: str) -> None:
        """Count a degraded path (a batch run one by one, ...) and say so on stderr, with its cause."""
        note_fallback(self.fallbacks, f"{self.name} backend", kind, cause)

    @property
    def batch_size(self) -> int:
        """Requests handed to generate() at once (and journalled together): `batch_size` in config."""
        return int(self.cfg.get("batch_size") or 1)

    def model_generation_defaults(self) -> dict[str, Any]:
        """Decoding settings the model ships (its generation_config.json); none for API models."""
        return {}

    def generation_params(self) -> dict[str, Any]:
        """Decoding settings that change outputs: params over the model's generation_config (the
        extras transformers' generate() would apply, e.g. repetition_penalty), greedy unless
        temperature > 0. The hf and vllm backends both decode with exactly these."""
        shipped = {k: v for k, v in self.model_generation_defaults().items() if v is not None}

        def pick(key: str, neutral: Any) -> Any:
            return self.cfg.get(key, shipped.get(key, neutral))

        temperature = float(self.cfg["temperature"])
        decoding: dict[str, Any] = {"max_new_tokens": int(self.cfg["max_new_tokens"]),
                                    "temperature": temperature}
        if temperature > 0:
            decoding["top_p"] = float(pick("top_p", 1.0))
            if int(pick("top_k", 0)) > 0:
                decoding["top_k"] = int(pick("top_k", 0))
        if float(pick("repetition_penalty", 1.0)) != 1.0:
            decoding["repetition_penalty"] = float(pick("repetition_penalty", 1.0))
        return decoding

    def describe(self) -> dict[str, Any]:
        """Everything that changes this backend's outputs; it goes into each record's config_hash.
        By default the model's config and the decoding settings."""
        return {"backend": self.name, "config": dict(sorted(self.cfg.items())),
                "generation": self.generation_params()}

    @abstractmethod
    def generate(self, requests: list[ChatRequest]) -> list[GenerationResult]:
        """One result per request, in order. A request that fails is a result with an `error` (and no
        response), never an exception and never an answer: a rerun retries it."""


# Backends by name. Those with optional dependencies are lazy entries: a CPU install never imports
# vllm, and the openai client only when a config names it.
BACKENDS: Registry[type[Backend]] = Registry("backend", package="safemt.models", name_attr="name", lazy={
    "hf": "safemt.models.hf:HFBackend",
    "vllm": "safemt.models.vllm_backend:VLLMBackend",
    "openai": "safemt.models.openai_backend:OpenAIBackend",
})


def one_each(results: list[GenerationResult], requests: list[Any], who: str) -> list[GenerationResult]:
    """RESULTS, checked to hold exactly one result per request (a batch answered by position must
    never hand one dialogue another's result); otherwise one line naming WHO."""
    if len(results) != len(requests):
        from safemt.errors import SafemtError

        raise SafemtError(f"{who} returned {len(results)} results for {len(requests)} requests")
    return results


def with_system(messages: list[dict[str, str]] | tuple[dict[str, str], ...], text: str | None
                ) -> list[dict[str, str]]:
    """Put `text` in front of the system message (adding one), since chat templates accept only one."""
    messages = [dict(m) for m in messages]
    if not text:
        return messages
    if messages and messages[0]["role"] == "system":
        messages[0]["content"] = f"{text}\n\n{messages[0]['content']}"
        return messages
    return [{"role": "system", "content": text}, *messages]


def folder_fingerprint(root: str) -> str:
    """Hash of a local model folder's files: a rebuilt or retrained model must not be resumed.

    Files up to 64 MiB are hashed whole; bigger ones (weight shards) by size plus their first and
    last 4 MiB, so a multi-GB checkpoint is not read in full on every run.
    """
    files = sorted(p for p in Path(root).rglob("*") if p.is_file() and not p.name.startswith("."))
    return stable_hash({str(p.relative_to(root)): _file_digest(p) for p in files})


def _file_digest(path: Path, whole_up_to: int = 64 << 20, edge: int = 4 << 20) -> str:
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        if size <= whole_up_to:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
            return digest.hexdigest()
        digest.update(str(size).encode())
        digest.update(fh.read(edge))
        fh.seek(size - edge)
        digest.update(fh.read(edge))
    return f"edges:{digest.hexdigest()}"


def weights_identity(cfg: dict[str, Any], local: bool) -> dict[str, Any]:
    """Which weights a config names: a local folder by its content, a hub id by its commit SHA (the
    revision itself or the lock's resolution of it; see safemt.models.lock)."""
    if local:
        return {"path": cfg["path"], "revision": "local", "folder_sha256": folder_fingerprint(str(cfg["path"]))}
    identity = {"path": cfg["path"], "revision": cfg.get("resolved_revision") or cfg.get("revision"),
                "folder_sha256": None}
    if cfg.get("unpinned"):  # allowed by allow_unpinned_revisions: the branch name, flagged as such
        identity["unpinned"] = True
    return identity


GENERATION_CONFIG_KEYS = ("repetition_penalty", "top_k", "top_p")  # read from generation_config.json


def shipped_generation_config(path: str, revision: str | None, local_files_only: bool) -> dict[str, Any]:
    """The decoding keys of a model's generation_config.json (local folder or hub at `revision`);
    {} when the model ships none."""
    from transformers import GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(path, revision=revision, local_files_only=local_files_only)
    except OSError:  # no generation_config.json: the model ships no decoding settings
        return {}
    return {k: getattr(config, k, None) for k in GENERATION_CONFIG_KEYS}


def is_vision_config(config: Any) -> bool:
    """Whether a transformers model config is a vision-language model's (it takes images)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    auto_map = getattr(config, "auto_map", None) or {}
    return config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES or "AutoModelForImageTextToText" in auto_map


def takes_images(path: str, revision: str | None, local_files_only: bool, trust_remote_code: bool = False) -> bool:
    """Whether the model at PATH (a folder, or a hub id at REVISION) is a vision-language model, read
    from its config.json without loading weights."""
    from transformers import AutoConfig

    return is_vision_config(AutoConfig.from_pretrained(path, revision=revision, local_files_only=local_files_only,
                                                       trust_remote_code=trust_remote_code))
