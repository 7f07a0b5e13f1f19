"""`safemt data fetch`: the released benchmark from the Hugging Face hub at the pinned revision.

The download goes to `dataset.hub.local_dir` (tracked by DVC, so a paper-profile `dvc repro` starts
from the pinned bytes), then is imported like any release folder. A folder that already holds the
release files is used as it is, so a manual download works offline. Offline with nothing there, the
command fails at once with one line naming what to download and where to put it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safemt.data.export import TURN_FILE
from safemt.errors import ConfigError, SafemtError, first_line
from safemt.files import write_json

MANIFEST = "safemt_fetch.json"  # which repo and revision the folder holds, written once it holds the release
# For a build profile under DVC: why nothing was fetched. Not the manifest, so that a profile which
# imports still sees the release as missing and fetches it.
SKIP_NOTE = "safemt_fetch_skipped.json"


@dataclass(frozen=True)
class Hub:
    repo_id: str
    revision: str
    local_dir: Path

    def instruction(self) -> str:
        return (f"download the dataset repository {self.repo_id} at revision {self.revision} (e.g. `hf download "
                f"{self.repo_id} --repo-type dataset --revision {self.revision} --local-dir {self.local_dir}`) "
                f"and put its files in {self.local_dir}/")


def hub_config(params: dict[str, Any]) -> Hub:
    spec = (params.get("dataset") or {}).get("hub") or {}
    for key in ("repo_id", "revision", "local_dir"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise ConfigError("fetching needs a string value here", key=f"dataset.hub.{key}")
    return Hub(spec["repo_id"], spec["revision"], Path(spec["local_dir"]))


def release_source(params: dict[str, Any]) -> Path:
    """Where `import` reads the release: `dataset.release_dir` if set, else where `fetch` puts the
    pinned revision (`dataset.hub.local_dir`), in whichever layout the download has."""
    ds = params.get("dataset") or {}
    if ds.get("release_dir"):
        return Path(ds["release_dir"])
    return hub_config(params).local_dir


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


def manifest_path(hub: Hub) -> Path:
    """Written once local_dir holds the release: the output the workflow's `fetch_release` rule makes."""
    return hub.local_dir / MANIFEST


def recorded_revision(hub: Hub) -> str | None:
    path = manifest_path(hub)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("revision")
    except (json.JSONDecodeError, AttributeError):
        raise SafemtError("not a fetch manifest (delete it to download again)", file=str(path)) from None


def download(hub: Hub) -> Path:
    """The release folder inside local_dir, downloading the pinned snapshot only if it is not there."""
    folder = release_folder(hub.local_dir)
    if folder is not None:
        recorded = recorded_revision(hub)
        if recorded not in (None, hub.revision):
            raise SafemtError(f"holds revision {recorded} but params pin {hub.revision}; empty the folder to "
                              "download the pinned one", file=str(hub.local_dir))
        print(f"{hub.local_dir}: already downloaded"
              + ("" if recorded else " (revision not recorded: assumed to be the pinned one)"))
        if recorded is None:  # the workflow's fetch rule has the manifest as its output
            write_json(manifest_path(hub), {"repo_id": hub.repo_id, "revision": hub.revision, "fetched": False,
                                            "reason": "found in place; revision assumed, not verified"})
        return folder
    from safemt.models.hf import hub_offline

    if hub_offline():
        raise SafemtError(f"cannot download {hub.repo_id}@{hub.revision}: offline (HF_HUB_OFFLINE is set); "
                          + hub.instruction())
    _check_reachable(hub)
    _snapshot(hub)
    folder = release_folder(hub.local_dir)
    if folder is None:
        raise SafemtError(f"the snapshot of {hub.repo_id}@{hub.revision} holds no <N>_turn.json files",
                          file=str(hub.local_dir))
    write_json(manifest_path(hub), {"repo_id": hub.repo_id, "revision": hub.revision, "fetched": True})
    return folder


def _check_reachable(hub: Hub, timeout_s: float = 3.0) -> None:
    """Fail at once without a network, instead of after the hub client's retries."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout_s).close()
    except OSError as exc:
        raise SafemtError(f"cannot download {hub.repo_id}@{hub.revision}: no network ({url.hostname}: "
                          f"{exc.strerror or exc}); " + hub.instruction()) from None


def _snapshot(hub: Hub) -> None:
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id=hub.repo_id, repo_type="dataset", revision=hub.revision,
                          local_dir=hub.local_dir)
    except Exception as exc:  # any hub or network failure becomes the one-line error, not a traceback
        reason = first_line(exc)
        raise SafemtError(f"cannot download {hub.repo_id}@{hub.revision} ({type(exc).__name__}: {reason}); "
                          + hub.instruction()) from None


def skip_note(hub: Hub, source: str) -> None:
    """For a build profile: record that nothing was fetched (the DVC stage needs its output folder);
    a download already there is left as it is."""
    if release_folder(hub.local_dir) is None:
        write_json(hub.local_dir / SKIP_NOTE, {"repo_id": hub.repo_id, "revision": hub.revision,
                                               "fetched": False, "reason": f"dataset.source is {source!r}"})
    print(f"{hub.local_dir}: nothing fetched (dataset.source is {source!r})")


def fetch(params: dict[str, Any], out: str | Path | None, allow_missing_images: bool = False,
          when_import: bool = False) -> Path | None:
    """Download (or reuse) the release, then import it into OUT unless OUT is None.

    With `when_import`, a profile whose `dataset.source` is not `import` fetches nothing (the
    embedded default stays offline under `dvc repro`). Returns the release folder, if any.
    """
    hub = hub_config(params)
    source = (params.get("dataset") or {}).get("source")
    if when_import and source != "import":
        skip_note(hub, source)
        return None
    folder = download(hub)
    if out is not None:
        from safemt.data.importer import import_release

        import_release(folder, out, allow_missing_images=allow_missing_images)
    return folder


def fetched_by_workflow(params: dict[str, Any]) -> Path | None:
    """The manifest the workflow's `fetch_release` rule writes, when it owns the release folder.

    That is when the profile imports from `dataset.hub.local_dir` or a folder inside it (release_dir
    null, the default, means local_dir itself); a release_dir elsewhere is a folder the user provides,
    read as it is.
    """
    ds = params.get("dataset") or {}
    if ds.get("source") != "import" or not ds.get("hub"):
        return None
    hub = hub_config(params)
    release = release_source(params)
    inside = release == hub.local_dir or hub.local_dir in release.parents
    return manifest_path(hub) if inside else None
