"""Judges by name: `kind` in params picks the class from `JUDGES`, so a new judge is one file in this
folder (registered with `@JUDGES.register`) plus the config line that names it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from safemt.judges import graded, guard, keyword, llm, refusal  # noqa: F401  (the built-in kinds register)
from safemt.judges.base import JUDGES, Judge, JudgeItem, ModelJudge, Verdict


def judge_class(entry: Mapping[str, Any], name: str = "?") -> type[Judge]:
    """The class of a judge entry's kind; an unknown kind is one line naming `judges.<name>.kind`."""
    return JUDGES.get(entry.get("kind"), key=f"judges.{name}.kind")


def get_judge(name: str, entry: Mapping[str, Any], model: Mapping[str, Any] | None = None) -> Judge:
    """The judge `judges.<name>` (ENTRY), with MODEL, its model's config entry plus `name`, when it has one."""
    return judge_class(entry, name)(name, entry, model)


def verdict_spec(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What decides this judge's verdicts besides its model's config, without loading the model:
    the rendered prompts, retry reminder, dialogue renderer and parser (Snakemake params trigger)."""
    return judge_class(entry).verdict_spec(entry)


__all__ = ["JUDGES", "Judge", "JudgeItem", "ModelJudge", "Verdict", "get_judge", "judge_class", "verdict_spec"]
