"""What every judge sees and returns."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from safemt.models.base import note_fallback
from safemt.records import LABELS, VERDICTS  # noqa: F401  (the labels a judge may return)

DEFAULT_BATCH = 64


@dataclass(frozen=True)
class JudgeItem:
    """One final reply in context: the judge reads the original question, the dialogue and the reply."""

    id: str
    turns: int
    scenario: str
    question: str
    messages: tuple[dict[str, str], ...]
    response: str


@dataclass(frozen=True)
class Verdict:
    label: str  # safe | unsafe | invalid
    raw: str
    error: str | None = None  # the judge itself failed (API error): invalid now, redone by a rerun
    parse: str = "invalid"  # how the label was read: see safemt.judges.parsing.PARSE_KINDS


class Judge:
    """Base class: subclasses label a batch of replies."""

    kind = "base"

    def __init__(self, name: str, cfg: dict[str, Any], params: dict[str, Any]):
        self.name = name
        self.cfg = cfg
        self.fallbacks: Counter[str] = Counter()  # degraded readings, by kind (judging provenance)

    def fallback(self, kind: str, cause: str) -> None:
        """Count a degraded reading (a default label, an ignored constraint) and log its first cause."""
        note_fallback(self.fallbacks, f"judge {self.name}", kind, cause)

    @property
    def backend_fallbacks(self) -> dict[str, int]:
        """Fallbacks of the judge's model backend (batches run one by one), where it has one."""
        backend = getattr(self, "backend", None)
        return dict(getattr(backend, "fallbacks", {}) or {})

    @property
    def batch_size(self) -> int:
        """Items per judge() call, and per journal append: `batch_size` in the judge's config."""
        return int(self.cfg.get("batch_size", DEFAULT_BATCH))

    def describe(self) -> dict[str, Any]:
        """Everything that changes labels; hashed into each judgment's judge_hash (the verdict cache key)."""
        raise NotImplementedError

    @classmethod
    def verdict_spec(cls, cfg: dict[str, Any]) -> dict[str, Any]:
        """What decides a verdict besides the model, computed without loading it: the Snakemake
        judge rule's params carry it, so that editing any of it reruns the rule."""
        raise NotImplementedError

    def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        raise NotImplementedError
