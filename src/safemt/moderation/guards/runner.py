"""A guard model at work: input policy -> views -> the adapter's prompts -> one batched call -> verdicts.

The guard's model is any entry of `models:` (any backend), loaded once per job. A backend error is
an error (the dialogue's record gets it and a rerun redoes it); an unreadable reply takes the guard's
`on_parse_error` verdict and is counted.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from safemt.config import fill_defaults, model_entry
from safemt.errors import ConfigError
from safemt.models import ChatRequest, get_backend, one_each
from safemt.moderation.guards.base import GUARD_ADAPTERS, GuardVerdict, GuardView, InputPolicy


@dataclass(frozen=True)
class GuardItem:
    """One dialogue to check: its messages, image, a caption from the dataset, and the answer (output stage)."""

    key: tuple[str, int]
    messages: tuple[dict[str, str], ...]
    image: Path | None
    caption: str | None = None
    response: str | None = None


@dataclass(frozen=True)
class GuardOutcome:
    verdict: GuardVerdict | None  # None when the guard call failed
    error: str | None
    latency_s: float


class Guard:
    """`guards.<name>` from params: adapter, model, explicit input policy, parse fallback."""

    def __init__(self, name: str, cfg: Mapping[str, Any], models: Mapping[str, Mapping[str, Any]]):
        """`guards.<name>` (CFG) with MODELS, the `models:` entries its model and captioner come from."""
        where = f"guards.{name}"
        cfg = fill_defaults(dict(cfg), at=("guards", "*"))
        adapter = GUARD_ADAPTERS.get(cfg.get("adapter"), key=f"{where}.adapter")
        self.name, self.cfg = name, cfg
        self.adapter = adapter(dict(cfg.get("options") or {}), name)
        self.policy = InputPolicy.from_config(cfg.get("input"), where)
        self.adapter.check_config(self.policy, where)
        self.on_parse_error = cfg["on_parse_error"]
        self.backend = get_backend(model_entry(models, cfg["model"]))
        if self.policy.image and not self.backend.sees_images:
            raise ConfigError(f"input policy gives the image, but model {cfg['model']!r} is text-only",
                              key=f"{where}.input.image")
        caption = self.policy.caption
        if caption not in (None, "dataset") and caption not in models:
            raise ConfigError(f"caption must be null, 'dataset' or a model name, got {caption!r}",
                              key=f"{where}.input.caption")
        self.captioner = get_backend(model_entry(models, caption)) if caption not in (None, "dataset") else None
        self._captions: dict[Path, str | None] = {}
        if self.adapter.scores and not self.backend.can_score:
            raise ConfigError(f"guard {name} scores images (adapter {self.adapter.name}), but model {cfg['model']!r} "
                              f"is on backend {self.backend.name!r}, which cannot score: use backend hf",
                              key=f"{where}.model")
        self.stats = {"calls": 0, "parse_failures": 0, "truncated": 0, "captions_missing": 0, "errors": 0}

    @property
    def batch_size(self) -> int:
        return self.backend.batch_size

    def describe(self) -> dict[str, Any]:
        return {"guard": self.name, **self.adapter.describe(), "input": self.policy.describe(),
                "model": self.backend.describe(), "on_parse_error": self.on_parse_error,
                "captioner": self.captioner.describe() if self.captioner else None}

    # --- views -----------------------------------------------------------------------------------

    def views(self, item: GuardItem) -> list[GuardView]:
        """What the input policy lets the guard see, one view per dialogue (or per user turn)."""
        image = item.image if self.policy.image else None
        if self.policy.turns == "none":
            return [GuardView((), image, item.response)]
        if self.policy.turns == "last":
            return [GuardView((self._captioned(item, only_last=True)[-1],), image, item.response)]
        msgs = self._captioned(item)
        if self.policy.aggregate == "any_turn":
            ends = [i for i, m in enumerate(msgs) if m["role"] == "user"]
            last = ends[-1]
            return [GuardView(tuple(msgs[:i + 1]), image, item.response if i == last else None) for i in ends]
        return [GuardView(tuple(msgs), image, item.response)]

    def _captioned(self, item: GuardItem, only_last: bool = False) -> list[dict[str, str]]:
        """The user/assistant turns, the caption (if any) ahead of the first user turn the guard reads."""
        msgs = [dict(m) for m in item.messages if m["role"] in ("user", "assistant")]
        if self.policy.caption is None or item.image is None:
            return msgs
        caption = item.caption if self.policy.caption == "dataset" else self._captions.get(item.image)
        if not caption:
            self.stats["captions_missing"] += 1
            return msgs
        users = [i for i, m in enumerate(msgs) if m["role"] == "user"]
        at = users[-1] if only_last else users[0]
        msgs[at]["content"] = f"[Image: {caption}]\n{msgs[at]['content']}"
        return msgs

    def _caption_images(self, items: list[GuardItem]) -> None:
        """Captions from the captioning model, one per distinct image, cached for the job."""
        if self.captioner is None:
            return
        todo = sorted({it.image for it in items if it.image is not None and it.image not in self._captions})
        if not todo:
            return
        requests = [ChatRequest((str(p), 0), ({"role": "user", "content": self.policy.caption_prompt or ""},), p)
                    for p in todo]
        for path, res in zip(todo, one_each(self.captioner.generate(requests), requests, f"captioner of guard {self.name}")):
            self._captions[path] = res.response.strip() if res.error is None and res.response else None

    # --- classify --------------------------------------------------------------------------------

    def classify(self, items: list[GuardItem], stage: str) -> list[GuardOutcome]:
        """One outcome per item; all prompts of the batch go to the guard model in one call."""
        if not items:
            return []
        start = time.perf_counter()
        self._caption_images(items)
        plans = []  # per item: per view: its prompts
        requests: list[ChatRequest] = []
        for item in items:
            views = self.views(item)
            per_view = [self.adapter.prompts(v, stage) for v in views]
            plans.append([len(p) for p in per_view])
            requests += [ChatRequest(item.key, p.messages, p.image, score=p.score, custom_policies=p.custom_policies)
                         for prompts in per_view for p in prompts]
        results = one_each(self.backend.generate(requests), requests, f"guard {self.name}")
        latency = round((time.perf_counter() - start) / len(items), 4)
        self.stats["calls"] += len(requests)
        outcomes, pos = [], 0
        for counts in plans:
            verdicts, error = [], None
            for n in counts:
                chunk = results[pos:pos + n]
                pos += n
                failed = next((r.error or "no response" for r in chunk if r.error is not None or r.response is None),
                              None)
                if failed:
                    error = error or failed
                    continue
                verdicts.append(self._read([r.response for r in chunk], stage))
            if error:
                self.stats["errors"] += 1
                outcomes.append(GuardOutcome(None, f"guard {self.name}: {error}", latency))
            else:
                outcomes.append(GuardOutcome(_combine(verdicts), None, latency))
        return outcomes

    def _read(self, texts: list[str], stage: str) -> GuardVerdict:
        verdict = self.adapter.parse(texts, stage)
        if verdict is not None:
            self.stats["truncated"] += verdict.truncated
            return verdict
        self.stats["parse_failures"] += 1
        return GuardVerdict(self.on_parse_error == "unsafe", (), "\n".join(texts), parsed=False)

    def report(self) -> None:
        if self.stats["parse_failures"] or self.stats["captions_missing"]:
            print(f"safemt: guard {self.name}: {self.stats['parse_failures']} unreadable replies took "
                  f"on_parse_error={self.on_parse_error}; {self.stats['captions_missing']} images had no caption",
                  file=sys.stderr)


def _combine(verdicts: list[GuardVerdict]) -> GuardVerdict:
    """Per-turn verdicts -> one per dialogue: unsafe if any turn is; a fallback anywhere is a fallback."""
    if len(verdicts) == 1:
        return verdicts[0]
    unsafe = any(v.unsafe for v in verdicts)
    categories = tuple(dict.fromkeys(c for v in verdicts for c in v.categories))
    scores = None
    if any(v.scores is not None for v in verdicts):  # per policy, the highest over the turns
        scores = {}
        for v in verdicts:
            for policy, p in (v.scores or {}).items():
                scores[policy] = max(p, scores.get(policy, p))
    return GuardVerdict(unsafe, categories, "\n---\n".join(v.raw for v in verdicts), all(v.parsed for v in verdicts),
                        any(v.truncated for v in verdicts), scores)
