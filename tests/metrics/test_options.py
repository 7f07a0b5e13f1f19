"""MetricsOptions: one typed view of `metrics:`, built from the section with the schema's defaults filled in
(the schema is the only place defaults live; `safemt.config.fill_defaults` fills them as Snakemake does)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from safemt.config import fill_defaults
from safemt.metrics.options import MetricsOptions


def _schema(repo_root: Path) -> dict:
    return yaml.safe_load((repo_root / "workflow/schemas/params.schema.yaml").read_text())


def test_an_absent_section_gets_every_schema_default(repo_root: Path) -> None:
    props = _schema(repo_root)["properties"]["metrics"]["properties"]
    opts = MetricsOptions.from_config(fill_defaults({"turns": [1]})["metrics"])
    for key in ("missing_turns", "weighting", "turn_index", "s2_labels", "provider_refusals"):
        assert getattr(opts, key) == props[key]["default"], key
    boot = props["bootstrap"]["properties"]
    assert (opts.bootstrap.n, opts.bootstrap.seed) == (boot["n"]["default"], boot["seed"]["default"])
    assert opts.judges is None  # no constant default: "every judge" is decided by whoever knows the judges


def test_written_values_are_kept_and_the_options_are_frozen() -> None:
    section = {"judges": ["llm", "keyword"], "weighting": "uniform", "bootstrap": {"n": 7}}
    opts = MetricsOptions.from_config(fill_defaults({"metrics": section})["metrics"])
    assert opts.judges == ("llm", "keyword") and opts.weighting == "uniform" and opts.bootstrap.n == 7
    assert opts.as_config()["judges"] == ["llm", "keyword"] and opts.as_config()["bootstrap"]["n"] == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.weighting = "exp"  # type: ignore[misc]


def test_as_config_is_the_default_filled_section(repo_root: Path) -> None:
    """What summary.json hashes: the section as written once every default is filled, nothing more."""
    for section in ({}, {"judges": ["keyword"], "s2_labels": "valid_only"},
                    yaml.safe_load((repo_root / "params.yaml").read_text())["metrics"]):
        filled = fill_defaults({"metrics": section})["metrics"]
        assert MetricsOptions.from_config(filled).as_config() == filled


def test_fill_defaults_copies_and_fills_map_sections(repo_root: Path) -> None:
    """Defaults of `properties` recursively, and of each entry of a map section (additionalProperties)."""
    llm_defaults = _schema(repo_root)["properties"]["judges"]["additionalProperties"]["allOf"][0]["then"]["properties"]
    raw = {"judges": {"kw": {"kind": "keyword"}, "j": {"kind": "llm", "model": "m"}}, "metrics": {"bootstrap": {"seed": 3}}}
    filled = fill_defaults(raw)
    assert raw == {"judges": {"kw": {"kind": "keyword"}, "j": {"kind": "llm", "model": "m"}},
                   "metrics": {"bootstrap": {"seed": 3}}}, "input untouched"
    assert filled["judges"]["j"]["scenario_criteria"] == llm_defaults["scenario_criteria"]["default"]
    assert filled["judges"]["j"]["constrained"] == llm_defaults["constrained"]["default"]
    assert filled["judges"]["kw"] == {"kind": "keyword"}  # an llm judge's defaults are not a keyword judge's
    assert filled["metrics"]["bootstrap"]["seed"] == 3 and "n" in filled["metrics"]["bootstrap"]
    assert fill_defaults(filled) == filled
    filled["metrics"]["bootstrap"]["n"] = -1
    assert fill_defaults({})["metrics"]["bootstrap"]["n"] != -1, "defaults are copied, never shared"


@pytest.mark.parametrize("profile", ["params.yaml", "config/demo.yaml", "config/paper.yaml", "no-metrics", "partial"])
def test_fill_defaults_fills_as_snakemake_validate_does(repo_root: Path, profile: str) -> None:
    """The planner (Snakemake's `validate`, set_default=True) and the jobs see the same default-filled dict."""
    import copy

    from snakemake.utils import validate

    raw = yaml.safe_load((repo_root / ("params.yaml" if profile in ("no-metrics", "partial") else profile)).read_text())
    if profile == "no-metrics":
        raw.pop("metrics")
    elif profile == "partial":
        raw["metrics"] = {"judges": ["keyword"], "bootstrap": {"seed": 4}}
    planner = copy.deepcopy(raw)
    validate(planner, str(repo_root / "workflow/schemas/params.schema.yaml"))
    assert fill_defaults(raw) == planner
