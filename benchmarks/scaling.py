"""Benchmark (not a test): what the workflow costs here and what the paper run would cost on GPUs.

    python benchmarks/scaling.py [--finished DIR] [--skip-stages]

1. The embedded default, finished once in a copy of the working tree (or DIR, a finished checkout):
   its dry run (`snakemake -n`) and its no-op rerun (`snakemake`, nothing to do), median of 3 each,
   printed as a ratio (target: no-op <= 2x dry run).
2. The paper profile's DAG (config/paper.yaml, with an empty release folder standing in for the
   download): job count and dry-run time.
3. Throughput per stage here (tiny models, this CPU): dataset build, inference, judging, metrics,
   each timed as the `safemt` command the rule runs (process start included).
4. Token counts of the released dialogues, measured on the excerpt in $SAFEMT_SAMPLE_DIR when set, and the
   projected GPU-hours and API cost of the paper run (docs/clusters.md states every assumption).
Prints one JSON object. Numbers measured here move with the machine's load: they are ratios and
orders of magnitude, not timings to compare across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path(os.environ["SAFEMT_SAMPLE_DIR"]) if os.environ.get("SAFEMT_SAMPLE_DIR") else None  # release excerpt
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
       "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

# --- the release (docs/contracts.md; the full files' sizes in characters, docs/clusters.md) -----------
RELEASE_IDS = 2000                      # harmful queries, one image each, asked at 1, 2, 4, 6, 8 turns
RELEASE_TURNS = (1, 2, 4, 6, 8)
RELEASE_FILE_CHARS = {1: 914_823, 2: 2_056_442, 4: 4_098_948}

# --- assumptions (each one is listed in docs/clusters.md) ------------------------------------------
TOKENS_PER_WORD = 1.3                   # English text under Llama/Qwen-style BPE tokenizers
TEMPLATE_TOKENS_PER_MESSAGE = 5         # chat-template role markers per message
MEAN_OUTPUT_TOKENS = 300                # mean answer length (cap max_new_tokens = 1024)
H100_BF16_FLOPS = 989e12                # dense bf16 peak, H100 SXM
PREFILL_MFU = 0.40                      # fraction of peak reached by vLLM prefill
DECODE_TOK_S_8B = 12_500                # published vLLM output throughput, Llama-3.1-8B bf16, 1x H100
VISION_OVERHEAD = 1.10                  # vision encoder on top of the language model's prefill
HF_BACKEND_SLOWDOWN = 8.0               # transformers generate (static batches) vs vLLM
ENGINE_START_S = 180                    # vLLM start per job: weights, profiling, CUDA graphs
JOBS_PER_MODEL = len(RELEASE_TURNS)     # one inference job per turn length (shards: 1)
H100_PRICE_PER_HOUR = 2.50              # on-demand cloud price, USD

# Open models of config/paper.yaml: (parameters in billions, image tokens per image, backend,
# output tokens). Image tokens from each model's documented image processing, for a ~1024x768 image.
OPEN_MODELS = {
    "qwen2.5-vl-3b": (3.8, 1000, "vllm", MEAN_OUTPUT_TOKENS),      # one token per 28x28 pixels
    "qwen2.5-vl-7b": (8.3, 1000, "vllm", MEAN_OUTPUT_TOKENS),
    "llava-1.5-7b": (7.1, 576, "vllm", MEAN_OUTPUT_TOKENS),        # 24x24 patches of a 336 px image
    "llava-next-7b": (7.6, 2880, "vllm", MEAN_OUTPUT_TOKENS),      # anyres: up to 4 tiles + base, 576 each
    "internvl3-8b": (7.9, 1792, "vllm", MEAN_OUTPUT_TOKENS),       # 256 per 448 px tile, 6 tiles + thumbnail
    "llama-3.2-11b-vision": (10.7, 1601, "hf", MEAN_OUTPUT_TOKENS),  # cross-attention over 1601 per tile
    "gemma-3-4b": (4.3, 256, "vllm", MEAN_OUTPUT_TOKENS),          # fixed 256 soft tokens
    "gemma-3-12b": (12.2, 256, "vllm", MEAN_OUTPUT_TOKENS),
    "minicpm-v-2.6": (8.1, 640, "vllm", MEAN_OUTPUT_TOKENS),       # 64 per slice, up to 9 slices + 1
    "glm-4.1v-9b": (10.3, 1000, "vllm", 1024),                     # reasoning: assume it uses the cap
}
# API models: USD per million input / output tokens (list prices) and tokens per ~1024x768 image.
API_MODELS = {
    "gpt-4o-mini": (0.15, 0.60, 25_501),    # high detail: 4 tiles x 5,667 + 2,833
    "gpt-4o": (2.50, 10.00, 765),           # high detail: 4 tiles x 170 + 85
    "gemini-2.0-flash": (0.10, 0.40, 258),
    "claude-sonnet-4": (3.00, 15.00, 1049),  # width x height / 750
}
JUDGE_INPUT_TOKENS = 700                  # LLM judge: criteria + question + answer
JUDGE_OUTPUT_TOKENS = 20
N_MODELS_PAPER = 17                       # models whose answers an API judge would label


def sh(cmd: list[str], cwd: Path, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return took, proc


def copy_checkout(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for f in files:
        src = REPO / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            (dest / f).write_bytes(src.read_bytes())
    return dest


def median_time(cmd: list[str], cwd: Path, n: int = 3) -> float:
    return statistics.median(sh(cmd, cwd)[0] for _ in range(n))


def rerun_costs(checkout: Path) -> dict:
    dry = median_time(["snakemake", "-n"], checkout)
    noop = median_time(["snakemake", "--cores", "2"], checkout)
    _, proc = sh(["snakemake", "--cores", "2"], checkout)
    assert "Nothing to be done" in proc.stdout + proc.stderr, "the default is not finished"
    return {"dry_run_s": round(dry, 2), "noop_rerun_s": round(noop, 2), "noop_vs_dry_run": round(noop / dry, 2)}


def paper_dag(checkout: Path) -> dict:
    (checkout / "resources/release/Data").mkdir(parents=True, exist_ok=True)
    took, proc = sh(["snakemake", "-n", "--configfile", "config/paper.yaml"], checkout)
    jobs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", proc.stdout, re.M)}
    return {"jobs": jobs.pop("total", sum(jobs.values())), "by_rule": jobs, "dry_run_s": round(took, 2)}


def stage_throughput(checkout: Path, out: Path) -> dict:
    """Each stage as the rule's command, on the finished default's inputs, into a scratch folder."""
    ds = checkout / "results/dataset/dialogues.jsonl"
    n_dialogues = sum(1 for _ in ds.open())
    t_build, _ = sh(["safemt", "data", "build", "resources/seeds/seeds.jsonl", "-o", str(out / "d.jsonl")], checkout)
    t_infer, _ = sh(["safemt", "infer", "--model", "tiny-vlm-a", "--turns", "8", "--dataset", str(ds),
                     "-o", str(out / "g.jsonl")], checkout)
    gens = [json.loads(line) for line in (out / "g.jsonl").open()]
    t_judge, _ = sh(["safemt", "judge", "--judge", "keyword", "--dataset", str(ds), "-i", str(out / "g.jsonl"),
                     "-o", str(out / "j.jsonl")], checkout)
    judgments = sorted(str(p) for p in (checkout / "results/judgments").glob("*/*/*/*.jsonl"))
    t_metrics, _ = sh(["safemt", "metrics", "-i", *judgments, "-o", str(out / "m")], checkout)
    t_start, _ = sh(["safemt", "--version"], checkout)
    out_tokens = sum(g["n_output_tokens"] or 0 for g in gens)
    return {
        "process_start_s": round(t_start, 2),
        "dataset_build": {"dialogues": n_dialogues, "s": round(t_build, 2),
                          "dialogues_per_s": round(n_dialogues / t_build, 1)},
        "inference_tiny_vlm_8_turn": {"dialogues": len(gens), "s": round(t_infer, 2),
                                      "dialogues_per_s": round(len(gens) / t_infer, 2),
                                      "output_tokens_per_s": round(out_tokens / t_infer, 1)},
        "judge_keyword": {"items": len(gens), "s": round(t_judge, 2), "items_per_s": round(len(gens) / t_judge, 1)},
        "metrics": {"judgment_files": len(judgments), "s": round(t_metrics, 2)},
    }


def release_tokens() -> dict:
    """Words per dialogue (all messages) measured on the sample; 6 and 8 turns by a linear fit."""
    if SAMPLE is None or not (SAMPLE / "1_turn.json").exists():
        words = {1: 14.0, 2: 68.6, 4: 174.8}  # measured 2026-11-30 on the sample (426 records)
        measured_on = "recorded figures (SAFEMT_SAMPLE_DIR unset or without the excerpt)"
    else:
        words = {}
        for n in (1, 2, 4):
            recs = json.loads((SAMPLE / f"{n}_turn.json").read_text(encoding="utf-8"))
            words[n] = sum(len(m["content"].split()) for r in recs for m in r["dialogue"]) / len(recs)
        measured_on = str(SAMPLE)
    xs, ys = list(words), list(words.values())
    mx, my = statistics.mean(xs), statistics.mean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    per_turns = {n: words.get(n, my + slope * (n - mx)) for n in RELEASE_TURNS}
    text_tokens = {n: w * TOKENS_PER_WORD + TEMPLATE_TOKENS_PER_MESSAGE * (2 * n - 1) for n, w in per_turns.items()}
    return {"measured_on": measured_on, "words_per_dialogue": {k: round(v, 1) for k, v in per_turns.items()},
            "text_tokens_per_dialogue": {k: round(v) for k, v in text_tokens.items()},
            "text_tokens_total": round(RELEASE_IDS * sum(text_tokens.values()))}


def projection(text_tokens_total: float) -> dict:
    n = RELEASE_IDS * len(RELEASE_TURNS)
    models = {}
    for name, (params_b, image_tokens, backend, out_tokens) in OPEN_MODELS.items():
        prefill = (text_tokens_total + n * image_tokens) * VISION_OVERHEAD
        prefill_rate = PREFILL_MFU * H100_BF16_FLOPS / (2 * params_b * 1e9)
        decode_rate = DECODE_TOK_S_8B * min(2.0, 8.0 / params_b)  # memory-bound: ~ inverse to size
        compute_s = prefill / prefill_rate + n * out_tokens / decode_rate
        if backend == "hf":
            compute_s *= HF_BACKEND_SLOWDOWN
        start_s = JOBS_PER_MODEL * ENGINE_START_S
        models[name] = {"prefill_tokens_m": round(prefill / 1e6, 1), "output_tokens_m": round(n * out_tokens / 1e6, 1),
                        "compute_h": round(compute_s / 3600, 2), "start_h": round(start_s / 3600, 2),
                        "h100_hours": round((compute_s + start_s) / 3600, 2)}
    total = sum(m["h100_hours"] for m in models.values())
    api = {}
    for name, (usd_in, usd_out, image_tokens) in API_MODELS.items():
        tin = text_tokens_total + n * image_tokens
        api[name] = round((tin * usd_in + n * MEAN_OUTPUT_TOKENS * usd_out) / 1e6, 2)
    judge_in = N_MODELS_PAPER * n * JUDGE_INPUT_TOKENS
    judge_out = N_MODELS_PAPER * n * JUDGE_OUTPUT_TOKENS
    judges = {name: round((judge_in * API_MODELS[name][0] + judge_out * API_MODELS[name][1]) / 1e6, 2)
              for name in ("gpt-4o-mini", "gpt-4o")}
    biggest = max(models, key=lambda k: models[k]["h100_hours"])
    return {
        "dialogues_per_model": n, "open_models": models,
        "open_sweep_h100_hours": round(total, 1), "target_h100_hours": 6, "fits_target": total <= 6,
        "open_sweep_usd": round(total * H100_PRICE_PER_HOUR),
        "largest": biggest,
        "engine_start_share": round(sum(m["start_h"] for m in models.values()) / total, 2),
        "hf_backend_share": round(sum(m["h100_hours"] for k, m in models.items()
                                      if OPEN_MODELS[k][2] == "hf") / total, 2),
        "api_targets_usd": api, "api_judge_usd_all_17_models": judges,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--finished", type=Path, help="a checkout where the embedded default has finished")
    ap.add_argument("--skip-stages", action="store_true", help="skip the per-stage throughput")
    args = ap.parse_args()
    report: dict = {}
    with tempfile.TemporaryDirectory(prefix="safemt-scaling-") as tmp:
        tmp = Path(tmp)
        if args.finished:
            checkout = args.finished.resolve()
        else:
            checkout = copy_checkout(tmp / "checkout")
            took, _ = sh(["snakemake", "--cores", "2"], checkout)
            report["default_first_run_s"] = round(took, 1)
        report["rerun"] = rerun_costs(checkout)
        if not args.skip_stages:
            (tmp / "stages").mkdir()
            report["stages"] = stage_throughput(checkout, tmp / "stages")
        dag_copy = copy_checkout(tmp / "paper")
        report["paper_dag"] = paper_dag(dag_copy)
    report["release_tokens"] = release_tokens()
    report["projection"] = projection(report["release_tokens"]["text_tokens_total"])
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
