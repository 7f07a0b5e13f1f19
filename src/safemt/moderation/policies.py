"""The scenario safety policies the moderator injects: one YAML file, one policy per SafeMT scenario.

The built-in library lies beside this module; `moderation.policies: FILE` points to a user's own.
Every one of the 17 scenarios must be present (a missing one is a one-line error naming it), so a
moderator verdict can never fall through to no policy; `general` covers a verdict without a scenario.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from safemt.hashing import stable_hash
from safemt.scenarios import SCENARIOS, folder
from safemt.errors import ConfigError

BUILTIN = Path(__file__).with_name("policies.yaml")
GENERAL = "general"


@dataclass(frozen=True)
class PolicyLibrary:
    """Policy text by scenario; `source` and `sha256` go into provenance and config hashes."""

    policies: dict[str, str]
    source: str
    sha256: str

    def for_scenario(self, scenario: str | None) -> tuple[str, str]:
        """(policy_id, text): the scenario's policy, or the general one for an unknown scenario."""
        if scenario in SCENARIOS:
            return folder(scenario), self.policies[scenario]
        return GENERAL, self.policies[GENERAL]


def load_policies(path: str | Path | None = None) -> PolicyLibrary:
    """The built-in library (path None) or a user's file, checked: all 17 scenarios, non-empty text."""
    return _load(str(path) if path else str(BUILTIN))


@lru_cache(maxsize=8)
def _load(path: str) -> PolicyLibrary:
    file = Path(path)
    if not file.is_file():
        raise ConfigError("policy file not found", file=path, key="moderation.policies")
    try:
        data: Any = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise ConfigError("policy file is not valid YAML", file=path, key="moderation.policies") from None
    if not isinstance(data, dict):
        raise ConfigError("policy file must map scenario names to policy text", file=path,
                          key="moderation.policies")
    for name in data:
        if name not in SCENARIOS and name != GENERAL:
            raise ConfigError(f"unknown scenario (known: the 17 SafeMT scenarios and {GENERAL!r})", file=path,
                              key=str(name))
    for scenario in SCENARIOS:
        if scenario not in data:
            raise ConfigError("policy file has no policy for this scenario", file=path, key=scenario)
    builtin_general = None if path == str(BUILTIN) else load_policies().policies[GENERAL]
    policies = {str(k): v for k, v in data.items()}
    policies.setdefault(GENERAL, builtin_general)
    for name, text in policies.items():
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("policy text must be a non-empty string", file=path, key=name)
    return PolicyLibrary(policies, path, stable_hash(policies))


def place_policy(messages: list[dict[str, str]], policy: str, placement: str) -> list[dict[str, str]]:
    """The dialogue with `policy` injected: into the system message, or ahead of the last user turn."""
    from safemt.models.base import with_system

    if placement == "system":
        return with_system(messages, policy)
    if placement != "last_user":
        raise ConfigError(f"unknown policy placement {placement!r} (system or last_user)",
                          key="moderation.policy_placement")
    out = [dict(m) for m in messages]
    last = max(i for i, m in enumerate(out) if m["role"] == "user")
    out[last]["content"] = f"[Safety policy for this reply]\n{policy}\n\n[User]\n{out[last]['content']}"
    return out
