"""One error type whose message is the single line a user sees on stderr."""

from __future__ import annotations


class SafemtError(Exception):
    """Bad input or configuration: printed as one line, exit status 2, outputs untouched."""

    def __init__(self, reason: str, *, file: str | None = None, index: int | None = None,
                 record_id: str | None = None, key: str | None = None):
        self.reason = reason
        self.file = file
        self.index = index
        self.record_id = record_id
        self.key = key
        super().__init__(self.line())

    def line(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.index is not None:
            where.append(f"record {self.index}")
        if self.record_id is not None:
            where.append(f"id {self.record_id}")
        if self.key is not None:
            where.append(f"key {self.key}")
        text = " ".join(self.reason.split())  # always one line
        return f"{': '.join([', '.join(where), text]) if where else text}"


def first_line(exc: BaseException) -> str:
    """An exception as one short line: its first message line, or its type when it has no message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class ConfigError(SafemtError):
    """params.yaml is invalid: names the offending key."""
