"""Security: config paths stay in the project, weights load from safetensors only, remote code runs only
when a model's config turns it on and is then said, and names from data or config are drawn literally."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from safemt.stages import params as safemt_params
from safemt.errors import ConfigError, SafemtError

SRC = Path(__file__).resolve().parents[1] / "src" / "safemt"


def _params(repo_root: Path) -> dict:
    return yaml.safe_load((repo_root / "params.yaml").read_text())


@pytest.mark.parametrize("key,set_", [
    ("results_dir", lambda p: p.update(results_dir="out/../../elsewhere")),
    ("dataset.seeds", lambda p: p["dataset"].update(seeds="../../seeds.jsonl")),
    ("dataset.release_dir", lambda p: p["dataset"].update(release_dir="resources/../../Data")),
    ("dataset.hub.local_dir", lambda p: p["dataset"]["hub"].update(local_dir="..")),
    ("models.tiny-vlm-a.chat_template", lambda p: p["models"]["tiny-vlm-a"].update(chat_template="..\\t.jinja")),
    ("judges.llm.prompt_file", lambda p: p["judges"].update(
        llm={"kind": "llm", "model": "tiny-judge", "prompt_file": "a/../../p.txt"})),
])
def test_config_paths_cannot_leave_the_project(repo_root: Path, key: str, set_) -> None:
    params = _params(repo_root)
    set_(params)
    with pytest.raises(ConfigError) as err:
        safemt_params.validate(params, "p.yaml")
    assert f"key {key}:" in err.value.line() and "leaves the project folder" in err.value.line()


def test_results_dir_is_relative_and_inputs_may_be_absolute(repo_root: Path) -> None:
    params = _params(repo_root)
    params["results_dir"] = "/tmp/results"
    with pytest.raises(ConfigError, match="results_dir"):
        safemt_params.validate(params, "p.yaml")
    params = _params(repo_root)
    params["models"]["tiny-vlm-a"]["chat_template"] = "/opt/templates/chat.jinja"  # an explicit choice
    params["results_dir"] = "results..v2/run.1"  # dots inside a name are not a step out
    assert safemt_params.validate(params, "p.yaml")["results_dir"] == params["results_dir"]


def test_no_pickle_loading_anywhere_in_the_package() -> None:
    pattern = re.compile(r"\b(torch\.load|pickle\.loads?|import pickle|joblib\.load|use_safetensors\s*=\s*False)\b")
    hits = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits


def test_hf_refuses_pickled_weights(tiny_models: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model folder whose weights are a pickle (pytorch_model.bin) is not loaded: safetensors only."""
    import torch
    from safetensors.torch import load_file

    from safemt.models.hf import HFBackend

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_models / "tiny-judge", folder)
    weights = folder / "model.safetensors"
    torch.save(load_file(weights), folder / "pytorch_model.bin")
    weights.unlink()

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load was called on downloaded weights")

    monkeypatch.setattr(torch, "load", no_unpickling)
    backend = HFBackend({"name": "pickled", "backend": "hf", "path": str(folder), "revision": "local",
                         "max_new_tokens": 2})
    with pytest.raises(SafemtError, match=r"key models\.pickled: cannot load"):
        backend.model  # noqa: B018  (the weights load on first use)


def test_vllm_engine_loads_safetensors_only() -> None:
    from safemt.models.vllm_backend import engine_args

    args = engine_args({"path": "org/m", "revision": "abc"}, local=False)
    assert args["load_format"] == "safetensors" and args["trust_remote_code"] is False


def test_remote_code_only_when_configured_and_said(tiny_models: Path, capsys: pytest.CaptureFixture) -> None:
    from safemt.models.hf import HFBackend

    cfg = {"name": "tiny-judge", "backend": "hf", "path": str(tiny_models / "tiny-judge"), "revision": "local"}
    off = HFBackend(cfg)
    assert off.describe()["trust_remote_code"] is False
    assert "trust_remote_code" not in capsys.readouterr().err
    on = HFBackend({**cfg, "trust_remote_code": True})
    err = capsys.readouterr().err
    assert "models.tiny-judge: trust_remote_code is on (set in its config)" in err and len(err.splitlines()) == 1
    assert on.describe()["trust_remote_code"] is True


def test_names_with_tex_are_drawn_literally(results_tree: dict, tmp_path: Path) -> None:
    """Model names come from the config and scenario text from data: `$...$` is text, not TeX
    (an unbalanced formula stops matplotlib with a parse error when TeX parsing is on)."""
    import shutil

    import matplotlib

    from safemt.figures import plots

    name = r"vlm$\frac{$x"
    metrics = tmp_path / "metrics" / "keyword"
    shutil.copytree(results_tree["metrics"], metrics)
    for csv_file in metrics.glob("*.csv"):
        csv_file.write_text(csv_file.read_text().replace("vlm-safe", name).replace("Fraud", name))
    matplotlib.rcParams["text.parse_math"] = True  # matplotlib's default
    paths = plots.draw_figures(str(metrics), str(tmp_path / "out"))
    assert len(paths) == 12 and all(p.stat().st_size > 0 for p in paths)
    assert matplotlib.rcParams["text.parse_math"] is False
