"""One loader: the planner (the Snakefile's `config`) and the jobs (`safemt.stages.params.load`) see the
same configuration, defaults filled in both, for the default and every profile in config/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from safemt import config
from safemt.errors import ConfigError
from safemt.stages import params as loader
from tests.support import copy_checkout, paper_guard_formats

REPO = Path(__file__).resolve().parents[1]
PROFILES = ["params.yaml", *sorted(str(p.relative_to(REPO)) for p in (REPO / "config").glob("*.yaml")
                                   if not p.name.endswith(".lock.yaml"))]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh copy with the paper profile's guard files saved and pinned, as a user does before planning it."""
    root = copy_checkout(REPO, tmp_path_factory.mktemp("checkout"))
    extra = paper_guard_formats(root)
    return root, extra


@pytest.mark.parametrize("profile", PROFILES)
def test_the_planner_and_the_jobs_see_the_same_configuration(profile: str, checkout, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root, extra = checkout
    dump = tmp_path / "planned.json"
    env = {**os.environ, **extra, "SAFEMT_PLANNED_CONFIG": str(dump), "HF_HUB_OFFLINE": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), env.get("PYTHONPATH", "")])
    proc = subprocess.run(["snakemake", "-n", "--configfile", profile], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    planned = json.loads(dump.read_text(encoding="utf-8"))
    monkeypatch.chdir(root)  # the profile's paths are relative to the project root
    monkeypatch.syspath_prepend(str(root / ".test-site"))
    jobs = json.loads(json.dumps(loader.load(root / profile), sort_keys=True))
    assert planned == jobs


def test_defaults_are_filled_where_a_key_is_absent_and_only_there() -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["models"]["tiny-vlm-a"]["image_placement"] = "last"
    filled = config.fill_defaults(raw)
    assert filled["models"]["tiny-vlm-a"]["image_placement"] == "last"  # written: kept
    assert filled["models"]["tiny-vlm-b"]["image_placement"] == "first"  # absent: the schema's default
    assert filled["allow_unpinned_revisions"] is False
    assert "image_placement" not in raw["models"]["tiny-vlm-b"]  # the input is not changed
    assert config.fill_defaults(filled) == filled


def test_judge_kinds_take_only_their_own_keys_and_defaults() -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    assert "constrained" not in loader.validate(raw)["judges"]["keyword"]  # an llm/guard key, not keyword's
    raw["judges"]["keyword"]["retries"] = 3
    with pytest.raises(ConfigError) as info:
        loader.validate(raw, "p.yaml")
    assert info.value.key == "judges.keyword.retries" and "keyword" in info.value.reason
    raw["judges"]["keyword"].pop("retries")
    raw["judges"]["j"] = {"kind": "llm", "model": "tiny-judge"}
    judge = loader.validate(raw)["judges"]["j"]
    assert (judge["scenario_criteria"], judge["retries"], judge["constrained"]) == ("release", 2, False)


def test_a_backend_names_the_key_it_needs() -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["models"]["api"] = {"backend": "openai", "model_id": "m"}
    with pytest.raises(ConfigError) as info:
        loader.validate(raw, "p.yaml")
    assert info.value.key == "models.api" and "base_url" in info.value.reason
