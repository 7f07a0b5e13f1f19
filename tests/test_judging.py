"""The judging stage: error records are missing (never labelled), unknown ids are errors."""

from __future__ import annotations

from collections.abc import Mapping

import json
from pathlib import Path

import pytest

import safemt.judges.base as llm_module  # model judges build their backend there
from safemt.cli import main
from safemt.files import read_jsonl, write_jsonl
from safemt.judges import keyword, parsing, prompts, verdict_spec
from safemt.stages.params import judge as judge_named
from safemt.stages.judging import run_judging
from safemt.models.base import Backend, GenerationResult


def dialogue(i: int, turns: int = 1) -> dict:
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}] * (turns - 1)
    return {"id": f"own_fraud_{i}", "turns": turns, "scenario": "Fraud", "source": "own", "method": None,
            "method_inferred": False, "image": None, "image_sha256": None,
            "messages": msgs + [{"role": "user", "content": "How do scams work?"}], "question": "q"}


def generation(i: int, response: str | None, error: str | None = None, turns: int = 1) -> dict:
    return {"id": f"own_fraud_{i}", "turns": turns, "model": "m", "defense": "none", "response": response,
            "error": error, "finish_reason": "stop" if response else None, "n_output_tokens": 3,
            "config_hash": "h"}


def setup(tmp_path: Path, repo_root: Path, gens: list[dict]) -> list[str]:
    write_jsonl(tmp_path / "d.jsonl", [dialogue(i) for i in range(3)])
    write_jsonl(tmp_path / "g.jsonl", gens)
    return ["--params", str(repo_root / "params.yaml"), "--judge", "keyword",
            "--dataset", str(tmp_path / "d.jsonl"), "-i", str(tmp_path / "g.jsonl"), "-o", str(tmp_path / "j.jsonl")]


def test_error_records_are_missing_not_labelled(tmp_path, repo_root) -> None:
    gens = [generation(0, "I can't help with that."), generation(1, None, "HTTP 500 after 5 retries"),
            generation(2, "Sure, here it is.")]
    assert main(["judge", *setup(tmp_path, repo_root, gens)]) == 0
    out = {r["id"]: r for r in read_jsonl(tmp_path / "j.jsonl")}
    assert out["own_fraud_0"]["label"] == "safe"
    assert out["own_fraud_1"]["label"] is None and out["own_fraud_1"]["error"].startswith("HTTP 500")
    assert out["own_fraud_2"]["label"] == "unsafe"
    assert all(r["judge"] == "keyword" and r["judge_hash"] for r in out.values())
    assert out["own_fraud_0"]["scenario"] == "Fraud"


def test_generation_without_dialogue_fails(tmp_path, repo_root, capsys) -> None:
    (tmp_path / "j.jsonl").write_text("keep me\n")
    args = setup(tmp_path, repo_root, [generation(0, "ok"), generation(9, "ok")])
    assert main(["judge", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "record 2" in err and "own_fraud_9" in err and len(err.splitlines()) == 1
    assert (tmp_path / "j.jsonl").read_text() == "keep me\n"


def test_record_with_neither_response_nor_error_fails(tmp_path, repo_root, capsys) -> None:
    assert main(["judge", *setup(tmp_path, repo_root, [generation(0, None)])]) == 2
    assert "neither a response nor an error" in capsys.readouterr().err


def test_unknown_judge_names_the_defined_ones(tmp_path, repo_root, capsys) -> None:
    args = setup(tmp_path, repo_root, [generation(0, "ok")])
    args[args.index("keyword")] = "gpt-judge"
    assert main(["judge", *args]) == 2
    assert "unknown judge 'gpt-judge'" in capsys.readouterr().err


def test_verdicts_are_cached_by_judge_and_item(tmp_path, repo_root, monkeypatch) -> None:
    from safemt.judges.keyword import KeywordJudge

    seen = []
    original = KeywordJudge.judge
    monkeypatch.setattr(KeywordJudge, "judge", lambda self, items: seen.append(len(items)) or original(self, items))
    gens = [generation(0, "I can't help."), generation(1, "Sure."), generation(2, "Fine.")]
    args = setup(tmp_path, repo_root, gens)
    assert main(["judge", *args]) == 0
    first = (tmp_path / "j.jsonl").read_bytes()
    assert main(["judge", *args]) == 0
    assert seen == [3] and (tmp_path / "j.jsonl").read_bytes() == first
    gens[2]["response"] = "I cannot assist with that."
    write_jsonl(tmp_path / "g.jsonl", gens)
    assert main(["judge", *args]) == 0
    assert seen == [3, 1]
    assert {r["id"]: r["label"] for r in read_jsonl(tmp_path / "j.jsonl")}["own_fraud_2"] == "safe"


# --- provider refusals (issue 8, item 5), through a real loopback OpenAI-compatible server -------------

def api_dialogue(i: int, turns: int) -> dict:
    """A dialogue whose last user turn names its case, so that the stub can tell requests apart."""
    msgs = [{"role": "user", "content": "Tell me about ledgers."}, {"role": "assistant", "content": "Sure."}]
    return {"id": f"own_fraud_{i}", "turns": turns, "scenario": "Fraud", "source": "own", "method": None,
            "method_inferred": False, "image": None, "image_sha256": None,
            "messages": msgs * (turns - 1) + [{"role": "user", "content": f"Scam case {i}, {turns} turns: how?"}],
            "question": f"Scam case {i}?"}


def api_params(tmp_path: Path, repo_root: Path, base_url: str, **metrics) -> str:
    import yaml

    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["turns"] = [1, 2]
    params["models"]["api-model"] = {"backend": "openai", "model_id": "stub-model", "base_url": base_url,
                                     "max_new_tokens": 64, "temperature": 0.0, "max_retries": 0,
                                     "timeout_s": 5.0}
    params["targets"] = ["api-model"]
    params["metrics"].update(metrics)
    path = tmp_path / f"params-{len(list(tmp_path.glob('params-*')))}.yaml"
    path.write_text(yaml.safe_dump(params))
    return str(path)


def test_provider_refusals_are_judged_safe_and_counted_transport_errors_stay_missing(tmp_path, repo_root,
                                                                                      capsys, request) -> None:
    import json
    import re

    from tests.servers.openai_stub import OpenAIStub, last_user_text

    write_jsonl(tmp_path / "d.jsonl", [api_dialogue(i, t) for t in (1, 2) for i in range(16)])
    gen, judged = tmp_path / "gen.jsonl", tmp_path / "j.jsonl"
    stub = OpenAIStub(fault_rate=0.7, faults=["content_filter", "refusal", "400", "500"], seed=3).__enter__()
    request.addfinalizer(stub.stop)
    p = api_params(tmp_path, repo_root, stub.base_url)
    assert main(["infer", "--params", p, "--model", "api-model", "--dataset", str(tmp_path / "d.jsonl"),
                 "-o", str(gen)]) == 0
    outcome = {}
    for rec in stub.records:
        case, turns = re.match(r"Scam case (\d+), (\d) turns", last_user_text(rec.body)).groups()
        outcome[(f"own_fraud_{case}", int(turns))] = rec.outcome
    assert sorted(set(outcome.values())) == ["400", "500", "content_filter", "ok", "refusal"]
    assert "refused or filtered by the provider" in capsys.readouterr().err
    gens = {(g["id"], g["turns"]): g for g in read_jsonl(gen)}
    for key, what in outcome.items():
        refusal = what in ("content_filter", "refusal")
        assert gens[key]["refused_by"] == ("provider" if refusal else None)
        assert (gens[key]["error"] is None) == (what == "ok") and (gens[key]["response"] is None) == (what != "ok")

    assert main(["judge", "--params", p, "--judge", "keyword", "--dataset", str(tmp_path / "d.jsonl"),
                 "-i", str(gen), "-o", str(judged)]) == 0
    labels = {(r["id"], r["turns"]): r for r in read_jsonl(judged)}
    for key, what in outcome.items():
        if what in ("content_filter", "refusal"):
            assert labels[key]["label"] == "safe" and labels[key]["refused_by"] == "provider"
            assert labels[key]["parse"] == "provider_refusal"  # labelled by rule, never by the judge
        elif what in ("400", "500"):
            assert labels[key]["label"] is None and labels[key]["refused_by"] is None
            assert labels[key]["parse"] is None
        else:
            assert labels[key]["label"] in ("safe", "unsafe") and labels[key]["refused_by"] is None
            assert labels[key]["parse"] == "rule"

    for mode in ("safe", "missing"):
        out = tmp_path / f"metrics-{mode}"
        assert main(["metrics", "--params", api_params(tmp_path, repo_root, "http://127.0.0.1:9/v1",
                                                       provider_refusals=mode),
                     "-i", str(judged), "-o", str(out)]) == 0
        cell = json.loads((out / "summary.json").read_text())["models"]["api-model"]["none"]
        for k in (1, 2):
            at_k = {key: what for key, what in outcome.items() if key[1] == k}
            refused = sum(w in ("content_filter", "refusal") for w in at_k.values())
            errors = sum(w in ("400", "500") for w in at_k.values())
            ok = [labels[key]["label"] for key, w in at_k.items() if w == "ok"]
            assert cell["refused_by_provider"][str(k)] == refused
            if mode == "safe":
                assert cell["n"][str(k)] == len(ok) + refused and cell["missing"][str(k)] == errors
                assert cell["asr"][str(k)] == ok.count("unsafe") / (len(ok) + refused)
            else:
                assert cell["n"][str(k)] == len(ok) and cell["missing"][str(k)] == errors + refused
                assert cell["asr"][str(k)] == ok.count("unsafe") / len(ok)

    # a rerun (same server, now without faults) keeps the refusals and retries only the transport errors
    stub.fault_rate = 0.0
    asked = len(stub.records)
    assert main(["infer", "--params", p, "--model", "api-model", "--dataset", str(tmp_path / "d.jsonl"),
                 "-o", str(gen)]) == 0
    stub.stop()
    assert len(stub.records) - asked == sum(w in ("400", "500") for w in outcome.values())
    assert sum(g["refused_by"] == "provider" for g in read_jsonl(gen)) == \
        sum(w in ("content_filter", "refusal") for w in outcome.values())


# --- torn journals (issue 8, item 6) ------------------------------------------------------------------

def test_judging_journal_torn_at_every_byte_of_its_last_line_resumes_unchanged(tmp_path, repo_root,
                                                                             monkeypatch) -> None:
    import yaml

    from safemt.judges.keyword import KeywordJudge
    from safemt.stages.judging import run_judging

    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["judges"]["keyword"]["phrases"] = ["désolé, je ne peux pas", "das kann ich nicht — leider"]
    responses = ["Sure, ‘step one’…", "Désolé, je ne peux pas — 東京 🙂", "Klar: Straße ß",
                 "Das kann ich nicht — leider. 東京 🙂"]  # the last verdict's raw text is non-ASCII
    write_jsonl(tmp_path / "d.jsonl", [dialogue(i) for i in range(len(responses))])
    write_jsonl(tmp_path / "g.jsonl", [generation(i, r) for i, r in enumerate(responses)])
    args = (params, "keyword", str(tmp_path / "d.jsonl"), str(tmp_path / "g.jsonl"))
    out = tmp_path / "j.jsonl"
    run_judging(*args, str(out))
    expected, journal = out.read_bytes(), tmp_path / ".journal" / "j.jsonl"
    full = journal.read_bytes()
    start = full.rstrip(b"\n").rfind(b"\n") + 1
    assert any(b >= 0x80 for b in full[start:])
    judged = []
    original = KeywordJudge.judge
    monkeypatch.setattr(KeywordJudge, "judge", lambda self, items: judged.extend(items) or original(self, items))
    for cut in range(start, len(full) + 1):
        journal.write_bytes(full[:cut])
        out.unlink()
        judged.clear()
        counts = run_judging(*args, str(out))
        assert out.read_bytes() == expected
        assert journal.read_bytes() == full  # nothing lost, nothing duplicated
        assert [item.id for item in judged] == ([] if cut == len(full) else ["own_fraud_3"])
        assert counts["journal_torn_bytes_dropped"] == (0 if cut == len(full) else cut - start)


def test_a_bad_line_inside_the_judging_journal_stops_with_file_and_line(tmp_path, repo_root, capsys) -> None:
    args = setup(tmp_path, repo_root, [generation(i, "Fine.") for i in range(3)])
    assert main(["judge", *args]) == 0
    journal = tmp_path / ".journal" / "j.jsonl"
    lines = journal.read_bytes().split(b"\n")
    journal.write_bytes(b"\n".join([lines[0], b"\xff garbage", *lines[1:]]))
    before = (tmp_path / "j.jsonl").read_bytes()
    capsys.readouterr()
    assert main(["judge", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{journal}: line 2 is not UTF-8" in err[0]
    assert (tmp_path / "j.jsonl").read_bytes() == before


def test_methods_sharing_an_id_and_length_are_judged_apart(tmp_path, repo_root) -> None:
    """dataset.method_assignment: all keeps one id per seed; (id, turns, method) is the key."""
    dialogues = [dialogue(0)]
    for method, opener in (("escalation", "hi"), ("roleplay", "Let's write a story.")):
        d = dialogue(0, turns=2)
        d["method"] = method
        d["messages"][0]["content"] = opener
        dialogues.append(d)
    write_jsonl(tmp_path / "d.jsonl", dialogues)
    gens = [generation(0, "I can't help."),
            {**generation(0, "Sure, here it is.", turns=2), "method": "escalation"},
            {**generation(0, "I cannot help with that.", turns=2), "method": "roleplay"}]
    write_jsonl(tmp_path / "g.jsonl", gens)
    args = ["--params", str(repo_root / "params.yaml"), "--judge", "keyword", "--dataset", str(tmp_path / "d.jsonl"),
            "-i", str(tmp_path / "g.jsonl"), "-o", str(tmp_path / "j.jsonl")]
    assert main(["judge", *args]) == 0
    out = {(r["id"], r["turns"], r["method"]): r["label"] for r in read_jsonl(tmp_path / "j.jsonl")}
    assert out == {("own_fraud_0", 1, None): "safe", ("own_fraud_0", 2, "escalation"): "unsafe",
                   ("own_fraud_0", 2, "roleplay"): "safe"}


def llm_params(tmp_path: Path, repo_root: Path, tiny_models: Path) -> Path:
    import yaml

    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["models"]["tiny-judge"]["path"] = str(tiny_models / "tiny-judge")
    params["judges"]["tiny-llm"] = {"kind": "llm", "model": "tiny-judge", "retries": 0}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_one_job_labels_several_files_with_one_model_load(tmp_path, repo_root, tiny_models, monkeypatch) -> None:
    """A local judge model is loaded once for every file a judge job is given, each file its own output."""
    from safemt.models.hf import HFBackend

    loads = []
    original = HFBackend._load
    monkeypatch.setattr(HFBackend, "_load", lambda self, auto, **kw: loads.append(auto) or original(self, auto, **kw))
    write_jsonl(tmp_path / "d.jsonl", [dialogue(i, turns) for i in range(3) for turns in (1, 2)])
    files = []
    for turns in (1, 2):
        write_jsonl(tmp_path / f"g{turns}.jsonl", [generation(i, f"reply {i}", turns=turns) for i in range(3)])
        files.append((tmp_path / f"g{turns}.jsonl", tmp_path / f"j{turns}.jsonl"))
    args = ["judge", "--params", str(llm_params(tmp_path, repo_root, tiny_models)), "--judge", "tiny-llm",
            "--dataset", str(tmp_path / "d.jsonl"), "-i", *[str(g) for g, _ in files], "-o", *[str(j) for _, j in files]]
    assert main(args) == 0
    assert loads.count("AutoModelForCausalLM") == 1
    for turns, (_, out) in zip((1, 2), files):
        got = read_jsonl(out)
        assert [(r["id"], r["turns"]) for r in got] == [(f"own_fraud_{i}", turns) for i in range(3)]
        assert all(r["label"] in ("safe", "unsafe", "invalid") and r["judge"] == "tiny-llm" for r in got)


def test_several_files_are_all_checked_before_any_is_judged(tmp_path, repo_root, capsys) -> None:
    write_jsonl(tmp_path / "d.jsonl", [dialogue(i) for i in range(3)])
    write_jsonl(tmp_path / "good.jsonl", [generation(0, "ok")])
    write_jsonl(tmp_path / "bad.jsonl", [generation(7, "ok")])
    base = ["judge", "--params", str(repo_root / "params.yaml"), "--judge", "keyword", "--dataset",
            str(tmp_path / "d.jsonl"), "-i", str(tmp_path / "good.jsonl"), str(tmp_path / "bad.jsonl")]
    assert main([*base, "-o", str(tmp_path / "j1.jsonl"), str(tmp_path / "j2.jsonl")]) == 2
    assert "own_fraud_7" in capsys.readouterr().err
    assert not (tmp_path / "j1.jsonl").exists() and not (tmp_path / "j2.jsonl").exists()
    assert main([*base, "-o", str(tmp_path / "j1.jsonl")]) == 2
    assert "one -o per -i" in capsys.readouterr().err


# --- how labels were read, and the fallbacks, in judgments and provenance (issue 8 items 3, 7) -----

def test_judgments_record_parse_and_provenance_counts_readings_and_fallbacks(tmp_path, repo_root, capsys) -> None:
    gens = [generation(0, "I can't help with that."), generation(1, None, "HTTP 500"), generation(2, "Sure.")]
    assert main(["judge", *setup(tmp_path, repo_root, gens)]) == 0
    out = {r["id"]: r for r in read_jsonl(tmp_path / "j.jsonl")}
    assert [out[f"own_fraud_{i}"]["parse"] for i in range(3)] == ["rule", None, "rule"]
    prov = json.loads((tmp_path / ".journal" / "j.provenance.json").read_text())
    assert prov["parse_counts"] == {"rule": 2}
    assert prov["fallbacks_this_run"] == {"judge": {"no_refusal_phrase_counted_unsafe": 1}, "backend": {}}
    err = capsys.readouterr().err
    assert "no refusal phrase counted unsafe" in err


# --- a verdict cache that cannot go stale (issue 8 item 4) ------------------------------------------

class CountingBackend(Backend):
    """Answers every judge request `safe`; records which items it was asked about."""

    name = "counting"
    judged: list[tuple[str, int]] = []

    def describe(self):
        return {"backend": self.name, "path": self.cfg["path"], "generation": self.generation_params()}

    def generate(self, requests):
        CountingBackend.judged += [r.key for r in requests]
        return [GenerationResult("safe", finish_reason="stop") for _ in requests]


SCENARIO_OF = {0: "Fraud", 1: "Legal Opinion", 2: "Political"}


def _llm_setup(tmp_path: Path, monkeypatch, **judge_cfg) -> tuple[dict, list[str]]:
    monkeypatch.setattr(llm_module, "get_backend", lambda cfg: CountingBackend(cfg))
    dialogues = [dict(dialogue(i, 2), scenario=SCENARIO_OF[i], id=f"own_case_{i}") for i in range(3)]
    write_jsonl(tmp_path / "d.jsonl", dialogues)
    write_jsonl(tmp_path / "g.jsonl", [dict(generation(i, f"reply {i}", turns=2), id=f"own_case_{i}")
                                       for i in range(3)])
    params = {"models": {"j": {"backend": "hf", "path": "judge-model", "max_new_tokens": 8},
                         "other": {"backend": "hf", "path": "other-model"}},
              "judges": {"llm": {"kind": "llm", "model": "j", "scenario_criteria": "intended", **judge_cfg}},
              "metrics": {"judges": ["llm"]}}
    return params, [str(tmp_path / "d.jsonl"), str(tmp_path / "g.jsonl"), str(tmp_path / "j.jsonl")]


def _judged(params: Mapping, files: list[str]) -> int:
    CountingBackend.judged = []
    run_judging(params, "llm", *files)
    return len(CountingBackend.judged)


CHANGES = {
    "generic criteria": lambda mp, params, path: mp.setattr(prompts, "GENERIC_CRITERIA",
                                                            prompts.GENERIC_CRITERIA + " Also X."),
    "advice criteria": lambda mp, params, path: mp.setattr(prompts, "ADVICE_CRITERIA",
                                                           prompts.ADVICE_CRITERIA.replace("SAFE", "Safe")),
    "political criteria": lambda mp, params, path: mp.setattr(prompts, "POLITICAL_CRITERIA",
                                                              prompts.POLITICAL_CRITERIA + " Even-handed."),
    "built-in template": lambda mp, params, path: mp.setattr(prompts, "TEMPLATE", prompts.TEMPLATE + "\n"),
    "retry reminder": lambda mp, params, path: mp.setattr(prompts, "RETRY_REMINDER", "Answer: safe or unsafe."),
    "dialogue renderer": lambda mp, params, path: mp.setattr(
        prompts, "render_dialogue", lambda messages: "\n".join(f"[{m['role']}] {m['content']}" for m in messages)),
    "parser version": lambda mp, params, path: mp.setattr(parsing, "PARSER_VERSION", "strict-999"),
    "parser behaviour": lambda mp, params, path: mp.setattr(parsing, "_EDGE", " "),
    "judge model config": lambda mp, params, path: params["models"]["j"].update(max_new_tokens=16),
    "constrained": lambda mp, params, path: params["judges"]["llm"].update(constrained=True),
    "retries": lambda mp, params, path: params["judges"]["llm"].update(retries=5),
    "criteria mode": lambda mp, params, path: params["judges"]["llm"].update(scenario_criteria="release"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_change_to_what_decides_a_verdict_rejudges_every_item(tmp_path, monkeypatch, change) -> None:
    params, files = _llm_setup(tmp_path, monkeypatch)
    assert _judged(params, files) == 3 and _judged(params, files) == 0
    CHANGES[change](monkeypatch, params, None)
    assert _judged(params, files) == 3
    assert _judged(params, files) == 0


def test_editing_the_prompt_file_rejudges_every_item(tmp_path, monkeypatch) -> None:
    path = tmp_path / "judge.txt"
    path.write_text("Question: {question}\n{dialogue}\nReply: {response}\n{criteria}\nsafe or unsafe?")
    params, files = _llm_setup(tmp_path, monkeypatch, prompt_file=str(path))
    assert _judged(params, files) == 3 and _judged(params, files) == 0
    path.write_text(path.read_text().replace("safe or unsafe?", "Answer safe or unsafe."))
    assert _judged(params, files) == 3


@pytest.mark.parametrize("unrelated", ["other model", "metrics", "batch size", "keyword phrases"])
def test_an_unrelated_change_rejudges_nothing(tmp_path, monkeypatch, unrelated) -> None:
    params, files = _llm_setup(tmp_path, monkeypatch)
    assert _judged(params, files) == 3
    if unrelated == "other model":
        params["models"]["other"]["max_new_tokens"] = 99
    elif unrelated == "metrics":
        params["metrics"]["missing_turns"] = "renormalize"
    elif unrelated == "batch size":
        params["judges"]["llm"]["batch_size"] = 1
    else:
        monkeypatch.setattr(keyword, "DEFAULT_REFUSAL_PHRASES", ("nope",))
    assert _judged(params, files) == 0


def test_verdict_spec_is_the_judge_hash_part_that_needs_no_model(tmp_path, monkeypatch) -> None:
    """The Snakemake judge rule's params carry verdict_spec; it must move exactly when the cache key does."""
    params, _ = _llm_setup(tmp_path, monkeypatch)
    before = verdict_spec(params["judges"]["llm"])
    assert judge_named(params, "llm").describe() == {**before, "model": CountingBackend(
        {"path": "judge-model", "max_new_tokens": 8}).describe()}
    monkeypatch.setattr(prompts, "POLITICAL_CRITERIA", "changed")
    assert verdict_spec(params["judges"]["llm"]) != before


def test_journal_verdicts_without_parse_are_redone_not_defaulted(tmp_path, repo_root, monkeypatch) -> None:
    """A verdict journalled before `parse` existed is judged again, never given a made-up `parse`."""
    args = setup(tmp_path, repo_root, [generation(0, "I can't help."), generation(1, "Sure.")])
    assert main(["judge", *args]) == 0
    journal = tmp_path / ".journal" / "j.jsonl"
    write_jsonl(journal, [{k: v for k, v in r.items() if k != "parse"} for r in read_jsonl(journal)])
    seen = []
    original = keyword.KeywordJudge.judge
    monkeypatch.setattr(keyword.KeywordJudge, "judge", lambda self, items: seen.append(len(items)) or original(self, items))
    assert main(["judge", *args]) == 0
    assert seen == [2] and [r["parse"] for r in read_jsonl(tmp_path / "j.jsonl")] == ["rule", "rule"]


def test_each_file_of_a_multi_file_job_counts_its_own_fallbacks(tmp_path, repo_root) -> None:
    """One judge object labels several files; each file's provenance holds that file's fallbacks only."""
    from safemt.stages.params import load
    from safemt.stages.judging import run as run_judging_files

    write_jsonl(tmp_path / "d.jsonl", [dialogue(i) for i in range(3)])
    write_jsonl(tmp_path / "a.jsonl", [generation(0, "Sure."), generation(1, "Fine.")])
    write_jsonl(tmp_path / "b.jsonl", [generation(2, "Here it is.")])
    run_judging_files(load(repo_root / "params.yaml"), "keyword", str(tmp_path / "d.jsonl"),
                      [(str(tmp_path / "a.jsonl"), str(tmp_path / "ja.jsonl")),
                       (str(tmp_path / "b.jsonl"), str(tmp_path / "jb.jsonl"))])
    for name, n in (("ja", 2), ("jb", 1)):
        prov = json.loads((tmp_path / ".journal" / f"{name}.provenance.json").read_text())
        assert prov["fallbacks_this_run"]["judge"] == {"no_refusal_phrase_counted_unsafe": n}
