"""Benchmark (not a test): what live dialogues cost per generated token, against replay; prints one JSON object.

    python benchmarks/live.py

The default's trained tiny VLM (tiny-vlm-a, `hf` backend, CPU, batches of 8) answers the default's
harmful dialogues of 2, 4, 6 and 8 turns built from the project's seeds, once in replay mode (the final
turn only) and once live (every turn, `safemt.stages.live`), each after a warm-up, in one run. The
live stage batches the dialogues that are at the same turn (docs/live.md), so its cost per new token
should stay near replay's although it makes N requests per N-turn dialogue:

    live_vs_replay = live time / (live's new tokens x replay's time per new token)      (target <= 1.5)

Times are the stages' wall-clock time (journals, hashing and writes included); `*_generate_s` is
the share spent inside the backend's generate().
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from safemt.files import read_jsonl  # noqa: E402
from safemt.layout import live_turns_file  # noqa: E402
from safemt.models import get_backend  # noqa: E402
from safemt.stages import inference, live  # noqa: E402
from safemt.stages import params as sections  # noqa: E402

LENGTHS = (2, 4, 6, 8)
MODEL = "tiny-vlm-a"


def setup(tmp: Path) -> tuple[dict[str, Any], Path]:
    from safemt.data.build import build_dataset
    from safemt.models.planted import install_planted
    from safemt.stages.dataset import build_options

    install_planted(tmp / "models", REPO / "resources" / "planted")
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for name, entry in params["models"].items():
        entry["path"] = str(tmp / "models" / name)
    params["dataset"]["seeds"] = str(REPO / "resources" / "seeds" / "seeds.jsonl")
    params = sections.as_params(params)
    dataset = tmp / "dataset" / "dialogues.jsonl"
    build_dataset(params["dataset"]["seeds"], dataset, build_options(params))
    return params, dataset


class Timed:
    """The backend, with the time spent in its generate() added up."""

    def __init__(self, backend):
        self.backend, self.seconds = backend, 0.0

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def generate(self, requests):
        start = time.perf_counter()
        try:
            return self.backend.generate(requests)
        finally:
            self.seconds += time.perf_counter() - start


def timed_pass(stage, params, dataset, folder: Path, backend) -> tuple[float, float, int]:
    """(wall seconds, generate seconds, new tokens) of one pass over every length."""
    timed = Timed(backend)
    start, tokens = time.perf_counter(), 0
    for n in LENGTHS:
        out = folder / f"{n}.jsonl"
        stage.run(params, MODEL, dataset, out, turns=n, backend=timed, runner=sections.defense(params, "none"))
        records = read_jsonl(live_turns_file(str(out))) if stage is live else read_jsonl(out)
        tokens += sum(r["n_output_tokens"] or 0 for r in records)
    return time.perf_counter() - start, timed.seconds, tokens


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        params, dataset = setup(tmp)
        backend = get_backend(sections.model(params, MODEL))
        timed_pass(inference, params, dataset, tmp / "warm", backend)  # load, caches, allocator
        replay = timed_pass(inference, params, dataset, tmp / "replay", backend)
        live_run = timed_pass(live, params, dataset, tmp / "live", backend)
    per_token = replay[0] / replay[2]
    print(json.dumps({
        "lengths": list(LENGTHS), "model": MODEL,
        "replay_s": round(replay[0], 3), "replay_generate_s": round(replay[1], 3), "replay_new_tokens": replay[2],
        "live_s": round(live_run[0], 3), "live_generate_s": round(live_run[1], 3), "live_new_tokens": live_run[2],
        "live_vs_replay": round(live_run[0] / (live_run[2] * per_token), 3),
        "live_vs_replay_generate_only": round(live_run[1] / (live_run[2] * replay[1] / replay[2]), 3),
        "target": "<= 1.5",
    }, indent=2))


if __name__ == "__main__":
    main()
