"""The composition root of the configuration: one loader for the Snakefile and every command.

    YAML -> schema defaults filled in -> schema check -> name references between sections -> each
    registry's own check of its section (backends their required keys, judge kinds their keys and
    model, guards, moderators and defenses theirs) -> path rules -> the revision lock.

Both the planner (the Snakefile's `config`) and every job (`safemt ... --params FILE`) get the
dict this returns, so what Snakemake plans from and what the commands run with cannot differ.
Only the stage modules (safemt.stages) see the whole configuration; every callee gets its section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safemt import config
from safemt.config import model_entry
from safemt.errors import ConfigError, SafemtError
from safemt.judges import JUDGES, Judge, get_judge
from safemt.models import BACKENDS
from safemt.models.lock import apply_lock
from safemt.moderation.checks import check_moderation
from safemt.moderation.runner import DefenseRunner
from safemt.moderation.settings import ModerationSettings


def load(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read, default, check and pin a params file; every error is one line naming the file and key."""
    return prepare(config.read_yaml(path), str(path))


def prepare(raw: Any, source: str = "params.yaml") -> dict[str, Any]:
    """What `load` does after reading: RAW is left as it is; the filled, checked, locked copy is returned.
    The lock file is looked up beside SOURCE (`<stem>.lock.yaml`)."""
    params = validate(raw, source)
    apply_lock(params["models"], source, allow_unpinned=params["allow_unpinned_revisions"])
    return params


def validate(raw: Any, source: str = "params") -> dict[str, Any]:
    """The default-filled copy of RAW, checked as a whole; no lock applied (see `prepare`)."""
    config.check_schema(raw, source)
    params = config.fill_defaults(raw)
    config.check_schema(params, source)
    config.check_references(params, source)
    check_sections(params, source)
    config.check_paths(params, source)
    return params


def check_sections(params: dict[str, Any], source: str) -> None:
    """Each pluggable kind checks its own section: a backend its required keys, a judge kind its keys
    and model, the moderation sections their guards, moderators, defenses and policies."""
    models = params["models"]
    for name, entry in models.items():
        if entry["backend"] not in BACKENDS:
            raise BACKENDS.unknown(entry["backend"], key=f"models.{name}.backend", file=source)
        _as_config_error(lambda: BACKENDS.get(entry["backend"]).check_config(entry, f"models.{name}"), source)
    for name, entry in params["judges"].items():
        if entry["kind"] not in JUDGES:
            raise JUDGES.unknown(entry["kind"], key=f"judges.{name}.kind", file=source)
        _as_config_error(lambda: JUDGES.get(entry["kind"]).check_config(entry, f"judges.{name}", models), source)
    _as_config_error(lambda: check_moderation(moderation(params), params.get("defenses") or ["none"], models,
                                              params["judges"]), source)


# --- the sections each callee gets ----------------------------------------------------------------

def moderation(params: dict[str, Any]) -> ModerationSettings:
    """`moderation:` with the `guards:` and `moderators:` it names from (defenses, moderation metrics)."""
    return ModerationSettings.from_sections(params.get("moderation"), params.get("guards"), params.get("moderators"))


def model(params: dict[str, Any], name: str) -> dict[str, Any]:
    """`models.<name>` plus its `name`: what a backend is built from."""
    return model_entry(params["models"], name)


def judge(params: dict[str, Any], name: str) -> Judge:
    """The judge `judges.<name>`, with its model's entry when it has one."""
    judges = params["judges"]
    if name not in judges:
        raise ConfigError(f"unknown judge {name!r} (defined in params: {', '.join(sorted(judges)) or 'none'})",
                          key="judges")
    entry = judges[name]
    return get_judge(name, entry, model(params, entry["model"]) if entry.get("model") else None)


def defense(params: dict[str, Any], name: str) -> DefenseRunner:
    """Defense `name` ready to run: an unknown guard or moderator stops here, before any model loads."""
    return DefenseRunner(name, moderation(params), params["models"])


def _as_config_error(check: Any, source: str) -> None:
    try:
        check()
    except SafemtError as exc:
        raise ConfigError(exc.reason, file=exc.file or source, key=exc.key) from None


def as_params(params: dict[str, Any]) -> dict[str, Any]:
    """PARAMS with the schema's defaults filled in: a no-op on what `load` returns, and the same
    filling for a dict built by hand (a test, a notebook). Checks are `load`'s job."""
    return config.fill_defaults(params)
