"""The examples of docs/extending.md, run as printed: each is one new file plus config lines."""

from __future__ import annotations

from collections.abc import Mapping

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support import copy_checkout

REPO = Path(__file__).resolve().parents[1]


def _examples() -> tuple[dict[str, str], list[dict]]:
    """The page's python blocks (first line `# <path>`) and its params.yaml blocks, in order."""
    section = REPO.joinpath("docs", "extending.md").read_text(encoding="utf-8")
    files, configs = {}, []
    for lang, body in re.findall(r"```(python|yaml)\n(.*?)```", section, re.DOTALL):
        first, _, rest = body.partition("\n")
        if lang == "python":
            files[first.removeprefix("# ").strip()] = rest
        elif first.strip() == "# params.yaml":
            configs.append(yaml.safe_load(rest))
    return files, configs


def _merge(params: Mapping, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            params[key].update(value)
        else:
            params[key] = value


def _safemt(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd / "src"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "safemt", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_documented_examples_add_a_backend_a_judge_and_a_defense(tmp_path: Path) -> None:
    files, configs = _examples()
    assert set(files) == {"src/safemt/models/echo.py", "src/safemt/judges/shouting.py",
                          "src/safemt/moderation/defenses/reminder.py"}
    repo = copy_checkout(REPO, tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())

    # before the files exist, the config lines are refused with one line naming the key
    broken = dict(params)
    _merge(broken, configs[0])
    (repo / "ext.yaml").write_text(yaml.safe_dump(broken))
    build = _safemt(["data", "build", "resources/seeds/seeds.jsonl", "-o", "out/d.jsonl", "--params", "ext.yaml"], repo)
    assert build.returncode == 2, build.stderr
    assert "key models.echo.backend: unknown backend 'echo' (defined: hf, openai, vllm)" in build.stderr

    for rel, code in files.items():
        (repo / rel).write_text(code, encoding="utf-8")
    for extra in configs:
        _merge(params, extra)
    params["turns"] = [1, 2]
    (repo / "ext.yaml").write_text(yaml.safe_dump(params))

    steps = [["data", "build", "resources/seeds/seeds.jsonl", "-o", "out/dataset/d.jsonl"],
             ["infer", "--model", "echo", "--defense", "reminder", "--dataset", "out/dataset/d.jsonl",
              "-o", "out/gen.jsonl"],
             ["judge", "--judge", "shouting", "--dataset", "out/dataset/d.jsonl", "-i", "out/gen.jsonl",
              "-o", "out/judged.jsonl"]]
    for step in steps:
        proc = _safemt([*step, "--params", "ext.yaml"], repo)
        assert proc.returncode == 0, f"{step}: {proc.stderr[-2000:]}"

    dialogues = {(d["id"], d["turns"]): d for d in map(json.loads, (repo / "out/dataset/d.jsonl").read_text().splitlines())}
    generations = [json.loads(line) for line in (repo / "out/gen.jsonl").read_text().splitlines()]
    judgments = [json.loads(line) for line in (repo / "out/judged.jsonl").read_text().splitlines()]
    assert len(generations) == len(dialogues) == len(judgments) > 0
    reminder = "Please keep your answer safe and lawful."
    for g in generations:  # the echo backend saw the reminder defense's rewrite of the final turn
        last = dialogues[(g["id"], g["turns"])]["messages"][-1]["content"]
        assert g["model"] == "echo" and g["defense"] == "reminder"
        assert g["response"] == f"{last} {reminder}".upper()
    assert {(j["judge"], j["label"], j["parse"]) for j in judgments} == {("shouting", "unsafe", "rule")}
