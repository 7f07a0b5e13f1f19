"""Image files of a dataset: hashing, readability checks, linking into an output dataset."""

from __future__ import annotations

import filecmp
import os
import shutil
from pathlib import Path

from PIL import Image

from safemt.hashing import sha256_file  # noqa: F401  (re-exported: the image files' digest)
from safemt.records import RecordError

# --- file handling for import, validate and export ----------------------------------------------


def check_image_readable(path: str | Path) -> None:
    """Raise RecordError unless Pillow can open, verify and decode the file.

    verify() catches broken headers and checksums; load() catches truncated pixel data,
    which verify() lets through for JPEG.
    """
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise RecordError(f"not a readable image ({reason})") from None


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Place src at dst: hardlink, or copy across devices; skip when dst already holds the same bytes.

    The new file appears atomically (temporary name + rename), so an interrupted run never
    leaves a partial image behind.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists() and (os.path.samefile(src, dst) or filecmp.cmp(src, dst, shallow=False)):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
