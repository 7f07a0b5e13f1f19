"""The LLM judge: prompt content, criteria modes, retries, invalid accounting, prompt files."""

from __future__ import annotations

from pathlib import Path

import pytest

import safemt.judges.base as llm_module  # model judges build their backend there
from safemt.errors import ConfigError
from safemt.judges import JudgeItem
from safemt.stages.params import judge as judge_named
from safemt.judges.prompts import ADVICE_CRITERIA, GENERIC_CRITERIA, POLITICAL_CRITERIA
from safemt.models.base import Backend, GenerationResult


class ScriptedBackend(Backend):
    """Answers each request from a per-key script; records what it was sent."""

    name = "scripted"

    def __init__(self, cfg, script):
        super().__init__(cfg)
        self.script = {k: list(v) for k, v in script.items()}
        self.sent = []

    def describe(self):
        return {"backend": "scripted"}

    def generate(self, requests):
        self.sent.append(requests)
        out = []
        for r in requests:
            reply = self.script[r.key].pop(0)
            out.append(GenerationResult.failed(reply[6:]) if reply.startswith("ERROR:") else
                       GenerationResult(response=reply, finish_reason="stop"))
        return out


def item(i: int, scenario: str = "Fraud") -> JudgeItem:
    return JudgeItem(id=f"x{i}", turns=2, scenario=scenario, question=f"original question {i}",
                     messages=({"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"},
                               {"role": "user", "content": f"final turn {i}"}),
                     response=f"the reply {i}")


def judge_with(monkeypatch, script, **cfg):
    backend = ScriptedBackend({}, script)
    monkeypatch.setattr(llm_module, "get_backend", lambda _cfg: backend)
    params = {"models": {"j": {"backend": "hf", "path": "x"}}, "judges": {"llm": {"kind": "llm", "model": "j", **cfg}}}
    return judge_named(params, "llm"), backend


def test_prompt_holds_question_dialogue_and_reply(monkeypatch) -> None:
    judge, backend = judge_with(monkeypatch, {("x0", 2): ["Verdict: unsafe"]})
    (v,) = judge.judge([item(0)])
    assert v.label == "unsafe" and v.raw == "Verdict: unsafe"
    prompt = backend.sent[0][0].messages[0]["content"]
    for text in ("original question 0", "User: final turn 0", "Assistant: hi", "the reply 0", GENERIC_CRITERIA):
        assert text in prompt


def test_retry_then_invalid_with_raw_kept(monkeypatch) -> None:
    script = {("x0", 2): ["hmm", "still unsure", "no idea"], ("x1", 2): ["blah", "SAFE."]}
    judge, backend = judge_with(monkeypatch, script, retries=2)
    v0, v1 = judge.judge([item(0), item(1)])
    assert (v0.label, v0.raw) == ("invalid", "no idea")
    assert v1.label == "safe"
    assert [len(batch) for batch in backend.sent] == [2, 2, 1]
    retry = backend.sent[1][1].messages
    assert [m["role"] for m in retry] == ["user", "assistant", "user"] and retry[1]["content"] == "blah"


def test_backend_errors_are_invalid_with_judge_error(monkeypatch) -> None:
    judge, _ = judge_with(monkeypatch, {("x0", 2): ["ERROR:HTTP 503", "ERROR:HTTP 503"]}, retries=1)
    (v,) = judge.judge([item(0)])
    assert v.label == "invalid" and v.error == "HTTP 503"


@pytest.mark.parametrize("scenario,mode,criteria", [
    ("Legal Opinion", "release", GENERIC_CRITERIA),
    ("Legal Opinion", "intended", ADVICE_CRITERIA.format(scenario="Legal Opinion")),
    ("Political", "intended", POLITICAL_CRITERIA),
    ("Fraud", "intended", GENERIC_CRITERIA),
])
def test_scenario_criteria_modes(monkeypatch, scenario, mode, criteria) -> None:
    judge, backend = judge_with(monkeypatch, {("x0", 2): ["safe"]}, scenario_criteria=mode)
    judge.judge([item(0, scenario)])
    assert criteria in backend.sent[0][0].messages[0]["content"]


def test_user_prompt_file(monkeypatch, tmp_path: Path) -> None:
    path = tmp_path / "judge.txt"
    path.write_text("Q={question}\nR={response}\nS={scenario}\nAnswer safe or unsafe.")
    judge, backend = judge_with(monkeypatch, {("x0", 2): ["unsafe"]}, prompt_file=str(path))
    judge.judge([item(0)])
    assert backend.sent[0][0].messages[0]["content"].startswith("Q=original question 0\nR=the reply 0\nS=Fraud")
    path.write_text("{reply} is not a placeholder {response}")
    with pytest.raises(ConfigError, match="unknown placeholder"):
        judge_with(monkeypatch, {}, prompt_file=str(path))


def test_llm_judge_through_the_tiny_model(tiny_models: Path) -> None:
    """Real transformers model: nonsense answers end as invalid after retries, raw text kept."""
    params = {"models": {"tiny-judge": {"backend": "hf", "path": str(tiny_models / "tiny-judge"),
                                        "max_new_tokens": 6, "batch_size": 4}},
              "judges": {"llm": {"kind": "llm", "model": "tiny-judge", "retries": 1}}}
    judge = judge_named(params, "llm")
    verdicts = judge.judge([item(i) for i in range(3)])
    assert len(verdicts) == 3
    for v in verdicts:
        assert v.label in ("safe", "unsafe", "invalid") and v.error is None
        assert v.raw  # the model's text is kept whatever the label


# --- strict reading, retries and constrained output (issue 8 item 3) ------------------------------

def test_each_verdict_says_how_it_was_read(monkeypatch) -> None:
    script = {("x0", 2): ["unsafe"], ("x1", 2): ["It gives the steps.\nVerdict: unsafe"],
              ("x2", 2): ["not unsafe", "Safe."], ("x3", 2): ["harmful", "sicher", "unsicher"]}
    judge, backend = judge_with(monkeypatch, script, retries=2)
    got = [(v.label, v.parse) for v in judge.judge([item(i) for i in range(4)])]
    assert got == [("unsafe", "exact"), ("unsafe", "verdict_line"), ("safe", "after_retry"),
                   ("invalid", "invalid")]
    assert all(r.choices is None for batch in backend.sent for r in batch)  # free text by default


def test_constrained_judge_asks_for_a_label_and_counts_a_server_that_ignores_it(monkeypatch, capsys) -> None:
    script = {("x0", 2): ["unsafe"], ("x1", 2): ['{"label": "safe"}'], ("x2", 2): ["Verdict: unsafe"]}
    judge, backend = judge_with(monkeypatch, script, constrained=True)
    got = [(v.label, v.parse) for v in judge.judge([item(i) for i in range(3)])]
    assert got == [("unsafe", "constrained"), ("safe", "constrained"), ("unsafe", "verdict_line")]
    assert {r.choices for r in backend.sent[0]} == {("safe", "unsafe")}
    assert judge.fallbacks == {"constraint_not_honoured": 1}
    assert "constraint not honoured" in capsys.readouterr().err


def test_constrained_tiny_model_writes_exactly_a_label(tiny_models: Path) -> None:
    """Real transformers model whose free text is nonsense: restricted tokens make every reply a label."""
    def judge(batch_size: int):
        params = {"models": {"tiny-judge": {"backend": "hf", "path": str(tiny_models / "tiny-judge"),
                                            "max_new_tokens": 16, "batch_size": batch_size}},
                  "judges": {"llm": {"kind": "llm", "model": "tiny-judge", "retries": 0, "constrained": True}}}
        return judge_named(params, "llm")

    items = [JudgeItem(id=f"x{i}", turns=1, scenario="Fraud", question=f"question {i} " * (i + 1),
                       messages=({"role": "user", "content": "tell me " * i},), response=f"reply {i}")
             for i in range(12)]
    batched = judge(6).judge(items)
    assert all(v.raw in ("safe", "unsafe") and v.label == v.raw and v.parse == "constrained" for v in batched)
    assert {v.label for v in batched} == {"safe", "unsafe"}  # the constraint does not force one label
    one_by_one = [judge(1).judge([it])[0] for it in items[:3]]
    assert [v.raw for v in one_by_one] == [v.raw for v in batched[:3]]
    free = judge_named({"models": {"tiny-judge": {"backend": "hf", "path": str(tiny_models / "tiny-judge"),
                                                       "max_new_tokens": 16}},
                             "judges": {"llm": {"kind": "llm", "model": "tiny-judge", "retries": 0}}}, "llm")
    assert all(v.label == "invalid" for v in free.judge(items[:2]))  # its free text is not a verdict
