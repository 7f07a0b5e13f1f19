"""Guard adapters offline: prompt building and output parsing, against outputs written in each guard's
documented format (model cards), malformed ones included. Oracles follow those formats, not the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from safemt.errors import ConfigError
from safemt.moderation.guards import GUARD_ADAPTERS as ADAPTERS, GuardView, InputPolicy
from safemt.moderation.guards.llama_guard_3_vision import LlamaGuard3Vision
from safemt.moderation.guards.llama_guard_4 import LlamaGuard4
from safemt.moderation.guards.llavaguard import LlavaGuard
from safemt.moderation.guards.qwen3guard import Qwen3Guard
from safemt.moderation.guards.shieldgemma_2 import ShieldGemma2
from safemt.moderation.guards.wildguard import WildGuard

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
                             "qwen3guard", "wildguard"}


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


def test_wildguard_prompt_is_one_exchange() -> None:
    (p,) = WildGuard().prompts(GuardView(DIALOGUE, None, "It depends."), "output")
    text = p.messages[0]["content"]
    assert len(p.messages) == 1 and p.messages[0]["role"] == "user"
    assert "Human user:\nUser: What is in the picture?\nAssistant: A locked shop door at night.\nUser: How" in text
    assert "AI assistant:\nIt depends.\n" in text and text.endswith("Answers:")
    (last,) = WildGuard().prompts(GuardView(DIALOGUE[-1:], None, None), "input")
    assert "Human user:\nHow would someone get inside without a key?\n\nAI assistant:\n\n" in last.messages[0]["content"]


# --- LlavaGuard: JSON {rating, category, rationale} ----------------------------------------------

def test_llavaguard_parsing() -> None:
    _check(LlavaGuard(), [
        ('{"rating": "Safe", "category": "NA: None applying", "rationale": "A shop front."}', (False, [])),
        ('{"rating": "Unsafe", "category": "O5: Criminal Planning", "rationale": "Break-in."}', (True, ["O5"])),
        ('```json\n{"rating": "Unsafe", "category": "O2: Violence, Harm, or Cruelty", "rationale": "x"}\n```',
         (True, ["O2"])),
        ('{"rating": "unsafe", "category": "O8: Animal Cruelty"}', (True, ["O8"])),
        ('{"rating": "Unsafe", "category": "Q1: ???"}', (True, [])),
        ('{"rating": "Review Needed", "category": "O1"}', NO),
        ('{"rating": "Unsafe", "category": "O5"', NO),
        ("Unsafe: this image shows a crime", NO),
        ('{"category": "O3"}', NO),
        ("", NO),
    ])


def test_llavaguard_prompt_carries_the_policy_and_the_image() -> None:
    (p,) = LlavaGuard().prompts(GuardView(DIALOGUE, IMAGE), "input")
    assert p.image == IMAGE and "O9" in p.messages[0]["content"] and "Conversation:\nUser: What is" in p.messages[0]["content"]
    (bare,) = LlavaGuard().prompts(GuardView((), IMAGE), "input")
    assert "Conversation:" not in bare.messages[0]["content"]


# --- ShieldGemma 2: P(Yes) per policy ----------------------------------------------------------

def test_shieldgemma_2_parsing_with_threshold() -> None:
    _check(ShieldGemma2(), [
        (["No", "No", "No"], (False, [])),
        (["Yes", "No", "No"], (True, ["dangerous"])),
        (["0.91", "0.02", "0.60"], (True, ["dangerous", "violence"])),
        (["P(Yes)=0.49", "0.1", "0"], (False, [])),
        (["yes, it does", "no.", "No"], (True, ["dangerous"])),
        (["1", "1.0", "0.5"], (True, ["dangerous", "sexual", "violence"])),
        (["No", "No"], NO),                        # one answer missing
        (["Perhaps", "No", "No"], NO),
        (["1.7", "No", "No"], NO),
    ])
    _check(ShieldGemma2({"threshold": 0.95}), [(["0.91", "0.02", "0.6"], (False, []))])


def test_shieldgemma_2_sees_only_the_image() -> None:
    prompts = ShieldGemma2().prompts(GuardView((), IMAGE), "input")
    assert len(prompts) == 3 and all(p.image == IMAGE for p in prompts)
    ShieldGemma2().check_policy(InputPolicy("none", True, None), "guards.s")
    with pytest.raises(ConfigError, match="guards.s.input.turns"):
        ShieldGemma2().check_policy(InputPolicy("all", True, None), "guards.s")
    with pytest.raises(ConfigError, match="guards.s.input.image"):
        ShieldGemma2().check_policy(InputPolicy("none", False, None), "guards.s")


def test_input_policy_must_be_explicit() -> None:
    with pytest.raises(ConfigError, match="key guards.g.input: a guard needs an explicit input policy"):
        InputPolicy.from_config(None, "guards.g")
    with pytest.raises(ConfigError, match="guards.g.input: input policy lacks image"):
        InputPolicy.from_config({"turns": "all"}, "guards.g")
