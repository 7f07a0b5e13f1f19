"""The embedded default's models: tiny models trained to the planted behaviour of docs/planted.md.

They are committed under `resources/planted/` (a few MB of safetensors, tokenizer and processor files),
written by `scripts/train_planted.py`, with the sha256 of every file in `SHA256SUMS.json`. The models
stage checks every file against that list before copying the folders into place, so a default run
always uses the weights that were trained and documented, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from safemt.errors import SafemtError

PLANTED_DIR = Path("resources/planted")
SUMS = "SHA256SUMS.json"


def checked_files(source: str | Path = PLANTED_DIR) -> dict[str, str]:
    """SUMS of SOURCE, after checking that every listed file has its sha256 and nothing is unlisted."""
    source = Path(source)
    sums_file = source / SUMS
    try:
        sums = json.loads(sums_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SafemtError("the planted models' checksum list is missing (scripts/train_planted.py writes it)",
                          file=str(sums_file)) from None
    except (OSError, ValueError) as exc:
        raise SafemtError(f"cannot read the planted models' checksum list ({exc})", file=str(sums_file)) from None
    if not isinstance(sums, dict) or not sums:
        raise SafemtError("the checksum list must map file names to sha256", file=str(sums_file))
    for name, digest in sorted(sums.items()):
        path = source / name
        if not path.is_file():
            raise SafemtError("a planted model file is missing", file=str(path))
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != digest:
            raise SafemtError(f"sha256 {actual} differs from {SUMS}'s {digest}: the trained weights were changed",
                              file=str(path))
    unlisted = sorted(str(p.relative_to(source)) for p in source.rglob("*")
                      if p.is_file() and p.name != SUMS and str(p.relative_to(source)) not in sums)
    if unlisted:
        raise SafemtError(f"file not in {SUMS} (retrain, or remove it)", file=str(source / unlisted[0]))
    return sums


def install_planted(output: str | Path, source: str | Path = PLANTED_DIR) -> list[Path]:
    """Copy the checked planted models from SOURCE into OUTPUT/<name>; return their folders."""
    source, output = Path(source), Path(output)
    sums = checked_files(source)
    names = sorted({name.split("/", 1)[0] for name in sums if "/" in name})
    try:
        output.mkdir(parents=True, exist_ok=True)
        for name in names:
            if (output / name).exists():
                shutil.rmtree(output / name)
            shutil.copytree(source / name, output / name)
    except OSError as exc:
        raise SafemtError(f"cannot write the models ({exc.strerror})", file=str(output)) from None
    return [output / name for name in names]
