"""Guard adapters by name (one file each) and the runtime that asks a guard model about dialogues."""

from __future__ import annotations

from safemt.moderation.guards import (llama_guard_3_vision, llama_guard_4, llavaguard, llavashield,  # noqa: F401
                                      qwen3guard, shieldgemma_2, wildguard)  # the built-in adapters register
from safemt.moderation.guards.base import (GUARD_ADAPTERS, GuardAdapter, GuardPrompt, GuardVerdict, GuardView,
                                           InputPolicy)

__all__ = ["GUARD_ADAPTERS", "GuardAdapter", "GuardPrompt", "GuardVerdict", "GuardView", "InputPolicy"]
