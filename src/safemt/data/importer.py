"""Import the released format (SRC_DIR/<N>_turn.json + images) into a dialogues JSONL.

Everything is read and checked before anything is written: on any error no output file, quality
report or image link appears. Blemishes of the release are kept verbatim and counted in a quality
report beside the output, each kind classed as a feature of how the release was made, a quirk or
a defect (only defects are refused, and only under --strict).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

from safemt.data.export import META_FIELDS, META_FILE, TURN_FILE
from safemt.data.image_files import link_or_copy
from safemt.data.release import Hub, find_release
from safemt.records import Dialogue, RecordError
from safemt.data.validate import (BLEMISH_CLASS, BLEMISHES, Located, at_record, blemishes, check_fields, check_unique,
                                  hash_images, image_extension, refuse_defects, source_of)
from safemt.errors import SafemtError
from safemt.files import write_json, write_jsonl

EXAMPLES = 5  # example records per blemish kind in the quality report


def import_release(src_dir: str | Path, out: str | Path, images_dir: str | Path | None = None,
                   allow_missing_images: bool = False, strict: bool = False, hub: Hub | None = None) -> dict[str, Any]:
    """Import SRC_DIR into OUT; images are linked under OUT's folder. Returns the quality report.

    SRC_DIR may be the release folder itself or any folder above it (a fetch folder holding `Data/`
    or the hub's layout); HUB, when SRC_DIR is its folder, makes an empty one say what
    to download."""
    src_dir, out = find_release(Path(src_dir), hub), Path(out)
    image_root = Path(images_dir) if images_dir is not None else src_dir
    files = release_files(src_dir)
    meta = read_meta(src_dir / META_FILE)
    items = [item for turns, path in files for item in read_release_file(path, turns, meta)]
    check_unique(items)
    hashes = hash_images(items, image_root, allow_missing_images)
    found = blemishes(items)
    if strict:
        refuse_defects(items, found)

    report = quality_report(files, items, found, hashes)
    for image, sha in sorted(hashes.items()):
        if sha is not None:
            link_or_copy(image_root / image, out.parent / image)
    dialogues = sorted((with_hash(it.dialogue, hashes) for it in items), key=lambda d: (d.turns, d.id))
    write_jsonl(out, [d.to_dict() for d in dialogues])
    report_path = quality_path(out)
    write_json(report_path, report)
    print(summary_line(report, report_path))
    return report


def release_files(src_dir: Path) -> list[tuple[int, Path]]:
    """The <N>_turn.json files of SRC_DIR with their N, in turn order."""
    if not src_dir.is_dir():
        raise SafemtError("not a directory", file=str(src_dir))
    files = sorted((int(m.group(1)), p) for p in src_dir.iterdir() if (m := TURN_FILE.fullmatch(p.name)))
    if not files:
        raise SafemtError("no <N>_turn.json files found", file=str(src_dir))
    return files


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SafemtError("file is not UTF-8 text", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise SafemtError(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
                          file=str(path)) from None


def read_meta(path: Path) -> dict[tuple[Any, int], dict[str, Any]]:
    """The export sidecar, if present: fields the release format cannot carry, by (turns, position in
    the turn file) when it records the position, else by (id, turns)."""
    if not path.exists():
        return {}
    data = load_json(path)
    entries = data.get("records") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise SafemtError('expected an object {"records": [...]}', file=str(path))
    meta = {}
    for index, entry in enumerate(entries, start=1):
        if not (isinstance(entry, dict) and isinstance(entry.get("id"), str)
                and isinstance(entry.get("turns"), int)):
            raise SafemtError("entry needs a string id and an integer turns", file=str(path), index=index)
        key = (entry["turns"], entry["record"]) if isinstance(entry.get("record"), int) else (entry["id"], entry["turns"])
        meta[key] = {"id": entry["id"], **{k: entry[k] for k in META_FIELDS if k in entry}}
    return meta


def read_release_file(path: Path, turns: int, meta: dict[tuple[Any, int], dict[str, Any]]) -> list[Located]:
    """Read one <N>_turn.json; every record becomes a checked N-turn dialogue."""
    data = load_json(path)
    if not isinstance(data, list):
        raise SafemtError("expected a JSON array of records", file=str(path))
    items = []
    for index, obj in enumerate(data, start=1):
        with at_record(path, index, obj):
            record = contract_record(obj, turns)
            entry = meta.get((turns, index)) or meta.get((record["id"], turns)) or {}
            if entry and entry["id"] != record["id"]:
                raise RecordError(f"{META_FILE} names id {entry['id']!r} for this record; it does not match")
            record.update({k: v for k, v in entry.items() if k != "id"})
            dialogue = Dialogue.from_dict(record)
            check_fields(dialogue)
        items.append(Located(dialogue, str(path), index))
    return items


def contract_record(obj: Any, turns: int) -> dict[str, Any]:
    """Map a released record (with or without `question`, GitHub or Hugging Face layout) onto
    the dialogue contract."""
    if not isinstance(obj, dict):
        raise RecordError("record is not a JSON object")
    image_key = "image_path" if "image_path" in obj else "image_rel_path"
    missing = [k for k in ("id", "scenario", image_key, "dialogue") if k not in obj]
    if missing:
        raise RecordError(f"missing field(s): {', '.join(missing)}")
    if not isinstance(obj["id"], str) or not obj["id"]:
        raise RecordError("id must be a non-empty string")
    messages = parse_messages(obj["dialogue"])
    inferred = "question" not in obj
    return {
        "id": obj["id"], "turns": turns, "scenario": obj["scenario"], "source": source_of(obj["id"]),
        "method": None, "method_inferred": False, "image": obj[image_key], "image_sha256": None,
        "messages": messages, "question": messages[-1].get("content") if inferred else obj["question"],
        "question_inferred": inferred,
    }


def parse_messages(dialogue: Any) -> list[dict[str, Any]]:
    """The dialogue as a non-empty list of objects; the Hugging Face copy stores it as a JSON string."""
    if isinstance(dialogue, str):
        try:
            dialogue = json.loads(dialogue)
        except json.JSONDecodeError as exc:
            raise RecordError(f"dialogue string is not JSON ({exc.msg})") from None
    if not isinstance(dialogue, list) or not dialogue or not all(isinstance(m, dict) for m in dialogue):
        raise RecordError("dialogue must be a non-empty list of {role, content} objects")
    return dialogue


def with_hash(d: Dialogue, hashes: dict[str, str | None]) -> Dialogue:
    return dataclasses.replace(d, image_sha256=hashes.get(d.image) if d.image is not None else None)


def quality_path(out: Path) -> Path:
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.quality.json")


def _example(item: Located) -> dict[str, Any]:
    return {"file": Path(item.file).name, "record": item.index, "id": item.dialogue.id}


def quality_report(files: list[tuple[int, Path]], items: list[Located], found: list[list[str]],
                   hashes: dict[str, str | None]) -> dict[str, Any]:
    """Counts by file and turns, each blemish kind with example records, image extensions and
    missing images. Only names and counts, so a rerun writes the same bytes."""
    by_kind: dict[str, list[Located]] = {kind: [] for kind in BLEMISHES}
    for item, kinds in zip(items, found):
        for kind in kinds:
            by_kind[kind].append(item)
    missing = [it for it in items if it.dialogue.image is not None and hashes[it.dialogue.image] is None]
    return {
        "dialogues": len(items),
        "files": {p.name: sum(1 for it in items if it.file == str(p)) for _, p in files},
        "turns": {str(t): n for t, n in sorted(Counter(it.dialogue.turns for it in items).items())},
        "blemishes": {kind: {"description": BLEMISHES[kind], "class": BLEMISH_CLASS[kind], "records": len(hits),
                             "examples": [_example(it) for it in hits[:EXAMPLES]]}
                      for kind, hits in by_kind.items()},
        "image_extensions": dict(Counter(image_extension(it.dialogue.image) or "none" for it in items)),
        "missing_images": {"records": len(missing), "examples": [_example(it) for it in missing[:EXAMPLES]]},
    }


def summary_line(report: dict[str, Any], report_path: Path) -> str:
    turns = " ".join(f"{t}:{n}" for t, n in report["turns"].items())
    parts = [f"imported {report['dialogues']} dialogues ({turns}) from {len(report['files'])} files"]
    for cls, title in (("feature", "features"), ("quirk", "quirks"), ("defect", "defects")):
        found = [f"{b['description']} {b['records']}" for b in report["blemishes"].values()
                 if b["class"] == cls and b["records"]]
        parts.append(f"{title}: " + (", ".join(found) or "none"))
    if report["missing_images"]["records"]:
        parts.append(f"missing images {report['missing_images']['records']} (allowed)")
    parts.append(f"report: {report_path}")
    return "; ".join(parts)
