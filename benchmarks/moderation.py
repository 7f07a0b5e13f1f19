"""Benchmark (not a test): what a guard or moderator adds per dialogue, as a ratio to the target's own
generation time, measured in one run; prints one JSON object.

    python benchmarks/moderation.py                       # tiny models, built in a temporary folder
    python benchmarks/moderation.py --params FILE --target NAME --dataset FILE [--turns N] [--limit K]

Default: the tiny VLM answers 2- and 4-turn dialogues built from the project's seeds; the guard
(Llama Guard 4 adapter) and the moderator run on the tiny text model forced to let everything
through (`safe` / benign), so the target answers every dialogue and both times are measured on the
same records: ratio = mean defense_latency_s / mean latency_s. The goal for a moderator a tenth of
the target's size is <= 0.10; the tiny judge is about a third of the tiny VLM's parameters, and at
this size fixed per-call costs (chat template, tokenizer) weigh more than on real models.
With --params, the guards and moderators of that file's defenses (guard_input / moderator entries)
are measured against --target instead.
"""

from __future__ import annotations

from collections.abc import Mapping

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from safemt.stages.inference import run as run_inference
from safemt.files import read_jsonl, write_jsonl

REPO = Path(__file__).resolve().parents[1]


def _tiny_setup(tmp: Path) -> tuple[dict[str, Any], str, Path, list[str]]:
    from safemt.stages.dataset import build_options
    from safemt.data.build import build_dataset
    from safemt.models.tiny_weights import build_tiny_models, force_output

    models = tmp / "models"
    build_tiny_models(models)
    force_output(models / "tiny-judge", models / "guard-safe", "safe")
    force_output(models / "tiny-judge", models / "mod-benign",
                 '{"verdict": "benign", "scenario": null, "rationale": "ok"}')

    def hf(name: str, tokens: int) -> dict[str, Any]:
        return {"backend": "hf", "path": str(models / name), "revision": "local", "max_new_tokens": tokens,
                "temperature": 0.0, "batch_size": 8}

    params = {"dataset": {"source": "build", "seeds": str(REPO / "resources/seeds/seeds.jsonl")}, "turns": [2, 4],
              "models": {"tiny-vlm-a": hf("tiny-vlm-a", 24), "guard-safe": hf("guard-safe", 8),
                         "mod-benign": hf("mod-benign", 64)},
              "targets": ["tiny-vlm-a"], "judges": {"keyword": {"kind": "keyword"}},
              "guards": {"guard": {"adapter": "llama_guard_4", "model": "guard-safe",
                                   "input": {"turns": "all", "image": False, "caption": None}}},
              "moderators": {"moderator": {"kind": "prompted", "model": "mod-benign"}},
              "moderation": {"guard": "guard", "moderator": "moderator"}}
    dataset = tmp / "dataset" / "dialogues.jsonl"
    build_dataset(REPO / "resources/seeds/seeds.jsonl", dataset, build_options(params))
    return params, "tiny-vlm-a", dataset, ["guard_input", "moderator"]


def measure(params: Mapping[str, Any], target: str, dataset: Path, defenses: list[str], out: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for defense in defenses:
        path = out / defense / "gen.jsonl"
        run_inference(params, target, dataset, path, defense=defense)
        recs = [r for r in read_jsonl(path) if r["error"] is None]
        passed = [r for r in recs if r["blocked_by"] is None and r["latency_s"]]
        extra = [r["defense_latency_s"] for r in recs if r["defense_latency_s"] is not None]
        target_s = [r["latency_s"] for r in passed]
        results[defense] = {
            "dialogues": len(recs),
            "parse_failures": sum((r["defense_verdict"] or {}).get("parse") == "fallback" for r in recs),
            "defense_s_per_dialogue": round(statistics.mean(extra), 5) if extra else None,
            "target_s_per_dialogue": round(statistics.mean(target_s), 5) if target_s else None,
            "ratio": round(statistics.mean(extra) / statistics.mean(target_s), 3) if extra and target_s else None,
        }
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params")
    ap.add_argument("--target")
    ap.add_argument("--dataset")
    ap.add_argument("--turns", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None, help="first K dialogues only")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="safemt-bench-mod-") as tmp_name:
        tmp = Path(tmp_name)
        if args.params:
            params = yaml.safe_load(Path(args.params).read_text(encoding="utf-8"))
            defenses = [d for d in params.get("defenses", []) if d.split(".")[0] in ("guard_input", "moderator")]
            target, dataset = args.target, Path(args.dataset)
        else:
            params, target, dataset, defenses = _tiny_setup(tmp)
        if args.turns or args.limit:
            recs = [r for r in read_jsonl(dataset) if args.turns is None or r["turns"] == args.turns]
            subset = dataset.parent / f".bench-subset-{args.turns}-{args.limit}.jsonl"
            write_jsonl(subset, recs[: args.limit])
            dataset = subset
        report = {"target": target, "defenses": measure(params, target, dataset, defenses, tmp / "out")}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
