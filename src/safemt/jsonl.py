"""JSON Lines I/O: strict readers with record-level errors, atomic writers, fsync'd journals."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Iterator

from safemt.errors import SafemtError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def dumps(record: dict[str, Any]) -> str:
    """Canonical one-line JSON: stable key order as given, UTF-8, no trailing spaces."""
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": "))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a whole JSONL file; any bad line is an error naming file and line."""
    path = Path(path)
    if not path.exists():
        raise SafemtError("file not found", file=str(path))
    records = []
    with path.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            index = len(records) + 1  # records are counted as every reader counts them, blank lines not
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SafemtError(f"line {lineno} is not JSON ({exc.msg})", file=str(path), index=index) from None
            if not isinstance(obj, dict):
                raise SafemtError(f"line {lineno} is not a JSON object", file=str(path), index=index)
            records.append(obj)
    return records


def read_records(paths: Iterable[str | Path], what: str, required: Iterable[str],
                 key: Callable[[dict[str, Any]], Hashable],
                 check: Callable[[dict[str, Any]], str | None] = lambda rec: None) -> list[dict[str, Any]]:
    """Records of several JSONL files, each with the `required` fields, passing `check` (None or a
    reason) and with a `key` unique across all files; the first bad record is a one-line error."""
    required = tuple(required)
    records: list[dict[str, Any]] = []
    seen: dict[Hashable, str] = {}
    for path in paths:
        for index, rec in enumerate(read_jsonl(path), start=1):
            missing = [f for f in required if f not in rec]
            reason = f"{what} record lacks {', '.join(missing)}" if missing else check(rec)
            if reason is None:
                k = key(rec)
                reason = f"duplicate {what} {k}, also in {seen[k]}" if k in seen else None
            if reason is not None:
                raise SafemtError(reason, file=str(path), index=index, record_id=rec.get("id"))
            seen[k] = str(path)
            records.append(rec)
    return records


def read_journal(path: str | Path) -> Iterator[dict[str, Any]]:
    """Read an append-only journal, tolerating a torn last line left by a killed process."""
    path = Path(path)
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                return  # torn write: the batch in flight is redone
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                yield obj


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file via temp file + fsync + rename, so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(dumps(r) + "\n" for r in records))


def write_csv(path: str | Path, rows: Iterable[dict[str, Any]], columns: list[str]) -> None:
    """A tidy CSV with fixed columns; None becomes an empty cell."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    atomic_write_text(path, buf.getvalue())


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


class Journal:
    """Append-only JSONL file, flushed and fsync'd once per batch (a crash loses at most one batch)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._fh = self.path.open("a", encoding="utf-8", newline="\n")

    def _repair_tail(self) -> None:
        """Drop a torn last line so that new appends start on a fresh line."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as fh:
            data = fh.read()
            if data.endswith(b"\n"):
                return
            cut = data.rfind(b"\n") + 1
            fh.truncate(cut)

    def append_batch(self, records: Iterable[dict[str, Any]]) -> None:
        text = "".join(dumps(r) + "\n" for r in records)
        if not text:
            return
        self._fh.write(text)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
