"""Each defense inside `safemt infer`, driven by tiny models forced to a verdict.

Oracles come from the issue's text: a flagged dialogue gets the fixed refusal (guard) or the
scenario's policy in the prompt the target is actually fed (moderator); an unflagged one gets the
untouched prompt; a blocked dialogue never reaches the target.
"""

from __future__ import annotations

import json

import pytest
import yaml

from safemt import cli
from safemt.stages.inference import run as run_inference
from safemt.files import read_jsonl
from safemt.moderation.settings import REFUSAL
from safemt.moderation.policies import load_policies

FRAUD_POLICY = load_policies().policies["Fraud"]


def _run(params, dataset, tmp_path, defense, name="out.jsonl"):
    out = tmp_path / defense / name
    run_inference(params, "tiny-vlm-a", dataset, out, defense=defense)
    return read_jsonl(out)


def test_guard_input_flagged_blocks_without_calling_the_target(params, dataset, tmp_path, rendered) -> None:
    records = _run(params, dataset, tmp_path, "guard_input")
    assert len(records) == 6
    assert "tiny-vlm-a" not in rendered  # the target never rendered a prompt
    assert len(rendered["guard-unsafe"]) == 6
    for r in records:
        assert r["blocked_by"] == "guard-unsafe" and r["response"] == REFUSAL and r["finish_reason"] == "blocked"
        assert r["defense_verdict"]["unsafe"] is True and r["defense_verdict"]["categories"] == ["S2"]
        assert r["defense_verdict"]["parse"] == "ok" and r["error"] is None


def test_guard_input_unflagged_leaves_the_prompt_untouched(params, dataset, tmp_path, rendered) -> None:
    _run(params, dataset, tmp_path, "none")
    plain = list(rendered.pop("tiny-vlm-a"))
    records = _run(params, dataset, tmp_path, "guard_input.guard-safe")
    assert rendered["tiny-vlm-a"] == plain
    assert all(r["blocked_by"] is None and r["defense_verdict"]["unsafe"] is False for r in records)
    assert all(r["response"] != REFUSAL for r in records)


def test_guard_output_flagged_refuses_and_keeps_the_answer_for_audit(params, dataset, tmp_path, rendered) -> None:
    answers = {(r["id"], r["turns"]): r["response"] for r in _run(params, dataset, tmp_path, "none")}
    records = _run(params, dataset, tmp_path, "guard_output")
    for r in records:
        assert r["blocked_by"] == "guard-unsafe" and r["response"] == REFUSAL
        assert r["target_response"] == answers[(r["id"], r["turns"])]
    # the guard read each dialogue with the target's answer as the last assistant turn
    answer = answers[("own_case_0", 2)]
    assert any(p.rstrip().endswith(f"<|im_start|>assistant\n{answer}<|im_end|>\n<|im_start|>assistant")
               or f"assistant\n{answer}<|im_end|>" in p for p in rendered["guard-unsafe"])


def test_moderator_malicious_injects_the_scenario_policy_as_system(params, dataset, tmp_path, rendered) -> None:
    records = _run(params, dataset, tmp_path, "moderator")
    assert len(rendered["tiny-vlm-a"]) == 6
    for prompt in rendered["tiny-vlm-a"]:
        assert prompt.startswith(f"<|im_start|>system\n{FRAUD_POLICY}<|im_end|>\n<|im_start|>user\n")
    for r in records:
        assert r["policy_id"] == "fraud" and r["blocked_by"] is None
        assert r["defense_verdict"]["verdict"] == "malicious" and r["defense_verdict"]["scenario"] == "Fraud"
    # the moderator read the whole dialogue
    assert any("User: Question 0 about picture 0?\nAssistant: Sure! Here is answer 1.\nUser: Question 1" in p
               for p in rendered["mod-malicious"])


def test_moderator_policy_in_the_last_user_turn(params, dataset, tmp_path, rendered) -> None:
    params["moderation"]["policy_placement"] = "last_user"
    _run(params, dataset, tmp_path, "moderator")
    for prompt in rendered["tiny-vlm-a"]:
        assert "<|im_start|>system" not in prompt
        last_user = prompt.rsplit("<|im_start|>user\n", 1)[1]
        assert FRAUD_POLICY in last_user and last_user.split("<|im_end|>")[0].endswith("?")


def test_moderator_benign_leaves_the_prompt_untouched(params, dataset, tmp_path, rendered) -> None:
    _run(params, dataset, tmp_path, "none")
    plain = list(rendered.pop("tiny-vlm-a"))
    records = _run(params, dataset, tmp_path, "moderator.mod-benign")
    assert rendered["tiny-vlm-a"] == plain
    assert all(r["policy_id"] is None and r["defense_verdict"]["verdict"] == "benign" for r in records)


def test_moderator_sensitive_injects_the_advice_policy_without_flagging(params, dataset, tmp_path, rendered) -> None:
    """An advice request, benign in form: the scenario's disclaimer policy reaches the target; nothing is blocked."""
    policy_id, text = load_policies().for_scenario("Health Consultation")
    records = _run(params, dataset, tmp_path, "moderator.mod-sensitive")
    assert len(rendered["tiny-vlm-a"]) == 6
    assert all(p.startswith(f"<|im_start|>system\n{text}<|im_end|>\n") for p in rendered["tiny-vlm-a"])
    assert all(r["policy_id"] == policy_id and r["blocked_by"] is None and r["defense_verdict"]["verdict"] == "sensitive"
               and r["defense_verdict"]["scenario"] == "Health Consultation" for r in records)


def test_unreadable_moderator_reply_takes_the_fallback_and_is_counted(params, dataset, tmp_path, rendered,
                                                                       capsys) -> None:
    records = _run(params, dataset, tmp_path, "moderator.mod-garbled")
    assert all(r["defense_verdict"]["parse"] == "fallback" and r["policy_id"] == "general" for r in records)
    general = load_policies().policies["general"]
    assert all(p.startswith(f"<|im_start|>system\n{general}") for p in rendered["tiny-vlm-a"])
    assert "6 unreadable moderator replies took on_parse_error=malicious" in capsys.readouterr().err
    prov = json.loads((tmp_path / "moderator.mod-garbled" / ".journal" / "out.provenance.json").read_text())
    assert prov["defense_this_run"]["parse_failures"] == 6


def test_defense_is_in_the_config_hash_and_a_rerun_reuses_verdicts(params, dataset, tmp_path, rendered) -> None:
    first = _run(params, dataset, tmp_path, "moderator")
    calls = len(rendered["mod-malicious"])
    again = _run(params, dataset, tmp_path, "moderator")
    assert again == first and len(rendered["mod-malicious"]) == calls  # resumed from the journal
    params["moderation"]["policy_placement"] = "last_user"
    changed = _run(params, dataset, tmp_path, "moderator")
    assert {r["config_hash"] for r in changed}.isdisjoint({r["config_hash"] for r in first})
    none = _run(params, dataset, tmp_path, "none")
    assert {r["config_hash"] for r in none}.isdisjoint({r["config_hash"] for r in first})


@pytest.mark.parametrize("edit, key", [
    (lambda p: p["moderation"].update(guard="nope"), "key moderation.guard: unknown guard 'nope'"),
    (lambda p: p["guards"]["guard-safe"].pop("input"), "key guards.guard-safe: 'input' is a required property"),
    (lambda p: p.update(defenses=["moderator.nope"]), "key defenses.0: unknown moderator 'nope'"),
    (lambda p: p["guards"]["guard-safe"]["input"].update(image=True, caption=None),
     "key guards.guard-safe.input.image"),
])
def test_bad_moderation_config_is_one_line_exit_2_nothing_written(params, dataset, tmp_path, capsys, edit,
                                                                  key) -> None:
    edit(params)
    params.setdefault("defenses", ["guard_input"])
    if "image" in key:  # llama_guard_4 sees images, but the forced model is text-only: the guard says so
        params["guards"]["guard-safe"]["adapter"] = "qwen3guard"
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params), encoding="utf-8")
    out = tmp_path / "never.jsonl"
    code = cli.main(["infer", "--params", str(params_file), "--model", "tiny-vlm-a", "--dataset", str(dataset),
                     "-o", str(out), "--defense", "guard_input"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and key in err[0], err
    assert not out.exists() and not (tmp_path / ".journal").exists()


def test_policy_file_missing_a_scenario(params, dataset, tmp_path, capsys) -> None:
    library = yaml.safe_load(open(load_policies().source, encoding="utf-8"))
    del library["Malware"]
    path = tmp_path / "policies.yaml"
    path.write_text(yaml.safe_dump(library), encoding="utf-8")
    params["moderation"]["policies"] = str(path)
    params["defenses"] = ["moderator"]
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params), encoding="utf-8")
    out = tmp_path / "never.jsonl"
    code = cli.main(["infer", "--params", str(params_file), "--model", "tiny-vlm-a", "--dataset", str(dataset),
                     "-o", str(out), "--defense", "moderator"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"safemt: error: {path}, key Malware: policy file has no policy for this scenario"]
    assert not out.exists()
