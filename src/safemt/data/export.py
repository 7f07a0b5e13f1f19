"""Write a dialogues JSONL back in the released layout: <N>_turn.json + images/ + a metadata sidecar."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from safemt.data.image_files import link_or_copy
from safemt.records import Dialogue
from safemt.data.validate import Located, check_hashes, check_unique, hash_images, read_dialogues
from safemt.files import atomic_write_text, write_json

TURN_FILE = re.compile(r"([1-9][0-9]*)_turn\.json")

# The release has no place for these fields; the sidecar keeps them so that import after export
# gives back the same records (source is implied by the id prefix only for released ids).
META_FILE = "safemt_meta.json"
META_FIELDS = ("source", "method", "method_inferred", "question_inferred")


def release_record(d: Dialogue) -> dict[str, Any]:
    """One record in the released key order."""
    return {
        "id": d.id,
        "scenario": d.scenario,
        "image_path": d.image,
        "dialogue": [{"role": m.role, "content": m.content} for m in d.messages],
        "question": d.question,
    }


def meta_record(d: Dialogue, record: int) -> dict[str, Any]:
    """Sidecar fields of the dialogue at 1-based position RECORD of its turn file (the position tells
    apart the methods that share an (id, turns) in a `method_assignment: all` build)."""
    return {"id": d.id, "turns": d.turns, "record": record, **{k: getattr(d, k) for k in META_FIELDS}}


def check_exportable(items: list[Located], hashes: dict[str, str | None]) -> None:
    """A missing image is acceptable only if the dataset never had it (image_sha256 null)."""
    for item in items:
        d = item.dialogue
        if d.image is not None and hashes[d.image] is None and d.image_sha256 is not None:
            raise item.error(f"image {d.image!r} not found, but the dataset records its image_sha256")


def export_release(path: str | Path, out_dir: str | Path, image_root: str | Path | None = None) -> dict[int, int]:
    """Validate FILE, then write OUT_DIR/<N>_turn.json per turn count, images and safemt_meta.json.

    Turn files in OUT_DIR for turn counts the dataset lacks are removed, so that importing
    OUT_DIR gives back exactly this dataset. Returns the record count per turn count.
    """
    path, out_dir = Path(path), Path(out_dir)
    root = Path(image_root) if image_root is not None else path.parent
    items = read_dialogues(path)
    check_unique(items)
    hashes = hash_images(items, root, allow_missing=True)
    check_hashes(items, hashes)
    check_exportable(items, hashes)

    by_turns: dict[int, list[Dialogue]] = defaultdict(list)
    for item in items:
        by_turns[item.dialogue.turns].append(item.dialogue)
    for image, sha in sorted(hashes.items()):
        if sha is not None:
            link_or_copy(root / image, out_dir / image)
    _remove_stale_turn_files(out_dir, set(by_turns))
    for turns, dialogues in sorted(by_turns.items()):
        dialogues.sort(key=lambda d: (d.id, d.method or ""))
        text = json.dumps([release_record(d) for d in dialogues], indent=4)
        atomic_write_text(out_dir / f"{turns}_turn.json", text)
    meta = [meta_record(d, i) for _, ds in sorted(by_turns.items()) for i, d in enumerate(ds, start=1)]
    write_json(out_dir / META_FILE, {"records": meta})
    counts = {turns: len(ds) for turns, ds in sorted(by_turns.items())}
    print(f"exported {len(items)} dialogues ({' '.join(f'{t}:{n}' for t, n in counts.items())}) to {out_dir}")
    return counts


def _remove_stale_turn_files(out_dir: Path, turns: set[int]) -> None:
    if not out_dir.is_dir():
        return
    for f in out_dir.iterdir():
        match = TURN_FILE.fullmatch(f.name)
        if match and int(match.group(1)) not in turns:
            f.unlink()
