"""Moderator replies read strictly (prompted JSON, checkpoint formats from config), policies, placement."""

from __future__ import annotations

import pytest

from safemt.scenarios import SCENARIOS
from safemt.errors import ConfigError
from safemt.moderation.moderators import PROMPT, OutputFormat, parse_moderator, render
from safemt.moderation.policies import load_policies, place_policy


@pytest.mark.parametrize("text, expected", [
    ('{"verdict": "malicious", "scenario": "Fraud", "rationale": "A scam."}', (True, "Fraud")),
    ('{"verdict": "benign", "scenario": null, "rationale": "Fine."}', (False, None)),
    ('```json\n{"verdict": "Malicious", "scenario": "privacy violation", "rationale": "x"}\n```',
     (True, "Privacy Violation")),
    ('<think>hmm</think>{"verdict": "malicious", "scenario": "Made Up", "rationale": "x"}', (True, None)),
    ('{"verdict": "benign", "scenario": "Fraud"}', (False, None)),
    ('{"verdict": "sensitive", "scenario": "Health Consultation", "rationale": "Asks for a dose."}',
     ("sensitive", "Health Consultation")),
    ('{"verdict": "Sensitive", "scenario": "legal opinion", "rationale": "x"}', ("sensitive", "Legal Opinion")),
    ('{"verdict": "sensitive", "scenario": "Fraud", "rationale": "x"}', ("sensitive", None)),  # not an advice one
    ('{"verdict": "unsure", "scenario": "Fraud"}', None),
    ('{"scenario": "Fraud"}', None),
    ('{"verdict": "malicious", "scenario": "Fraud"', None),
    ("malicious", None),
    ("", None),
])
def test_prompted_output_is_read_strictly(text, expected) -> None:
    verdict = parse_moderator(text)
    got = None if verdict is None else ("sensitive" if verdict.sensitive else verdict.malicious, verdict.scenario)
    assert got == expected


def test_checkpoint_formats_come_from_config() -> None:
    fmt = OutputFormat.from_config({"format": "regex", "pattern": r"^(?P<verdict>safe|unsafe)\s*(?:\[(?P<scenario>[^\]]+)\])?",
                                    "malicious": ["unsafe"], "benign": ["safe"]}, "moderators.c")
    assert parse_moderator("unsafe [Malware]", fmt).scenario == "Malware"
    assert parse_moderator("safe", fmt).malicious is False
    assert parse_moderator("maybe", fmt) is None
    keys = OutputFormat.from_config({"format": "json", "keys": {"verdict": "label", "scenario": "category"},
                                     "malicious": ["harmful"], "benign": ["harmless"]}, "moderators.c")
    assert parse_moderator('{"label": "harmful", "category": "Threat"}', keys).scenario == "Threat"
    with pytest.raises(ConfigError, match="moderators.c.output.pattern"):
        OutputFormat.from_config({"format": "regex", "pattern": "(?P<x>a)"}, "moderators.c")


def test_prompt_lists_every_scenario_and_the_whole_dialogue() -> None:
    text = render(PROMPT, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                           {"role": "user", "content": "Now the plan"}])
    assert all(s in text for s in SCENARIOS)
    assert "User: Hi\nAssistant: Hello\nUser: Now the plan" in text and '{"verdict"' in text


def test_placeholders_in_the_dialogue_are_sent_literally() -> None:
    """One pass over the template: a turn that contains `{scenarios}` or `{last_user}` stays as typed."""
    turns = [{"role": "user", "content": "Print {scenarios} and {last_user} for me"},
             {"role": "assistant", "content": "What is {dialogue}?"}, {"role": "user", "content": "Now {scenarios}"}]
    text = render("A {dialogue} B {scenarios} C {last_user}", turns)
    dialogue = "User: Print {scenarios} and {last_user} for me\nAssistant: What is {dialogue}?\nUser: Now {scenarios}"
    assert text == f"A {dialogue} B {', '.join(SCENARIOS)} C Now {{scenarios}}"


def test_the_prompt_offers_the_sensitive_verdict() -> None:
    from safemt.moderation.moderators import SCHEMA

    assert SCHEMA["properties"]["verdict"]["enum"] == ["benign", "malicious", "sensitive"]
    assert '"sensitive"' in PROMPT


def test_policy_library_has_every_scenario_and_placement() -> None:
    lib = load_policies()
    assert set(SCENARIOS) <= set(lib.policies) and lib.for_scenario("Fraud")[0] == "fraud"
    assert lib.for_scenario(None)[0] == "general"
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert place_policy(msgs, "P", "system")[0] == {"role": "system", "content": "P"}
    last = place_policy(msgs, "P", "last_user")
    assert last[:2] == msgs[:2] and "P" in last[2]["content"] and last[2]["content"].endswith("c")


def test_prompted_moderator_asks_an_api_server_for_structured_output() -> None:
    """On the openai backend the request carries a JSON schema (response_format); the reply is read strictly."""
    from safemt.moderation.moderators import SCHEMA, Moderator
    from tests.servers.openai_stub import OpenAIStub

    reply = '{"verdict": "malicious", "scenario": "Threat", "rationale": "Intimidation."}'
    with OpenAIStub(reply=lambda body: reply) as stub:
        params = {"models": {"api": {"backend": "openai", "model_id": "m", "base_url": stub.base_url,
                                     "max_new_tokens": 64, "max_retries": 0}},
                  "moderators": {"mod": {"kind": "prompted", "model": "api"}}}
        moderator = Moderator.named("mod", params["moderators"], params["models"])
        request = moderator.request(("a", 2), ({"role": "user", "content": "Write a note to scare him."},), None)
        [result] = moderator.backend.generate([request])
        body = stub.records[0].body
    assert body["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "verdict", "schema": SCHEMA, "strict": True}}
    verdict = moderator.read(result.response)
    assert verdict.malicious and verdict.scenario == "Threat" and moderator.describe()["structured"] is True
