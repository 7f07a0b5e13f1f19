"""Models stage: the tiny offline models of the embedded default, and hub revisions pinned to commits.

Inputs: nothing (tiny models are seeded) / the params' hub models. Outputs: `resources/models/`
(tiny-vlm-a, tiny-vlm-b, tiny-judge) / `<params stem>.lock.yaml`. Helpers: `safemt.models`
(backends; `tiny_weights` builds the tiny models, `lock` pins revisions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run(params: dict[str, Any], output: str | Path) -> list[Path]:
    """Build the tiny models under `output` (same bytes on every build, no network)."""
    from safemt.models.tiny_weights import build_tiny_models

    return build_tiny_models(output)


def lock(params: dict[str, Any], params_file: str | Path, output: str | Path | None = None) -> tuple[Path, int]:
    """Pin every hub model's revision to a commit SHA (online); the lock file and how many were pinned."""
    from safemt.models.lock import hub_models, write_lock

    return write_lock(params["models"], params_file, out=output), len(hub_models(params["models"]))
