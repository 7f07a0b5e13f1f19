"""Defenses `none` and `system_prompt`, and the defense registry."""

from __future__ import annotations

import pytest

from safemt.errors import SafemtError
from safemt.moderation import DEFENSES, apply_defense, describe_defense

DIALOGUE = [{"role": "user", "content": "What is in the picture?"},
            {"role": "assistant", "content": "A red door."},
            {"role": "user", "content": "How would a character open it?"}]


def test_none_is_the_identity_and_does_not_share_the_input() -> None:
    out = apply_defense("none", DIALOGUE)
    assert out == DIALOGUE
    out[0]["content"] = "changed"
    assert DIALOGUE[0]["content"] == "What is in the picture?"


def test_system_prompt_prepends_one_policy_message() -> None:
    out = apply_defense("system_prompt", DIALOGUE)
    assert out[0]["role"] == "system" and "harmful" in out[0]["content"]
    assert out[1:] == DIALOGUE
    assert len(DIALOGUE) == 3


def test_system_prompt_merges_with_an_existing_system_message() -> None:
    out = apply_defense("system_prompt", [{"role": "system", "content": "Be brief."}, *DIALOGUE])
    assert [m["role"] for m in out].count("system") == 1
    assert out[0]["content"].endswith("\n\nBe brief.")


def test_descriptions_differ_so_config_hashes_differ() -> None:
    assert describe_defense("none") == {"name": "none", "policy": None}
    assert describe_defense("system_prompt")["policy"]
    assert set(DEFENSES) == {"none", "system_prompt"}


def test_unknown_defense_is_a_one_line_error() -> None:
    with pytest.raises(SafemtError, match="unknown defense 'guard' \\(defined: none, system_prompt\\)"):
        apply_defense("guard", DIALOGUE)
