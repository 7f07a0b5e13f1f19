"""What a seed says about its picture and its lead-in, so that dialogues are built from it.

A seed may carry (all optional, checked here; the first problem is one ValueError):
- `image_facts`: what the picture shows, one short phrase each. Written by the seed author for a real
  image; for a drawn image they come from its `draw` spec and must not be written by hand.
- `anchor`: `{"thing", "stands_for", "lead"?}`: the thing in the picture the final question points at
  (it must occur in an image fact), the words of the question it stands for, and optional words put
  before "the <thing> in the picture" when it replaces them.
- `steps`: `[{"ask", "answer"}...]`: lead-in sub-questions that drift from a neighbouring topic toward
  the question, each with a short topical answer (pre-written assistant turns, never harmful).
- `character`: `{"who", "motive"}`: the role-play's main character and why the question matters to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from safemt.data import draw

GROUNDING_FIELDS = ("image_facts", "anchor", "steps", "character")


@dataclass(frozen=True)
class Step:
    ask: str
    answer: str


@dataclass(frozen=True)
class Anchor:
    thing: str
    stands_for: str
    lead: str = ""

    def reference(self) -> str:
        """How the final turn names the thing: only through the picture."""
        return f"{self.lead}the {self.thing} in the picture"

    def apply(self, question: str) -> str:
        """The question with `stands_for` replaced by the picture reference (first occurrence)."""
        return question.replace(self.stands_for, self.reference(), 1)


@dataclass(frozen=True)
class Character:
    who: str
    motive: str


@dataclass(frozen=True)
class Grounding:
    facts: tuple[str, ...] = ()
    anchor: Anchor | None = None
    steps: tuple[Step, ...] = ()
    character: Character | None = None

    def caption(self) -> str | None:
        """The image fact about printed words, if the picture has any."""
        return next((f for f in self.facts if f.startswith("the words ")), None)

    def missing(self) -> tuple[str, ...]:
        """Grounding fields this seed lacks (the templates then use their family defaults)."""
        have = {"image_facts": bool(self.facts), "anchor": self.anchor is not None, "steps": bool(self.steps),
                "character": self.character is not None}
        return tuple(k for k in GROUNDING_FIELDS if not have[k])


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string")
    if value != value.strip():
        raise ValueError(f"{what} has leading or trailing spaces")
    return value


def _object(value: Any, what: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object with {', '.join(required)}")
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        raise ValueError(f"{what} has unknown field {unknown[0]!r} (fields: {', '.join(required + optional)})")
    for key in required:
        if key not in value:
            raise ValueError(f"{what} has no {key!r}")
    return value


def parse_facts(obj: dict[str, Any], phrase: str | None, scene: str | None) -> tuple[str, ...]:
    if phrase is not None:
        if "image_facts" in obj:
            raise ValueError("image_facts of a drawn image come from its draw spec; leave them out")
        return draw.facts(phrase, scene)
    facts = obj.get("image_facts", [])
    if not isinstance(facts, list):
        raise ValueError("image_facts must be a list of strings")
    return tuple(_text(f, f"image_facts[{i}]") for i, f in enumerate(facts))


def parse_anchor(value: Any, facts: tuple[str, ...], question: str) -> Anchor | None:
    if value is None:
        return None
    spec = _object(value, "anchor", ("thing", "stands_for"), ("lead",))
    anchor = Anchor(_text(spec["thing"], "anchor.thing"), _text(spec["stands_for"], "anchor.stands_for"),
                    spec.get("lead", ""))
    if not isinstance(anchor.lead, str):
        raise ValueError("anchor.lead must be a string")
    if not any(anchor.thing.lower() in f.lower() for f in facts):
        raise ValueError(f"anchor {anchor.thing!r} is not in the image facts"
                         + ("" if facts else " (the seed has none)"))
    if anchor.stands_for not in question:
        raise ValueError(f"anchor.stands_for {anchor.stands_for!r} does not occur in the question")
    anchored = anchor.apply(question).lower()
    if anchored.count(anchor.thing.lower()) != anchor.reference().lower().count(anchor.thing.lower()):
        raise ValueError(f"the question names {anchor.thing!r} outside the picture reference")
    return anchor


def parse_steps(value: Any, question: str) -> tuple[Step, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise ValueError("steps must be a non-empty list of {ask, answer} objects")
    steps = []
    for i, item in enumerate(value):
        spec = _object(item, f"steps[{i}]", ("ask", "answer"))
        steps.append(Step(_text(spec["ask"], f"steps[{i}].ask"), _text(spec["answer"], f"steps[{i}].answer")))
        if " ".join(question.lower().split()) in " ".join(steps[-1].ask.lower().split()):
            raise ValueError(f"steps[{i}].ask asks the question itself")
    return tuple(steps)


def parse_character(value: Any) -> Character | None:
    if value is None:
        return None
    spec = _object(value, "character", ("who", "motive"))
    return Character(_text(spec["who"], "character.who"), _text(spec["motive"], "character.motive"))


def parse_grounding(obj: dict[str, Any], question: str, phrase: str | None, scene: str | None) -> Grounding:
    """The checked grounding fields of one seed; ValueError names the field and the problem."""
    facts = parse_facts(obj, phrase, scene)
    return Grounding(facts, parse_anchor(obj.get("anchor"), facts, question),
                     parse_steps(obj.get("steps"), question), parse_character(obj.get("character")))
