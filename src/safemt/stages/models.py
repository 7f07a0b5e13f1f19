"""Models stage: the tiny offline models of the embedded default, and hub revisions pinned to commits.

Inputs: `resources/planted/` (the default's trained tiny models, checked by sha256) / the params' hub
models. Outputs: `resources/models/` (tiny-vlm-a, tiny-vlm-b, tiny-judge, tiny-guard-lm,
tiny-moderator-lm) / `<params stem>.lock.yaml`. Helpers: `safemt.models` (backends; `planted` checks
and installs the trained models, `tiny_weights` builds the untrained family, `lock` pins revisions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run(params: dict[str, Any], output: str | Path, untrained: bool = False) -> list[Path]:
    """The default's trained models under `output`, every file checked by sha256 (no network); with
    UNTRAINED, the seeded random family instead (same bytes on every build)."""
    if untrained:
        from safemt.models.tiny_weights import build_tiny_models

        return build_tiny_models(output)
    from safemt.models.planted import install_planted

    return install_planted(output)


def lock(params: dict[str, Any], params_file: str | Path, output: str | Path | None = None) -> tuple[Path, int]:
    """Pin every hub model's revision to a commit SHA (online); the lock file and how many were pinned."""
    from safemt.models.lock import hub_models, write_lock

    return write_lock(params["models"], params_file, out=output), len(hub_models(params["models"]))
