"""Load and validate the one configuration file (params.yaml or a profile in config/)."""

from __future__ import annotations

import copy
import hashlib
import json
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import yaml

from safemt.errors import ConfigError

SCHEMA_PATH = Path(__file__).with_name("schemas") / "params.schema.yaml"


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _key_path(parts: Any) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def check_schema(params: Any, source: str = "params") -> None:
    """JSON-schema check with a one-line message naming the offending key."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: (len(e.path), list(map(str, e.path))))
    if not errors:
        return
    err = errors[0]
    key = _key_path(err.absolute_path)
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        key = _key_path(list(err.absolute_path) + [extra[0]]) if extra else key
        raise ConfigError(f"unknown key (allowed: {', '.join(sorted(err.schema.get('properties', {})))})",
                          file=source, key=key)
    if err.validator == "required":
        raise ConfigError(err.message, file=source, key=key)
    raise ConfigError(f"{err.message} (expected {_describe(err)})", file=source, key=key)


def _describe(err: Any) -> str:
    s = err.schema
    if "enum" in s:
        return "one of " + ", ".join(map(str, s["enum"]))
    if "type" in s:
        return str(s["type"])
    return err.validator


def check_references(params: dict[str, Any], source: str = "params") -> None:
    """Names used in one section must be defined in another (targets -> models, etc.)."""
    models = params.get("models", {})
    judges = params.get("judges", {})
    for i, name in enumerate(params.get("targets", [])):
        if name not in models:
            raise ConfigError(f"unknown model {name!r} (defined: {', '.join(sorted(models))})",
                              file=source, key=f"targets.{i}")
    for name, judge in judges.items():
        if judge.get("kind") in ("llm", "guard"):
            if "model" not in judge:
                raise ConfigError(f"judge kind {judge['kind']!r} needs a 'model'", file=source,
                                  key=f"judges.{name}")
            if judge["model"] not in models:
                raise ConfigError(f"unknown model {judge['model']!r} (defined: {', '.join(sorted(models))})",
                                  file=source, key=f"judges.{name}.model")
    for i, name in enumerate(params.get("metrics", {}).get("judges", [])):
        if name not in judges:
            raise ConfigError(f"unknown judge {name!r} (defined: {', '.join(sorted(judges))})",
                              file=source, key=f"metrics.judges.{i}")
    fig = params.get("figures", {}).get("judge")
    if fig is not None and fig not in judges:
        raise ConfigError(f"unknown judge {fig!r} (defined: {', '.join(sorted(judges))})",
                          file=source, key="figures.judge")
    from safemt.judges import JUDGES  # late: these import this module
    from safemt.models.base import BACKENDS

    for name, judge in judges.items():
        if judge.get("kind") not in JUDGES:
            raise JUDGES.unknown(judge.get("kind"), key=f"judges.{name}.kind", file=source)
    for name, m in models.items():
        backend = m.get("backend")
        if backend not in BACKENDS:
            raise BACKENDS.unknown(backend, key=f"models.{name}.backend", file=source)
        need = {"hf": ["path"], "vllm": ["path"], "openai": ["model_id", "base_url"]}.get(backend, [])
        for k in need:
            if k not in m:
                raise ConfigError(f"backend {backend!r} needs {k!r}", file=source, key=f"models.{name}")
    ds = params.get("dataset", {})
    for key in ("generator_model", "tokenizer"):
        if ds.get(key) is not None and ds[key] not in models:
            raise ConfigError(f"unknown model {ds[key]!r} (defined: {', '.join(sorted(models))})", file=source,
                              key=f"dataset.{key}")
    if ds.get("source") == "build" and not ds.get("seeds"):
        raise ConfigError("dataset.source 'build' needs dataset.seeds", file=source, key="dataset.seeds")
    if ds.get("source") == "import" and not ds.get("release_dir") and not (ds.get("hub") or {}).get("local_dir"):
        raise ConfigError("dataset.source 'import' needs dataset.release_dir or dataset.hub.local_dir", file=source,
                          key="dataset.release_dir")
    from safemt.moderation.checks import check_moderation  # late: moderation imports this module

    check_moderation(params, source)


def config_paths(params: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(key, value) of every file or folder the config names (model folders and hub ids aside)."""
    yield "results_dir", params.get("results_dir")
    dataset = params.get("dataset", {})
    for key in ("seeds", "release_dir"):
        yield f"dataset.{key}", dataset.get(key)
    yield "dataset.hub.local_dir", (dataset.get("hub") or {}).get("local_dir")
    for name, model in params.get("models", {}).items():
        yield f"models.{name}.chat_template", model.get("chat_template")
    for name, judge in params.get("judges", {}).items():
        yield f"judges.{name}.prompt_file", judge.get("prompt_file")


def check_paths(params: dict[str, Any], source: str = "params") -> None:
    """Paths in the config stay under the project root: no `..` step out of it, and outputs
    (results_dir) are relative. An absolute input path is the user's explicit choice and is kept."""
    for key, value in config_paths(params):
        if not isinstance(value, str):
            continue
        parts = PurePosixPath(value.replace("\\", "/")).parts
        if ".." in parts:
            raise ConfigError(f"path {value!r} leaves the project folder ('..'); name it from the project root",
                              file=source, key=key)
        if key == "results_dir" and value.startswith("/"):
            raise ConfigError(f"path {value!r} is absolute; results_dir is relative to the project root",
                              file=source, key=key)


def validate(params: Any, source: str = "params") -> dict[str, Any]:
    check_schema(params, source)
    check_references(params, source)
    check_paths(params, source)
    return params


def load(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read and validate a params file; every error is one line naming the file and key."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("params file not found", file=str(path))
    try:
        with path.open(encoding="utf-8") as fh:
            params = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"not valid YAML{where}", file=str(path)) from None
    from safemt.models.lock import apply_lock

    return apply_lock(validate(params, str(path)), path)


def stable_hash(obj: Any) -> str:
    """sha256 over canonical JSON: the basis of every config hash."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


PLACEHOLDER = "PLACEHOLDER"


def check_not_placeholder(cfg: dict[str, Any]) -> None:
    """Refuse a model entry that still holds a value marked PLACEHOLDER (e.g. an API model's version)."""
    for key, value in sorted(cfg.items()):
        if isinstance(value, str) and value.strip().startswith(PLACEHOLDER):
            raise ConfigError(f"is a placeholder ({value.strip()}); set it before running this model",
                              key=f"models.{cfg.get('name', '?')}.{key}")


def model_config(params: dict[str, Any], name: str) -> dict[str, Any]:
    models = params.get("models", {})
    if name not in models:
        raise ConfigError(f"unknown model {name!r} (defined: {', '.join(sorted(models)) or 'none'})",
                          key="models")
    return {"name": name, **models[name]}


def _fill(value: Any, schema: dict[str, Any]) -> Any:
    if not isinstance(value, dict):
        return value
    props = schema.get("properties", {})
    for key, sub in props.items():
        if key not in value and isinstance(sub, dict) and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        sub = props.get(key, extra)
        if isinstance(sub, dict):
            _fill(item, sub)
    return value


def fill_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `raw` with the schema's defaults filled in, as Snakemake's validate(set_default=True) does."""
    return _fill(copy.deepcopy(raw), _schema())
