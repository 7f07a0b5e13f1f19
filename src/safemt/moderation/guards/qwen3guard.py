"""Qwen3Guard-Gen (Qwen/Qwen3Guard-Gen-0.6B / 4B / 8B): text only.

Its chat template turns a conversation ending in a user turn into prompt moderation and one ending
in an assistant turn into response moderation, so the adapter sends the (captioned) conversation.
Documented output: `Safety: Safe|Unsafe|Controversial`, `Categories: A, B` (or `None`), and for
responses `Refusal: Yes|No`. `controversial` in options decides what Controversial counts as
(`unsafe`, the strict reading and the default, or `safe`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from safemt.moderation.guards.base import (GUARD_ADAPTERS, GuardAdapter, GuardPrompt, GuardVerdict, GuardView,
                                           conversation, strip_think)

CATEGORIES = ("Violent", "Non-violent Illegal Acts", "Sexual Content or Sexual Acts", "PII",
              "Suicide & Self-Harm", "Unethical Acts", "Politically Sensitive Topics", "Copyright Violation",
              "Jailbreak")
_SAFETY = re.compile(r"^\W*safety\s*:\s*(safe|unsafe|controversial)\W*$", re.IGNORECASE | re.MULTILINE)
_CATEGORIES = re.compile(r"^\W*categories\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)


@GUARD_ADAPTERS.register("qwen3guard")
@dataclass
class Qwen3Guard(GuardAdapter):
    sees_images = False

    def prompts(self, view: GuardView, stage: str) -> list[GuardPrompt]:
        return [GuardPrompt(conversation(view, stage))]

    def parse(self, texts: list[str], stage: str) -> GuardVerdict | None:
        if len(texts) != 1:
            return None
        text = strip_think(texts[0])
        labels = {m.lower() for m in _SAFETY.findall(text)}
        if len(labels) != 1:  # none, or contradicting lines
            return None
        label = labels.pop()
        if label == "controversial":
            label = self.options.get("controversial", "unsafe")
        cats = _CATEGORIES.search(text)
        names = [c.strip() for c in cats.group(1).split(",")] if cats else []
        lookup = {c.lower(): c for c in CATEGORIES}
        categories = tuple(lookup[n.lower()] for n in names if n.lower() in lookup)
        return GuardVerdict(label == "unsafe", categories if label == "unsafe" else (), texts[0])
