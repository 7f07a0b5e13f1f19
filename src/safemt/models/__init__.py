"""Model backends by name: `get_backend(cfg)` picks one from a `models.<name>` entry's `backend`.

Backends are registered in `safemt.models.base.BACKENDS` (lazily: a CPU install never imports vllm
or openai); a new one is one file here plus the config line that names it.
"""

from __future__ import annotations

from typing import Any

from safemt.config import check_not_placeholder
from safemt.models.base import BACKENDS, Backend, ChatRequest, GenerationResult, one_each
from safemt.models.lock import require_pinned

__all__ = ["BACKENDS", "Backend", "ChatRequest", "GenerationResult", "get_backend", "one_each"]


def get_backend(cfg: dict[str, Any]) -> Backend:
    """Instantiate the backend a model entry names (cfg holds the entry plus its `name`)."""
    name = cfg.get("backend")
    where = f"models.{cfg.get('name', '?')}.backend"
    if name not in BACKENDS:
        raise BACKENDS.unknown(name, key=where)
    check_not_placeholder(cfg)  # e.g. an API model version left as a PLACEHOLDER in config/paper.yaml
    require_pinned(cfg)  # hub weights only at a commit (the lock), unless unpinned runs are allowed
    return BACKENDS.get(name, key=where)(cfg)
