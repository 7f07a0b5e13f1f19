"""Progress on stderr: a tqdm bar on a terminal; in logs (Snakemake, Slurm), where a redrawn bar is noise,
one line every `every_s` seconds with a text bar, the count, the rate, the time so far and the ETA;
and degraded paths (fallbacks), logged once per kind and counted."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TextIO


class Progress:
    """Counts finished items; `done` starts at the items already done (resumed), not counted in the rate."""

    def __init__(self, label: str, total: int, done: int = 0, *, stream: TextIO | None = None,
                 every_s: float = 10.0, tty: bool | None = None):
        self.label, self.total, self.done = label, total, done
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self._start = self._last = time.monotonic()
        self._new = 0
        self._shown = -1
        use_tty = self.stream.isatty() if tty is None else tty
        self._bar = self._tqdm(done) if use_tty else None
        if self._bar is None:
            self._line()

    def _tqdm(self, done: int):
        from tqdm import tqdm

        return tqdm(total=self.total, initial=done, desc=self.label, file=self.stream, unit="dlg",
                    dynamic_ncols=True)

    def update(self, n: int) -> None:
        self.done += n
        self._new += n
        if self._bar is not None:
            self._bar.update(n)
        elif time.monotonic() - self._last >= self.every_s:
            self._line()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._shown != self.done:
            self._line()

    def _line(self) -> None:
        """'infer tiny-vlm-a 2-turn: [#####...............]  24% 40/170 (12.3/s, 3s elapsed, ETA 10s)'."""
        self._last = time.monotonic()
        self._shown = self.done
        elapsed = self._last - self._start
        rate = self._new / elapsed if elapsed > 0 and self._new else 0.0
        eta = f", ETA {_duration((self.total - self.done) / rate)}" if rate and self.done < self.total else ""
        print(f"{self.label}: {bar(self.done, self.total)} {self.done}/{self.total} "
              f"({rate:.1f}/s, {_duration(elapsed)} elapsed{eta})", file=self.stream, flush=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bar(done: int, total: int, width: int = 20) -> str:
    """'[#####...............]  25%': a text bar for logs, where a terminal's redrawn bar would be noise."""
    share = done / total if total else 1.0
    filled = min(width, int(share * width))
    return f"[{'#' * filled}{'.' * (width - filled)}] {share:4.0%}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def note_fallback(counter: Counter, who: str, kind: str, cause: str) -> None:
    """Count a fallback; the first of each kind is logged with its cause, the rest only counted
    (the stage's provenance holds the totals), so a degraded run never floods the log."""
    counter[kind] += 1
    if counter[kind] == 1:
        print(f"safemt: {who}: {kind.replace('_', ' ')}: {' '.join(cause.split())[:300]} "
              f"(further ones are counted in the provenance)", file=sys.stderr)
