"""GPU check, part 2 (not a test): the paper profile's smallest open model, end to end on one GPU.

Takes config/paper.yaml's smallest open target (by the parameter count in its hub id, e.g. `3B`; or
the one named by SAFEMT_GPU_CHECK_MODEL), and runs the whole workflow with Snakemake on 20 dialogues:
4 of the project's own seed queries x 5 turn lengths (the release cannot be fetched offline), that
model as the only target, the keyword judge (the API judge needs a key and network; the guards need
their own weights), metrics and figures, under results-gpu-check/. Decoding settings, the model's
revision (locked or as configured) and its batch size are the paper profile's.

The weights must already be in the local Hugging Face cache (the device machine has no network):
`hf download <hub id> --revision <revision>` beforehand; without them it stops with one line saying so.
vllm models run on vllm when it is installed, else on the hf backend (printed). Prints one JSON object.
"""

from __future__ import annotations

from collections.abc import Mapping

import copy
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from safemt.stages import params as safemt_params  # noqa: E402
from safemt.layout import Layout  # noqa: E402
from safemt.models.lock import pinned_revision  # noqa: E402

PAPER = REPO / "config" / "paper.yaml"
N_SEEDS = 4
RESULTS = "results-gpu-check"
OUT_CONFIG = REPO / RESULTS / "params.yaml"  # generated; the lock's SHA is written into it as the revision


def size_in_billions(path: str) -> float:
    """Parameter count from a hub id (`Qwen/Qwen2.5-VL-3B-Instruct` -> 3.0); unknown sizes sort last."""
    m = re.search(r"(\d+(?:\.\d+)?)[bB](?![a-z])", path.split("/")[-1])
    return float(m.group(1)) if m else float("inf")


def smallest_open_target(params: Mapping) -> str:
    wanted = os.environ.get("SAFEMT_GPU_CHECK_MODEL")
    if wanted:
        return wanted
    open_targets = [t for t in params["targets"] if params["models"][t]["backend"] in ("hf", "vllm")]
    return min(open_targets, key=lambda t: (size_in_billions(params["models"][t]["path"]), t))


def weights_cached(path: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(path, "config.json", revision=revision)
    return isinstance(found, str)


def check_config(params: Mapping, name: str) -> dict:
    """paper.yaml reduced to NAME on 20 dialogues with the keyword judge, on one GPU."""
    check = copy.deepcopy(params)
    model = check["models"][name]
    for key in ("resolved_revision", "unpinned"):  # set again when the generated file is loaded
        model.pop(key, None)
    if model["backend"] == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError:
            model["backend"] = "hf"
            for key in ("tensor_parallel_size", "gpu_memory_utilization", "max_model_len"):
                model.pop(key, None)
            model["batch_size"] = min(int(model.get("batch_size", 16)), 16)
    model.update(gpus=1, shards=1)
    if params["models"][name].get("resolved_revision"):
        model["revision"] = params["models"][name]["resolved_revision"]  # the lock's SHA, as the paper run uses
    check["models"] = {name: model}
    check["targets"] = [name]
    check["defenses"] = ["none"]
    check["results_dir"] = RESULTS
    seeds = REPO / "resources" / "seeds" / "seeds.jsonl"
    subset = REPO / RESULTS / "seeds.jsonl"
    subset.parent.mkdir(parents=True, exist_ok=True)
    lines = seeds.read_text(encoding="utf-8").splitlines()[:N_SEEDS]
    subset.write_text("".join(line + "\n" for line in lines), encoding="utf-8")  # images are drawn from `draw`
    check["dataset"] = {**{k: v for k, v in params["dataset"].items() if k != "hub"},
                        "source": "build", "seeds": str(subset.relative_to(REPO)), "generator": "template",
                        "generator_model": None, "tokenizer": None}
    check["judges"] = {"keyword": {"kind": "keyword"}}
    check["metrics"] = {**params.get("metrics", {}), "judges": ["keyword"]}
    check["figures"] = {"judge": "keyword"}
    check["allow_unpinned_revisions"] = bool(params.get("allow_unpinned_revisions", False))
    return check


def main() -> int:
    import torch
    import yaml

    if not torch.cuda.is_available():
        print("gpu_paper_check: no CUDA device here (this check is for a GPU machine)", file=sys.stderr)
        return 2
    params = safemt_params.load(PAPER)
    name = smallest_open_target(params)
    model = params["models"][name]
    revision = pinned_revision(model)
    if not weights_cached(model["path"], revision):
        print(f"gpu_paper_check: {model['path']}@{revision} is not in the local Hugging Face cache; run `hf download "
              f"{model['path']} --revision {revision}` where the hub is reachable, then rerun", file=sys.stderr)
        return 2
    check = check_config(params, name)
    if not model.get("resolved_revision") and not check["allow_unpinned_revisions"]:
        check["allow_unpinned_revisions"] = True  # a check, not a paper run: say so in the report
    OUT_CONFIG.write_text(yaml.safe_dump(check, sort_keys=False), encoding="utf-8")
    start = time.perf_counter()
    proc = subprocess.run(["snakemake", "--cores", "all", "--resources", "gpu=1", "--configfile", str(OUT_CONFIG)],
                          cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stdout[-4000:] + proc.stderr[-4000:], file=sys.stderr)
        print(f"gpu_paper_check: snakemake failed for {name} (logs under {RESULTS}/logs/)", file=sys.stderr)
        return 1
    layout = Layout(RESULTS)
    gens = [json.loads(line) for t in check["turns"]
            for line in Path(layout.generations.format(model=name, defense="none", turns=t)).read_text().splitlines()]
    summary = json.loads(Path(layout.metrics_file("summary.json").format(judge="keyword")).read_text())
    print(json.dumps({
        "model": name, "path": model["path"], "revision": revision, "backend": check["models"][name]["backend"],
        "unpinned": not model.get("resolved_revision"), "gpu": torch.cuda.get_device_name(0),
        "dialogues": len(gens), "errors": sum(g["error"] is not None for g in gens),
        "finish_length": sum(g["finish_reason"] == "length" for g in gens),
        "output_tokens": sum(g["n_output_tokens"] or 0 for g in gens),
        "workflow_s": round(elapsed, 1), "keyword_si": summary["models"][name]["none"]["si"],
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
