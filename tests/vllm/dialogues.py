"""A small dialogue set for the real-engine tests: 1 to 4 turns, images on most, one without."""

from __future__ import annotations

from pathlib import Path

from safemt.models import ChatRequest


def requests(pictures: list[Path], n: int = 12) -> list[ChatRequest]:
    out = []
    for i in range(n):
        messages = []
        for t in range(1 + i % 4):
            if t:
                messages.append({"role": "assistant", "content": f"Sure! Here is a short answer about part {t}."})
            messages.append({"role": "user", "content": f"Earlier we talked about picture {i}; what is in part {t}?"})
        image = None if i == 3 else pictures[i % len(pictures)]
        out.append(ChatRequest((f"d{i}", 1 + i % 4), tuple(messages), image))
    return out
