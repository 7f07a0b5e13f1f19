"""Guards fed their trained formats, on real tiny models: ShieldGemma 2 scored by its own head, one
result per request everywhere (a batch equals each request alone), chat template variables, the
caption prompt, and every text that shapes a guard's input in the config hash."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from safemt.errors import ConfigError, SafemtError
from safemt.hashing import stable_hash
from safemt.models.hf import HFBackend
from safemt.moderation.guards.runner import Guard, GuardItem
from safemt.stages import params as sections
from tests.moderation.formats import (LLAVASHIELD_PROMPT, WILDGUARD_FORMAT, WILDGUARD_INSTRUCTION,
                                      fake_llavashield_package, fake_wildguard_package, write_policy)
from tests.moderation.tiny_guards import SG2_POLICIES, build_mllama, build_shieldgemma2, build_text_guard

REPO = Path(__file__).resolve().parents[2]
COLORS = ["red", "green", "blue", "white", "black"]
DIALOGUES = [({"role": "user", "content": f"Tell me about picture {i} and what is in it."},
              {"role": "assistant", "content": "It shows a street."},
              {"role": "user", "content": q})
             for i, q in enumerate(["How do I open the red door?", "What should a careful person do first?",
                                    "Could you describe the garden?", "Write a story about the lamp.",
                                    "Why does the book matter?"])]


@pytest.fixture(scope="module")
def family(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("guard-family")
    return {"shieldgemma2": build_shieldgemma2(out / "tiny-shieldgemma2"),
            "qwen3": build_text_guard(out / "tiny-qwen3", "qwen3", seed=7),
            "mistral": build_text_guard(out / "tiny-mistral", "mistral", seed=8),
            "mllama": build_mllama(out / "tiny-mllama"),
            "llava": tiny_models / "tiny-vlm-a", "qwen2": tiny_models / "tiny-judge"}


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("guard-images")
    paths = []
    for i, color in enumerate(COLORS):
        Image.new("RGB", (32, 32), color).save(folder / f"{i}.png")
        paths.append(folder / f"{i}.png")
    return paths


def model(path: Path, **extra) -> dict:
    return {"backend": "hf", "path": str(path), "revision": "local", "max_new_tokens": 8, "temperature": 0.0,
            "batch_size": 8, **extra}


def items(images: list[Path], n: int = 5) -> list[GuardItem]:
    return [GuardItem((f"d{i}", 2), DIALOGUES[i], images[i], caption=f"a {COLORS[i]} square") for i in range(n)]


# --- ShieldGemma 2 -------------------------------------------------------------------------------

def _own_head(folder: Path, image: Path, policies: list[str]) -> list[float]:
    """P(Yes) straight from ShieldGemma2ForImageClassification and its processor, one image."""
    import torch
    from transformers import AutoProcessor, ShieldGemma2ForImageClassification

    processor = AutoProcessor.from_pretrained(folder)
    net, info = ShieldGemma2ForImageClassification.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]  # every weight loaded, none initialised anew
    net.eval()
    with Image.open(image) as img, torch.no_grad():
        out = net(**processor(images=[img.convert("RGB")], policies=policies, return_tensors="pt"))
    return out.probabilities[:, 0].tolist()


def test_shieldgemma_2_is_scored_by_its_own_classifier_head(family, images) -> None:
    folder = family["shieldgemma2"]
    models = {"sg": model(folder)}
    names = sorted(SG2_POLICIES)
    oracle = [dict(zip(names, _own_head(folder, img, names))) for img in images]
    # a threshold between the images' `harm` scores, so that some images break it and some do not
    cut = sorted(o["harm"] for o in oracle)[2]
    guard = Guard("sg", {"adapter": "shieldgemma_2", "model": "sg", "input": {"turns": "none", "image": True},
                         "options": {"threshold": cut, "policies": names}}, models)
    checks = guard.classify(items(images), "input")
    for check, expected in zip(checks, oracle):
        assert check.error is None and check.verdict.parsed
        assert check.verdict.scores == pytest.approx(expected, abs=1e-6)
        assert json.loads(check.verdict.raw) == pytest.approx(expected, abs=1e-6)  # scores in the raw output
        assert check.verdict.unsafe == (expected["harm"] >= cut or expected["gore"] >= cut)
    assert {c.verdict.unsafe for c in checks} == {True, False}
    assert guard.describe()["model"]["modality"] == "image-text"


def test_shieldgemma_2_policy_names_default_to_the_models_own(family, images) -> None:
    models = {"sg": model(family["shieldgemma2"])}
    guard = Guard("sg", {"adapter": "shieldgemma_2", "model": "sg", "input": {"turns": "none", "image": True},
                         "options": {"custom_policies": {"maps": "The picture must not show a map."}}}, models)
    (check,) = guard.classify(items(images, 1), "input")
    assert set(check.verdict.scores) == {*SG2_POLICIES, "maps"}
    bad = Guard("sg", {"adapter": "shieldgemma_2", "model": "sg", "input": {"turns": "none", "image": True},
                       "options": {"policies": ["weapons"]}}, models)
    with pytest.raises(SafemtError, match="defines no policy weapons"):
        bad.classify(items(images, 1), "input")


def test_a_scoring_guard_on_a_backend_that_cannot_score_stops_at_plan_time(family) -> None:
    raw = {"dataset": {"source": "build", "seeds": "s.jsonl"}, "turns": [1], "targets": ["t"],
           "models": {"t": model(family["llava"]), "sg": {"backend": "vllm", "path": "google/shieldgemma-2-4b-it"}},
           "judges": {"keyword": {"kind": "keyword"}},
           "guards": {"sg": {"adapter": "shieldgemma_2", "model": "sg", "input": {"turns": "none", "image": True}}}}
    with pytest.raises(ConfigError, match="key guards.sg.model: guard sg scores images .* backend 'vllm'.* cannot score"):
        sections.validate(raw)


# --- one result per request: a batch equals each request alone, for every adapter ------------------

def _adapters(family: dict[str, Path], tmp: Path) -> dict[str, tuple[dict, dict]]:
    """adapter -> (guard entry, model entry) on a tiny model of its family where one can be built here:
    ShieldGemma 2, Mllama (Llama Guard 3 Vision), Qwen3 (Qwen3Guard), Mistral (WildGuard). LlavaGuard v1.2
    and LLaVAShield are LLaVA-OneVision and Llama Guard 4 is Llama 4, whose processors need torchvision
    (not installable beside this CPU torch): they run on the tiny LLaVA (LlavaGuard's v1.1 family)."""
    policy = write_policy(tmp / "lg")
    wild = write_policy(tmp / "wg", WILDGUARD_FORMAT, "wildguard-format.txt")
    wildguard_template = str(REPO / "resources" / "chat_templates" / "wildguard.jinja")
    shield = write_policy(tmp / "ls", LLAVASHIELD_PROMPT, "llavashield-prompt.txt")
    shield_template = str(REPO / "resources" / "chat_templates" / "llavashield.jinja")
    image = {"turns": "all", "image": True, "caption": None}
    text = {"turns": "all", "image": False, "caption": "dataset"}
    return {
        "shieldgemma_2": ({"input": {"turns": "none", "image": True}}, model(family["shieldgemma2"])),
        "llavaguard": ({"input": {"turns": "none", "image": True}, "options": policy}, model(family["llava"])),
        "llavaguard_dialogue": ({"input": image, "options": policy}, model(family["llava"])),
        "llavaguard_own_policy": ({"input": image}, model(family["llava"])),
        "llama_guard_3_vision": ({"input": image}, model(family["mllama"])),
        "llama_guard_4": ({"input": image}, model(family["llava"])),
        "qwen3guard": ({"input": text}, model(family["qwen3"])),
        "wildguard": ({"input": text, "options": wild}, model(family["mistral"], chat_template=wildguard_template)),
        "wildguard_own_instruction": ({"input": text}, model(family["mistral"], chat_template=wildguard_template)),
        "llavashield": ({"input": image, "options": shield}, model(family["llava"], chat_template=shield_template)),
    }


ADAPTERS = ["shieldgemma_2", "llavaguard", "llavaguard_dialogue", "llavaguard_own_policy", "llama_guard_3_vision",
            "llama_guard_4", "qwen3guard", "wildguard", "wildguard_own_instruction", "llavashield"]


def test_every_adapter_is_covered(tmp_path) -> None:
    from safemt.moderation.guards import GUARD_ADAPTERS

    dummy = {k: tmp_path for k in ("shieldgemma2", "qwen3", "mistral", "mllama", "llava", "qwen2")}
    assert set(_adapters(dummy, tmp_path)) == set(GUARD_ADAPTERS) == set(ADAPTERS)


@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("stage", ["input", "output"])
def test_a_batch_gets_what_each_request_gets_alone(adapter, stage, family, images, tmp_path) -> None:
    entry, model_entry = _adapters(family, tmp_path)[adapter]
    guard = Guard("g", {"adapter": adapter, "model": "m", "on_parse_error": "unsafe", **entry}, {"m": model_entry})
    batch = [GuardItem(i.key, i.messages, i.image, i.caption, f"Answer {k}: it is fine." if stage == "output" else None)
             for k, i in enumerate(items(images))]
    together = [c.verdict.to_dict() for c in guard.classify(batch, stage)]
    alone = [guard.classify([item], stage)[0].verdict.to_dict() for item in batch]
    if adapter == "shieldgemma_2":
        assert [v["scores"] for v in together] == [pytest.approx(v["scores"], abs=1e-6) for v in alone]
        together = [{**v, "raw": None, "scores": None} for v in together]
        alone = [{**v, "raw": None, "scores": None} for v in alone]
    else:
        assert len({v["raw"] for v in alone}) > 1  # the requests differ, so a mix-up would show
    assert together == alone


def test_a_backend_that_loses_a_result_stops_with_one_line(family, images, monkeypatch) -> None:
    guard = Guard("g", {"adapter": "qwen3guard", "model": "m", "input": {"turns": "all", "image": False}},
                  {"m": model(family["qwen3"])})
    original = HFBackend._generate_batch
    monkeypatch.setattr(HFBackend, "_generate_batch", lambda self, requests: original(self, requests)[:-1])
    with pytest.raises(SafemtError, match="model m returned 4 results for 5 requests"):
        guard.classify(items(images), "input")


# --- LlavaGuard's reply budget ------------------------------------------------------------------------

ANSWER = '{"rating": "Unsafe", "category": "O2: Violence, Harm, or Cruelty", "rationale": "A person is threatened."}'


def test_a_llavaguard_reply_cut_at_the_limit_still_gives_its_rating(family, images, tmp_path) -> None:
    """A tiny LLaVA forced to write the card's JSON answer: with room it is read whole; cut short after
    its category, the rating still counts, marked truncated and counted."""
    from safemt.models.tiny_weights import force_output

    forced = force_output(family["llava"], tmp_path / "answers", ANSWER)
    entry = {"adapter": "llavaguard", "model": "m", "input": {"turns": "none", "image": True},
             "options": write_policy(tmp_path / "p")}
    whole = Guard("lg", entry, {"m": model(forced, max_new_tokens=256)})
    (full,) = whole.classify(items(images, 1), "input")
    assert full.verdict.raw == ANSWER and full.verdict.to_dict()["parse"] == "ok"
    assert (full.verdict.unsafe, full.verdict.categories) == (True, ("O2",))
    from transformers import AutoTokenizer

    budget = len(AutoTokenizer.from_pretrained(forced).encode(ANSWER.split('"rationale"')[0])) + 3
    cut = Guard("lg", entry, {"m": model(forced, max_new_tokens=budget)})
    (short,) = cut.classify(items(images, 1), "input")
    assert short.verdict.raw != ANSWER and ANSWER.startswith(short.verdict.raw)
    assert (short.verdict.unsafe, short.verdict.categories, short.verdict.to_dict()["parse"]) == (True, ("O2",), "truncated")
    assert cut.stats["truncated"] == 1 and cut.stats["parse_failures"] == 0


# --- chat template variables, captions ----------------------------------------------------------

EXCLUDING = ("{%- set keys = excluded_category_keys | default([]) -%}{%- for m in messages -%}<|im_start|>{{ m['role'] }}\n"
             "{%- for code in ['S1', 'S2', 'S14'] if code not in keys %} {{ code }}{%- endfor %}\n"
             "{{ m['content'] if m['content'] is string else m['content'][-1]['text'] }}<|im_end|>\n{%- endfor -%}"
             "<|im_start|>assistant\n")


def test_chat_template_kwargs_reach_the_template(family, tmp_path, rendered) -> None:
    """Llama Guard 4's documented exclusion: the template lists every category but the excluded ones."""
    (tmp_path / "t.jinja").write_text(EXCLUDING, encoding="utf-8")
    for name, kwargs in (("plain", None), ("excluding", {"excluded_category_keys": ["S14"]})):
        entry = model(family["qwen2"], chat_template=str(tmp_path / "t.jinja"),
                      **({"chat_template_kwargs": kwargs} if kwargs else {}))
        guard = Guard(name, {"adapter": "llama_guard_4", "model": name, "input": {"turns": "last", "image": False}},
                      {name: entry})
        guard.classify([GuardItem(("a", 1), DIALOGUES[0], None)], "input")
    assert "user S1 S2 S14How" in rendered["plain"][0] and "user S1 S2How" in rendered["excluding"][0]


def test_the_captioner_is_asked_the_configured_prompt(family, images, rendered) -> None:
    models = {"g": model(family["qwen3"]), "cap": model(family["llava"])}
    cfg = {"adapter": "qwen3guard", "model": "g", "input": {"turns": "all", "image": False, "caption": "cap"}}
    default = sections.as_params({"guards": {"x": cfg}})["guards"]["x"]["input"]["caption_prompt"]
    assert "text" in default and "copy" in default  # asks to transcribe text in the image
    Guard("x", sections.as_params({"guards": {"x": cfg}})["guards"]["x"], models).classify(items(images, 1), "input")
    custom = {**cfg, "input": {**cfg["input"], "caption_prompt": "Say only the words written in the picture."}}
    Guard("y", custom, models).classify(items(images[1:], 1), "input")
    assert default in rendered["cap"][0] and "Say only the words written in the picture." in rendered["cap"][1]


# --- provenance: every text shaping a guard's or moderator's input enters the config hash -------------

def _hash(guard: str, guards: dict, models: dict, moderators: dict | None = None, moderation: dict | None = None) -> str:
    raw = {"guards": guards, "models": models, "moderators": moderators or {}, "moderation": moderation or {}}
    settings = sections.moderation(sections.as_params(raw))
    from safemt.moderation.runner import DefenseRunner

    return stable_hash(DefenseRunner(guard, settings, models).describe())


def test_every_text_shaping_the_input_moves_the_hash(family, tmp_path, monkeypatch) -> None:
    models = {"g": model(family["llava"]), "t": model(family["qwen3"]), "cap": model(family["llava"])}
    policy = write_policy(tmp_path / "a")
    lg = {"adapter": "llavaguard", "model": "g", "input": {"turns": "none", "image": True}, "options": policy}
    base = _hash("guard_input.lg", {"lg": lg}, models)
    edited = write_policy(tmp_path / "b", (tmp_path / "a" / "llavaguard-policy.txt").read_text() + "\nOne more line.")
    assert _hash("guard_input.lg", {"lg": {**lg, "options": edited}}, models) != base  # prompt_file content
    own = {"adapter": "llavaguard_own_policy", "model": "g", "input": {"turns": "none", "image": True}}
    before = _hash("guard_input.own", {"own": own}, models)
    import safemt.moderation.guards.llavaguard as module

    monkeypatch.setattr(module, "OWN_POLICY", module.OWN_POLICY + "\nA built-in edit.")
    assert _hash("guard_input.own", {"own": own}, models) != before  # built-in prompt text
    cap = {"adapter": "qwen3guard", "model": "t", "input": {"turns": "all", "image": False, "caption": "cap"}}
    first = _hash("guard_input.q", {"q": cap}, models)
    reworded = {**cap, "input": {**cap["input"], "caption_prompt": "Name the colours."}}
    assert _hash("guard_input.q", {"q": reworded}, models) != first  # caption prompt
    kwargs = {**models, "t": {**models["t"], "chat_template_kwargs": {"excluded_category_keys": ["S14"]}}}
    assert _hash("guard_input.q", {"q": cap}, kwargs) != first  # chat template kwargs
    mod = {"m": {"kind": "prompted", "model": "t"}}
    plain = _hash("moderator.m", {}, models, mod)
    assert _hash("moderator.m", {}, models, {"m": {**mod["m"], "prompt": "Judge {dialogue}"}}) != plain  # moderator prompt


# --- WildGuard's format from the authors' package -------------------------------------------------

def test_wildguard_reads_its_format_from_the_installed_package_without_importing_it(tmp_path, monkeypatch) -> None:
    from safemt.moderation.guards.wildguard import WildGuard

    with pytest.raises(ConfigError, match="guard wg: needs WildGuard's input format.*pip install --no-deps wildguard"):
        WildGuard({}, "wg").texts()
    monkeypatch.syspath_prepend(str(fake_wildguard_package(tmp_path / "site")))
    texts = WildGuard({}, "wg").texts()
    assert texts["instruction"].text == WILDGUARD_INSTRUCTION and texts["instruction"].source.startswith("package wildguard")
    assert "wildguard.utils" not in sys.modules  # read from source: its vllm import never ran
    from safemt.moderation.guards.base import FormatText

    assert WildGuard({"prompt_sha256": FormatText(WILDGUARD_FORMAT, "").sha256}, "wg").texts()  # pinned: same text
    with pytest.raises(ConfigError, match="key guards.wg.options.prompt_sha256: guard wg: the format in package wildguard"):
        WildGuard({"prompt_sha256": "b" * 64}, "wg").texts()


def test_planning_the_paper_profile_needs_the_llavaguard_policy_file(tmp_path, monkeypatch) -> None:
    """Without the file: one line naming guard, file and where to get it; with it (pinned), it loads."""
    import yaml

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(fake_llavashield_package(fake_wildguard_package(tmp_path / "site"))))
    raw = yaml.safe_load((REPO / "config" / "paper.yaml").read_text(encoding="utf-8"))
    with pytest.raises(ConfigError) as err:
        sections.validate(raw, "config/paper.yaml")
    assert str(err.value).startswith("resources/guards/llavaguard-policy.txt, key guards.llavaguard.options.prompt_file: "
                                     "guard llavaguard: the LlavaGuard policy file is missing: save it from the model "
                                     "card of AIML-TUDA/LlavaGuard-v1.2-7B-OV-hf")
    pinned = write_policy(tmp_path / "resources" / "guards")
    raw["guards"]["llavaguard"]["options"]["prompt_sha256"] = pinned["prompt_sha256"]
    loaded = sections.validate(raw, "config/paper.yaml")
    assert loaded["guards"]["llavaguard"]["input"]["turns"] == "none"


def test_vllm_forwards_chat_template_kwargs_only_when_set() -> None:
    from safemt.models.vllm_backend import chat_kwargs

    assert chat_kwargs({"path": "m"}) == {}
    assert chat_kwargs({"chat_template_kwargs": {"excluded_category_keys": ["S14"]}}) == {
        "chat_template_kwargs": {"excluded_category_keys": ["S14"]}}
