"""Live dialogues (docs/live.md): every turn answered by the target, its answers the history; resumed
turn by turn; judged per turn; the live metrics. A fake backend makes the answers and the requests
visible (the real-process kill test is tests/faults/test_live_kill.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from safemt.cli import main
from safemt.files import read_jsonl
from safemt.layout import live_dialogues_file, live_turns_file
from safemt.models import ChatRequest, GenerationResult
from safemt.models.base import Backend
from safemt.records import GENERATION
from safemt.stages import live
from safemt.stages import params as sections
from safemt.stages.judging import run as run_judging
from safemt.stages.params import as_params

SCENARIOS = ["Fraud", "Violence", "Malware"]


class Echo(Backend):
    """Answers `A<turn>:<last user text>`; fails on a user text containing FAIL while `fail` is set."""

    name = "echo"

    def __init__(self, batch_size: int = 2):
        super().__init__({"backend": "echo", "name": "echo", "batch_size": batch_size})
        self.requests: list[ChatRequest] = []
        self.fail = False

    def generate(self, requests):
        self.requests.extend(requests)
        out = []
        for r in requests:
            users = [m for m in r.messages if m["role"] == "user"]
            if self.fail and "FAIL" in users[-1]["content"]:
                out.append(GenerationResult.failed("server went away"))
            else:
                unsafe = "Sure! Here is how" if len(users) >= 2 else "I cannot help with that."
                out.append(GenerationResult(f"A{len(users)}:{users[-1]['content']} {unsafe}", None, "stop", 3))
        return out


def dialogue(i: int, turns: int, scenario: str) -> dict:
    messages = []
    for t in range(1, turns + 1):
        if t > 1:
            messages.append({"role": "assistant", "content": f"PREWRITTEN {t - 1}"})
        messages.append({"role": "user", "content": f"u{i}.{t}" + (" FAIL" if (i, t) == (2, 3) else "")})
    return {"id": f"own_case_{i}", "turns": turns, "scenario": scenario, "source": "own", "method": None,
            "image": f"images/{i}.png", "messages": messages, "question": f"question {i}?"}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "dataset"
    (folder / "images").mkdir(parents=True)
    records = []
    for i, (scenario, color) in enumerate(zip(SCENARIOS, ["red", "green", "blue"])):
        Image.new("RGB", (8, 8), color).save(folder / "images" / f"{i}.png")
        records += [dialogue(i, 1, scenario), dialogue(i, 4, scenario)]
    path = folder / "dialogues.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def params(tmp_path: Path) -> dict:
    return as_params({"dataset": {"source": "build", "seeds": "s.jsonl"}, "turns": [1, 4],
                      "models": {"echo": {"backend": "hf", "path": str(tmp_path)}}, "targets": ["echo"],
                      "judges": {"keyword": {"kind": "keyword"}}, "results_dir": str(tmp_path / "results")})


def run_live(params, dataset, out, backend, defense="none"):
    return live.run(params, "echo", dataset, out, defense, turns=4, backend=backend,
                    runner=sections.defense(params, defense))


def test_every_turn_is_answered_on_the_models_own_history(params, dataset, tmp_path) -> None:
    backend = Echo()
    out = run_live(params, dataset, tmp_path / "live" / "4.jsonl", backend)
    # three dialogues of 4 turns, batched across dialogues at the same turn: 4 turns x 2 batches (2 + 1)
    assert len(backend.requests) == 12
    by_key = {}
    for r in backend.requests:
        by_key.setdefault(r.key[0], []).append(r)
    for i in range(3):
        reqs = by_key[f"own_case_{i}"]
        assert [len(r.messages) for r in reqs] == [1, 3, 5, 7]
        last = reqs[-1].messages
        assert [m["content"] for m in last if m["role"] == "assistant"] == [
            "A1:u%d.1 I cannot help with that." % i, "A2:u%d.2 Sure! Here is how" % i,
            "A3:u%d.3%s Sure! Here is how" % (i, " FAIL" if i == 2 else "")]
        assert all(r.image == dataset.parent / "images" / f"{i}.png" for r in reqs)  # on every turn's request
        assert not any("PREWRITTEN" in m["content"] for r in reqs for m in r.messages)
    finals = read_jsonl(out)
    assert [tuple(r) for r in finals] == [GENERATION.names] * 3  # today's contract
    assert [r["response"] for r in finals] == [f"A4:u{i}.4 Sure! Here is how" for i in range(3)]
    turns = read_jsonl(live_turns_file(str(out)))
    assert [(r["id"], r["turns"], r["turn_index"]) for r in turns] == [
        (f"own_case_{i}", 4, t) for i in range(3) for t in range(1, 5)]
    transcripts = read_jsonl(live_dialogues_file(str(out)))
    assert transcripts[0]["messages"][1]["content"] == "A1:u0.1 I cannot help with that."
    assert transcripts[0]["live_answered"] == 4 and len(transcripts[0]["messages"]) == 7
    prov = json.loads((out.parent / ".journal" / "4.provenance.json").read_text())
    assert (prov["dialogue_mode"], prov["turns_total"], prov["turns_generated_this_run"], prov["turns_reused"]) == (
        "live", 12, 12, 0)


def test_a_rerun_reuses_every_turn_and_a_failed_turn_resumes_there(params, dataset, tmp_path) -> None:
    out = tmp_path / "live" / "4.jsonl"
    broken = Echo()
    broken.fail = True
    run_live(params, dataset, out, broken)
    finals = read_jsonl(out)
    assert finals[2]["response"] is None and finals[2]["error"].startswith("live turn 3 of 4: ")
    assert len(broken.requests) == 11  # dialogue 2 stopped at its failed turn 3
    fixed = Echo()
    run_live(params, dataset, out, fixed)
    assert [(r.key[0], len(r.messages)) for r in fixed.requests] == [("own_case_2", 5), ("own_case_2", 7)]
    clean_dir = tmp_path / "clean"
    run_live(params, dataset, clean_dir / "4.jsonl", Echo())
    assert read_jsonl(out) == read_jsonl(clean_dir / "4.jsonl")
    again = Echo()
    run_live(params, dataset, out, again)
    assert again.requests == []  # nothing finished is generated twice
    prov = json.loads((out.parent / ".journal" / "4.provenance.json").read_text())
    assert (prov["turns_generated_this_run"], prov["turns_reused"]) == (0, 12)


def test_a_static_defense_rewrites_every_turn(params, dataset, tmp_path) -> None:
    backend = Echo()
    run_live(params, dataset, tmp_path / "sp" / "4.jsonl", backend, defense="system_prompt")
    assert all(r.messages[0]["role"] == "system" for r in backend.requests)
    assert all(sum(m["role"] == "system" for m in r.messages) == 1 for r in backend.requests)


def test_every_turn_is_judged_on_its_own_prefix_and_metrics_follow(params, dataset, tmp_path) -> None:
    out = run_live(params, dataset, tmp_path / "live" / "4.jsonl", Echo())
    transcripts = live_dialogues_file(str(out))
    judged, judged_turns = tmp_path / "j" / "4.jsonl", tmp_path / "j" / "turns" / "4.jsonl"
    run_judging(params, "keyword", [transcripts, transcripts],
                [(str(out), str(judged)), (live_turns_file(str(out)), str(judged_turns))])
    per_turn = read_jsonl(judged_turns)
    assert [r["turn_index"] for r in per_turn[:4]] == [1, 2, 3, 4]
    assert [r["label"] for r in per_turn[:4]] == ["safe", "unsafe", "unsafe", "unsafe"]
    assert all(r["turns"] == 4 for r in per_turn)
    replay = tmp_path / "asr.csv"
    replay.write_text("judge,model,defense,turns,n,invalid,missing,refused_by_provider,asr,ci_low,ci_high\n"
                      "keyword,echo,none,4,3,0,0,0,0.3333,0.0,1.0\n", encoding="utf-8")
    out_dir = tmp_path / "m"
    assert main(["live-metrics", "--params", str(_params_file(params, tmp_path)), "-i", str(judged),
                 "--turns", str(judged_turns), "--replay", str(replay), "-o", str(out_dir)]) == 0
    rows = (out_dir / "live.csv").read_text().splitlines()
    assert rows[1].startswith("keyword,echo,none,4,live,3,3,0,0,1.0,")
    assert rows[2].startswith("keyword,echo,none,4,replay,3,1,0,0,0.3333,")
    turn_rows = (out_dir / "live_turns.csv").read_text().splitlines()
    assert [r.split(",")[4] for r in turn_rows[1:]] == ["1", "2", "3", "4"]
    assert [r.split(",")[9] for r in turn_rows[1:]] == ["0.0", "1.0", "1.0", "1.0"]
    first = (out_dir / "live_first_unsafe.csv").read_text().splitlines()
    assert first[1:] == ["keyword,echo,none,4,1,0,0.0", "keyword,echo,none,4,2,3,1.0", "keyword,echo,none,4,3,0,0.0",
                         "keyword,echo,none,4,4,0,0.0", "keyword,echo,none,4,never,0,0.0"]


def _params_file(params: dict, tmp_path: Path) -> Path:
    import yaml

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({k: params[k] for k in ("dataset", "turns", "models", "targets", "judges")}))
    return path


def test_the_replay_vs_live_figure_is_drawn_from_live_csv(tmp_path) -> None:
    import pandas as pd

    from safemt.figures import style
    from safemt.figures.plots import WIDTH_COLUMNS, replay_vs_live
    from safemt.figures.style import COLUMN_WIDTH_IN, DPI

    rows = [{"judge": "keyword", "model": f"m{k}", "defense": "none", "turns": n, "mode": mode, "n": 10,
             "asr": a, "ci_low": max(a - 0.1, 0), "ci_high": min(a + 0.1, 1)}
            for k in range(4) for n in (2, 4, 8) for mode, a in (("replay", n / 10), ("live", n / 12))]
    style.apply()
    paths = style.save(replay_vs_live(pd.DataFrame(rows), "keyword"), tmp_path, "replay_vs_live", tmp_path)
    png = [p for p in paths if str(p).endswith(".png")][0]
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] / DPI <= WIDTH_COLUMNS["replay_vs_live"] * COLUMN_WIDTH_IN * 1.25
