"""What every judge sees and returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from typing import Any

from safemt.progress import note_fallback
from safemt.records import LABELS, VERDICTS  # noqa: F401  (the labels a judge may return)
from safemt.registry import Registry

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


class Judge(ABC):
    """Labels final replies `safe`, `unsafe` or `invalid`; `judges.<name>.kind` picks the class.

    To add one: write `src/safemt/judges/<kind>.py` with a subclass decorated
    `@JUDGES.register("<kind>")` that implements `judge`, and set `kind: <kind>` on a judge in params
    (README, "Extending"). `self.cfg` is the judge's config entry. Override `verdict_spec` (what
    decides a verdict, computable without loading a model: the Snakemake judge rule reruns when it
    changes) and `describe` (that plus the model: the verdict cache key) when a model or prompt is
    involved; by default both are the judge's config. Count a degraded reading with `fallback`.
    """

    kind = "base"  # the registered name (set by JUDGES.register)

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
        return self.verdict_spec(self.cfg)

    @classmethod
    def verdict_spec(cls, cfg: dict[str, Any]) -> dict[str, Any]:
        """What decides a verdict besides the model, computed without loading it: the Snakemake
        judge rule's params carry it, so that editing any of it reruns the rule."""
        return {"kind": cls.kind, "config": dict(sorted(cfg.items()))}

    @abstractmethod
    def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        """One Verdict per item, in order: `safe` or `unsafe` with the raw reply and how it was read
        (`parse`), or `invalid` when unreadable; a failed call is `invalid` with `error` set (redone
        by a rerun), never an exception."""


# Judge classes by kind; `safemt.judges` imports the built-in ones.
JUDGES: Registry[type[Judge]] = Registry("judge kind", package="safemt.judges", name_attr="kind")
