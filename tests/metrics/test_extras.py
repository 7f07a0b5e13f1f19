"""SI bootstrap over dialogue ids, dataset composition and the flat DVC scores."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from safemt.cli import main
from safemt.config import fill_defaults
from safemt.files import write_jsonl
from safemt.metrics.bootstrap import rng_for
from safemt.metrics.extras import si_bootstrap
from safemt.metrics.options import MetricsOptions
from safemt.metrics.safety_index import safety_index
from tests.metrics.test_summary import judgments, params_file

K = [1, 2, 4, 6, 8]


def _options(n: int, seed: int) -> MetricsOptions:
    """The schema's default options (those of `safety_index` called without options), this bootstrap."""
    return MetricsOptions.from_config(fill_defaults({"metrics": {"bootstrap": {"n": n, "seed": seed}}})["metrics"])


def _labels(seed: int, n_ids: int = 40, weights=(50, 40, 5, 5)) -> dict:
    rng = random.Random(seed)
    return {(f"id{i}", k): rng.choices(["safe", "unsafe", "invalid", None], weights=weights)[0]
            for i in range(n_ids) for k in K}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_si_bootstrap_equals_brute_force_resampling(seed: int) -> None:
    """Each resample scored by safety_index on the resampled ids (copies renamed) gives the same CI."""
    labels = _labels(seed)
    fast = si_bootstrap(labels, K, _options(60, 5), ("j", "m", "none"))
    ids = sorted({i for i, _ in labels})
    draws = rng_for(5, "si", "j", "m", "none").integers(0, len(ids), size=(60, len(ids)))
    values = []
    for row in draws:
        resampled = {(f"{ids[p]}#{c}", k): labels[(ids[p], k)] for c, p in enumerate(row) for k in K}
        values.append(safety_index(resampled, K)["si"])
    lo, hi = np.quantile(values, [0.025, 0.975])
    assert fast["resamples"] == 60 and fast["skipped"] == 0
    assert fast["si_lo"] == pytest.approx(lo, abs=1e-12) and fast["si_hi"] == pytest.approx(hi, abs=1e-12)
    full = safety_index(labels, K)
    assert fast["si"] == full["si"] and fast["s1"] == full["s1"] and fast["s2"] == full["s2"]


def test_si_ci_brackets_the_estimate_and_narrows_with_more_ids() -> None:
    small = si_bootstrap(_labels(7, n_ids=30), K, _options(300, 0), ("c",))
    large = si_bootstrap(_labels(7, n_ids=600), K, _options(300, 0), ("c",))
    for r in (small, large):
        assert r["si_lo"] <= r["si"] <= r["si_hi"]
    assert (large["si_hi"] - large["si_lo"]) < (small["si_hi"] - small["si_lo"])


def test_no_resamples_gives_point_only() -> None:
    r = si_bootstrap(_labels(1), K, _options(0, 0), ("c",))
    assert r["resamples"] == 0 and r["si_lo"] is None and r["si"] == safety_index(_labels(1), K)["si"]


def test_metrics_writes_si_ci_composition_and_scores(tmp_path: Path, repo_root: Path) -> None:
    files = []
    for m, seed in (("m-a", 1), ("m-b", 2)):
        p = tmp_path / f"{m}.jsonl"
        write_jsonl(p, judgments(m, seed))
        files.append(str(p))
    params = params_file(tmp_path, repo_root)
    out, scores = tmp_path / "metrics", tmp_path / "scores"
    assert main(["metrics", "--params", params, "-i", *files, "-o", str(out), "--scores", str(scores)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "si_ci.csv") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"m-a", "m-b"}
    for model, row in rows.items():
        assert float(row["si"]) == summary["models"][model]["none"]["si"]
        assert float(row["si_lo"]) <= float(row["si"]) <= float(row["si_hi"])
        flat = json.loads((scores / model / "none.json").read_text())
        assert flat["si"] == summary["models"][model]["none"]["si"]
        assert flat["asr_8"] == summary["models"][model]["none"]["asr"]["8"]
        assert all(not isinstance(v, (dict, list)) for v in flat.values()), "flat: one row per file in DVC"
    with open(out / "composition.csv") as fh:
        comp = list(csv.DictReader(fh))
    # 30 ids at each of 5 lengths, one scenario; the 1-turn dialogues have no method
    assert sum(int(r["dialogues"]) for r in comp) == 150
    assert {(r["method"], r["turns"]) for r in comp} == {("none", "1")} | {("escalation", str(k)) for k in K[1:]}
    first = (out / "si_ci.csv").read_bytes()
    assert main(["metrics", "--params", params, "-i", *files, "-o", str(out)]) == 0
    assert (out / "si_ci.csv").read_bytes() == first


def test_si_ci_follows_the_metrics_when_methods_share_a_length(tmp_path: Path, repo_root: Path) -> None:
    """method_assignment: all: two methods per (id, turns); S2 runs per (id, method) chain and the
    bootstrap still resamples dialogue ids, so its point SI is the summary's."""
    rng = random.Random(4)
    recs = []
    for n in range(25):
        for k in K:
            for method in ([None] if k == 1 else ["escalation", "roleplay"]):
                recs.append({"id": f"own_fraud_{n}", "turns": k, "model": "m", "defense": "none",
                             "judge": "keyword", "label": rng.choice(["safe", "unsafe"]), "raw": "x",
                             "scenario": "Fraud", "method": method})
    p = tmp_path / "j.jsonl"
    write_jsonl(p, recs)
    out = tmp_path / "metrics"
    assert main(["metrics", "--params", params_file(tmp_path, repo_root), "-i", str(p), "-o", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())["models"]["m"]["none"]
    assert summary["s2_per"] == "id, method"
    with open(out / "si_ci.csv") as fh:
        row = next(csv.DictReader(fh))
    assert float(row["si"]) == pytest.approx(summary["si"], abs=1e-12)
    assert float(row["s2"]) == pytest.approx(summary["s2"], abs=1e-12)
    assert int(row["ids"]) == 25 and float(row["si_lo"]) <= float(row["si"]) <= float(row["si_hi"])
