"""A guard's input policy decides what it reads: turns, image, caption, per-turn aggregation."""

from __future__ import annotations

from pathlib import Path

from safemt.moderation.guards.runner import Guard, GuardItem

MSGS = ({"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"})
IMAGE = Path("img.png")


def _guard(tiny_models: Path, **policy) -> Guard:
    params = {"models": {"g": {"backend": "hf", "path": str(tiny_models / "tiny-judge"), "revision": "local"}},
              "guards": {"x": {"adapter": "qwen3guard", "model": "g",
                               "input": {"turns": "all", "image": False, "caption": None, **policy}}}}
    return Guard("x", params["guards"]["x"], params["models"])


def test_turns_caption_and_aggregation(tiny_models: Path) -> None:
    item = GuardItem(("id", 2), MSGS, IMAGE, caption="a red door", response="r")
    (whole,) = _guard(tiny_models).views(item)
    assert whole.messages == MSGS and whole.image is None and whole.response == "r"
    (cap,) = _guard(tiny_models, caption="dataset").views(item)
    assert cap.messages[0]["content"] == "[Image: a red door]\nu1" and cap.messages[1:] == MSGS[1:]
    (last,) = _guard(tiny_models, turns="last", caption="dataset").views(item)
    assert last.messages == ({"role": "user", "content": "[Image: a red door]\nu2"},)
    per_turn = _guard(tiny_models, aggregate="any_turn").views(item)
    assert [v.messages for v in per_turn] == [MSGS[:1], MSGS] and [v.response for v in per_turn] == [None, "r"]


def test_a_missing_caption_is_counted(tiny_models: Path) -> None:
    guard = _guard(tiny_models, caption="dataset")
    (view,) = guard.views(GuardItem(("id", 2), MSGS, IMAGE, caption=None))
    assert view.messages == MSGS and guard.stats["captions_missing"] == 1
