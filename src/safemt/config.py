"""The configuration's shape: its schema with the defaults, name references between sections, path
rules, and a model's entry by name. Imports nothing of the package but its errors; loading a params
file (schema, defaults, then each registry's own checks, then the revision lock) is the job of the
composition root, `safemt.stages.params`."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path, PurePosixPath
from collections.abc import Mapping
from typing import Any, Iterator

import yaml

from safemt.errors import ConfigError
from safemt.layout import OptionalMetrics

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


def live_models(params: Mapping[str, Any]) -> list[str]:
    """The targets of the live cell (`live.models`; `all`: every target)."""
    models = (params.get("live") or {}).get("models") or []
    return list(params.get("targets", [])) if models == "all" else list(models)


def live_defenses(params: Mapping[str, Any]) -> list[str]:
    """The live cell's defenses (`live.defenses`)."""
    return list(params["live"]["defenses"])


def live_turns(params: Mapping[str, Any]) -> list[int]:
    """The live cell's lengths (`live.turns`; null: every length in `turns`)."""
    return list(params["live"]["turns"] or params["turns"])


def metrics_judges(params: Mapping[str, Any]) -> list[str]:
    """The judges the metrics read (`metrics.judges`; unset: every judge)."""
    return list(params.get("metrics", {}).get("judges") or params.get("judges", {}))


def figures_judge(params: Mapping[str, Any]) -> str:
    """Whose metrics the figures, tables, numbers and report show (`figures.judge`; unset: the first
    metrics judge)."""
    return (params.get("figures") or {}).get("judge") or metrics_judges(params)[0]


def graded_judges(params: Mapping[str, Any]) -> list[str]:
    """The metrics judges of kind `graded` (their metrics add hard and soft ASR)."""
    return [j for j in metrics_judges(params) if (params.get("judges") or {}).get(j, {}).get("kind") == "graded"]


def optional_metrics(params: Mapping[str, Any], judge: str) -> OptionalMetrics:
    """The optional metrics files of JUDGE that the run's params make (what the workflow declares), for
    the stages that read them."""
    judges, graded = metrics_judges(params), graded_judges(params)
    return OptionalMetrics(moderation=any(d != "none" for d in params.get("defenses") or ["none"]),
                           agreement=len(judges) > 1, live=bool(live_models(params)),
                           calibrated=judge in (params.get("metrics", {}).get("calibration") or {}),
                           graded=judge in graded, graded_agreement=bool(graded) and len(graded) < len(judges))


def check_references(params: Mapping[str, Any], source: str = "params") -> None:
    """Names used in one section must be defined in another (targets -> models, metrics -> judges, ...).
    What a judge, guard or moderator names is its own kind's check (safemt.stages.params)."""
    models = params.get("models", {})
    judges = params.get("judges", {})
    for i, name in enumerate(params.get("targets", [])):
        if name not in models:
            raise ConfigError(f"unknown model {name!r} (defined: {', '.join(sorted(models))})",
                              file=source, key=f"targets.{i}")
    live = params.get("live") or {}
    for i, name in enumerate(live_models(params)):
        if name not in params.get("targets", []):
            raise ConfigError(f"live model {name!r} is not a target (targets: {', '.join(params.get('targets', []))})",
                              file=source, key=f"live.models.{i}")
    for i, name in enumerate(live.get("defenses") or [] if live_models(params) else []):
        if name not in (params.get("defenses") or ["none"]):
            raise ConfigError(f"live defense {name!r} is not one of defenses (the replay cell it is compared with)",
                              file=source, key=f"live.defenses.{i}")
    for i, n in enumerate(live.get("turns") or []):
        if n not in params.get("turns", []):
            raise ConfigError(f"live length {n} is not one of turns", file=source, key=f"live.turns.{i}")
    for i, name in enumerate(params.get("metrics", {}).get("judges", [])):
        if name not in judges:
            raise ConfigError(f"unknown judge {name!r} (defined: {', '.join(sorted(judges))})",
                              file=source, key=f"metrics.judges.{i}")
    fig = params.get("figures", {}).get("judge")
    if fig is not None and fig not in judges:
        raise ConfigError(f"unknown judge {fig!r} (defined: {', '.join(sorted(judges))})",
                          file=source, key="figures.judge")
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


def config_paths(params: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
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


def check_paths(params: Mapping[str, Any], source: str = "params") -> None:
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


def read_yaml(path: str | Path) -> Any:
    """A params file's YAML; a missing file or bad YAML is one line naming the file (and line)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("params file not found", file=str(path))
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"not valid YAML{where}", file=str(path)) from None


def fill_defaults(params: Any, at: tuple[str, ...] = ()) -> Any:
    """A copy of PARAMS (or of the part AT names, e.g. ("judges", "*")) with every schema `default:` set
    where its key is absent, filled as Snakemake's `validate(..., set_default=True)` fills its config
    (a validator whose `properties` rule sets defaults first). Defaults live in the schema only, so
    the planner and every job see the same values."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    filling = jsonschema.validators.extend(base, {"properties": _setting_defaults(base.VALIDATORS["properties"])})
    filled = copy.deepcopy(params)
    for _ in filling(_subschema(at)).iter_errors(filled):  # errors are check_schema's to report
        pass
    return filled


def _subschema(at: tuple[str, ...]) -> dict[str, Any]:
    """The schema of one part: property names, "*" for an entry of a map (models.<name>, judges.<name>)."""
    schema = _schema()
    for part in at:
        schema = schema["additionalProperties"] if part == "*" else schema["properties"][part]
    return schema


def _setting_defaults(check_properties: Any) -> Any:
    def properties(validator: Any, props: dict[str, Any], instance: Any, schema: dict[str, Any]) -> Any:
        if isinstance(instance, dict):
            for key, sub in props.items():
                if isinstance(sub, dict) and "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, props, instance, schema)

    return properties


PLACEHOLDER = "PLACEHOLDER"


def check_not_placeholder(cfg: dict[str, Any]) -> None:
    """Refuse a model entry that still holds a value marked PLACEHOLDER (e.g. an API model's version)."""
    for key, value in sorted(cfg.items()):
        if isinstance(value, str) and value.strip().startswith(PLACEHOLDER):
            raise ConfigError(f"is a placeholder ({value.strip()}); set it before running this model",
                              key=f"models.{cfg.get('name', '?')}.{key}")


def model_entry(models: Mapping[str, Mapping[str, Any]], name: str) -> dict[str, Any]:
    """`models.<name>` plus its `name`: what a backend is built from."""
    if name not in models:
        raise ConfigError(f"unknown model {name!r} (defined: {', '.join(sorted(models)) or 'none'})",
                          key="models")
    return {"name": name, **models[name]}

