"""The `vllm` backend: offline batched inference through `vllm.LLM.chat` (CUDA machines, `gpu` extra).

Same protocol as `hf`: the model's own chat template (or the file `chat_template` names), the image
as the first part of the first user message (or the last: `image_placement`), greedy by default.
The image goes in as a base64 data URL part, which vLLM's chat parser accepts for every multimodal
model. vllm is imported only when this backend is created; building requests and reading outputs
are plain functions, tested with a stand-in module on machines without vllm.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from safemt.hashing import stable_hash
from safemt.errors import ConfigError, SafemtError, first_line
from safemt.models.base import (BACKENDS, Backend, ChatRequest, GenerationResult, one_each,
                                shipped_generation_config, weights_identity, with_system)
from safemt.models.message_images import (chat_messages, image_data_url, image_placement, log_remote_code,
                                  read_chat_template)
from safemt.models.lock import pinned_revision

# Failures that belong to one batch (a bad image, a prompt longer than the model takes), not the run.
BATCH_ERRORS = (RuntimeError, ValueError, OSError)


@BACKENDS.register("vllm")
class VLLMBackend(Backend):
    """vllm.LLM over a hub id (pinned by `revision`) or a local folder; loaded on first use."""

    required_keys = ("path",)


    def __init__(self, cfg: dict[str, Any]):
        super().__init__(cfg)
        if not cfg.get("path"):
            raise ConfigError("backend 'vllm' needs 'path' (a local folder or a hub id)",
                              key=f"models.{cfg.get('name')}.path")
        log_remote_code(cfg)
        self._vllm = _import_vllm(cfg)
        self.local = Path(cfg["path"]).is_dir()
        self.chat_template = read_chat_template(cfg)
        self.image_placement = image_placement(cfg)
        self._llm: Any = None
        self._shipped: dict[str, Any] | None = None

    def model_generation_defaults(self) -> dict[str, Any]:
        """The model's generation_config.json, read with transformers as the hf backend does: vllm's
        explicit SamplingParams would otherwise ignore it, and "greedy" would differ by backend."""
        if self._shipped is None:
            from safemt.hub import hub_offline

            self._shipped = shipped_generation_config(self.cfg["path"], None if self.local else pinned_revision(self.cfg),
                                                      hub_offline())
        return self._shipped

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            **weights_identity(self.cfg, self.local),
            "dtype": self.cfg.get("dtype", "auto"),
            "trust_remote_code": bool(self.cfg.get("trust_remote_code", False)),
            "generation": self.generation_params(),
            "system_prompt": self.cfg.get("system_prompt"),
            "chat_template_sha256": stable_hash(self.chat_template) if self.chat_template else None,
            "image_placement": self.image_placement,
            **({"chat_template_kwargs": dict(self.cfg["chat_template_kwargs"])}
               if self.cfg.get("chat_template_kwargs") else {}),
        }

    @property
    def llm(self) -> Any:
        """The engine, started on first use: a fully resumed run never starts it."""
        if self._llm is None:
            try:
                self._llm = self._vllm.LLM(**engine_args(self.cfg, self.local))
            except (OSError, ValueError, RuntimeError) as exc:
                reason = first_line(exc)
                raise SafemtError(f"vllm cannot load {self.cfg['path']!r}: {reason}",
                                  key=f"models.{self.cfg.get('name')}") from None
        return self._llm

    def generate(self, requests: list[ChatRequest]) -> list[GenerationResult]:
        """Answer a batch; if it fails, answer each half of it in turn (bisection), so one bad input
        among 256 costs about 2 log2(256) = 16 engine calls instead of 256 single ones."""
        start = time.perf_counter()
        try:
            conversations = [conversation(r, self.cfg.get("system_prompt"), self.image_placement) for r in requests]
            sampling = self._sampling(requests)
            outputs = self.llm.chat(conversations, sampling_params=sampling, chat_template=self.chat_template,
                                    use_tqdm=False, **chat_kwargs(self.cfg))
        except BATCH_ERRORS as exc:
            if len(requests) > 1:
                self.fallback("batch_split_in_halves", f"a batch of {len(requests)} failed "
                              f"({type(exc).__name__}: {exc}); its halves are retried separately")
                half = len(requests) // 2
                return self.generate(requests[:half]) + self.generate(requests[half:])
            return [GenerationResult.failed(f"{type(exc).__name__}: {exc}", _latency(start, 1))]
        latency = _latency(start, len(requests))
        return one_each([to_result(out, latency) for out in outputs], requests, f"model {self.cfg.get('name')}")

    def _sampling(self, requests: list[ChatRequest]) -> Any:
        """One SamplingParams for the batch, or one per request where their output constraints differ."""
        def make(choices: tuple[str, ...] | None) -> Any:
            return self._vllm.SamplingParams(**sampling_args(self.generation_params(),
                                                             choice_constraint(self._vllm, choices)))

        kinds = {r.choices for r in requests}
        return make(kinds.pop()) if len(kinds) == 1 else [make(r.choices) for r in requests]


# --- requests and outputs (pure: tested without vllm) ----------------------------------------------

def engine_args(cfg: dict[str, Any], local: bool) -> dict[str, Any]:
    """vllm.LLM arguments: pinned revision, safetensors only, remote code off unless config says so."""
    revision = None if local else pinned_revision(cfg)
    args = {
        "model": cfg["path"],
        "revision": revision,
        "tokenizer_revision": revision,
        "tensor_parallel_size": int(cfg.get("tensor_parallel_size") or cfg.get("gpus") or 1),
        "trust_remote_code": bool(cfg.get("trust_remote_code", False)),
        "dtype": cfg.get("dtype", "auto"),
        "gpu_memory_utilization": float(cfg.get("gpu_memory_utilization", 0.9)),
        "load_format": "safetensors",
        "seed": 0,
    }
    if cfg.get("max_model_len"):
        args["max_model_len"] = int(cfg["max_model_len"])
    return args


def chat_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """`chat_template_kwargs` of the model entry, for LLM.chat (extra chat template variables)."""
    kwargs = cfg.get("chat_template_kwargs")
    return {"chat_template_kwargs": dict(kwargs)} if kwargs else {}


def sampling_args(decoding: dict[str, Any], constraint: dict[str, Any] | None = None) -> dict[str, Any]:
    """SamplingParams arguments, one for one from generation_params(); temperature 0 is greedy."""
    return {"temperature": decoding["temperature"], "top_p": decoding.get("top_p", 1.0),
            "max_tokens": decoding["max_new_tokens"], "seed": 0,
            **{k: decoding[k] for k in ("top_k", "repetition_penalty") if k in decoding}, **(constraint or {})}


def choice_constraint(vllm: Any, choices: tuple[str, ...] | None) -> dict[str, Any] | None:
    """The SamplingParams argument that makes the output exactly one of `choices` (guided choice).

    vLLM >= 0.12 spells it `structured_outputs=StructuredOutputsParams(choice=...)`; 0.10 and 0.11
    `guided_decoding=GuidedDecodingParams(choice=...)`. A vLLM with neither cannot constrain, which
    is a configuration error (turn `constrained` off for this judge), never silently free text.
    """
    if not choices:
        return None
    module = getattr(vllm, "sampling_params", None)
    if hasattr(module, "StructuredOutputsParams"):
        return {"structured_outputs": module.StructuredOutputsParams(choice=list(choices))}
    if hasattr(module, "GuidedDecodingParams"):
        return {"guided_decoding": module.GuidedDecodingParams(choice=list(choices))}
    raise SafemtError("this vllm has no guided choice (StructuredOutputsParams / GuidedDecodingParams); "
                      "set constrained: false for the judge", key="judges.*.constrained")


def conversation(request: ChatRequest, system_prompt: str | None, placement: str = "first"
                 ) -> list[dict[str, Any]]:
    """The dialogue in OpenAI chat form, the image a data-URL part of the first user message."""
    url = image_data_url(request.image) if request.image is not None else None
    return chat_messages(with_system(request.messages, system_prompt), url, placement)


def to_result(output: Any, latency_s: float) -> GenerationResult:
    """A vllm RequestOutput as a result; anything but "stop" or "length" (an abort) is an error."""
    completion = output.outputs[0]
    if completion.finish_reason not in ("stop", "length"):
        return GenerationResult.failed(f"generation ended with finish_reason {completion.finish_reason!r}",
                                       latency_s)
    prompt_ids = getattr(output, "prompt_token_ids", None)
    return GenerationResult(completion.text, None, completion.finish_reason, len(completion.token_ids), latency_s,
                            len(prompt_ids) if prompt_ids is not None else None)


# --- setup -------------------------------------------------------------------------------------------

def _import_vllm(cfg: dict[str, Any]) -> Any:
    key = f"models.{cfg.get('name')}.backend"
    try:
        import vllm
    except ImportError:
        raise SafemtError("backend 'vllm' needs the gpu extra: pip install 'safemt[gpu]' (CUDA machine)",
                          key=key) from None
    except (OSError, RuntimeError) as exc:  # installed, but its CUDA libraries do not load here
        raise SafemtError(f"vllm is installed but does not import: {exc}", key=key) from None
    return vllm


def _latency(start: float, n: int) -> float:
    return round((time.perf_counter() - start) / max(n, 1), 4)
