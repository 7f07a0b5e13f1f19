"""Config checks for the moderation sections, run with the rest of params validation (no model loads).

Each problem is one line naming the key: an unknown defense, guard or moderator name, a guard
without an input policy (or one it cannot honour), a policy file missing a scenario.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from safemt.errors import ConfigError
from safemt.models.base import BACKENDS
from safemt.moderation.defenses import parse_defense
from safemt.moderation.guards.base import GUARD_ADAPTERS, InputPolicy
from safemt.moderation.moderators import MODERATORS
from safemt.moderation.policies import load_policies
from safemt.moderation.settings import ModerationSettings

REFUSAL_JUDGE_KINDS = ("keyword", "refusal")


def check_moderation(settings: ModerationSettings, defenses: list[str], models: Mapping[str, Any],
                     judges: Mapping[str, Mapping[str, Any]]) -> None:
    """The guards, moderators, defenses, policy library and refusal judge of a configuration."""
    for name, cfg in settings.guards.items():
        where = f"guards.{name}"
        _model(cfg, models, where)
        adapter = GUARD_ADAPTERS.get(cfg.get("adapter"), key=f"{where}.adapter")(dict(cfg.get("options") or {}), name)
        policy = InputPolicy.from_config(cfg.get("input"), where)
        adapter.check_config(policy, where)  # reads its trained texts: a missing or unpinned file stops here
        backend = models[cfg["model"]].get("backend")
        if adapter.scores and backend in BACKENDS and not BACKENDS.get(backend).can_score:
            raise ConfigError(f"guard {name} scores images (adapter {adapter.name}); backend {backend!r} of model "
                              f"{cfg['model']!r} cannot score: use backend hf", key=f"{where}.model")
        if policy.caption not in (None, "dataset") and policy.caption not in models:
            raise ConfigError(f"caption must be null, 'dataset' or a model name, got {policy.caption!r}",
                              key=f"{where}.input.caption")
    for name, cfg in settings.moderators.items():
        where = f"moderators.{name}"
        _model(cfg, models, where)
        MODERATORS.get(cfg.get("kind"), key=f"{where}.kind").check_config(cfg, where)
    for key, section in (("guard", "guards"), ("moderator", "moderators")):
        chosen, defined = getattr(settings, key), getattr(settings, section)
        if chosen is not None and chosen not in defined:
            raise ConfigError(f"unknown {key} {chosen!r} (defined in {section}: "
                              f"{', '.join(sorted(defined)) or 'none'})", key=f"moderation.{key}")
    for i, name in enumerate(defenses):
        parse_defense(name, settings, key=f"defenses.{i}")
    if settings.policies or any(d.split(".")[0] == "moderator" for d in defenses):
        load_policies(settings.policies)
    _check_refusal_judge(settings, judges)


def _check_refusal_judge(settings: ModerationSettings, judges: Mapping[str, Mapping[str, Any]]) -> None:
    judge = settings.refusal_judge
    if judge is not None:
        if judge not in judges:
            raise ConfigError(f"unknown judge {judge!r} (defined: {', '.join(sorted(judges))})",
                              key="moderation.refusal_judge")
        if judges[judge].get("kind") not in REFUSAL_JUDGE_KINDS:
            raise ConfigError(f"the refusal judge must be of kind {' or '.join(REFUSAL_JUDGE_KINDS)}",
                              key="moderation.refusal_judge")
    if settings.benign_seeds and judge is None:
        raise ConfigError("benign_seeds needs a refusal_judge to measure over-refusal", key="moderation.refusal_judge")


def _model(cfg: Mapping[str, Any], models: Mapping[str, Any], where: str) -> None:
    if cfg.get("model") not in models:
        raise ConfigError(f"unknown model {cfg.get('model')!r} (defined: {', '.join(sorted(models))})",
                          key=f"{where}.model")
