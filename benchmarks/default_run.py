"""Benchmark (not a test): the embedded default end to end, as a new user runs it, from one run.

    python benchmarks/default_run.py [--cores N] [--keep DIR]

Copies the checkout's tracked files into a fresh folder, runs `snakemake --cores N` there (the tiny
models are built by the workflow itself), and prints one JSON object:
- wall_s: the Snakemake run's wall time;
- jobs: how many jobs Snakemake ran;
- forward_s: seconds spent inside model calls, summed over every job (target generation and the
  defenses' guard and moderator calls, from the timings beside each generations file);
- outside_forward_share: 1 - forward_s / (wall_s x N), the share of the run's core-time spent
  outside model forward passes (process start-up, imports, loading, bookkeeping).
The machine is shared and noisy: compare two commits by running this on each, one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fresh_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for rel in filter(None, (f.decode() for f in files)):
        src, out = REPO / rel, dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            out.symlink_to(os.readlink(src))
        elif src.is_file():
            out.write_bytes(src.read_bytes())
    return dest


def forward_seconds(results: Path) -> float:
    total = 0.0
    for path in results.glob("generations/**/.journal/*.timings.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            total += (row.get("latency_s") or 0.0) + (row.get("defense_latency_s") or 0.0)
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--keep", type=Path, help="run in DIR (kept) instead of a temporary folder")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = fresh_copy(args.keep or Path(tmp) / "checkout")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               "PYTHONPATH": str(root / "src"),  # the copy's code, whatever the environment installed
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        start = time.perf_counter()
        proc = subprocess.run(["snakemake", "--cores", str(args.cores)], cwd=root, env=env, capture_output=True,
                              text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        jobs = len(re.findall(r"^\[.*\]\nFinished job|Finished jobid", proc.stderr, re.M))
        forward = forward_seconds(root / "results")
        print(json.dumps({"wall_s": round(wall, 1), "jobs": jobs, "cores": args.cores, "forward_s": round(forward, 1),
                          "outside_forward_share": round(1 - forward / (wall * args.cores), 3)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
