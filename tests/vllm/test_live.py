"""Live dialogues on the real engine (docs/live.md): every turn answered through `backend: vllm` (prefix
caching on, its default), the same answers as the hf backend's, and a rerun reuses every turn."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safemt.files import read_jsonl
from safemt.layout import live_turns_file
from safemt.stages import live
from safemt.stages import params as sections
from safemt.stages.params import as_params


def _dataset(folder: Path, pictures: list[Path], n: int = 6, turns: int = 3) -> Path:
    (folder / "images").mkdir(parents=True)
    for i, picture in enumerate(pictures[:n]):
        shutil.copy(picture, folder / "images" / f"{i}.png")
    path = folder / "dialogues.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            messages = []
            for t in range(1, turns + 1):
                if t > 1:
                    messages.append({"role": "assistant", "content": "Sure, go on."})
                messages.append({"role": "user", "content": f"Step {t} about picture {i}: what next?"})
            fh.write(json.dumps({"id": f"l{i}", "turns": turns, "scenario": "Fraud", "source": "test",
                                 "method": None, "image": f"images/{i}.png", "messages": messages,
                                 "question": "what next?"}) + "\n")
    return path


def test_a_live_run_on_vllm_answers_every_turn_as_hf_does(vllm_backend, hf_backend, pictures, tmp_path) -> None:
    dataset = _dataset(tmp_path / "data", pictures)
    params = as_params({"dataset": {"source": "build", "seeds": "s.jsonl"}, "turns": [3],
                        "models": {"tiny-vlm-a": {"backend": "hf", "path": str(tmp_path)}}, "targets": ["tiny-vlm-a"],
                        "judges": {"keyword": {"kind": "keyword"}}})
    engine = vllm_backend("tiny-vlm-a", max_new_tokens=8)
    assert engine.cfg["enable_prefix_caching"] is True  # the vllm default: the history is cached turn to turn
    outs = {}
    for name, backend in (("vllm", engine), ("hf", hf_backend("tiny-vlm-a", max_new_tokens=8))):
        out = tmp_path / name / "3.jsonl"
        live.run(params, "tiny-vlm-a", dataset, out, turns=3, backend=backend, runner=sections.defense(params, "none"))
        outs[name] = out
    turns = {name: read_jsonl(live_turns_file(str(out))) for name, out in outs.items()}
    assert len(turns["vllm"]) == 18 and all(r["error"] is None for r in turns["vllm"])
    assert [r["response"] for r in turns["vllm"]] == [r["response"] for r in turns["hf"]]
    live.run(params, "tiny-vlm-a", dataset, outs["vllm"], turns=3, backend=engine,
             runner=sections.defense(params, "none"))
    prov = json.loads((outs["vllm"].parent / ".journal" / "3.provenance.json").read_text())
    assert (prov["turns_generated_this_run"], prov["turns_reused"]) == (0, 18)
