"""Measured times beside the outputs, never in them: each generations file's `.journal/<stem>.timings.jsonl`.

Generation records hold only what the inputs and params decide, so every file DVC versions is the
same on every run; the seconds each dialogue took (the target's and the defense's) are written here,
keyed like the generations (Timing contract, `safemt.records.TIMING`), and read back by the measured
tables (`moderation_latency.csv`). The `.journal/` folders are outside DVC's hashes (.dvcignore).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from safemt.files import read_jsonl, write_jsonl
from safemt.records import TIMING


def timings_path(generations: str | Path) -> Path:
    """Where the times of a generations file are: `<folder>/.journal/<stem>.timings.jsonl`."""
    path = Path(generations)
    return path.parent / ".journal" / f"{path.stem}.timings.jsonl"


def write_timings(generations: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    path = timings_path(generations)
    write_jsonl(path, ({name: row.get(name) for name in TIMING.names} for row in rows))
    return path


def read_timings(generations: str | Path) -> dict[tuple[str, int, str | None], dict[str, Any]]:
    """The times of a generations file by (id, turns, method); empty when none were written."""
    path = timings_path(generations)
    return {TIMING.key_of(r): r for r in read_jsonl(path)} if path.is_file() else {}


def with_timings(generations: str | Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """RECORDS of a generations file with their measured times joined in (None where not measured)."""
    times = read_timings(generations)
    keys = ("latency_s", "defense_latency_s")
    return [{**r, **{k: (times.get(TIMING.key_of(r)) or {}).get(k) for k in keys}} for r in records]
