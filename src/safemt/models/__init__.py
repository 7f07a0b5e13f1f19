"""Model backends by name: `get_backend(cfg)` picks one from a `models.<name>` entry's `backend`.

Backends are imported lazily, so that a CPU install never imports vllm or openai.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from safemt.config import check_not_placeholder
from safemt.errors import ConfigError
from safemt.models.base import Backend, ChatRequest, GenerationResult
from safemt.models.lock import require_pinned

# name -> "module:class", imported on first use.
BACKENDS: dict[str, str] = {
    "hf": "safemt.models.hf:HFBackend",
    "vllm": "safemt.models.vllm_backend:VLLMBackend",
    "openai": "safemt.models.openai_backend:OpenAIBackend",
}

__all__ = ["BACKENDS", "Backend", "ChatRequest", "GenerationResult", "get_backend"]


def get_backend(cfg: dict[str, Any]) -> Backend:
    """Instantiate the backend a model entry names (cfg holds the entry plus its `name`)."""
    name = cfg.get("backend")
    where = f"models.{cfg.get('name', '?')}.backend"
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r} (known: {', '.join(sorted(BACKENDS))})", key=where)
    check_not_placeholder(cfg)  # e.g. an API model version left as a PLACEHOLDER in config/paper.yaml
    require_pinned(cfg)  # hub weights only at a commit (the lock), unless unpinned runs are allowed
    module, cls = BACKENDS[name].split(":")
    return getattr(import_module(module), cls)(cfg)
