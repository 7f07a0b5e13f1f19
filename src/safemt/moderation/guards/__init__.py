"""Guard adapters by name (one file each) and the runtime that asks a guard model about dialogues."""

from __future__ import annotations

from safemt.moderation.guards.base import GuardAdapter, GuardPrompt, GuardVerdict, GuardView, InputPolicy
from safemt.moderation.guards.llama_guard_3_vision import LlamaGuard3Vision
from safemt.moderation.guards.llama_guard_4 import LlamaGuard4
from safemt.moderation.guards.llavaguard import LlavaGuard
from safemt.moderation.guards.qwen3guard import Qwen3Guard
from safemt.moderation.guards.shieldgemma_2 import ShieldGemma2
from safemt.moderation.guards.wildguard import WildGuard

ADAPTERS: dict[str, type[GuardAdapter]] = {cls.name: cls for cls in (
    LlamaGuard3Vision, LlamaGuard4, ShieldGemma2, LlavaGuard, Qwen3Guard, WildGuard)}

__all__ = ["ADAPTERS", "GuardAdapter", "GuardPrompt", "GuardVerdict", "GuardView", "InputPolicy"]
