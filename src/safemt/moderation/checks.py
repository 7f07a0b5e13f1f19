"""Config checks for the moderation sections, run with the rest of params validation (no model loads).

Each problem is one line naming the key: an unknown defense, guard or moderator name, a guard
without an input policy (or one it cannot honour), a policy file missing a scenario.
"""

from __future__ import annotations

from typing import Any

from safemt.errors import ConfigError, SafemtError

REFUSAL_JUDGE_KINDS = ("keyword", "refusal")


def check_moderation(params: dict[str, Any], source: str = "params") -> None:
    try:
        _check(params)
    except SafemtError as exc:
        raise ConfigError(exc.reason, file=exc.file or source, key=exc.key) from None


def _check(params: dict[str, Any]) -> None:
    from safemt.moderation.defenses import moderation_settings, parse_defense
    from safemt.moderation.guards import ADAPTERS
    from safemt.moderation.guards.base import InputPolicy
    from safemt.moderation.moderators import MODERATORS
    from safemt.moderation.policies import load_policies

    models = params.get("models") or {}
    for name, cfg in (params.get("guards") or {}).items():
        where = f"guards.{name}"
        _model(cfg, models, where)
        adapter = ADAPTERS.get(cfg.get("adapter"), key=f"{where}.adapter")
        policy = InputPolicy.from_config(cfg.get("input"), where)
        adapter(dict(cfg.get("options") or {})).check_policy(policy, where)
        if policy.caption not in (None, "dataset") and policy.caption not in models:
            raise ConfigError(f"caption must be null, 'dataset' or a model name, got {policy.caption!r}",
                              key=f"{where}.input.caption")
    for name, cfg in (params.get("moderators") or {}).items():
        where = f"moderators.{name}"
        _model(cfg, models, where)
        MODERATORS.get(cfg.get("kind", "prompted"), key=f"{where}.kind").check_config(cfg, where)
    moderation = params.get("moderation") or {}
    for key, section in (("guard", "guards"), ("moderator", "moderators")):
        chosen = moderation.get(key)
        if chosen is not None and chosen not in (params.get(section) or {}):
            raise ConfigError(f"unknown {key} {chosen!r} (defined in {section}: "
                              f"{', '.join(sorted(params.get(section) or {})) or 'none'})", key=f"moderation.{key}")
    for i, name in enumerate(params.get("defenses") or []):
        parse_defense(name, params, key=f"defenses.{i}")
    settings = moderation_settings(params)
    if settings["policies"] or any(d.split(".")[0] == "moderator" for d in params.get("defenses") or []):
        load_policies(settings["policies"])
    judge = moderation.get("refusal_judge")
    judges = params.get("judges") or {}
    if judge is not None:
        if judge not in judges:
            raise ConfigError(f"unknown judge {judge!r} (defined: {', '.join(sorted(judges))})",
                              key="moderation.refusal_judge")
        if judges[judge].get("kind") not in REFUSAL_JUDGE_KINDS:
            raise ConfigError(f"the refusal judge must be of kind {' or '.join(REFUSAL_JUDGE_KINDS)}",
                              key="moderation.refusal_judge")
    if moderation.get("benign_seeds") and judge is None:
        raise ConfigError("benign_seeds needs a refusal_judge to measure over-refusal", key="moderation.refusal_judge")


def _model(cfg: dict[str, Any], models: dict[str, Any], where: str) -> None:
    if cfg.get("model") not in models:
        raise ConfigError(f"unknown model {cfg.get('model')!r} (defined: {', '.join(sorted(models))})",
                          key=f"{where}.model")
