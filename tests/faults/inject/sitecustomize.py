"""Fault injection into a `safemt` subprocess, loaded at interpreter start (this folder on PYTHONPATH).

SAFEMT_FAULT picks one fault, at an exact point, so that a test is deterministic whatever the timing:
  kill-after:N    SIGKILL right after the N-th journal batch is fsync'd
  torn:N          write the N-th journal batch up to the middle of its last line, fsync, SIGKILL
  kill-final      SIGKILL just before the output file is written
  enospc-journal:N  the N-th journal batch fails with OSError(ENOSPC) before any byte is written
  enospc-final    the atomic write of the output fails with OSError(ENOSPC) at its fsync
  hang:MARKER     a `safemt` command creates the file MARKER, then waits (up to 120 s) and fails:
                  a job that is still running, for as long as the test needs one
A real SIGKILL, not an exception: nothing of the process runs after it (no finally, no atexit).
"""

from __future__ import annotations

import errno
import os
import signal


def _hang(marker: str) -> None:
    from safemt import cli

    def main(argv=None):
        open(marker, "w").close()
        import time
        time.sleep(120)
        return 1

    cli.main = main


def _install(fault: str) -> None:
    from safemt import files, journal

    kind, _, arg = fault.partition(":")
    if kind == "hang":
        return _hang(arg)
    count = {"batches": 0}
    append = journal.Journal.append_batch
    atomic = files.atomic_write_bytes

    def append_batch(self, records):
        records = list(records)
        count["batches"] += 1
        if kind == "torn" and count["batches"] == int(arg):
            data = "".join(files.dumps(r) + "\n" for r in records).encode("utf-8")
            first = data.index(b"\n") + 1  # cut inside the batch's last line, never on a line end
            self._fh.write(data[: first + (len(data) - first) // 2] if len(records) > 1 else data[: first // 2])
            self._fh.flush()
            os.fsync(self._fh.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "enospc-journal" and count["batches"] == int(arg):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        append(self, records)
        if kind == "kill-after" and count["batches"] == int(arg):
            os.kill(os.getpid(), signal.SIGKILL)

    def atomic_write_bytes(path, data):
        if ".journal" not in str(path):  # the stage's output, not a provenance sidecar
            if kind == "kill-final":
                os.kill(os.getpid(), signal.SIGKILL)
            if kind == "enospc-final":  # the disk fills while the output is written: fsync fails
                real_fsync = os.fsync

                def full(fd):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))

                os.fsync = full
                try:
                    return atomic(path, data)
                finally:
                    os.fsync = real_fsync
        return atomic(path, data)

    journal.Journal.append_batch = append_batch
    files.atomic_write_bytes = atomic_write_bytes


if os.environ.get("SAFEMT_FAULT"):
    _install(os.environ["SAFEMT_FAULT"])
