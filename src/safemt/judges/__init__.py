"""Judges by name: `kind` in params picks the class from `JUDGES`, so a new judge is one file in this
folder (registered with `@JUDGES.register`) plus the config line that names it."""

from __future__ import annotations

from typing import Any

from safemt.errors import ConfigError
from safemt.judges import guard, keyword, llm, refusal  # noqa: F401  (the built-in kinds register)
from safemt.judges.base import JUDGES, Judge, JudgeItem, Verdict

JUDGE_KINDS = JUDGES  # older name


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
    return JUDGES.get(judges[name]["kind"], key=f"judges.{name}.kind")


__all__ = ["JUDGES", "JUDGE_KINDS", "Judge", "JudgeItem", "Verdict", "get_judge", "verdict_spec"]
