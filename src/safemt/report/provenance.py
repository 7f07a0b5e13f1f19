"""`<results>/provenance.json`: what produced this run's numbers, so a figure can be traced back.

It records the code (git commit, dirty flag), the configuration (params hash), the packages, each
model's and judge's id with its resolved revision, the dataset's source, revision and content hash,
when the run's outputs were written and on which machine. It changes with every run (times, machine),
so DVC does not hash it (see dvc.yaml); the metrics themselves stay byte-identical.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from safemt import hashing
from safemt import __version__
from safemt.files import atomic_write_text
from safemt.layout import Layout

PACKAGES = ["safemt", "torch", "transformers", "vllm", "openai", "numpy", "pandas", "matplotlib", "seaborn",
            "snakemake", "dvc", "pillow", "tokenizers", "safetensors"]
MODEL_ID_KEYS = {"hf": "path", "vllm": "path", "openai": "model_id"}


@dataclass(frozen=True)
class RunConfig:
    """What provenance.json records of the configuration (the report stage builds it from params)."""

    params_sha256: str                # of the params as loaded
    models: dict[str, Any]            # the models:, judges: and dataset: sections
    targets: tuple[str, ...]
    judges: dict[str, Any]
    dataset: dict[str, Any]


def git_state(cwd: str | Path = ".") -> dict[str, Any]:
    """HEAD commit and whether tracked or untracked-but-not-ignored files differ from it."""
    if shutil.which("git") is None:
        return {"commit": None, "dirty": None, "note": "git not found"}
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    head = run("rev-parse", "HEAD")
    if head.returncode != 0:
        return {"commit": None, "dirty": None, "note": "not a git checkout"}
    status = run("status", "--porcelain")
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip()),
            "changed_files": len(status.stdout.splitlines())}


def package_versions() -> dict[str, str | None]:
    """Installed versions, read from package metadata (nothing is imported)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def resolved_revision(cfg: dict[str, Any]) -> dict[str, Any]:
    """A local folder by its content hash, a hub id by its pinned revision, an API model by its name."""
    backend = cfg.get("backend")
    ident = cfg.get(MODEL_ID_KEYS.get(backend, "path"))
    if backend in ("hf", "vllm") and ident and Path(ident).is_dir():
        from safemt.models.base import folder_fingerprint

        return {"id": ident, "backend": backend, "revision": cfg.get("revision"),
                "resolved": f"folder-sha256:{folder_fingerprint(ident)}"}
    if backend == "openai":
        return {"id": ident, "backend": backend, "revision": None, "base_url": cfg.get("base_url"),
                "resolved": None, "note": "served model: the server decides which weights answer"}
    return {"id": ident, "backend": backend, "revision": cfg.get("revision"), "resolved": cfg.get("revision")}


def models_and_judges(models: dict[str, Any], targets: tuple[str, ...] | list[str],
                      judges: dict[str, Any]) -> dict[str, Any]:
    resolved = {name: resolved_revision(models[name]) for name in targets}
    out = {}
    for name, judge in judges.items():
        entry = {"kind": judge.get("kind")}
        if judge.get("model") in models:
            entry.update(model=judge["model"], **resolved_revision(models[judge["model"]]))
        out[name] = entry
    return {"targets": resolved, "judges": out}


def sha256_file(path: Path) -> str | None:
    """`hashing.sha256_file`, or None for a file that is not there."""
    return hashing.sha256_file(path) if path.is_file() else None


def dataset_state(ds: dict[str, Any], layout: Layout) -> dict[str, Any]:
    path = Path(layout.dataset)
    n = sum(1 for line in path.open(encoding="utf-8") if line.strip()) if path.is_file() else None
    out = {"source": ds.get("source"), "file": str(path), "dialogues": n, "sha256": sha256_file(path)}
    if ds.get("source") == "import":
        out.update(hub=ds.get("hub"), release_dir=ds.get("release_dir"))
    else:
        out.update(seeds=ds.get("seeds"), seeds_sha256=sha256_file(Path(ds["seeds"])) if ds.get("seeds") else None,
                   generator=ds.get("generator"))
    return out


def run_times(layout: Layout, exclude: set[str]) -> dict[str, str | None]:
    """First and last output written under the results root (the run's span as its files show it)."""
    times = [p.stat().st_mtime for p in Path(layout.root).rglob("*")
             if p.is_file() and str(p) not in exclude and ".journal" not in p.parts]
    iso = lambda t: datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")  # noqa: E731
    return {"first_output": iso(min(times)) if times else None, "last_output": iso(max(times)) if times else None,
            "recorded": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def machine() -> dict[str, Any]:
    out = {"hostname": platform.node(), "platform": platform.platform(), "cpus": os.cpu_count(),
           "python": sys.version.split()[0]}
    if shutil.which("nvidia-smi"):
        proc = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        out["gpus"] = proc.stdout.strip().splitlines() if proc.returncode == 0 else []
    else:
        out["gpus"] = []
    return out


def provenance(run: RunConfig, params_file: str, layout: Layout, exclude: set[str]) -> dict[str, Any]:
    return {
        "safemt": __version__,
        "git": git_state(),
        "params_file": params_file,
        "params_sha256": run.params_sha256,
        "packages": package_versions(),
        **models_and_judges(run.models, run.targets, run.judges),
        "dataset": dataset_state(run.dataset, layout),
        "times": run_times(layout, exclude),
        "machine": machine(),
    }


def write_provenance(run: RunConfig, params_file: str, layout: Layout, out: str | Path) -> dict[str, Any]:
    record = provenance(run, params_file, layout, {str(out), layout.report})
    atomic_write_text(out, json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(f"provenance: {out} (commit {record['git'].get('commit')}, dirty {record['git'].get('dirty')})")
    return record
