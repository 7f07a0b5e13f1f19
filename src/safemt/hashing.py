"""Canonical hashing: the basis of every config hash, verdict cache key and params fingerprint."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(obj: Any) -> str:
    """sha256 over canonical JSON (sorted keys, no spaces, UTF-8): equal values give equal hashes."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
