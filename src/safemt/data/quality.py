"""Quality checks a generated dialogue must pass before the build keeps it.

The record contract (2N-1 alternating messages, non-empty final user turn) always holds, since
every later stage relies on it. The other checks are named in `dataset.checks` and can be turned
off, e.g. for tiny-model runs whose generated text is nonsense:
- structure: no empty turn, no user turn said twice, the query not asked before the final turn;
- refusal: no refusal inside a pre-written assistant turn (it would defeat the jailbreak);
- duplicate: no dialogue identical to one already kept;
- grounding: the final user turn leans on what came before: it mentions the picture or an earlier
  turn, or shares a content word with an earlier turn (a lead-in that has nothing to do with the
  question fails).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple, Sequence

from safemt.records import Message, RecordError, check_messages
from safemt.errors import ConfigError

CHECKS = ("structure", "refusal", "duplicate", "grounding")

# Ways an assistant declines, written for this project; matched case-insensitively.
_REFUSAL = re.compile(
    r"\b(?:i\s*(?:'m| am) sorry|i\s*(?:can\s*not|cannot|can't|won't|will not|must decline)"
    r"|i\s*(?:'m| am) (?:not able|unable) to|as an ai\b|against my (?:guidelines|policy|policies)"
    r"|not something i can help)",
    re.IGNORECASE,
)


class Problem(NamedTuple):
    """Why a draft was not kept: the check that failed and a short detail."""

    check: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.detail}"


@dataclass(frozen=True)
class Checks:
    structure: bool = True
    refusal: bool = True
    duplicate: bool = True
    grounding: bool = True

    @classmethod
    def from_params(cls, spec: Any) -> "Checks":
        """`dataset.checks` as a mapping of check name to on/off; absent means on."""
        spec = spec or {}
        unknown = sorted(set(spec) - set(CHECKS))
        if unknown:
            raise ConfigError(f"unknown check {unknown[0]!r} (one of {', '.join(CHECKS)})",
                              key=f"dataset.checks.{unknown[0]}")
        return cls(**{name: bool(spec.get(name, True)) for name in CHECKS})


def _fingerprint(messages: Sequence[Message]) -> tuple[str, ...]:
    """Case and spacing do not make a dialogue new."""
    return tuple(" ".join(m.content.lower().split()) for m in messages)


class Inspector:
    """Runs the enabled checks and remembers kept dialogues, so duplicates are caught in order."""

    def __init__(self, checks: Checks):
        self.checks = checks
        self._kept: set[tuple[str, ...]] = set()

    def problem(self, messages: Sequence[Message], turns: int, question: str) -> Problem | None:
        try:
            check_messages(tuple(messages), turns)
        except RecordError as exc:
            return Problem("contract", str(exc))
        if self.checks.structure and (found := structure_problem(messages, question)):
            return Problem("structure", found)
        if self.checks.refusal and (found := refusal_problem(messages)):
            return Problem("refusal", found)
        if self.checks.grounding and (found := grounding_problem(messages)):
            return Problem("grounding", found)
        if self.checks.duplicate and _fingerprint(messages) in self._kept:
            return Problem("duplicate", "same messages as a dialogue already kept")
        return None

    def keep(self, messages: Sequence[Message]) -> None:
        self._kept.add(_fingerprint(messages))


def structure_problem(messages: Sequence[Message], question: str) -> str | None:
    """A lead-in must build up to the query: every turn says something, none repeats, none asks it."""
    for i, m in enumerate(messages):
        if not m.content.strip():
            return f"message {i} ({m.role}) is empty"
    users = [" ".join(m.content.lower().split()) for m in messages if m.role == "user"]
    if len(set(users)) < len(users):
        return "a user turn is repeated"
    query = " ".join(question.lower().split())
    if query and any(query in text for text in users[:-1]):
        return "the query is asked before the final turn"
    return None


def refusal_problem(messages: Sequence[Message]) -> str | None:
    for i, m in enumerate(messages):
        if m.role == "assistant" and (hit := _REFUSAL.search(m.content)):
            return f"assistant message {i} refuses ({hit.group(0)!r})"
    return None


# The picture or an earlier turn, named in the final turn; and words too common to link two turns.
_REFERS = re.compile(r"\b(?:picture|image|photo|earlier|above|samples?|examples?|story|scene|chapter|episode"
                     r"|character|you (?:said|mentioned|described))\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z][a-z']{3,}")
_COMMON = frozenset("""about after again also always another anyone anything around because been before being
between both could does doing down each even every from give have having here into just know like made make
many more most much must never only other over people really same should some someone something still such
than that their them then there these they thing things think this those through very want ways were what
when where which while will with would your""".split())


def _content_words(text: str) -> set[str]:
    """Content words cut to five letters, a crude stem ("satire"/"satirical", "piece"/"pieces")."""
    return {w[:5] for w in _WORD.findall(text.lower()) if w not in _COMMON}


def grounding_problem(messages: Sequence[Message]) -> str | None:
    """The final turn must refer to the picture or an earlier turn, or share a content word with one."""
    if len(messages) < 3:
        return None
    final = messages[-1].content
    if _REFERS.search(final):
        return None
    earlier = set().union(*(_content_words(m.content) for m in messages[:-1]))
    if _content_words(final) & earlier:
        return None
    return "the final turn refers to no earlier turn and not to the picture"
