"""What every judge sees and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LABELS = ("safe", "unsafe", "invalid")


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
        self.params = params

    def describe(self) -> dict[str, Any]:
        """Everything that changes labels; hashed into each judgment's judge_hash."""
        return {"kind": self.kind, **self.cfg}

    def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        raise NotImplementedError
