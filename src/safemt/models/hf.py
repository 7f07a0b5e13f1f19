"""The `hf` backend: any transformers chat model, vision-language or text-only, batched and greedy.

Follows the released inference protocol: the whole dialogue goes through the model's own chat
template (or the file `chat_template` names) and the image goes first in the first user message (or
last: `image_placement`). Text-only models get the same dialogue without the image (describe() says
so, so their results never mix with a VLM's).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from safemt.hashing import stable_hash
from safemt.hub import hub_offline
from safemt.errors import ConfigError, SafemtError, first_line
from safemt.models.base import (BACKENDS, Backend, ChatRequest, GenerationResult, is_vision_config, one_each,
                                shipped_generation_config, weights_identity, with_system)
from safemt.models.message_images import image_placement, log_remote_code, read_chat_template, with_image
from safemt.models.lock import pinned_revision

# Failures that belong to one batch (out of memory, a bad image), not to the whole run.
BATCH_ERRORS = (RuntimeError, ValueError, OSError)


@BACKENDS.register("hf")
class HFBackend(Backend):
    """transformers AutoProcessor + AutoModelForImageTextToText, or AutoTokenizer + AutoModelForCausalLM."""

    required_keys = ("path",)
    can_score = True  # image classifiers (ShieldGemma 2): ChatRequest.score -> {policy: P(Yes)}

    def __init__(self, cfg: dict[str, Any]):
        super().__init__(cfg)
        template = read_chat_template(cfg)  # a bad template path is named before anything loads
        log_remote_code(cfg)
        self.source, self.local = _locate(cfg)
        self.device, self.dtype = _device_dtype(cfg.get("device", "auto"), cfg.get("dtype", "auto"))
        config = self._load("AutoConfig")
        self._model_type = config.model_type
        self.scoring = config.model_type in SCORING_MODELS  # an image classifier: scores, never generates
        self.vision = is_vision_config(config)
        self.processor = self._load("AutoProcessor" if self.vision else "AutoTokenizer")
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.chat_template = (template or self.processor.chat_template
                              or self.tokenizer.chat_template)
        self.image_placement = image_placement(cfg)
        if not self.chat_template:
            raise SafemtError("model has no chat template", key=f"models.{cfg.get('name')}.path")
        self._model = None
        self.sees_images = self.vision
        self._shipped = shipped_generation_config(self.source, None if self.local else pinned_revision(cfg),
                                                  hub_offline())

    def model_generation_defaults(self) -> dict[str, Any]:
        return self._shipped

    # --- loading ------------------------------------------------------------------------------

    def _load(self, auto_class: str, **kwargs: Any) -> Any:
        """from_pretrained with the safety and reproducibility options, errors as one line."""
        import transformers

        transformers.utils.logging.disable_progress_bar()
        options = {"revision": None if self.local else pinned_revision(self.cfg),
                   "trust_remote_code": bool(self.cfg.get("trust_remote_code", False)),
                   "local_files_only": hub_offline(), **kwargs}
        try:
            return getattr(transformers, auto_class).from_pretrained(self.source, **options)
        except (OSError, ValueError, KeyError, ImportError) as exc:
            offline = " (HF_HUB_OFFLINE is set)" if hub_offline() and not self.local else ""
            reason = first_line(exc)
            raise SafemtError(f"cannot load {self.source!r}{offline}: {reason}",
                              key=f"models.{self.cfg.get('name')}") from None

    @property
    def model(self) -> Any:
        """The weights, loaded on first use: a fully resumed run never loads them."""
        if self._model is None:
            import torch

            auto = (SCORING_MODELS[self._model_type] if self.scoring
                    else "AutoModelForImageTextToText" if self.vision else "AutoModelForCausalLM")
            dtype = getattr(torch, self.dtype)
            model = self._load(auto, dtype=dtype, use_safetensors=True)
            try:
                self._model = model.to(self.device).eval()
            except RuntimeError as exc:  # e.g. CUDA out of memory: the whole run's problem, not a batch's
                raise SafemtError(f"cannot place {self.source!r} on {self.device}: {first_line(exc)}",
                                  key=f"models.{self.cfg.get('name')}") from None
            self._stops = set() if self.scoring else _eos_ids(self._model, self.tokenizer)
        return self._model

    # --- interface -----------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        extra = {"chat_template_kwargs": self.template_kwargs} if self.template_kwargs else {}
        return {
            "backend": self.name,
            **weights_identity(self.cfg, self.local),
            "modality": "image-text" if self.vision else "text (image dropped)",
            "device": self.device,
            "dtype": self.dtype,
            "trust_remote_code": bool(self.cfg.get("trust_remote_code", False)),
            "generation": self.generation_params(),
            "system_prompt": self.cfg.get("system_prompt"),
            "chat_template_sha256": stable_hash(self.chat_template),
            "image_placement": self.image_placement if self.vision else None,
            **extra,  # only when set: a model without them hashes as before
        }

    def generate(self, requests: list[ChatRequest]) -> list[GenerationResult]:
        """Answer a batch; if the batch fails, retry its requests one by one so one bad input costs one."""
        if not requests:
            return []
        self.model  # load failures stop the run here instead of failing every batch
        start = time.perf_counter()
        kind = _request_kind(requests, self.scoring, self.cfg.get("name"))
        try:
            results = one_each(self._score_batch(requests) if kind == "score" else self._generate_batch(requests),
                               requests, f"model {self.cfg.get('name')}")
        except BATCH_ERRORS as exc:
            _free_cuda_memory()
            if len(requests) > 1:
                self.fallback("batch_run_one_by_one", f"a batch of {len(requests)} failed "
                              f"({type(exc).__name__}: {exc}); its requests are retried one at a time")
                return [r for req in requests for r in self.generate([req])]
            return [GenerationResult.failed(f"{type(exc).__name__}: {exc}", _latency(start, 1))]
        latency = _latency(start, len(requests))
        return [replace(r, latency_s=latency) for r in results]

    # --- one batch -----------------------------------------------------------------------------

    def _generate_batch(self, requests: list[ChatRequest]) -> list[GenerationResult]:
        import torch

        inputs = self._inputs(requests).to(self.device)
        params = self.generation_params()
        kwargs: dict[str, Any] = {"max_new_tokens": params["max_new_tokens"], "do_sample": params["temperature"] > 0,
                                  "pad_token_id": self.tokenizer.pad_token_id}
        if kwargs["do_sample"]:
            kwargs.update(temperature=params["temperature"], top_p=params["top_p"], top_k=params.get("top_k", 0))
            torch.manual_seed(0)
        kwargs["repetition_penalty"] = params.get("repetition_penalty", 1.0)  # explicit: the hashed value
        choices = _shared_choices(requests)
        if choices:
            kwargs["prefix_allowed_tokens_fn"] = self._allowed_tokens(choices, inputs["input_ids"].shape[1])
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        new_tokens = out[:, inputs["input_ids"].shape[1]:].tolist()
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
        return [self._result(ids, n_in) for ids, n_in in zip(new_tokens, prompt_lengths)]

    def _score_batch(self, requests: list[ChatRequest]) -> list[GenerationResult]:
        """P(Yes) per policy for each request's image, from the classifier's own processor and head.

        The processor writes one row per (image, policy), image by image (img1_policy1 ...
        img1_policyN, img2_policy1 ...), from the model's own chat template and policy definitions;
        the rows are cut back into one result per request, checked by count.
        """
        import torch

        names, custom = requests[0].score, requests[0].custom_policies
        if any((r.score, r.custom_policies) != (names, custom) for r in requests):
            raise ValueError("requests of one batch ask about different policies")
        if any(r.image is None for r in requests):
            raise ValueError("a scoring request needs an image")
        definitions = {**dict(getattr(self.processor, "policy_definitions", {}) or {}), **dict(custom)}
        policies = list(names or definitions)
        unknown = [p for p in policies if p not in definitions]
        if unknown:
            raise SafemtError(f"model {self.cfg.get('name')} defines no policy {', '.join(unknown)} (its own: "
                              f"{', '.join(definitions) or 'none'}; add custom_policies)", key="guards.*.options.policies")
        inputs = self.processor(images=[_open_image(r.image) for r in requests], policies=policies,
                                custom_policies=dict(custom), return_tensors="pt").to(self.device)
        with torch.inference_mode():
            probabilities = self.model(**inputs).probabilities[:, 0].tolist()  # column 0: Yes
        if len(probabilities) != len(requests) * len(policies):
            raise SafemtError(f"model {self.cfg.get('name')} scored {len(probabilities)} rows for "
                              f"{len(requests)} images x {len(policies)} policies")
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        n = len(policies)
        return [GenerationResult(json.dumps({p: round(float(v), 6) for p, v in zip(policies, probabilities[i * n:(i + 1) * n])}),
                                 None, "score", 0, n_input_tokens=int(sum(lengths[i * n:(i + 1) * n])))
                for i in range(len(requests))]

    def _allowed_tokens(self, choices: tuple[str, ...], prompt_length: int) -> Any:
        """prefix_allowed_tokens_fn that lets the model write exactly one of `choices`, then stop.

        Each choice is its token sequence plus an end-of-sequence token; at every step only the
        tokens that continue some choice are allowed, so the first token is one of the choices'
        first tokens and the reply decodes to a choice exactly.
        """
        stop = min(self._stops)
        sequences = [tuple(self.tokenizer.encode(c, add_special_tokens=False)) + (stop,) for c in choices]
        pad = self.tokenizer.pad_token_id

        def allowed(_batch_id: int, input_ids: Any) -> list[int]:
            prefix = tuple(input_ids[prompt_length:].tolist())
            if any(t in self._stops for t in prefix):
                return [pad if pad is not None else stop]  # finished: padding only
            nxt = {seq[len(prefix)] for seq in sequences if len(seq) > len(prefix) and seq[:len(prefix)] == prefix}
            return sorted(nxt) or [stop]

        return allowed

    def _inputs(self, requests: list[ChatRequest]) -> Any:
        """Chat-templated, left-padded model inputs, built by the processor's own apply_chat_template.

        Each conversation carries its own image inside its first user message, so the processor sees
        the images nested per conversation, the layout LLaVA, LLaVA-NeXT, Gemma 3, Mllama and
        Idefics-style processors need to batch (a flat image list breaks several of them).
        """
        conversations = [self._conversation(r) for r in requests]
        # A processor passes padding on through processor_kwargs; a tokenizer (text-only model) takes it
        # directly and would ignore processor_kwargs, so its batches would fail and run one by one.
        padding = {"processor_kwargs": {"padding": True}} if self.vision else {"padding": True}
        return self.processor.apply_chat_template(conversations, chat_template=self.chat_template,
                                                  add_generation_prompt=True, tokenize=True, return_dict=True,
                                                  return_tensors="pt", **padding, **self.template_kwargs)

    @property
    def template_kwargs(self) -> dict[str, Any]:
        """`chat_template_kwargs` of the model entry: extra variables its chat template reads (e.g. Llama
        Guard 4's `excluded_category_keys`)."""
        return dict(self.cfg.get("chat_template_kwargs") or {})

    def _conversation(self, request: ChatRequest) -> list[dict[str, Any]]:
        """The dialogue in chat-template form, the image a part of the first user message (VLMs only)."""
        messages = with_system(request.messages, self.cfg.get("system_prompt"))
        if not self.vision:
            return messages
        pending_image = request.image is not None
        conversation = []
        for m in messages:
            if pending_image and m["role"] == "user":
                parts = with_image({"type": "image", "image": _open_image(request.image)}, m["content"],
                                   self.image_placement)
                pending_image = False
            else:
                parts = [{"type": "text", "text": m["content"]}]
            conversation.append({"role": m["role"], "content": parts})
        return conversation

    def _result(self, ids: list[int], n_input_tokens: int) -> GenerationResult:
        """Cut the reply at the first end-of-sequence token; no such token means it hit the limit."""
        end = next((i for i, t in enumerate(ids) if t in self._stops), None)
        reply, reason, n_out = (ids, "length", len(ids)) if end is None else (ids[:end], "stop", end + 1)
        return GenerationResult(self.tokenizer.decode(reply, skip_special_tokens=True), None, reason, n_out,
                                n_input_tokens=int(n_input_tokens))



# Image classifiers by model type -> the transformers class that carries their scoring head.
SCORING_MODELS = {"shieldgemma2": "ShieldGemma2ForImageClassification"}


def _request_kind(requests: list[ChatRequest], scoring: bool, name: str | None) -> str:
    """`score` or `chat`, the same for the whole batch and what the model does (else one line)."""
    kinds = {"score" if r.score is not None else "chat" for r in requests}
    if len(kinds) > 1:
        raise SafemtError(f"model {name}: a batch mixes scoring and chat requests")
    kind = kinds.pop()
    if scoring and kind == "chat":
        raise SafemtError(f"model {name} is an image classifier (it scores, never generates): use it with a "
                          f"scoring guard adapter (shieldgemma_2)", key=f"models.{name}")
    if kind == "score" and not scoring:
        raise SafemtError(f"model {name} cannot score images (a scoring model type is one of "
                          f"{', '.join(SCORING_MODELS)})", key=f"models.{name}")
    return kind


def _shared_choices(requests: list[ChatRequest]) -> tuple[str, ...] | None:
    """The batch's output constraint; requests with different constraints are not batched together."""
    choices = {r.choices for r in requests}
    if len(choices) > 1:
        raise ValueError("requests of one batch ask for different output choices")
    return choices.pop()


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    return set(eos) if isinstance(eos, (list, tuple)) else {eos}


def _locate(cfg: dict[str, Any]) -> tuple[str, bool]:
    """A local folder, or a hub id (`org/name`); a missing folder is named instead of fetched."""
    path = cfg.get("path")
    where = f"models.{cfg.get('name')}.path"
    if not path:
        raise ConfigError("backend 'hf' needs 'path' (a local folder or a hub id)", key=where)
    if Path(path).is_dir():
        return str(path), True
    if path.startswith((".", "/", "~")) or path.count("/") > 1 or Path(path).exists():
        raise ConfigError(f"model folder {path!r} not found (tiny models: safemt models tiny -o DIR)", key=where)
    return path, False


def _device_dtype(device: str | None, dtype: str | None) -> tuple[str, str]:
    """CUDA + bfloat16 when there is a GPU, else CPU + float32, unless the config names them."""
    import torch

    cuda = torch.cuda.is_available()
    if device in (None, "auto"):
        device = "cuda" if cuda else "cpu"
    elif device == "cuda" and not cuda:
        raise ConfigError("device 'cuda' asked for, but torch sees no CUDA device", key="models.*.device")
    if dtype in (None, "auto"):
        dtype = "bfloat16" if device == "cuda" else "float32"
    return device, dtype


def _free_cuda_memory() -> None:
    """After an out-of-memory batch, release cached blocks so that the one-by-one retry can fit."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _open_image(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


def _latency(start: float, n: int) -> float:
    return round((time.perf_counter() - start) / max(n, 1), 4)
