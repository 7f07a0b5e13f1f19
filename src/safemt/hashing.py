"""Canonical hashing: the basis of every config hash, verdict cache key and params fingerprint."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, BinaryIO


def stable_hash(obj: Any) -> str:
    """sha256 over canonical JSON (sorted keys, no spaces, UTF-8): equal values give equal hashes."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def sha256_stream(fh: BinaryIO, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of what FH holds, read in chunks so a large file never loads into memory."""
    digest = hashlib.sha256()
    for block in iter(lambda: fh.read(chunk), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file (`sha256_stream`)."""
    with Path(path).open("rb") as fh:
        return sha256_stream(fh)
