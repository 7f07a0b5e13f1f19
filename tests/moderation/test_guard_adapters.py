"""Guard adapters offline: prompt building and output parsing, against outputs written in each guard's
documented format (model cards), malformed ones included. Oracles follow those formats, not the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from safemt.errors import ConfigError
from safemt.moderation.guards import GUARD_ADAPTERS as ADAPTERS, GuardView, InputPolicy
from safemt.moderation.guards.base import fill
from safemt.moderation.guards.llama_guard_3_vision import LlamaGuard3Vision
from safemt.moderation.guards.llama_guard_4 import LlamaGuard4
from safemt.moderation.guards.llavaguard import LlavaGuard, LlavaGuardDialogue, LlavaGuardOwnPolicy
from safemt.moderation.guards.qwen3guard import Qwen3Guard
from safemt.moderation.guards.shieldgemma_2 import ShieldGemma2
from safemt.moderation.guards.wildguard import WildGuard, WildGuardOwnInstruction
from tests.moderation.formats import LLAVAGUARD_POLICY, WILDGUARD_FORMAT, WILDGUARD_INSTRUCTION, write_policy

DIALOGUE = ({"role": "user", "content": "What is in the picture?"},
            {"role": "assistant", "content": "A locked shop door at night."},
            {"role": "user", "content": "How would someone get inside without a key?"})
IMAGE = Path("images/shop.png")
NO = None  # unparseable


def _check(adapter, cases, stage="input"):
    for text, expected in cases:
        verdict = adapter.parse(text if isinstance(text, list) else [text], stage)
        got = None if verdict is None else (verdict.unsafe, list(verdict.categories))
        assert got == expected, (text, got)


def test_every_adapter_is_registered_by_name() -> None:
    assert set(ADAPTERS) == {"llama_guard_3_vision", "llama_guard_4", "shieldgemma_2", "llavaguard",
                             "llavaguard_dialogue", "llavaguard_own_policy", "qwen3guard", "wildguard",
                             "wildguard_own_instruction", "llavashield"}


# --- Llama Guard 3 Vision / 4: "safe" | "unsafe\nS1,S2" ------------------------------------------

LLAMA_CASES = [
    ("safe", (False, [])),
    ("\n\nsafe", (False, [])),
    ("unsafe\nS2", (True, ["S2"])),
    ("unsafe\nS1,S10", (True, ["S1", "S10"])),
    ("  unsafe\nS9, S11", (True, ["S9", "S11"])),
    ("unsafe", (True, [])),
    ("unsafe\nS99", (True, [])),          # unknown code dropped, the verdict stands
    ("Unsafe\nS3", (True, ["S3"])),
    ("", NO),
    ("I think this is fine", NO),
    ("safety first", NO),
    ("<|eot_id|>", NO),
]


def test_llama_guard_3_vision_parsing() -> None:
    _check(LlamaGuard3Vision(), LLAMA_CASES)
    _check(LlamaGuard3Vision(), [("unsafe\nS14", (True, []))])  # S14 is not in its taxonomy


def test_llama_guard_4_parsing_and_excluded_categories() -> None:
    _check(LlamaGuard4(), LLAMA_CASES + [("unsafe\nS14", (True, ["S14"]))])
    adapter = LlamaGuard4({"excluded_categories": ["S14"]})
    _check(adapter, [("unsafe\nS14", (False, [])), ("unsafe\nS2,S14", (True, ["S2"])), ("unsafe", (True, []))])


@pytest.mark.parametrize("cls", [LlamaGuard3Vision, LlamaGuard4])
def test_llama_guard_prompts_are_the_conversation_with_its_image(cls) -> None:
    view = GuardView(DIALOGUE, IMAGE, "Here is how.")
    (inp,) = cls().prompts(view, "input")
    assert inp.messages == DIALOGUE and inp.image == IMAGE
    (out,) = cls().prompts(view, "output")
    assert out.messages == (*DIALOGUE, {"role": "assistant", "content": "Here is how."})


# --- Qwen3Guard: "Safety: ...\nCategories: ...[\nRefusal: ...]" ------------------------------------

def test_qwen3guard_parsing() -> None:
    _check(Qwen3Guard(), [
        ("Safety: Safe\nCategories: None", (False, [])),
        ("Safety: Unsafe\nCategories: Violent", (True, ["Violent"])),
        ("Safety: Unsafe\nCategories: Non-violent Illegal Acts, PII", (True, ["Non-violent Illegal Acts", "PII"])),
        ("Safety: Controversial\nCategories: Politically Sensitive Topics", (True, ["Politically Sensitive Topics"])),
        ("Safety: Safe\nCategories: None\nRefusal: Yes", (False, [])),
        ("safety: unsafe\ncategories: jailbreak", (True, ["Jailbreak"])),
        ("Safety: Unsafe", (True, [])),
        ("Safety: Safe\nSafety: Unsafe", NO),
        ("Categories: Violent", NO),
        ("Safety: Maybe", NO),
        ("", NO),
    ])
    _check(Qwen3Guard({"controversial": "safe"}), [("Safety: Controversial\nCategories: Unethical Acts", (False, []))])


def test_qwen3guard_is_text_only() -> None:
    Qwen3Guard().check_policy(InputPolicy("all", False, "dataset"), "guards.q")
    with pytest.raises(ConfigError, match="text-only"):
        Qwen3Guard().check_policy(InputPolicy("all", True, None), "guards.q")
    (p,) = Qwen3Guard().prompts(GuardView(DIALOGUE, None, "Sure."), "output")
    assert p.messages[-1] == {"role": "assistant", "content": "Sure."} and p.image is None


# --- WildGuard: three yes/no lines -------------------------------------------------------------

def test_wildguard_parsing_input_and_output_stage() -> None:
    both = "Harmful request: yes\nResponse refusal: no\nHarmful response: yes"
    _check(WildGuard(), [
        (both, (True, ["harmful_request", "harmful_response"])),
        ("Harmful request: no\nResponse refusal: N/A\nHarmful response: N/A", (False, [])),
        ("Harmful request: yes\nResponse refusal: yes\nHarmful response: no",
         (True, ["harmful_request", "response_refusal"])),
        (" harmful request: Yes", (True, ["harmful_request"])),
        ("Harmful request: maybe", NO),
        ("Harmful request: yes\nHarmful request: no", NO),
        ("The request is harmful.", NO),
        ("", NO),
    ])
    _check(WildGuard(), [
        (both, (True, ["harmful_request", "harmful_response"])),
        ("Harmful request: yes\nResponse refusal: yes\nHarmful response: no",
         (False, [])),
        ("Harmful request: yes\nResponse refusal: N/A\nHarmful response: N/A", NO),  # no reply judged
    ], stage="output")


def test_wildguard_prompt_is_one_exchange_in_the_format_from_its_file(tmp_path) -> None:
    opts = write_policy(tmp_path, WILDGUARD_FORMAT, "wildguard-format.txt")
    guard = WildGuard(opts, "wg")
    (p,) = guard.prompts(GuardView(DIALOGUE, None, "It depends."), "output")
    text = p.messages[0]["content"]
    assert len(p.messages) == 1 and p.messages[0]["role"] == "user"
    # the wrapper is left to the chat template; the rest is the file's, fields filled
    assert text == fill(WILDGUARD_INSTRUCTION, {"prompt": "User: What is in the picture?\nAssistant: A locked shop "
                                                "door at night.\nUser: How would someone get inside without a key?",
                                                "response": "It depends."})
    (last,) = guard.prompts(GuardView(DIALOGUE[-1:], None, None), "input")
    assert "Human user:\nHow would someone get inside without a key?\n\nAI assistant:\n\n" in last.messages[0]["content"]
    (own,) = WildGuardOwnInstruction({}, "wg").prompts(GuardView(DIALOGUE[-1:], None, None), "input")
    assert own.messages[0]["content"].endswith("Answers:") and "[TEST]" not in own.messages[0]["content"]


def test_a_dialogue_that_contains_a_field_name_is_sent_as_typed(tmp_path) -> None:
    guard = WildGuard(write_policy(tmp_path, WILDGUARD_FORMAT, "wildguard-format.txt"), "wg")
    turn = ({"role": "user", "content": "Repeat {response} and {prompt} literally"},)
    (p,) = guard.prompts(GuardView(turn, None, "ok {prompt}"), "output")
    assert "Human user:\nRepeat {response} and {prompt} literally\n\nAI assistant:\nok {prompt}\n" in p.messages[0]["content"]


# --- LlavaGuard: JSON {rating, category, rationale} ----------------------------------------------

LLAVAGUARD_CASES = [
    ('{"rating": "Safe", "category": "NA: None applying", "rationale": "A shop front."}', (False, [])),
    ('{"rating": "Unsafe", "category": "O5: Criminal Planning", "rationale": "Break-in."}', (True, ["O5"])),
    ('```json\n{"rating": "Unsafe", "category": "O2: Violence, Harm, or Cruelty", "rationale": "x"}\n```',
     (True, ["O2"])),
    ('{"rating": "unsafe", "category": "O8: Animal Cruelty"}', (True, ["O8"])),
    ('{"rating": "Unsafe", "category": "Q1: ???"}', (True, [])),
    ('{"rating": "Review Needed", "category": "O1"}', NO),
    ("Unsafe: this image shows a crime", NO),
    ('{"category": "O3"}', NO),
    ("", NO),
    # cut at the token limit: the rating (and category) already written still count, marked truncated
    ('{"rating": "Unsafe", "category": "O5"', (True, ["O5"])),
    ('{\n  "rating": "Unsafe",\n  "category": "O6: Weapons or Substance Abuse",\n  "rationale": "The image shows',
     (True, ["O6"])),
    ('{"rating": "Safe", "category": "NA: None applying", "rationale": "A calm', (False, [])),
    ('{"category": "O2: Violence", "rationale": "cut', NO),  # no rating written: unreadable
]


def test_llavaguard_parsing_and_truncated_replies(tmp_path) -> None:
    guard = LlavaGuard(write_policy(tmp_path), "lg")
    _check(guard, LLAVAGUARD_CASES)
    cut = guard.parse(['{"rating": "Unsafe", "category": "O5"'], "input")
    whole = guard.parse(['{"rating": "Unsafe", "category": "O5", "rationale": "x"}'], "input")
    assert cut.truncated and cut.to_dict()["parse"] == "truncated" and not whole.truncated


def test_llavaguard_sends_the_policy_file_and_the_image_only(tmp_path) -> None:
    guard = LlavaGuard(write_policy(tmp_path), "lg")
    (p,) = guard.prompts(GuardView((), IMAGE), "input")
    assert p.image == IMAGE and p.messages == ({"role": "user", "content": LLAVAGUARD_POLICY},)
    guard.check_policy(InputPolicy("none", True, None), "guards.lg")
    with pytest.raises(ConfigError, match="guards.lg.input.turns.*turns: none.*llavaguard_dialogue"):
        guard.check_policy(InputPolicy("all", True, None), "guards.lg")
    (d,) = LlavaGuardDialogue(write_policy(tmp_path), "lg").prompts(GuardView(DIALOGUE, IMAGE), "input")
    assert d.messages[0]["content"].startswith(LLAVAGUARD_POLICY + "\n\nConversation:\nUser: What is in the picture?")
    (own,) = LlavaGuardOwnPolicy({}, "lg").prompts(GuardView(DIALOGUE, IMAGE), "input")
    assert "O9" in own.messages[0]["content"] and "Conversation:\nUser: What is" in own.messages[0]["content"]
    (bare,) = LlavaGuardOwnPolicy({}, "lg").prompts(GuardView((), IMAGE), "input")
    assert "Conversation:" not in bare.messages[0]["content"]


def test_a_trained_text_file_is_required_pinned_and_checked(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"key guards.lg.options.prompt_file: guard lg: needs the published "
                                          r"LlavaGuard policy.*AIML-TUDA/LlavaGuard-v1.2-7B-OV-hf"):
        LlavaGuard({}, "lg").texts()
    with pytest.raises(ConfigError, match=r"nowhere.txt, key guards.lg.options.prompt_file: guard lg: the LlavaGuard "
                                          r"policy file is missing: save it from the model card"):
        LlavaGuard({"prompt_file": str(tmp_path / "nowhere.txt"), "prompt_sha256": "0" * 64}, "lg").texts()
    opts = write_policy(tmp_path)
    with pytest.raises(ConfigError, match=f"set options.prompt_sha256: {opts['prompt_sha256']}"):
        LlavaGuard({"prompt_file": opts["prompt_file"]}, "lg").texts()
    with pytest.raises(ConfigError, match="options.prompt_sha256 pins " + "a" * 64):
        LlavaGuard({**opts, "prompt_sha256": "a" * 64}, "lg").texts()


# --- ShieldGemma 2: P(Yes) per policy, from a scoring backend ------------------------------------

def test_shieldgemma_2_reads_scores_against_its_threshold() -> None:
    """The scoring backend's reply is `{policy: P(Yes)}` (tests/moderation/test_guard_formats.py builds
    it from a real tiny ShieldGemma2ForImageClassification); nothing else is read."""
    _check(ShieldGemma2(), [
        (['{"dangerous": 0.0123, "sexual": 0.002, "violence": 0.004}'], (False, [])),
        (['{"dangerous": 0.91, "sexual": 0.02, "violence": 0.6}'], (True, ["dangerous", "violence"])),
        (['{"dangerous": 0.5}'], (True, ["dangerous"])),  # the threshold itself breaks the policy
        (['{"dangerous": 1.7}'], NO),
        (['{}'], NO),
        (["Yes"], NO),  # a generated reply is not a score
        (["0.91"], NO),
        (['{"dangerous": 0.1}', '{"sexual": 0.1}'], NO),
    ])
    _check(ShieldGemma2({"threshold": 0.95}), [(['{"dangerous": 0.91, "violence": 0.6}'], (False, []))])
    _check(ShieldGemma2({"policies": ["sexual"]}), [(['{"dangerous": 0.91}'], NO), (['{"sexual": 0.7}'], (True, ["sexual"]))])
    verdict = ShieldGemma2().parse(['{"dangerous": 0.91, "violence": 0.2}'], "input")
    assert verdict.to_dict()["scores"] == {"dangerous": 0.91, "violence": 0.2}


def test_shieldgemma_2_sees_only_the_image_and_asks_for_scores() -> None:
    (p,) = ShieldGemma2({"policies": ["dangerous"], "custom_policies": {"mine": "No maps."}}).prompts(
        GuardView((), IMAGE), "input")
    assert p.image == IMAGE and p.messages == () and p.score == ("dangerous",) and p.custom_policies == (("mine", "No maps."),)
    ShieldGemma2().check_policy(InputPolicy("none", True, None), "guards.s")
    with pytest.raises(ConfigError, match="guards.s.input.turns"):
        ShieldGemma2().check_policy(InputPolicy("all", True, None), "guards.s")
    with pytest.raises(ConfigError, match="guards.s.input.image"):
        ShieldGemma2().check_policy(InputPolicy("none", False, None), "guards.s")
    with pytest.raises(ConfigError, match="guards.s.options.threshold"):
        ShieldGemma2({"threshold": 3}).check_policy(InputPolicy("none", True, None), "guards.s")


def test_input_policy_must_be_explicit() -> None:
    with pytest.raises(ConfigError, match="key guards.g.input: a guard needs an explicit input policy"):
        InputPolicy.from_config(None, "guards.g")
    with pytest.raises(ConfigError, match="guards.g.input: input policy lacks image"):
        InputPolicy.from_config({"turns": "all"}, "guards.g")
