"""Llama Guard 4 (meta-llama/Llama-Guard-4-12B): text and image conversation.

Like Llama Guard 3 Vision, its chat template holds the instructions and the category list (S1-S14,
S14 = code interpreter abuse), so the adapter sends the conversation with the image in the first user
message. Output: `safe`, or `unsafe` and a line of category codes.

Leaving categories out, as documented: the chat template's `excluded_category_keys`, set on the model
(`models.<name>.chat_template_kwargs: {excluded_category_keys: [S14]}`, passed by the hf and vllm
backends), so the model is never asked about them. S14 is text-only: with an image the template
drops it by itself. The guard option `excluded_categories` is only a fallback for a backend that
cannot pass template variables: it drops those codes after parsing (the model was still asked).
"""

from __future__ import annotations

from dataclasses import dataclass

from safemt.moderation.guards.base import (GUARD_ADAPTERS, GuardAdapter, GuardPrompt, GuardVerdict, GuardView,
                                           conversation)
from safemt.moderation.guards.llama_guard_3_vision import parse_llama_guard

CODES = tuple(f"S{i}" for i in range(1, 15))


@GUARD_ADAPTERS.register("llama_guard_4")
@dataclass
class LlamaGuard4(GuardAdapter):
    sees_images = True

    def prompts(self, view: GuardView, stage: str) -> list[GuardPrompt]:
        return [GuardPrompt(conversation(view, stage), view.image)]

    def parse(self, texts: list[str], stage: str) -> GuardVerdict | None:
        verdict = parse_llama_guard(texts, CODES)
        excluded = set(self.options.get("excluded_categories", []))
        if verdict is None or not excluded or not verdict.unsafe:
            return verdict
        kept = tuple(c for c in verdict.categories if c not in excluded)
        if verdict.categories and not kept:  # every violated category is excluded: not a flag
            return GuardVerdict(False, (), verdict.raw)
        return GuardVerdict(True, kept, verdict.raw)
