"""`safemt infer`: the Generation contract, resuming from the journal, shards, defenses, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from safemt import cli
from safemt.errors import SafemtError
from safemt.stages.inference import run as run_inference, shard_of
from safemt.timings import read_timings
from safemt.records import GENERATION
from safemt.files import read_jsonl
from safemt.models.hf import HFBackend
from safemt.progress import Progress
from tests.support import make_dialogue

SCENARIOS = ["Fraud", "Violence", "Privacy Violation", "Malware", "Bias", "Threat"]


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Twelve dialogues (six ids x 1 and 2 turns), each with its own small image, written out of order."""
    folder = tmp_path / "dataset"
    (folder / "images").mkdir(parents=True)
    colors = ["red", "green", "blue", "yellow", "purple", "orange"]
    records = []
    for i, (scenario, color) in enumerate(zip(SCENARIOS, colors)):
        Image.new("RGB", (32, 32), color).save(folder / "images" / f"{i}.png")
        records += [make_dialogue(i, 2, scenario), make_dialogue(i, 1, scenario)]
    path = folder / "dialogues.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in reversed(records)), encoding="utf-8")
    return path


@pytest.fixture
def params(tiny_models: Path) -> dict:
    models = {name: {"backend": "hf", "path": str(tiny_models / name), "revision": "local",
                     "max_new_tokens": 6, "temperature": 0.0, "batch_size": 4}
              for name in ("tiny-vlm-a", "tiny-judge")}
    return {"dataset": {"source": "build", "seeds": "seeds.jsonl"}, "turns": [1, 2], "models": models,
            "targets": ["tiny-vlm-a"], "judges": {"keyword": {"kind": "keyword"}}}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Keys of the requests the backend actually generated, in order."""
    seen: list[tuple] = []
    original = HFBackend.generate

    def counting(self, requests):
        seen.extend(r.key[:2] for r in requests)  # (id, turns) of the (id, turns, method) key
        return original(self, requests)

    monkeypatch.setattr(HFBackend, "generate", counting)
    return seen


def test_writes_the_generation_contract_in_turns_id_order(params, dataset, tmp_path) -> None:
    out = run_inference(params, "tiny-vlm-a", dataset, tmp_path / "gen" / "1.jsonl")
    records = read_jsonl(out)
    assert [(r["turns"], r["id"]) for r in records] == sorted((t, f"own_case_{i}") for t in (1, 2) for i in range(6))
    for r in records:
        assert tuple(r) == GENERATION.names
        assert r["model"] == "tiny-vlm-a" and r["defense"] == "none" and r["error"] is None
        assert isinstance(r["response"], str) and r["finish_reason"] in ("stop", "length")
        assert 1 <= r["n_output_tokens"] <= 6 and len(r["config_hash"]) == 64
    times = read_timings(out)  # measured times beside the output, never in it
    assert sorted(times) == sorted((r["id"], r["turns"], r["method"]) for r in records)
    assert all(t["latency_s"] >= 0 and t["defense_latency_s"] is None for t in times.values())
    provenance = json.loads((tmp_path / "gen" / ".journal" / "1.provenance.json").read_text())
    assert provenance["backend"]["generation"]["max_new_tokens"] == 6
    assert {"torch", "transformers", "safemt"} <= set(provenance["versions"])
    assert len(read_jsonl(tmp_path / "gen" / ".journal" / "1.jsonl")) == 12


def test_resumes_from_a_journal_with_a_torn_last_line(params, dataset, tmp_path, calls) -> None:
    out = tmp_path / "gen" / "all.jsonl"
    first = read_jsonl(run_inference(params, "tiny-vlm-a", dataset, out))
    journal = tmp_path / "gen" / ".journal" / "all.jsonl"
    kept = [dict(r, latency_s=123.0) for r in first[:5]]  # a marker that survives only if reused
    failed = dict(first[5], response=None, error="RuntimeError: out of memory", latency_s=0.5)
    journal.write_text("".join(json.dumps(r) + "\n" for r in [*kept, failed]) + '{"id": "own_ca',
                       encoding="utf-8")
    out.unlink()
    calls.clear()
    second = read_jsonl(run_inference(params, "tiny-vlm-a", dataset, out))
    assert sorted(calls) == sorted((r["id"], r["turns"]) for r in first[5:])
    assert second[:5] == first[:5]
    times = read_timings(out)
    assert [times[(r["id"], r["turns"], r["method"])]["latency_s"] for r in second[:5]] == [123.0] * 5
    assert [r["response"] for r in second] == [r["response"] for r in first]
    assert all(json.loads(line) for line in journal.read_text().splitlines())  # torn line repaired


def test_a_changed_generation_param_changes_hashes_and_regenerates(params, dataset, tmp_path, calls) -> None:
    out = tmp_path / "gen.jsonl"
    before = read_jsonl(run_inference(params, "tiny-vlm-a", dataset, out))
    calls.clear()
    params["models"]["tiny-vlm-a"]["max_new_tokens"] = 5
    after = read_jsonl(run_inference(params, "tiny-vlm-a", dataset, out))
    assert len(calls) == 12
    assert not {r["config_hash"] for r in before} & {r["config_hash"] for r in after}
    calls.clear()
    run_inference(params, "tiny-vlm-a", dataset, out)
    assert calls == []


def test_shards_partition_the_dataset(params, dataset, tmp_path) -> None:
    keys = []
    for i in range(3):
        out = run_inference(params, "tiny-vlm-a", dataset, tmp_path / f"shard{i}.jsonl", shard=(i, 3))
        keys += [(r["id"], r["turns"]) for r in read_jsonl(out)]
    assert len(keys) == len(set(keys)) == 12
    assert shard_of("own_case_0", 2, 3) == shard_of("own_case_0", 2, 3) in range(3)


def test_turns_filter(params, dataset, tmp_path) -> None:
    out = run_inference(params, "tiny-vlm-a", dataset, tmp_path / "2.jsonl", turns=2)
    assert {r["turns"] for r in read_jsonl(out)} == {2}


def test_system_prompt_defense_reaches_the_model_and_changes_hashes(params, dataset, tmp_path,
                                                                     monkeypatch) -> None:
    seen = []
    original = HFBackend.generate
    monkeypatch.setattr(HFBackend, "generate", lambda self, reqs: seen.extend(reqs) or original(self, reqs))
    plain = read_jsonl(run_inference(params, "tiny-vlm-a", dataset, tmp_path / "none.jsonl"))
    assert all(r.messages[0]["role"] == "user" for r in seen)
    seen.clear()
    guarded = read_jsonl(run_inference(params, "tiny-vlm-a", dataset, tmp_path / "sp.jsonl",
                                       defense="system_prompt"))
    assert all(r.messages[0]["role"] == "system" for r in seen) and len(seen) == 12
    assert {r["defense"] for r in guarded} == {"system_prompt"}
    assert not {r["config_hash"] for r in plain} & {r["config_hash"] for r in guarded}


def test_text_only_model_answers_without_the_image(params, dataset, tmp_path) -> None:
    records = read_jsonl(run_inference(params, "tiny-judge", dataset, tmp_path / "judge.jsonl", turns=1))
    assert len(records) == 6 and all(r["error"] is None for r in records)


def test_bad_inputs_are_one_line_errors_naming_the_record(params, dataset, tmp_path) -> None:
    out = tmp_path / "never.jsonl"
    with pytest.raises(SafemtError, match="unknown model 'nope'"):
        run_inference(params, "nope", dataset, out)
    with pytest.raises(SafemtError, match="unknown defense 'nope'"):
        run_inference(params, "tiny-vlm-a", dataset, out, defense="nope")
    (dataset.parent / "images" / "3.png").unlink()
    with pytest.raises(SafemtError, match="not found") as missing:
        run_inference(params, "tiny-vlm-a", dataset, out)
    assert "dialogues.jsonl" in str(missing.value) and "id own_case_3" in str(missing.value)
    lines = dataset.read_text().splitlines()
    bad = json.loads(lines[1])
    bad["messages"] = bad["messages"][:-1]
    dataset.write_text("\n".join([lines[0], json.dumps(bad)]) + "\n")
    with pytest.raises(SafemtError, match="record 2, id own_case_5: dialogue does not end with a user message"):
        run_inference(params, "tiny-vlm-a", dataset, out)
    assert not out.exists()


def test_cli_infer_exit_codes(params, dataset, tmp_path, capsys) -> None:
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params), encoding="utf-8")
    out = tmp_path / "cli.jsonl"
    argv = ["infer", "--params", str(params_file), "--model", "tiny-vlm-a", "--dataset", str(dataset), "-o", str(out)]
    assert cli.main(argv + ["--turns", "1"]) == 0
    assert len(read_jsonl(out)) == 6
    assert cli.main(argv + ["--defense", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("safemt: error: key defense: unknown defense 'nope' (defined: none, system_prompt, "
                       "guard_input, guard_output, moderator; <kind>.<name> picks the guard or moderator)")


def test_plain_progress_lines(monkeypatch) -> None:
    """In a log: a text bar, the count, the rate of this run (resumed items not counted), time and ETA."""
    now = [100.0]
    monkeypatch.setattr("safemt.progress.time.monotonic", lambda: now[0])
    stream = io.StringIO()
    with Progress("infer m 2-turn", 10, done=4, stream=stream, every_s=5.0, tty=False) as progress:
        now[0] += 2.0
        progress.update(2)   # under every_s since the last line: nothing printed
        now[0] += 4.0
        progress.update(2)
        now[0] += 1.0
        progress.update(2)
    lines = stream.getvalue().splitlines()
    assert lines == ["infer m 2-turn: [########............]  40% 4/10 (0.0/s, 0s elapsed)",
                     "infer m 2-turn: [################....]  80% 8/10 (0.7/s, 6s elapsed, ETA 3s)",
                     "infer m 2-turn: [####################] 100% 10/10 (0.9/s, 7s elapsed)"]


def test_merge_joins_shards_and_rejects_overlap(tmp_path, capsys) -> None:
    from safemt.cli import main
    from safemt.files import read_jsonl, write_jsonl

    def rec(i, turns):
        return {"id": f"own_fraud_{i}", "turns": turns, "model": "m", "defense": "none", "response": "r",
                "error": None, "finish_reason": "stop", "n_output_tokens": 1, "latency_s": 0.1, "config_hash": "h"}

    write_jsonl(tmp_path / "0.jsonl", [rec(3, 2), rec(1, 2)])
    write_jsonl(tmp_path / "1.jsonl", [rec(2, 2)])
    assert main(["merge", "-i", str(tmp_path / "0.jsonl"), str(tmp_path / "1.jsonl"), "-o", str(tmp_path / "m.jsonl")]) == 0
    assert [r["id"] for r in read_jsonl(tmp_path / "m.jsonl")] == ["own_fraud_1", "own_fraud_2", "own_fraud_3"]
    write_jsonl(tmp_path / "1.jsonl", [rec(3, 2)])
    assert main(["merge", "-i", str(tmp_path / "0.jsonl"), str(tmp_path / "1.jsonl"), "-o", str(tmp_path / "m.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "duplicate generation" in err and "own_fraud_3" in err


def test_changing_the_shard_count_reuses_finished_work(params, dataset, tmp_path, calls) -> None:
    folder = tmp_path / "gen" / "shards"
    run_inference(params, "tiny-vlm-a", dataset, folder / "0-of-1.jsonl")
    assert len(calls) == 12
    for i in range(3):
        run_inference(params, "tiny-vlm-a", dataset, folder / f"{i}-of-3.jsonl", shard=(i, 3))
    assert len(calls) == 12, "journals of the 1-shard run must serve the 3-shard run"
    whole = read_jsonl(folder / "0-of-1.jsonl")
    parts = [r for i in range(3) for r in read_jsonl(folder / f"{i}-of-3.jsonl")]
    assert sorted(parts, key=lambda r: (r["turns"], r["id"])) == whole


def test_journal_torn_at_every_byte_of_its_last_line_resumes_with_the_same_answers(params, dataset, tmp_path,
                                                                                    calls, monkeypatch) -> None:
    """A real tiny model, whose replies hold multi-byte characters. At every cut the stage's own resume
    path (repair, then the reusable records) keeps all but the torn record; at three cuts (one inside
    a character) the whole stage reruns, redoes only that record, and the answers are unchanged."""
    import safemt.stages.inference as inference
    from safemt.journal import read_journal, repair_journal

    loaded = {}
    real_get_backend = inference.get_backend
    monkeypatch.setattr(inference, "get_backend",  # one model load for all the reruns; inference stays real
                        lambda cfg: loaded.setdefault(cfg["name"], real_get_backend(cfg)))
    out = tmp_path / "gen" / "all.jsonl"
    params["models"]["tiny-vlm-a"]["max_new_tokens"] = 24  # replies long enough to hold multi-byte characters
    first = read_jsonl(run_inference(params, "tiny-vlm-a", dataset, out))
    by_key = {(r["id"], r["turns"], r["method"]): r for r in first}
    journal = tmp_path / "gen" / ".journal" / "all.jsonl"
    full = journal.read_bytes()
    start = full.rstrip(b"\n").rfind(b"\n") + 1
    last = json.loads(full[start:])
    hashes = {key: r["config_hash"] for key, r in by_key.items()}

    def splits_a_character(cut: int) -> bool:
        try:
            full[start:cut].decode("utf-8")
            return False
        except UnicodeDecodeError:
            return True

    inside = [cut for cut in range(start, len(full)) if splits_a_character(cut)]
    assert inside, "the last line should hold multi-byte characters"
    for cut in range(start, len(full)):
        journal.write_bytes(full[:cut])
        assert repair_journal(journal) == cut - start
        done = inference._reusable(journal, hashes, "tiny-vlm-a", "none")
        assert set(done) == set(by_key) - {(last["id"], last["turns"], last["method"])}
        assert all({k: done[key][k] for k in by_key[key]} == by_key[key] for key in done)

    def answers(records):
        return [{k: v for k, v in r.items() if k != "latency_s"} for r in records]

    for cut in (start + 1, inside[len(inside) // 2], len(full) - 1):
        journal.write_bytes(full[:cut])
        calls.clear()
        second = read_jsonl(run_inference(params, "tiny-vlm-a", dataset, out))
        assert calls == [(last["id"], last["turns"])]  # only the torn record is redone
        assert answers(second) == answers(first)
        kept = read_journal(journal)
        assert len(kept) == len({(r["id"], r["turns"]) for r in kept}) == len(first)
        assert journal.read_bytes()[:start] == full[:start]
        provenance = json.loads((tmp_path / "gen" / ".journal" / "all.provenance.json").read_text())
        assert provenance["journal_torn_bytes_dropped"] == cut - start
def test_methods_sharing_an_id_and_length_are_answered_and_resumed_apart(params, tmp_path, calls) -> None:
    """dataset.method_assignment: all keeps one id per seed: (id, turns, method) is the key."""
    folder = tmp_path / "dataset"
    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (32, 32), "red").save(folder / "images" / "0.png")
    one = make_dialogue(0, 1, "Fraud")
    two = [dict(make_dialogue(0, 2, "Fraud"), method=m) for m in ("escalation", "roleplay")]
    two[1]["messages"] = [dict(two[1]["messages"][0], content="Let's write a story about picture 0."),
                          *two[1]["messages"][1:]]
    path = folder / "dialogues.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [one, *two]), encoding="utf-8")
    out = tmp_path / "gen" / "all.jsonl"
    first = read_jsonl(run_inference(params, "tiny-vlm-a", path, out))
    assert [(r["id"], r["turns"], r["method"]) for r in first] == [
        ("own_case_0", 1, None), ("own_case_0", 2, "escalation"), ("own_case_0", 2, "roleplay")]
    calls.clear()
    out.unlink()
    assert read_jsonl(run_inference(params, "tiny-vlm-a", path, out)) == first and calls == []




def test_a_batch_run_one_by_one_is_logged_and_counted_in_the_provenance(params, dataset, tmp_path, capsys,
                                                                        monkeypatch) -> None:
    """A batch that fails (out of memory) is retried one request at a time: visible, never silent."""
    out = run_inference(params, "tiny-vlm-a", dataset, tmp_path / "clean" / "1.jsonl")
    clean = json.loads((out.parent / ".journal" / "1.provenance.json").read_text())
    assert clean["fallbacks_this_run"] == {}
    original = HFBackend._generate_batch

    def out_of_memory_when_batched(self, requests):
        if len(requests) > 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(self, requests)

    monkeypatch.setattr(HFBackend, "_generate_batch", out_of_memory_when_batched)
    out = run_inference(params, "tiny-vlm-a", dataset, tmp_path / "oom" / "1.jsonl")
    assert all(r["error"] is None for r in read_jsonl(out))
    provenance = json.loads((out.parent / ".journal" / "1.provenance.json").read_text())
    assert provenance["fallbacks_this_run"] == {"batch_run_one_by_one": 3}  # 12 requests in batches of 4
    err = capsys.readouterr().err
    assert "batch run one by one" in err and "CUDA out of memory (simulated)" in err
