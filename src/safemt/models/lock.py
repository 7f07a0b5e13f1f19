"""Pinned weights: `safemt models lock` resolves each hub model's revision to a commit SHA.

A branch or tag (`main`, `v1.0`) names whatever the hub holds today, so a resumed journal could mix
two sets of weights under one config hash. The lock file (beside the params file: `params.lock.yaml`,
`config/paper.lock.yaml`; DVC tracks it) records, per hub model, the path and revision it was
resolved from and the commit SHA. Every command that reads the params applies it: the backends load
that SHA and the config hash uses it. A hub model whose revision is neither a SHA nor locked is
refused when its backend starts, unless the params set `allow_unpinned_revisions: true` (the
config hash then records the branch name and `unpinned: true`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import yaml

from safemt.errors import SafemtError, first_line
from safemt.hub import hub_offline, unreachable

SHA = re.compile(r"[0-9a-f]{40}")
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
PINNED_BACKENDS = ("hf", "vllm")


def lock_path(params_file: str | Path) -> Path:
    """The lock file of a params file: `<stem>.lock.yaml` beside it."""
    path = Path(params_file)
    return path.with_name(f"{path.stem}.lock.yaml")


def is_hub_model(cfg: dict[str, Any]) -> bool:
    """A weights backend pointed at `org/name` on the hub (not a local folder)."""
    path = str(cfg.get("path") or "")
    return cfg.get("backend") in PINNED_BACKENDS and bool(HUB_ID.fullmatch(path)) and not Path(path).exists()


def hub_models(models: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The `models:` entries whose weights come from the hub (and so need a pinned commit)."""
    return {name: cfg for name, cfg in models.items() if is_hub_model(cfg)}


def read_lock(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        models = data["models"]
        assert isinstance(models, dict)
        for entry in models.values():
            assert SHA.fullmatch(str(entry["sha"])) and entry["path"] and "revision" in entry
    except (yaml.YAMLError, KeyError, TypeError, AssertionError):
        raise SafemtError("not a lock file written by `safemt models lock` (delete it and lock again)",
                          file=str(path)) from None
    return models


def apply_lock(models: dict[str, Any], params_file: str | Path, allow_unpinned: bool = False) -> dict[str, Any]:
    """Set `resolved_revision` (a SHA) on each hub model the revision or the lock pins, in place
    (`unpinned: ALLOW_UNPINNED` on the others); returns MODELS.

    A lock entry made for another path or revision is stale and ignored (the model is then unpinned).
    """
    lock = read_lock(lock_path(params_file))
    allow = bool(allow_unpinned)
    for name, cfg in hub_models(models).items():
        revision = str(cfg.get("revision") or "main")
        entry = lock.get(name) or {}
        if SHA.fullmatch(revision):
            cfg["resolved_revision"] = revision
        elif entry.get("path") == cfg["path"] and entry.get("revision") == revision:
            cfg["resolved_revision"] = entry["sha"]
        else:
            cfg.pop("resolved_revision", None)
            cfg["unpinned"] = allow
    return models


def require_pinned(cfg: dict[str, Any]) -> None:
    """Refuse a hub model whose weights are not pinned to a commit, unless unpinned runs are allowed."""
    if not is_hub_model(cfg) or cfg.get("resolved_revision") or cfg.get("unpinned"):
        return
    if SHA.fullmatch(str(cfg.get("revision") or "")):  # a commit already (an entry not read through the params)
        return
    raise SafemtError(f"{cfg['path']}@{cfg.get('revision') or 'main'} is not pinned to a commit: run `safemt models "
                      "lock --params FILE` (online), pin `revision:` to a commit SHA, or set "
                      "`allow_unpinned_revisions: true` to run it anyway", key=f"models.{cfg.get('name')}.revision")


def pinned_revision(cfg: dict[str, Any]) -> str | None:
    """The revision to load: the locked SHA when there is one."""
    return cfg.get("resolved_revision") or cfg.get("revision")


# --- resolving (network) --------------------------------------------------------------------------

def resolve(models: Mapping[str, Any], endpoint: str | None = None) -> dict[str, dict[str, str]]:
    """path, revision and commit SHA for every hub model; fails at once, with why, when offline."""

    models = hub_models(models)
    todo = {n: c for n, c in models.items() if not SHA.fullmatch(str(c.get("revision") or "main"))}
    entries = {n: {"path": c["path"], "revision": c["revision"], "sha": c["revision"]}
               for n, c in models.items() if n not in todo}
    if not todo:
        return entries
    if hub_offline():
        raise SafemtError(f"cannot resolve {len(todo)} revision(s) ({', '.join(sorted(todo))}) offline: HF_HUB_OFFLINE "
                          "is set; run `safemt models lock` where the hub is reachable, or pin revision: to SHAs")
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    _check_reachable(endpoint)
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint)
    for name, cfg in sorted(todo.items()):
        revision = str(cfg.get("revision") or "main")
        try:
            sha = api.model_info(cfg["path"], revision=revision).sha
        except Exception as exc:  # any hub error (unknown repo or revision, gated, HTTP) is one line
            raise SafemtError(f"cannot resolve {cfg['path']}@{revision} ({type(exc).__name__}: {first_line(exc)})",
                              key=f"models.{name}.revision") from None
        if not sha or not SHA.fullmatch(sha):
            raise SafemtError(f"the hub returned no commit SHA for {cfg['path']}@{revision}",
                              key=f"models.{name}.revision")
        entries[name] = {"path": cfg["path"], "revision": revision, "sha": sha}
    return entries


def _check_reachable(endpoint: str) -> None:
    why = unreachable(endpoint)
    if why is not None:
        raise SafemtError(f"cannot resolve revisions: no network ({why}); run "
                          "`safemt models lock` where the hub is reachable, or pin revision: to SHAs")


def write_lock(models: Mapping[str, Any], params_file: str | Path, out: str | Path | None = None,
               endpoint: str | None = None) -> Path:
    """Resolve and write the lock file atomically; returns its path."""
    from safemt.files import atomic_write_text

    entries = resolve(models, endpoint)
    path = Path(out) if out else lock_path(params_file)
    header = (f"# Written by `safemt models lock --params {params_file}`: the commit each hub model's revision\n"
              "# resolved to. Commit this file (DVC tracks it); rerun the command to move to newer weights.\n")
    atomic_write_text(path, header + yaml.safe_dump({"models": dict(sorted(entries.items()))}, sort_keys=True))
    return path
