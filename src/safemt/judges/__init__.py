"""Judges by name: `kind` in params picks the class, so a new judge is one file plus one line here."""

from __future__ import annotations

from typing import Any

from safemt.errors import ConfigError
from safemt.judges.base import Judge, JudgeItem, Verdict
from safemt.judges.guard import GuardJudge
from safemt.judges.keyword import KeywordJudge
from safemt.judges.llm import LLMJudge

JUDGE_KINDS: dict[str, type[Judge]] = {
    "keyword": KeywordJudge,
    "llm": LLMJudge,
    "guard": GuardJudge,
}


def get_judge(name: str, params: dict[str, Any]) -> Judge:
    """Look a judge up by its name in params; errors list what is defined."""
    judges = params.get("judges", {})
    if name not in judges:
        raise ConfigError(f"unknown judge {name!r} (defined in params: {', '.join(sorted(judges)) or 'none'})",
                          key="judges")
    cfg = judges[name]
    kind = cfg["kind"]
    if kind not in JUDGE_KINDS:
        raise ConfigError(f"judge kind {kind!r} is not available yet (available: {', '.join(sorted(JUDGE_KINDS))})",
                          key=f"judges.{name}.kind")
    return JUDGE_KINDS[kind](name, cfg, params)


__all__ = ["Judge", "JudgeItem", "Verdict", "get_judge", "JUDGE_KINDS"]
