"""Where the released benchmark lies: the pinned hub snapshot, and the folder inside it that holds
the `<N>_turn.json` files (the GitHub layout, `Data/`, or the hub's). Shared by fetching and importing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safemt.data.export import TURN_FILE
from safemt.errors import SafemtError


@dataclass(frozen=True)
class Hub:
    repo_id: str
    revision: str
    local_dir: Path

    def instruction(self) -> str:
        return (f"download the dataset repository {self.repo_id} at revision {self.revision} (e.g. `hf download "
                f"{self.repo_id} --repo-type dataset --revision {self.revision} --local-dir {self.local_dir}`) "
                f"and put its files in {self.local_dir}/")


def find_release(src: Path, hub: Hub | None = None) -> Path:
    """The folder under SRC holding the <N>_turn.json files (SRC itself, `Data/` or the hub's layout);
    nothing there is one line naming what to download and where, when SRC is the fetch folder."""
    if not src.is_dir() and (hub is None or src.resolve() != hub.local_dir.resolve()):
        raise SafemtError("not a directory", file=str(src))
    folder = release_folder(src)
    if folder is not None:
        return folder
    hint = ""
    if hub is not None and src.resolve() == hub.local_dir.resolve():
        hint = "; " + hub.instruction() + " (or run `safemt data fetch --download-only`)"
    raise SafemtError("no <N>_turn.json files found (in it or below)" + hint, file=str(src))


def release_folder(root: Path) -> Path | None:
    """The shallowest folder under ROOT holding <N>_turn.json files (GitHub or Hugging Face layout)."""
    if not root.is_dir():
        return None
    folders = {p.parent for p in root.rglob("*_turn.json") if TURN_FILE.fullmatch(p.name)}
    return min(folders, key=lambda p: (len(p.parts), str(p))) if folders else None
