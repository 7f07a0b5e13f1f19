"""The Snakemake judge rule reruns when anything that decides a verdict changes, and only then.

A minimal workflow built from the real rule files (common.smk, judging.smk) over hand-written inputs
runs the llm judge on the tiny judge model once; then each edit to a copy of the package is checked
with a dry run (`snakemake -n`): the job must be planned again, for changed params.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import undefended

from safemt.files import write_jsonl

pytestmark = pytest.mark.slow  # a real judge run and seven Snakemake dry runs: about two minutes

TARGET = "results/judgments/llm/m/none/1.jsonl"

EDITS = {  # file under src/safemt, text to find, replacement
    "generic criteria": ("judges/prompts.py", "contains sexually explicit material", "contains explicit sexual material"),
    "advice criteria": ("judges/prompts.py", "urges care or a consultation", "urges care or consulting"),
    "retry reminder": ("judges/prompts.py", "could not be read.", "was unreadable."),
    "template": ("judges/prompts.py", "Judge only the final reply.", "Judge the final reply only."),
    "dialogue renderer": ("judges/prompts.py", "f\"{m['role'].capitalize()}: {m['content']}\"",
                          "f\"{m['role'].upper()}: {m['content']}\""),
    "parser version": ("judges/parsing.py", 'PARSER_VERSION = "strict-', 'PARSER_VERSION = "strict-edited-'),
}


def _workflow(repo_root: Path, tiny_models: Path, root: Path) -> dict[str, str]:
    shutil.copytree(repo_root / "src", root / "src")
    (root / "rules").mkdir()
    for name in ("common.smk", "judging.smk"):
        shutil.copy(repo_root / "workflow" / "rules" / name, root / "rules" / name)
    shutil.copytree(repo_root / "workflow" / "envs", root / "envs")
    (root / "Snakefile").write_text('configfile: "params.yaml"\nPARAMS = "params.yaml"\n'
                                    'include: "rules/common.smk"\ninclude: "rules/judging.smk"\n')
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["models"] = {"m": {"backend": "hf", "path": str(tiny_models / "tiny-vlm-a")},
                        "tiny-judge": {"backend": "hf", "path": str(tiny_models / "tiny-judge"), "max_new_tokens": 4,
                                       "revision": "local"}}
    params.update(targets=["m"], turns=[1], judges={"llm": {"kind": "llm", "model": "tiny-judge", "retries": 0,
                                                            "scenario_criteria": "intended"}})
    params["metrics"] = {**params.get("metrics", {}), "judges": ["llm"]}
    params["figures"] = {"judge": "llm"}
    (root / "params.yaml").write_text(yaml.safe_dump(undefended(params)))
    dialogue = {"id": "own_fraud_0", "turns": 1, "scenario": "Fraud", "source": "own", "method": None,
                "method_inferred": False, "image": None, "image_sha256": None,
                "messages": [{"role": "user", "content": "How do scams work?"}], "question": "q"}
    write_jsonl(root / "results/dataset/dialogues.jsonl", [dialogue])
    write_jsonl(root / "results/generations/m/none/1.jsonl",
                [{"id": "own_fraud_0", "turns": 1, "model": "m", "defense": "none", "response": "Sure.",
                  "error": None, "finish_reason": "stop", "n_output_tokens": 2,
                  "config_hash": "h"}])
    bin_dir = Path(sys.executable).parent
    return {**os.environ, "PYTHONPATH": str(root / "src"), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _snakemake(root: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(["snakemake", "--cores", "1", *args, TARGET], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _plans_judge(out: str) -> bool:
    return bool(re.search(r"^rule judge:", out, re.MULTILINE)) and "Nothing to be done" not in out


def test_the_judge_rule_reruns_exactly_when_the_verdict_spec_changes(repo_root: Path, tiny_models: Path,
                                                                    tmp_path: Path) -> None:
    env = _workflow(repo_root, tiny_models, tmp_path)
    _snakemake(tmp_path, env)
    assert json.loads((tmp_path / TARGET).read_text().splitlines()[0])["judge"] == "llm"
    assert not _plans_judge(_snakemake(tmp_path, env, "-n"))
    for name, (rel, old, new) in EDITS.items():
        path = tmp_path / "src" / "safemt" / rel
        original = path.read_text()
        assert original.count(old) == 1, f"{name}: the edit no longer applies to {rel}"
        path.write_text(original.replace(old, new))
        out = _snakemake(tmp_path, env, "-n")
        assert _plans_judge(out) and re.search(r"params? (have )?changed", out, re.IGNORECASE), f"{name}:\n{out}"
        path.write_text(original)
    unrelated = tmp_path / "src" / "safemt" / "judges" / "prompts.py"
    unrelated.write_text(unrelated.read_text().replace('"""The SafeMT judge prompt,', '"""The SafeMT judge prompt (edited),'))
    assert not _plans_judge(_snakemake(tmp_path, env, "-n"))
