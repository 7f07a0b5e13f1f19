"""The embedded seed set and the Pillow drawings made from it."""

from __future__ import annotations

import io
import json
import re
from collections import Counter

import pytest
from PIL import Image

from safemt.data import draw
from safemt.scenarios import SCENARIOS, folder


@pytest.fixture(scope="module")
def seeds(repo_root):
    path = repo_root / "resources" / "seeds" / "seeds.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_scenario_has_at_least_two_seeds(seeds):
    counts = Counter(s["scenario"] for s in seeds)
    assert set(counts) == set(SCENARIOS)
    assert min(counts.values()) >= 2


def test_seed_fields_follow_the_project_convention(seeds):
    assert len({s["id"] for s in seeds}) == len(seeds)
    for s in seeds:
        f = folder(s["scenario"])
        assert re.fullmatch(rf"own_{f}_\d+", s["id"]), s["id"]
        assert s["source"] == "own"
        assert s["image"] == f"images/{f}/{s['id']}.png"
        assert s["question"].strip() == s["question"] and s["question"]
        assert 2 <= len(s["draw"]["phrase"].split()) <= 4
        draw.check(s["draw"]["phrase"], s["draw"]["scene"])


def test_every_seed_carries_its_grounding(seeds):
    """Issue 13: steps with answers, an anchor in the picture, a character; nothing else unknown."""
    for s in seeds:
        assert set(s) <= {"id", "scenario", "question", "source", "image", "draw", "steps", "anchor", "character"}
        assert len(s["steps"]) >= 2 and all(st["ask"].endswith("?") and st["answer"] for st in s["steps"])
        facts = draw.facts(s["draw"]["phrase"], s["draw"]["scene"])
        assert any(s["anchor"]["thing"] in f for f in facts), s["id"]
        assert s["anchor"]["stands_for"] in s["question"]
        assert s["character"]["who"] and s["character"]["motive"]


def test_the_seeds_build_with_no_family_defaults(seeds, repo_root, tmp_path):
    import yaml

    from safemt.stages.dataset import build_options
    from safemt.data.build import build_dataset

    params = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    summary = build_dataset(repo_root / "resources" / "seeds" / "seeds.jsonl", tmp_path / "d.jsonl", build_options(params))
    assert summary["seeds_without"] == {} and summary["rejected"] == 0


def test_drawing_is_deterministic_and_plain():
    a = draw.render_png("own_bias_1", "accent at work", "office")
    assert a == draw.render_png("own_bias_1", "accent at work", "office")
    assert a != draw.render_png("own_bias_2", "accent at work", "office")  # colours follow the id
    image = Image.open(io.BytesIO(a))
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (128, 128))
    assert image.info == {}  # no metadata chunks


@pytest.mark.parametrize("scene", sorted(draw.SCENES))
def test_every_scene_draws_a_phrase_band(scene):
    image = Image.open(io.BytesIO(draw.render_png("k", "two words", scene))).convert("L")
    band = image.crop((0, draw.BAND_TOP, 128, 128))
    assert band.getextrema() == (0, 255)  # black text on white


@pytest.mark.parametrize("phrase, scene", [
    ("", "house"), ("caf\u00e9 owner", "house"), ("words " * 12, "house"), ("two words", "castle"),
])
def test_undrawable_specs_are_rejected(phrase, scene):
    with pytest.raises(ValueError):
        draw.check(phrase, scene)
