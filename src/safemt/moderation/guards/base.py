"""What every guard adapter shares: the normalised verdict, the input policy, and the view of a dialogue.

An adapter turns what the guard may see (its input policy, chosen in config, never implied) into
chat requests in the guard's own documented format, and reads the guard's raw output back into
`{unsafe, categories, raw}`. Adapters do no I/O: prompt building and parsing are pure functions,
unit-tested offline against outputs in each guard's documented format.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safemt.errors import ConfigError
from safemt.registry import Registry

STAGES = ("input", "output")  # input: before the target answers; output: dialogue + answer
TURNS = ("all", "last", "none")  # which user/assistant turns the guard reads
AGGREGATES = ("dialogue", "any_turn")  # one call over the visible turns, or one per user turn (any flags)


@dataclass(frozen=True)
class GuardVerdict:
    """A guard's reading of one dialogue: `parsed` False means the configured fallback was used."""

    unsafe: bool
    categories: tuple[str, ...] = ()
    raw: str = ""
    parsed: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"unsafe": self.unsafe, "categories": list(self.categories), "raw": self.raw,
                "parse": "ok" if self.parsed else "fallback"}


@dataclass(frozen=True)
class InputPolicy:
    """Which turns the guard reads, whether it gets the image, a caption for text-only guards, and
    how per-turn verdicts become one per dialogue."""

    turns: str
    image: bool
    caption: str | None  # None, "dataset" (the record's image_caption), or a model name under models:
    aggregate: str = "dialogue"

    @classmethod
    def from_config(cls, spec: Any, where: str) -> "InputPolicy":
        if not isinstance(spec, dict):
            raise ConfigError("a guard needs an explicit input policy (turns, image, caption, aggregate)",
                              key=f"{where}.input")
        missing = [k for k in ("turns", "image") if k not in spec]
        if missing:
            raise ConfigError(f"input policy lacks {', '.join(missing)}", key=f"{where}.input")
        policy = cls(spec["turns"], bool(spec["image"]), spec.get("caption"), spec.get("aggregate", "dialogue"))
        if policy.turns not in TURNS:
            raise ConfigError(f"turns must be one of {', '.join(TURNS)}", key=f"{where}.input.turns")
        if policy.aggregate not in AGGREGATES:
            raise ConfigError(f"aggregate must be one of {', '.join(AGGREGATES)}", key=f"{where}.input.aggregate")
        return policy

    def describe(self) -> dict[str, Any]:
        return {"turns": self.turns, "image": self.image, "caption": self.caption, "aggregate": self.aggregate}


@dataclass(frozen=True)
class GuardView:
    """What one guard call sees: the visible messages, the image (if allowed), the answer (output stage)."""

    messages: tuple[dict[str, str], ...]
    image: Path | None = None
    response: str | None = None

    @property
    def last_user(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


@dataclass(frozen=True)
class GuardPrompt:
    """One request to the guard model: chat messages in its own format, plus the image if any."""

    messages: tuple[dict[str, str], ...]
    image: Path | None = None


@dataclass
class GuardAdapter(ABC):
    """One guard model's format: the prompts it is asked with, and how its reply is read.

    To add one: write `src/safemt/moderation/guards/<name>.py` with a dataclass subclass decorated
    `@GUARD_ADAPTERS.register("<name>")` implementing `prompts` and `parse` (pure functions: no I/O),
    and set `adapter: <name>` on a guard in params. `self.options` is the guard's `options:`. Set
    `sees_text = False` / `sees_images = False` for a guard that reads only one of them: input
    policies it cannot honour are refused at config time (`check_policy`).
    """

    options: dict[str, Any] = field(default_factory=dict)
    name = "base"  # the registered name (set by GUARD_ADAPTERS.register)
    sees_text = True
    sees_images = True

    def check_policy(self, policy: InputPolicy, where: str) -> None:
        """Reject input policies this guard cannot honour (a text-only guard asked for the image...)."""
        if policy.image and not self.sees_images:
            raise ConfigError(f"{self.name} is text-only: set image: false (and caption: to describe the image)",
                              key=f"{where}.input.image")
        if policy.turns == "none" and self.sees_text and not self.sees_images:
            raise ConfigError(f"{self.name} reads only text: turns cannot be none", key=f"{where}.input.turns")
        if not self.sees_text and policy.turns != "none":
            raise ConfigError(f"{self.name} reads only the image: set turns: none", key=f"{where}.input.turns")
        if not self.sees_text and not policy.image:
            raise ConfigError(f"{self.name} reads only the image: set image: true", key=f"{where}.input.image")

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.name, "options": self.options}

    @abstractmethod
    def prompts(self, view: GuardView, stage: str) -> list[GuardPrompt]:
        """The requests for one view of a dialogue (`stage`: input or output), in the guard's format."""

    @abstractmethod
    def parse(self, texts: list[str], stage: str) -> GuardVerdict | None:
        """The verdict from the raw outputs of this view's prompts, or None when unreadable (the
        guard's `on_parse_error` then decides, counted)."""


# Guard adapters by name; `safemt.moderation.guards` imports the built-in ones.
GUARD_ADAPTERS: Registry[type[GuardAdapter]] = Registry("guard adapter", package="safemt.moderation.guards",
                                                        name_attr="name")


def conversation(view: GuardView, stage: str) -> tuple[dict[str, str], ...]:
    """The visible messages, plus the answer under test as the last assistant turn at the output stage."""
    if stage == "output" and view.response is not None:
        return (*view.messages, {"role": "assistant", "content": view.response})
    return view.messages


def transcript(messages: tuple[dict[str, str], ...] | list[dict[str, str]]) -> str:
    """`User: ...` / `Assistant: ...` lines, for guards whose prompt holds the dialogue as text."""
    return "\n".join(f"{'User' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in messages
                     if m["role"] in ("user", "assistant"))


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


def strip_think(text: str) -> str:
    """Drop a reasoning section some guards emit before their verdict."""
    return _THINK.sub(" ", text or "")
