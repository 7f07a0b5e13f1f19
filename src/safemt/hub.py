"""The Hugging Face hub, seen from a run: whether it may be used, and whether it can be reached."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE is set to a true value: nothing may be downloaded."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no", "off")


def unreachable(endpoint: str, timeout_s: float = 3.0) -> str | None:
    """Why `endpoint` cannot be reached ('host: reason'), or None when a connection opens. Callers fail
    at once with their own instruction, instead of after the hub client's retries."""
    url = urlsplit(endpoint)
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
    except OSError as exc:
        return f"{url.hostname}: {exc.strerror or exc}"
    return None
