"""The dialogue record (DESIGN.md contract), validated at the boundary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

from safemt.data.scenarios import METHODS, SCENARIOS


class RecordError(ValueError):
    """A record breaks the contract; the caller adds file/index/id context."""


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Dialogue:
    id: str
    turns: int
    scenario: str
    source: str | None
    method: str | None
    method_inferred: bool
    image: str | None
    image_sha256: str | None
    messages: tuple[Message, ...]
    question: str
    question_inferred: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int, str | None]:
        """(id, turns, method): unique in a dataset; in `all` mode several methods share (id, turns)."""
        return (self.id, self.turns, self.method)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["messages"] = [{"role": m.role, "content": m.content} for m in self.messages]
        extra = d.pop("extra")
        d.update(extra)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Dialogue":
        """Build and validate a dialogue from a JSON object."""
        if not isinstance(d, dict):
            raise RecordError("record is not a JSON object")
        missing = [k for k in ("id", "turns", "scenario", "messages", "question") if k not in d]
        if missing:
            raise RecordError(f"missing field(s): {', '.join(missing)}")
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        msgs = d["messages"]
        if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
            raise RecordError("messages must be a list of objects")
        messages = []
        for i, m in enumerate(msgs):
            if not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise RecordError(f"message {i} needs string 'role' and 'content'")
            messages.append(Message(m["role"], m["content"]))
        dialogue = cls(
            id=d["id"], turns=d["turns"], scenario=d["scenario"], source=d.get("source"),
            method=d.get("method"), method_inferred=bool(d.get("method_inferred", False)),
            image=d.get("image"), image_sha256=d.get("image_sha256"), messages=tuple(messages),
            question=d["question"], question_inferred=bool(d.get("question_inferred", False)),
            extra={k: v for k, v in d.items() if k not in known},
        )
        dialogue.check()
        return dialogue

    def check(self) -> None:
        """Structural contract of SAFEMT-FACTS.md: N user turns, 2N-1 alternating messages."""
        if not isinstance(self.id, str) or not self.id.strip():
            raise RecordError("id must be a non-empty string")
        if not isinstance(self.turns, int) or isinstance(self.turns, bool) or self.turns < 1:
            raise RecordError(f"turns must be a positive integer, got {self.turns!r}")
        if self.scenario not in SCENARIOS:
            raise RecordError(f"unknown scenario {self.scenario!r}")
        if self.method == "unknown" and not self.method_inferred:
            raise RecordError("method 'unknown' is only a classifier label (method_inferred must be true)")
        if self.method is not None and self.method not in (*METHODS, "unknown") and not _is_combo(self.method):
            raise RecordError(f"unknown method {self.method!r} (one of {', '.join(METHODS)}, a 'first+second' "
                              "combination of them, 'unknown' when inferred, or null)")
        if not isinstance(self.question, str):
            raise RecordError("question must be a string")
        check_messages(self.messages, self.turns)
        if self.image is not None:
            check_image_path(self.image)


def _is_combo(method: str) -> bool:
    parts = method.split("+")
    return len(parts) > 1 and all(p in METHODS for p in parts)


def check_messages(messages: tuple[Message, ...] | list[Message], turns: int) -> None:
    roles = [m.role for m in messages]
    for i, r in enumerate(roles):
        if r not in ("user", "assistant"):
            raise RecordError(f"message {i} has unknown role {r!r}")
    if not roles:
        raise RecordError("dialogue has no messages")
    if roles[0] != "user":
        raise RecordError("dialogue does not start with a user message")
    if roles[-1] != "user":
        raise RecordError("dialogue does not end with a user message")
    for i in range(1, len(roles)):
        if roles[i] == roles[i - 1]:
            raise RecordError(f"roles do not alternate at message {i} ({roles[i]} after {roles[i - 1]})")
    if len(messages) != 2 * turns - 1:
        raise RecordError(f"{turns}-turn dialogue must have {2 * turns - 1} messages, has {len(messages)}")
    if not messages[-1].content.strip():
        raise RecordError("final user turn is empty")


def check_image_path(image: str) -> None:
    """Image paths are relative and never escape their image root."""
    if not isinstance(image, str) or not image:
        raise RecordError("image path must be a non-empty string")
    if "\\" in image:
        raise RecordError(f"image path {image!r} uses backslashes")
    p = PurePosixPath(image)
    if p.is_absolute() or image.startswith("~"):
        raise RecordError(f"image path {image!r} is absolute; it must be relative to the image root")
    if ".." in p.parts:
        raise RecordError(f"image path {image!r} escapes the image root")
