"""What every judge sees and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VERDICTS = ("safe", "unsafe")  # the labels that count in ASR and SI
LABELS = (*VERDICTS, "invalid")  # invalid: the judge's answer could not be read after retries
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


class Judge:
    """Base class: subclasses label a batch of replies."""

    kind = "base"

    def __init__(self, name: str, cfg: dict[str, Any], params: dict[str, Any]):
        self.name = name
        self.cfg = cfg

    @property
    def batch_size(self) -> int:
        """Items per judge() call, and per journal append: `batch_size` in the judge's config."""
        return int(self.cfg.get("batch_size", DEFAULT_BATCH))

    def describe(self) -> dict[str, Any]:
        """Everything that changes labels; hashed into each judgment's judge_hash."""
        raise NotImplementedError

    def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        raise NotImplementedError
