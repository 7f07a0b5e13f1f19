"""What every judge sees and returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, ClassVar

from safemt.config import fill_defaults
from safemt.errors import ConfigError
from safemt.models import Backend, get_backend
from safemt.progress import note_fallback
from safemt.registry import Registry

DEFAULT_BATCH = 64


@dataclass(frozen=True)
class JudgeItem:
    """One final reply in context: the judge reads the original question, the dialogue and the reply."""

    id: str
    turns: int
    scenario: str
    question: str
    messages: tuple[dict[str, str], ...]
    response: str


@dataclass(frozen=True)
class Verdict:
    label: str  # safe | unsafe | invalid
    raw: str
    error: str | None = None  # the judge itself failed (API error): invalid now, redone by a rerun
    parse: str = "invalid"  # how the label was read: see safemt.judges.parsing.PARSE_KINDS
    grade: str | None = None  # a graded judge's grade (refusal | partial | full | invalid); None: binary judge


@dataclass(frozen=True)
class JudgeConfig:
    """A judge entry, typed: each kind declares its own subclass, whose fields are the keys it takes.
    Built from the entry with the schema's defaults for the kind (the schema is where they live); a
    field default here only means "unset"."""

    kind: str

    @classmethod
    def of(cls, entry: Mapping[str, Any], where: str = "judges.?") -> "JudgeConfig":
        """The typed entry; a key this kind does not take is one line naming it and the kind's keys."""
        filled = fill_defaults(dict(entry), at=("judges", "*"))
        names = [f.name for f in fields(cls)]
        extra = sorted(set(filled) - set(names))
        if extra:
            keys = ", ".join(n for n in names if n != "kind") or "none"
            raise ConfigError(f"judge kind {filled.get('kind')!r} takes no {extra[0]!r} (its keys: {keys})",
                              key=f"{where}.{extra[0]}")
        missing = [f.name for f in fields(cls) if f.name not in filled and f.default is MISSING]
        if missing:
            raise ConfigError(f"judge kind {filled.get('kind')!r} needs a {missing[0]!r}", key=where)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in filled.items()})

    def entry(self) -> dict[str, Any]:
        """The entry as a dict again, without the unset keys (what the default verdict spec hashes)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if v is not None}


class Judge(ABC):
    """Labels final replies `safe`, `unsafe` or `invalid`; `judges.<name>.kind` picks the class.

    To add one: write `src/safemt/judges/<kind>.py` with a subclass decorated
    `@JUDGES.register("<kind>")` that implements `judge`, and set `kind: <kind>` on a judge in params
    (docs/extending.md). `self.cfg` is the judge's config entry with the schema's defaults. Give the
    kind a typed section (`Config`, a JudgeConfig subclass whose fields are the keys it takes; others
    are refused at load time; None takes any key), and override `verdict_spec` (what decides a
    verdict, computable without loading a model: the Snakemake judge rule reruns when it changes)
    and `describe` (that plus the model: the verdict cache key) when a model or prompt is involved;
    by default both are the judge's config. Count a degraded reading with `fallback`.
    """

    kind = "base"  # the registered name (set by JUDGES.register)
    Config: ClassVar[type[JudgeConfig] | None] = None  # the kind's typed section; None: any keys
    needs_model: ClassVar[bool | None] = False  # True: `model` is required; None: optional

    def __init__(self, name: str, cfg: Mapping[str, Any], model: Mapping[str, Any] | None = None):
        self.name = name
        self.cfg = self.entry(cfg)
        self.config = self.Config.of(cfg, f"judges.{name}") if self.Config else None
        self.fallbacks: Counter[str] = Counter()  # degraded readings, by kind (judging provenance)

    @staticmethod
    def entry(cfg: Mapping[str, Any]) -> dict[str, Any]:
        """The judge's entry with the schema's defaults for its kind (the loader has filled them already;
        an entry built by hand gets the same)."""
        return fill_defaults(dict(cfg), at=("judges", "*"))

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], where: str, models: Mapping[str, Any]) -> None:
        """Config-time check of one judge entry: only this kind's keys, and its model defined."""
        if cls.Config is not None:
            cls.Config.of(cfg, where)
        if cls.needs_model and "model" not in cfg:
            raise ConfigError(f"judge kind {cls.kind!r} needs a 'model'", key=where)
        if "model" in cfg and cfg["model"] not in models:
            raise ConfigError(f"unknown model {cfg['model']!r} (defined: {', '.join(sorted(models))})",
                              key=f"{where}.model")

    def fallback(self, kind: str, cause: str) -> None:
        """Count a degraded reading (a default label, an ignored constraint) and log its first cause."""
        note_fallback(self.fallbacks, f"judge {self.name}", kind, cause)

    @property
    def backend_fallbacks(self) -> dict[str, int]:
        """Fallbacks of the judge's model backend (batches run one by one), where it has one."""
        return {}

    @property
    def batch_size(self) -> int:
        """Items per judge() call, and per journal append: `batch_size` in the judge's config."""
        return int(getattr(self.config, "batch_size", None) or self.cfg.get("batch_size") or DEFAULT_BATCH)

    def describe(self) -> dict[str, Any]:
        """Everything that changes labels; hashed into each judgment's judge_hash (the verdict cache key)."""
        return self.verdict_spec(self.cfg)

    @classmethod
    def verdict_spec(cls, cfg: Mapping[str, Any]) -> dict[str, Any]:
        """What decides a verdict besides the model, computed without loading it: the Snakemake
        judge rule's params carry it, so that editing any of it reruns the rule."""
        return {"kind": cls.kind, "config": dict(sorted(cls.entry(cfg).items()))}

    @abstractmethod
    def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        """One Verdict per item, in order: `safe` or `unsafe` with the raw reply and how it was read
        (`parse`), or `invalid` when unreadable; a failed call is `invalid` with `error` set (redone
        by a rerun), never an exception."""


class ModelJudge(Judge):
    """A judge that asks a model (any backend): owns the backend, its batch size and its fallbacks."""

    needs_model = True

    def __init__(self, name: str, cfg: Mapping[str, Any], model: Mapping[str, Any] | None = None):
        super().__init__(name, cfg, model)
        if model is None:
            raise ConfigError(f"judge kind {self.kind!r} needs a 'model'", key=f"judges.{name}")
        self.backend: Backend = get_backend(model)

    @property
    def backend_fallbacks(self) -> dict[str, int]:
        return dict(self.backend.fallbacks)

    @property
    def batch_size(self) -> int:
        return int(getattr(self.config, "batch_size", None) or self.backend.batch_size)

    def describe(self) -> dict[str, Any]:
        return {**self.verdict_spec(self.cfg), "model": self.backend.describe()}

    def ask_with_retries(self, items: list["JudgeItem"], choices: tuple[str, ...] | None, retries: int,
                         reminder: str) -> list["Verdict"]:
        """One verdict per item, in order: each item's prompt (`self.prompt`) is sent, its reply read
        (`self._read(result, attempt)`), and an unreadable one (label `invalid`) sent again up to RETRIES
        times with the model's answer and REMINDER appended to its conversation."""
        from safemt.models import ChatRequest, one_each

        conversations = {i: [{"role": "user", "content": self.prompt(item)}] for i, item in enumerate(items)}
        verdicts: dict[int, Verdict] = {}
        pending = list(conversations)
        for attempt in range(retries + 1):
            requests = [ChatRequest(key=(items[i].id, items[i].turns), messages=tuple(conversations[i]),
                                    choices=choices) for i in pending]
            results = one_each(self.backend.generate(requests), requests, f"judge {self.name}") if requests else []
            still = []
            for i, result in zip(pending, results):
                verdict = self._read(result, attempt)
                if verdict.label != "invalid" or attempt == retries:
                    verdicts[i] = verdict
                    continue
                still.append(i)
                if result.response is not None:  # show the model its unreadable answer, then remind it
                    conversations[i] += [{"role": "assistant", "content": result.response},
                                         {"role": "user", "content": reminder}]
            pending = still
        return [verdicts[i] for i in range(len(items))]


# Judge classes by kind; `safemt.judges` imports the built-in ones.
JUDGES: Registry[type[Judge]] = Registry("judge kind", package="safemt.judges", name_attr="kind")
