"""The moderation part of the configuration, typed: which guard and moderator the bare defense names
use, the policy library and its placement, the refusal a blocked dialogue gets, and the guard and
moderator entries themselves. Built once by the stages from the default-filled params."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from safemt.config import fill_defaults
from safemt.errors import ConfigError

PLACEMENTS = ("system", "last_user")
SECTION_KEYS = ("guard", "moderator", "policies", "policy_placement", "refusal_text", "benign_seeds", "refusal_judge")
REFUSAL = "I'm sorry, but I can't help with that request. I can share general safety information instead."


@dataclass(frozen=True)
class ModerationSettings:
    """`moderation:` with the schema's defaults, plus the `guards:` and `moderators:` it names from."""

    guard: str | None
    moderator: str | None
    policies: str | None
    policy_placement: str
    refusal_text: str | None
    benign_seeds: str | None
    refusal_judge: str | None
    guards: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    moderators: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_sections(cls, moderation: Mapping[str, Any] | None, guards: Mapping[str, Any] | None = None,
                      moderators: Mapping[str, Any] | None = None) -> "ModerationSettings":
        section = {key: None for key in SECTION_KEYS} | fill_defaults(dict(moderation or {}), at=("moderation",))
        if section["policy_placement"] not in PLACEMENTS:
            raise ConfigError(f"policy_placement must be one of {', '.join(PLACEMENTS)}",
                              key="moderation.policy_placement")
        return cls(**section, guards=dict(guards or {}), moderators=dict(moderators or {}))

    @property
    def refusal(self) -> str:
        """What a blocked dialogue gets as its response: `refusal_text`, else the built-in refusal."""
        return self.refusal_text or REFUSAL
