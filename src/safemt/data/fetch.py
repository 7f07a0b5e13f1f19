"""`safemt data fetch`: the released benchmark from the Hugging Face hub at the pinned revision.

The download goes to `dataset.hub.local_dir` (tracked by DVC, so a paper-profile `dvc repro` starts
from the pinned bytes), then is imported like any release folder. A folder that already holds the
release files is used as it is, so a manual download works offline. Offline with nothing there, the
command fails at once with one line naming what to download and where to put it.
"""

from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from safemt.data.release import Hub, release_folder
from safemt.errors import ConfigError, SafemtError, first_line
from safemt.files import write_json
from safemt.hub import hub_offline, unreachable

MANIFEST = "safemt_fetch.json"  # which repo and revision the folder holds, written once it holds the release
# For a build profile under DVC: why nothing was fetched. Not the manifest, so that a profile which
# imports still sees the release as missing and fetches it.
SKIP_NOTE = "safemt_fetch_skipped.json"


def hub_config(dataset: Mapping[str, Any]) -> Hub:
    """`dataset.hub` as a Hub; a missing or empty key is one line naming it."""
    spec = dataset.get("hub") or {}
    for key in ("repo_id", "revision", "local_dir"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise ConfigError("fetching needs a string value here", key=f"dataset.hub.{key}")
    return Hub(spec["repo_id"], spec["revision"], Path(spec["local_dir"]))


def release_source(dataset: Mapping[str, Any]) -> Path:
    """Where `import` reads the release: `dataset.release_dir` if set, else where `fetch` puts the
    pinned revision (`dataset.hub.local_dir`), in whichever layout the download has."""
    if dataset.get("release_dir"):
        return Path(dataset["release_dir"])
    return hub_config(dataset).local_dir


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


def _check_reachable(hub: Hub) -> None:
    from huggingface_hub import constants

    why = unreachable(constants.ENDPOINT)
    if why is not None:
        raise SafemtError(f"cannot download {hub.repo_id}@{hub.revision}: no network ({why}); " + hub.instruction())


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


def fetch(dataset: Mapping[str, Any], when_import: bool = False) -> Path | None:
    """Download (or reuse) the pinned release; the release folder, or None when nothing is fetched.

    With `when_import`, a profile whose `dataset.source` is not `import` fetches nothing (the
    embedded default stays offline under `dvc repro`). Importing it is the dataset stage's job.
    """
    hub = hub_config(dataset)
    source = dataset.get("source")
    if when_import and source != "import":
        skip_note(hub, source)
        return None
    return download(hub)


def fetched_by_workflow(dataset: Mapping[str, Any]) -> Path | None:
    """The manifest the workflow's `fetch_release` rule writes, when it owns the release folder.

    That is when the profile imports from `dataset.hub.local_dir` or a folder inside it (release_dir
    null, the default, means local_dir itself); a release_dir elsewhere is a folder the user provides,
    read as it is.
    """
    if dataset.get("source") != "import" or not dataset.get("hub"):
        return None
    hub = hub_config(dataset)
    release = release_source(dataset)
    inside = release == hub.local_dir or hub.local_dir in release.parents
    return manifest_path(hub) if inside else None
