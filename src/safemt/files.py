"""Result files: strict JSON Lines readers with record-level errors, atomic JSONL, JSON and CSV writers.

The append-only journals that make stages resumable are in `safemt.journal`."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Hashable, Iterable, Iterator

from safemt.errors import SafemtError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def dumps(record: dict[str, Any]) -> str:
    """Canonical one-line JSON: stable key order as given, UTF-8, no trailing spaces.

    A string with a lone surrogate (a server may send "\\ud800") cannot be written as UTF-8: that
    record is written with \\u escapes instead, which read back as the same string."""
    text = json.dumps(record, ensure_ascii=False, separators=(", ", ": "))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(record, ensure_ascii=True, separators=(", ", ": "))
    return text


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a whole JSONL file by bytes; any bad line (not UTF-8, not JSON, not an object) is an
    error naming file and line."""
    path = Path(path)
    if not path.exists():
        raise SafemtError("file not found", file=str(path))
    records = []
    for lineno, raw in enumerate(path.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        index = len(records) + 1  # records are counted as every reader counts them, blank lines not
        records.append(_parse_line(raw, path, lineno, index))
    return records


def _parse_line(raw: bytes, path: Path, lineno: int, index: int | None = None) -> dict[str, Any]:
    """One JSONL line as a JSON object, or an error naming file and line."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SafemtError(f"line {lineno} is not UTF-8 (byte {exc.start})", file=str(path), index=index) from None
    except json.JSONDecodeError as exc:
        raise SafemtError(f"line {lineno} is not JSON ({exc.msg})", file=str(path), index=index) from None
    if not isinstance(obj, dict):
        raise SafemtError(f"line {lineno} is not a JSON object", file=str(path), index=index)
    return obj


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


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file handle whose content becomes PATH (temp file + fsync + rename) when the block ends
    without an error, so readers never see a partial file; on an error PATH is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file via temp file + fsync + rename, so readers never see a partial file."""
    with atomic_open(path) as fh:
        fh.write(data)


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


def metrics_file(path: str | Path, required: bool = True) -> Path | None:
    """A metrics CSV to read (None when absent and not required); a missing required file says which
    stage writes it. Every reader of the metrics folder (tables, numbers, figures) goes through here."""
    path = Path(path)
    if not path.exists():
        if required:
            raise SafemtError("metrics file not found (run `safemt metrics` first)", file=str(path))
        return None
    return path


def read_rows(path: str | Path, required: bool = True) -> list[dict[str, str]] | None:
    """The rows of a metrics CSV as strings (None when absent and not required)."""
    path = metrics_file(path, required)
    if path is None:
        return None
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
