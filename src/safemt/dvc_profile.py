"""`dvc-profile.yaml`: the few variables dvc.yaml reads (DVC templating `vars`), written from a config.

dvc.yaml names no params file and no results root of its own: it reads them from this file, so
`safemt dvc-profile --params config/paper.yaml` followed by `dvc repro` runs the paper profile.
Judge names are not needed: stages declare whole folders (judgments, metrics, scores), which hold
every judge the config names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from safemt.files import atomic_write_text
from safemt.layout import Layout

HEADER = ("# Written by `safemt dvc-profile --params FILE` (do not edit by hand): the variables dvc.yaml\n"
          "# reads, so that `dvc repro` runs the profile FILE names.\n")


def profile(config: Mapping[str, Any], params_file: str) -> dict[str, str]:
    return {"params": str(params_file), "results": Layout.of(config).root}


def render(config: Mapping[str, Any], params_file: str) -> str:
    return HEADER + yaml.safe_dump(profile(config, params_file), sort_keys=True)


def write_profile(config: Mapping[str, Any], params_file: str, out: str | Path = "dvc-profile.yaml") -> None:
    atomic_write_text(out, render(config, params_file))
    print(f"{out}: dvc.yaml now runs {params_file} (results in {Layout.of(config).root}/)")
