"""Checks shared by import, validate and export: record contract, uniqueness, images, blemishes.

Errors are SafemtError naming file, record (1-based position in the file) and id. Blemishes are
oddities of the released data that are kept verbatim and counted, in three classes: `feature` (how
the release was made: a paraphrased final turn, mixed image extensions), `quirk` (harmless noise:
stray spaces, a dropped image word) and `defect` (a turn with nothing in it). `--strict` refuses
only defects; roles out of order are refused always, by the record contract.
"""

from __future__ import annotations

import re
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from safemt.data.image_files import check_image_readable, sha256_file
from safemt.records import Dialogue, RecordError
from safemt.errors import SafemtError
from safemt.files import read_jsonl

RELEASE_PREFIXES = ("mm", "jbv", "mllm", "beaver")

BLEMISHES = {
    "whitespace": "leading/trailing whitespace",
    "empty_turn": "empty or whitespace-only earlier turn",
    "question_differs": "question differs from final user turn",
    "final_image": 'final user turn is "image"',
    "mixed_extensions": "mixed image extensions",
    "double_space": "double spaces",
    "dropped_image_word": "dropped image word",
    "unknown_prefix": "unknown id prefix",
}
# Which blemishes are how the release was made (features), which are noise (quirks) and which leave a
# turn without content (defects, the only ones --strict refuses).
BLEMISH_CLASS = {
    "whitespace": "quirk", "empty_turn": "defect", "question_differs": "feature", "final_image": "quirk",
    "mixed_extensions": "feature", "double_space": "quirk", "dropped_image_word": "quirk",
    "unknown_prefix": "quirk",
}
DEFECTS = tuple(k for k, c in BLEMISH_CLASS.items() if c == "defect")

# "Regarding , could you" (dangling comma) and "this  about" (a word missing between two spaces).
_DROPPED_WORD = re.compile(r"(?:^|\s),\s|\b(?:this|that|these|those|the|an?|of|in|on|at|from)  ")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Located:
    """A dialogue and where it was read, so that every later error can name file and record."""

    dialogue: Dialogue
    file: str
    index: int

    def error(self, reason: str) -> SafemtError:
        return SafemtError(reason, file=self.file, index=self.index, record_id=self.dialogue.id)


@contextmanager
def at_record(file: str | Path, index: int, obj: Any) -> Iterator[None]:
    """Turn a RecordError raised while reading one record into a located SafemtError."""
    try:
        yield
    except RecordError as exc:
        rid = obj.get("id") if isinstance(obj, dict) and isinstance(obj.get("id"), str) else None
        raise SafemtError(str(exc), file=str(file), index=index, record_id=rid) from None


def source_of(record_id: str) -> str | None:
    """The query source named by a released id's prefix (`mm_`, `jbv_`, `mllm_`, `beaver_`)."""
    prefix = record_id.split("_", 1)[0]
    return prefix if "_" in record_id and prefix in RELEASE_PREFIXES else None


def check_fields(d: Dialogue) -> None:
    """Field types that Dialogue.check leaves open: source and image_sha256."""
    if d.source is not None and not isinstance(d.source, str):
        raise RecordError("source must be a string or null")
    if d.image_sha256 is not None and not (isinstance(d.image_sha256, str) and _SHA256.fullmatch(d.image_sha256)):
        raise RecordError("image_sha256 must be 64 lower-case hex digits or null")


def read_dialogues(path: str | Path) -> list[Located]:
    """Read a dialogues JSONL file (our contract); each record is checked as it is read."""
    items = []
    for index, obj in enumerate(read_jsonl(path), start=1):
        with at_record(path, index, obj):
            dialogue = Dialogue.from_dict(obj)
            check_fields(dialogue)
        items.append(Located(dialogue, str(path), index))
    return items


def check_unique(items: list[Located]) -> None:
    """(id, turns, method) is the key every later stage joins on, so it must be unique (the method is
    part of it because `method_assignment: all` writes every method under one id and length)."""
    seen: dict[tuple[str, int], Located] = {}
    for item in items:
        first = seen.setdefault(item.dialogue.key, item)
        if first is not item:
            raise item.error(f"duplicate (id, turns, method) {item.dialogue.key}; first seen in {first.file} "
                             f"record {first.index}")


def hash_images(items: list[Located], image_root: str | Path, allow_missing: bool) -> dict[str, str | None]:
    """Check each distinct image once; map its path to its SHA-256 (None when missing and allowed)."""
    root = Path(image_root).resolve()
    hashes: dict[str, str | None] = {}
    for item in items:
        image = item.dialogue.image
        if image is not None and image not in hashes:
            hashes[image] = _image_hash(item, root, allow_missing)
    return hashes


def _image_hash(item: Located, root: Path, allow_missing: bool) -> str | None:
    image = item.dialogue.image
    path = root / image
    if not path.resolve().is_relative_to(root):
        raise item.error(f"image path {image!r} escapes the image root {root} through a link")
    if not path.is_file():
        if allow_missing:
            return None
        raise item.error(f"image {image!r} not found under {root} (--allow-missing-images keeps such records)")
    try:
        check_image_readable(path)
    except RecordError as exc:
        raise item.error(f"image {image!r}: {exc}") from None
    return sha256_file(path)


def check_hashes(items: list[Located], hashes: dict[str, str | None]) -> None:
    """A recorded image_sha256 must match the image file when the file is there."""
    for item in items:
        d = item.dialogue
        actual = hashes.get(d.image) if d.image is not None else None
        if d.image_sha256 is not None and actual is not None and actual != d.image_sha256:
            raise item.error(f"image_sha256 does not match the file {d.image!r} (file has {actual})")


def validate_file(path: str | Path, image_root: str | Path | None = None,
                  allow_missing_images: bool = False) -> int:
    """Validate a dialogues JSONL against the contract and its images; return the record count."""
    items = read_dialogues(path)
    check_unique(items)
    hashes = hash_images(items, image_root if image_root is not None else Path(path).parent,
                         allow_missing_images)
    check_hashes(items, hashes)
    return len(items)


# --- blemishes: kept verbatim, counted in the quality report ---------------------------------------


def record_blemishes(d: Dialogue) -> list[str]:
    """Blemish kinds of one dialogue (keys of BLEMISHES), judged on the record alone."""
    contents = [m.content for m in d.messages]
    checks = {
        "whitespace": any(c != c.strip() for c in contents),
        "empty_turn": any(not c.strip() for c in contents[:-1]),
        "question_differs": not d.question_inferred and d.question != contents[-1],
        "final_image": contents[-1].strip().lower() == "image",
        "double_space": any("  " in c for c in contents),
        "dropped_image_word": any(_DROPPED_WORD.search(c) for c in contents),
        "unknown_prefix": source_of(d.id) is None,
    }
    return [kind for kind, found in checks.items() if found]


def image_extension(image: str | None) -> str | None:
    if not image:
        return None
    return PurePosixPath(image).suffix.lower().lstrip(".") or None


def blemishes(items: list[Located]) -> list[list[str]]:
    """Blemish kinds of each record in order; an image extension other than the dataset's
    most common one counts as a mixed-extension blemish."""
    counts = Counter(ext for it in items if (ext := image_extension(it.dialogue.image)))
    usual = min(counts, key=lambda ext: (-counts[ext], ext)) if counts else None
    found = []
    for item in items:
        kinds = record_blemishes(item.dialogue)
        ext = image_extension(item.dialogue.image)
        if ext is not None and ext != usual:
            kinds.append("mixed_extensions")
        found.append(sorted(kinds, key=list(BLEMISHES).index))
    return found


def refuse_defects(items: list[Located], found: list[list[str]]) -> None:
    """--strict: the first record with a defect is an error; features and quirks are only counted."""
    for item, kinds in zip(items, found):
        defects = [k for k in kinds if BLEMISH_CLASS[k] == "defect"]
        if defects:
            raise item.error("defect (--strict): " + ", ".join(BLEMISHES[k] for k in defects))
