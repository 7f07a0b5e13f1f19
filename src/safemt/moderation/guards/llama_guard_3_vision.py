"""Llama Guard 3 Vision (meta-llama/Llama-Guard-3-11B-Vision): conversation + one image.

Its chat template writes the classification instructions and the S1-S13 category list around the
conversation, so the adapter sends the conversation itself (user/assistant alternating, the image in
the first user message) and the template does the rest. Documented output: a first line `safe` or
`unsafe`, then on the next line the violated category codes, comma-separated (`S1,S10`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from safemt.judges.guard import parse_guard
from safemt.moderation.guards.base import (GUARD_ADAPTERS, GuardAdapter, GuardPrompt, GuardVerdict, GuardView,
                                           conversation, strip_think)

# Hazard codes of the MLCommons taxonomy this model was trained on (its model card).
CODES = tuple(f"S{i}" for i in range(1, 14))
_CODE = re.compile(r"\bS(\d{1,2})\b")


def parse_llama_guard(texts: list[str], codes: tuple[str, ...]) -> GuardVerdict | None:
    """`safe` / `unsafe` on the first non-empty line; category codes after it (unknown codes dropped)."""
    if len(texts) != 1:
        return None
    text = strip_think(texts[0])
    label = parse_guard(text)
    if label is None:
        return None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    first = lines[0].strip().lower().strip(" .:*`")
    if first not in ("safe", "unsafe") and not re.fullmatch(r"(un)?safe[\s,:]+(s\d{1,2}[\s,]*)+", first):
        return None  # e.g. "safety first": a word that starts like a label is not one
    rest = " ".join(lines[1:]) + " " + first
    found = [f"S{n}" for n in _CODE.findall(rest.upper())]
    categories = tuple(dict.fromkeys(c for c in found if c in codes)) if label == "unsafe" else ()
    return GuardVerdict(label == "unsafe", categories, texts[0])


@GUARD_ADAPTERS.register("llama_guard_3_vision")
@dataclass
class LlamaGuard3Vision(GuardAdapter):
    sees_images = True

    def prompts(self, view: GuardView, stage: str) -> list[GuardPrompt]:
        return [GuardPrompt(conversation(view, stage), view.image)]

    def parse(self, texts: list[str], stage: str) -> GuardVerdict | None:
        return parse_llama_guard(texts, CODES)
