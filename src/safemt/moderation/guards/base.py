"""What every guard adapter shares: the normalised verdict, the input policy, and the view of a dialogue.

An adapter turns what the guard may see (its input policy, chosen in config, never implied) into
chat requests in the guard's own documented format, and reads the guard's raw output back into
`{unsafe, categories, raw}`. Adapters do no I/O: prompt building and parsing are pure functions,
unit-tested offline against outputs in each guard's documented format.
"""

from __future__ import annotations

import hashlib
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
    truncated: bool = False  # read from a reply cut at the token limit (counted; `parse: truncated`)
    scores: dict[str, float] | None = None  # a scoring guard's probability per policy

    def to_dict(self) -> dict[str, Any]:
        out = {"unsafe": self.unsafe, "categories": list(self.categories), "raw": self.raw,
               "parse": "fallback" if not self.parsed else "truncated" if self.truncated else "ok"}
        if self.scores is not None:
            out["scores"] = dict(self.scores)
        return out


@dataclass(frozen=True)
class InputPolicy:
    """Which turns the guard reads, whether it gets the image, a caption for text-only guards, and
    how per-turn verdicts become one per dialogue."""

    turns: str
    image: bool
    caption: str | None  # None, "dataset" (the record's image_caption), or a model name under models:
    aggregate: str = "dialogue"
    caption_prompt: str | None = None  # what a captioning model is asked (schema default)

    @classmethod
    def from_config(cls, spec: Any, where: str) -> "InputPolicy":
        if not isinstance(spec, dict):
            raise ConfigError("a guard needs an explicit input policy (turns, image, caption, aggregate)",
                              key=f"{where}.input")
        missing = [k for k in ("turns", "image") if k not in spec]
        if missing:
            raise ConfigError(f"input policy lacks {', '.join(missing)}", key=f"{where}.input")
        policy = cls(spec["turns"], bool(spec["image"]), spec.get("caption"), spec.get("aggregate", "dialogue"),
                     spec.get("caption_prompt"))
        if policy.turns not in TURNS:
            raise ConfigError(f"turns must be one of {', '.join(TURNS)}", key=f"{where}.input.turns")
        if policy.aggregate not in AGGREGATES:
            raise ConfigError(f"aggregate must be one of {', '.join(AGGREGATES)}", key=f"{where}.input.aggregate")
        return policy

    @property
    def captioner(self) -> str | None:
        """The captioning model's name, when captions are written by a model."""
        return self.caption if self.caption not in (None, "dataset") else None

    def describe(self) -> dict[str, Any]:
        out = {"turns": self.turns, "image": self.image, "caption": self.caption, "aggregate": self.aggregate}
        if self.captioner:  # the prompt matters only when a model writes the captions
            out["caption_prompt_sha256"] = hashlib.sha256((self.caption_prompt or "").encode("utf-8")).hexdigest()
        return out


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
    score: tuple[str, ...] | None = None  # a scoring request: P(Yes) for these policy names (no reply)
    custom_policies: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FormatText:
    """A text that shapes what a guard model reads (a trained instruction or policy, or this project's
    own wording), and where it came from: `model files`, `package <name>`, `file <path>` or `built-in`."""

    text: str
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def pinned_file(options: dict[str, Any], guard: str, what: str, get_it: str,
                section: str | None = None) -> FormatText | None:
    """The text of `options.prompt_file`, checked against `options.prompt_sha256`; None when no file is
    named. A missing file, a missing pin or a mismatch is one line naming the guard, the file and where
    to get it (a trained text is never copied into this project, and never silently replaced). SECTION
    is the config entry holding the options (default `guards.<guard>`; a moderator names its own)."""
    path = options.get("prompt_file")
    if not path:
        return None
    section = section or f"guards.{guard}"
    who = f"{section.split('.')[0].rstrip('s')} {guard}"
    key = f"{section}.options.prompt_file"
    file = Path(str(path))
    if not file.is_file():
        raise ConfigError(f"{who}: the {what} file is missing: save it from {get_it}, then pin its "
                          f"sha256 in options.prompt_sha256", file=str(path), key=key)
    data = file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    pin = options.get("prompt_sha256")
    if not pin:
        raise ConfigError(f"{who}: pin the {what} file: set options.prompt_sha256: {digest} "
                          f"(after checking it is the text from {get_it})", file=str(path),
                          key=f"{section}.options.prompt_sha256")
    if str(pin).lower() != digest:
        raise ConfigError(f"{who}: the {what} file has sha256 {digest}, options.prompt_sha256 pins {pin}: "
                          f"save the text again from {get_it}", file=str(path),
                          key=f"{section}.options.prompt_sha256")
    try:
        return FormatText(data.decode("utf-8"), f"file {path}")
    except UnicodeDecodeError:
        raise ConfigError(f"{who}: the {what} file is not UTF-8 text", file=str(path), key=key) from None


def installed_package_root(package: str) -> Path | None:
    """The folder of an installed package (found, never imported: an authors' package may pin other
    versions of what it imports), or None when it is not installed."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def needs_file(guard: str, what: str, get_it: str) -> ConfigError:
    """The error for a guard whose trained text must come from a file the user saves."""
    return ConfigError(f"guard {guard}: needs the published {what}, which this project does not copy: save it "
                       f"from {get_it} to a file, set options.prompt_file to it and options.prompt_sha256 to its "
                       f"sha256", key=f"guards.{guard}.options.prompt_file")


_FIELD = re.compile(r"\{([a-z_]+)\}")


def fill(template: str, values: dict[str, str]) -> str:
    """Fill the `{name}` fields of VALUES in one pass: text they insert is never read again (a dialogue
    that itself says `{response}` is sent as typed); other braces stay as written."""
    return _FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), template)


@dataclass
class GuardAdapter(ABC):
    """One guard model's format: the prompts it is asked with, and how its reply is read.

    To add one: write `src/safemt/moderation/guards/<name>.py` with a dataclass subclass decorated
    `@GUARD_ADAPTERS.register("<name>")` implementing `prompts` and `parse` (pure functions: no I/O),
    and set `adapter: <name>` on a guard in params. `self.options` is the guard's `options:`, `self.guard`
    its name. A trained instruction or policy is never written here: `load_texts` reads it at run time
    (model files, the authors' package, or `pinned_file`); its content enters `describe`. Set
    `sees_text = False` / `sees_images = False` for a guard that reads only one of them: input
    policies it cannot honour are refused at config time (`check_policy`).
    """

    options: dict[str, Any] = field(default_factory=dict)
    guard: str = "?"  # the `guards:` entry this adapter serves (named in errors)
    name = "base"  # the registered name (set by GUARD_ADAPTERS.register)
    sees_text = True
    sees_images = True
    scores = False  # True: asks a scoring backend for P(Yes) per policy (ChatRequest.score), not a reply

    def __post_init__(self) -> None:
        self._texts: dict[str, FormatText] | None = None

    def load_texts(self) -> dict[str, FormatText]:
        """The texts this adapter puts into the guard's input, by role; read once (files, packages).
        Override to add them; errors are one ConfigError line (run at plan time by `check_config`)."""
        return {}

    def texts(self) -> dict[str, FormatText]:
        if self._texts is None:
            self._texts = self.load_texts()
        return self._texts

    def check_config(self, policy: "InputPolicy", where: str) -> None:
        """Plan-time check: the input policy is one this guard honours and its texts can be read."""
        self.check_policy(policy, where)
        self.texts()

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
        """What changes this guard's input besides the model: options and the content of every text
        (built-in, from a file, from a package) by sha256."""
        texts = {role: t.sha256 for role, t in sorted(self.texts().items())}
        return {"adapter": self.name, "options": self.options, **({"texts_sha256": texts} if texts else {})}

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
