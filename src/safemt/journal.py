"""Append-only journals: each finished batch of a stage is fsync'd here, so an interrupted run resumes.

A journal is JSON Lines read by bytes; a last line cut by a killed write is dropped (and its work
redone), a bad line before the end is an error naming file and line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from safemt.errors import SafemtError
from safemt.files import _parse_line, dumps
from safemt.progress import Progress

T = TypeVar("T")


def torn_tail(data: bytes) -> int:
    """Bytes after the last newline: what a write cut short (SIGKILL, power loss) left behind."""
    return len(data) - (data.rfind(b"\n") + 1)


def repair_journal(path: str | Path) -> int:
    """Drop a torn last line, so that the journal can be read and appended to; returns the bytes
    dropped (logged: the work it held is redone). Only the process that owns the journal repairs it."""
    path = Path(path)
    if not path.exists():
        return 0
    with path.open("rb+") as fh:
        data = fh.read()
        cut = torn_tail(data)
        if cut:
            fh.truncate(len(data) - cut)
            fh.flush()
            os.fsync(fh.fileno())
    if cut:
        print(f"safemt: {path}: dropped a torn last line ({cut} bytes, an interrupted write); "
              "its work is redone", file=sys.stderr)
    return cut


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    """The records of an append-only journal, read by bytes.

    Every complete line must be a JSON object: a bad line before the end is an error naming file and
    line (a journal is only ever cut at its end). An incomplete last line (no newline) is skipped,
    not repaired: it may be a write still in flight in another process (another shard's journal);
    the owner repairs its own journal with repair_journal() before reading it."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    cut = torn_tail(data)
    if cut:
        print(f"safemt: {path}: ignoring an incomplete last line ({cut} bytes)", file=sys.stderr)
        data = data[:len(data) - cut]
    lines = data.split(b"\n")[:-1]  # the part after the final newline is empty
    return [_parse_line(raw, path, lineno) for lineno, raw in enumerate(lines, start=1)]


class Journal:
    """Append-only JSONL file, flushed and fsync'd once per batch (a crash loses at most one batch).

    Opening it repairs a torn last line (`repaired` holds the bytes dropped), so that appends start on
    a fresh line; records are written as UTF-8 bytes, one write per batch."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired = repair_journal(self.path)
        self._fh = self.path.open("ab")

    def append_batch(self, records: Iterable[dict[str, Any]]) -> None:
        data = "".join(dumps(r) + "\n" for r in records).encode("utf-8")
        if not data:
            return
        self._fh.write(data)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def journal_path(out: str | Path) -> Path:
    """The journal of an output file: `<folder>/.journal/<name>`, outside DVC's hashes."""
    out = Path(out)
    return out.parent / ".journal" / out.name


def journalled_batches(path: Path, pending: Sequence[T], size: int, work: Callable[[list[T]], list[dict[str, Any]]],
                       label: str, total: int) -> Iterator[tuple[list[T], list[dict[str, Any]]]]:
    """The resumable loop both inference and judging run: PENDING in batches of SIZE, each handed to WORK,
    whose records (exactly one per item, in order: checked) are fsync'd to the journal at PATH before
    they are yielded, so a kill loses at most the batch in flight. The progress bar counts TOTAL items,
    those not pending as already done (resumed)."""
    with Journal(path) as journal, Progress(label, total, total - len(pending)) as progress:
        for start in range(0, len(pending), size):
            batch = list(pending[start:start + size])
            records = work(batch)
            if len(records) != len(batch):
                raise SafemtError(f"{label}: {len(records)} results for a batch of {len(batch)}", file=str(path))
            journal.append_batch(records)
            progress.update(len(batch))
            yield batch, records
