"""params.yaml validation: one line naming the key, through the CLI and at DAG build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from safemt.stages import params as safemt_params
from safemt.cli import main
from safemt.errors import ConfigError
from tests.support import pinned_paper


def load(repo_root: Path) -> dict:
    return yaml.safe_load((repo_root / "params.yaml").read_text())


def test_embedded_default_and_paper_profile_are_valid(repo_root, tmp_path, monkeypatch) -> None:
    safemt_params.load(repo_root / "params.yaml")
    safemt_params.load(pinned_paper(repo_root, tmp_path, monkeypatch))  # with the guards' formats saved


@pytest.mark.parametrize("edit,key", [
    (lambda p: p.update(colour="red"), "colour"),
    (lambda p: p["models"]["tiny-vlm-a"].update(max_new_tokens="lots"), "models.tiny-vlm-a.max_new_tokens"),
    (lambda p: p["models"]["tiny-vlm-a"].update(backend="tgi"), "models.tiny-vlm-a.backend"),
    (lambda p: p.update(targets=["tiny-vlm-a", "gpt-9"]), "targets.1"),
    (lambda p: p["judges"].update(j={"kind": "llm", "model": "nobody"}), "judges.j.model"),
    (lambda p: p["metrics"].update(judges=["nope"]), "metrics.judges.0"),
    (lambda p: p["metrics"]["bootstrap"].update(seeds=1), "metrics.bootstrap.seeds"),
    (lambda p: p.update(turns=[1, "two"]), "turns.1"),
    (lambda p: p.pop("targets"), "<top level>"),
])
def test_bad_params_name_the_key(repo_root, tmp_path, capsys, edit, key) -> None:
    params = load(repo_root)
    edit(params)
    with pytest.raises(ConfigError) as exc:
        safemt_params.validate(params, "p.yaml")
    assert f"key {key}" in exc.value.line()
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(params))
    assert main(["metrics", "-i", "x.jsonl", "-o", str(tmp_path / "o"), "--params", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and key in err


def test_snakemake_stops_at_dag_build_with_one_line(repo_root, tmp_path) -> None:
    params = load(repo_root)
    params["targets"] = ["tiny-vlm-a", "missing-model"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(params))
    snakemake = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(snakemake), "-n", "--configfile", str(path)], cwd=repo_root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    line = [ln for ln in proc.stderr.splitlines() if "config error" in ln]
    assert line and "targets.1" in line[0] and "missing-model" in line[0]


def test_paper_profile_names_the_papers_judges_and_every_model_fully(repo_root, tmp_path, monkeypatch) -> None:
    """config/paper.yaml: the released judge (gpt-4o-mini at 0.6), guard judges, all in metrics.judges;
    every open model by hub id with its GPUs, shards and (vllm) tensor parallel size."""
    paper = safemt_params.load(pinned_paper(repo_root, tmp_path, monkeypatch))
    llm = paper["judges"]["llm"]
    judge_model = paper["models"][llm["model"]]
    assert llm["kind"] == "llm" and judge_model["backend"] == "openai"
    assert (judge_model["model_id"], judge_model["temperature"]) == ("gpt-4o-mini", 0.6)
    guards = [n for n, j in paper["judges"].items() if j["kind"] == "guard"]
    assert guards and set(paper["metrics"]["judges"]) >= {"llm", *guards}
    for name, m in paper["models"].items():
        if m["backend"] in ("hf", "vllm"):
            assert m["path"].count("/") == 1 and m["gpus"] >= 1, name
            assert name not in paper["targets"] or m["shards"] >= 1, name  # judges' models are not sharded
            if m["backend"] == "vllm":
                assert m["tensor_parallel_size"] >= 1, name


def test_a_placeholder_model_version_is_refused_with_one_line(repo_root, tmp_path, capsys, monkeypatch) -> None:
    from safemt.cli import main
    from safemt.files import write_jsonl

    write_jsonl(tmp_path / "d.jsonl", [])
    paper = pinned_paper(repo_root, tmp_path / "project", monkeypatch)
    code = main(["infer", "--params", str(paper), "--model", "gpt-4o",
                 "--dataset", str(tmp_path / "d.jsonl"), "-o", str(tmp_path / "out.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "models.gpt-4o.model_id" in err and "placeholder" in err and not (tmp_path / "out.jsonl").exists()
