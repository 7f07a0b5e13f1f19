"""Judges by name: `kind` in params picks the class, so a new judge is one file plus one line here."""

from __future__ import annotations

from typing import Any

from safemt.errors import ConfigError
from safemt.judges.base import Judge, JudgeItem, Verdict
from safemt.judges.guard import GuardJudge
from safemt.judges.keyword import KeywordJudge
from safemt.judges.llm import LLMJudge
from safemt.judges.refusal import RefusalJudge

JUDGE_KINDS: dict[str, type[Judge]] = {
    "keyword": KeywordJudge,
    "llm": LLMJudge,
    "guard": GuardJudge,
    "refusal": RefusalJudge,
}


def get_judge(name: str, params: dict[str, Any]) -> Judge:
    """Look a judge up by its name in params; errors list what is defined."""
    return _judge_class(name, params)(name, params["judges"][name], params)


def verdict_spec(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """What decides this judge's verdicts besides its model's config, without loading the model:
    the rendered prompts, retry reminder, dialogue renderer and parser (Snakemake params trigger)."""
    return _judge_class(name, params).verdict_spec(params["judges"][name])


def _judge_class(name: str, params: dict[str, Any]) -> type[Judge]:
    judges = params.get("judges", {})
    if name not in judges:
        raise ConfigError(f"unknown judge {name!r} (defined in params: {', '.join(sorted(judges)) or 'none'})",
                          key="judges")
    cfg = judges[name]
    kind = cfg["kind"]
    if kind not in JUDGE_KINDS:
        raise ConfigError(f"judge kind {kind!r} is not available yet (available: {', '.join(sorted(JUDGE_KINDS))})",
                          key=f"judges.{name}.kind")
    return JUDGE_KINDS[kind]


__all__ = ["Judge", "JudgeItem", "Verdict", "get_judge", "verdict_spec", "JUDGE_KINDS"]
