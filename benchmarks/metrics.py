"""Benchmark (not a test): metrics on synthetic paper-scale judgments.

17 models x 10,000 judgments (2,000 ids x 5 turn lengths), 1,000 bootstrap resamples. Prints JSON
with the time of the whole `safemt metrics` computation (which reads the files once itself) divided
by the time to just read the files (target, issue 24: ratio <= 1.5). Both are measured in this one
run, so machine noise affects them alike, except another job busy on the same cores: it slows the
numpy and BLAS parts more than the read, so measure on a quiet machine.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

from safemt.scenarios import METHODS, SCENARIOS
from safemt.files import write_jsonl
from safemt.config import fill_defaults
from safemt.metrics.labels import load_judgments
from safemt.metrics.options import MetricsOptions
from safemt.metrics.summary import compute_metrics

N_MODELS, N_IDS, TURNS = 17, 2000, [1, 2, 4, 6, 8]


def synthesize(folder: Path) -> list[str]:
    rng = random.Random(0)
    paths = []
    for m in range(N_MODELS):
        base = rng.uniform(0.05, 0.5)
        recs = []
        for k in TURNS:
            p = min(0.95, base + 0.04 * k)
            for i in range(N_IDS):
                roll = rng.random()
                label = "invalid" if roll < 0.01 else ("unsafe" if roll < p else "safe")
                recs.append({"id": f"mm_x_{i}", "turns": k, "model": f"model-{m:02d}", "defense": "none",
                             "judge": "bench", "label": label, "raw": label,
                             "scenario": SCENARIOS[i % len(SCENARIOS)],
                             "method": None if k == 1 else METHODS[i % len(METHODS)], "error": None,
                             "judge_hash": "h"})
        path = folder / f"model-{m:02d}.jsonl"
        write_jsonl(path, recs)
        paths.append(str(path))
    return paths


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = synthesize(folder)
        t0 = time.perf_counter()
        load_judgments(paths)
        t_read = time.perf_counter() - t0
        params = fill_defaults({"turns": TURNS, "metrics": {"bootstrap": {"n": 1000, "seed": 0}}})
        t0 = time.perf_counter()
        compute_metrics(MetricsOptions.from_config(params["metrics"]), TURNS, paths, str(folder / "out"))
        t_all = time.perf_counter() - t0
    print(json.dumps({"judgments": N_MODELS * N_IDS * len(TURNS), "bootstrap": 1000,
                      "read_s": round(t_read, 3), "metrics_s": round(t_all, 3),
                      "metrics_vs_read": round(t_all / t_read, 3)}), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
