"""Tiny models forced to a verdict (real weights, a sequence_bias in their generation config)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from safemt.models.hf import HFBackend
from safemt.models.tiny_weights import force_output
from tests.support import make_dialogue

SCENARIOS = ["Fraud", "Violence", "Malware"]
MODERATOR_MALICIOUS = '{"verdict": "malicious", "scenario": "Fraud", "rationale": "A scam in steps."}'
MODERATOR_BENIGN = '{"verdict": "benign", "scenario": null, "rationale": "Ordinary help."}'
MODERATOR_SENSITIVE = '{"verdict": "sensitive", "scenario": "Health Consultation", "rationale": "Asks for a dose."}'


@pytest.fixture(scope="session")
def forced(tiny_models: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tiny-judge copies that always answer: unsafe / safe (Llama Guard format), a moderator verdict, nonsense."""
    out = tmp_path_factory.mktemp("forced")
    texts = {"guard-unsafe": "unsafe\nS2", "guard-safe": "safe", "mod-malicious": MODERATOR_MALICIOUS,
             "mod-benign": MODERATOR_BENIGN, "mod-sensitive": MODERATOR_SENSITIVE, "mod-garbled": "verdict maybe"}
    return {name: force_output(tiny_models / "tiny-judge", out / name, text) for name, text in texts.items()}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "dataset"
    (folder / "images").mkdir(parents=True)
    records = []
    for i, (scenario, color) in enumerate(zip(SCENARIOS, ["red", "green", "blue"])):
        Image.new("RGB", (32, 32), color).save(folder / "images" / f"{i}.png")
        records += [make_dialogue(i, 1, scenario), make_dialogue(i, 2, scenario)]
    path = folder / "dialogues.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def hf_model(path: Path, max_new_tokens: int = 6) -> dict:
    return {"backend": "hf", "path": str(path), "revision": "local", "max_new_tokens": max_new_tokens,
            "temperature": 0.0, "batch_size": 4}


@pytest.fixture
def params(tiny_models: Path, forced: dict[str, Path]) -> dict:
    models = {"tiny-vlm-a": hf_model(tiny_models / "tiny-vlm-a")}
    models.update({name: hf_model(path, 64) for name, path in forced.items()})
    guards = {name: {"adapter": "llama_guard_4", "model": name,
                     "input": {"turns": "all", "image": False, "caption": None}}
              for name in ("guard-unsafe", "guard-safe")}
    moderators = {name: {"kind": "prompted", "model": name, "on_parse_error": "malicious"}
                  for name in ("mod-malicious", "mod-benign", "mod-sensitive", "mod-garbled")}
    return {"dataset": {"source": "build", "seeds": "seeds.jsonl"}, "turns": [1, 2], "models": models,
            "targets": ["tiny-vlm-a"], "judges": {"keyword": {"kind": "keyword"}}, "guards": guards,
            "moderators": moderators, "moderation": {"guard": "guard-unsafe", "moderator": "mod-malicious"}}


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """The prompts each model was actually fed: its input ids decoded after the chat template."""
    seen: dict[str, list[str]] = {}
    original = HFBackend._inputs

    def spy(self, requests):
        inputs = original(self, requests)
        texts = self.tokenizer.batch_decode(inputs["input_ids"], skip_special_tokens=False)
        seen.setdefault(self.cfg["name"], []).extend(t.replace(self.tokenizer.pad_token, "") for t in texts)
        return inputs

    monkeypatch.setattr(HFBackend, "_inputs", spy)
    return seen
