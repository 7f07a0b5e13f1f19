"""The array paths of the metrics (issue 24): each equals, to the last bit, the per-record rule it replaces.

`LabelGrid` against the mapping functions of `safety_index`, the resampling helpers against the plain numpy
they stand for, `JudgmentTable` against `group_by`, `composition_rows` and `parse_counts` on records.
"""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest

from safemt.judges.parsing import parse_counts
from safemt.metrics.bootstrap import Scratch, count_ci, proportion_ci, resample, rng_for
from safemt.metrics.extras import composition_rows, tally_rows
from safemt.metrics.labels import SEP, effective_labels, group_by, method_chains
from safemt.metrics.safety_index import LabelGrid, asr, id_sigma, s2
from safemt.metrics.table import JudgmentTable

LABELS = ["safe", "unsafe", "invalid", None]


def _mapping(rng: random.Random, turns: list[int], n_ids: int) -> dict:
    """Labels with holes, null and invalid labels, lengths outside `turns`, keys in a random order."""
    weights = rng.choice([(50, 40, 5, 5), (20, 20, 30, 30), (0, 1, 0, 0), (5, 5, 0, 90)])
    pairs = [(f"id{rng.randrange(2 * n_ids)}", rng.choice(turns + [99])) for _ in range(n_ids * len(turns))]
    return {p: rng.choices(LABELS, weights=weights)[0] for p in pairs}


def _reference_s2(labels: dict, s2_labels: str) -> float:
    """`s2` as the release wrote it: a dict per id, `id_sigma` per id, in order of first counted label."""
    counted = ("safe", "unsafe") if s2_labels == "valid_only" else ("safe", "unsafe", "invalid")
    by_id: dict = {}
    for (i, k), lab in labels.items():
        if lab in counted:
            by_id.setdefault(i, {})[k] = lab
    return 1.0 - float(np.mean([id_sigma(d) for d in by_id.values()])) if by_id else 1.0


@pytest.mark.parametrize("seed", range(40))
def test_grid_s2_and_asr_equal_the_mapping_rules_bit_for_bit(seed: int) -> None:
    rng = random.Random(seed)
    turns = rng.choice([[1, 2, 4, 6, 8], [8, 1, 4, 2, 6], [2], [3, 1], list(range(1, 40))])
    labels = _mapping(rng, turns, rng.choice([1, 3, 40, 300]))
    inside = {key: lab for key, lab in labels.items() if key[1] in turns}
    grid = LabelGrid.from_mapping(labels, turns)
    for s2_labels in ("release", "valid_only"):
        assert grid.s2(s2_labels) == s2(inside, s2_labels) == _reference_s2(inside, s2_labels)
    valid, unsafe = grid.verdict_counts()
    for t, k in enumerate(turns):
        want = asr([lab for (_, kk), lab in inside.items() if kk == k])
        assert (unsafe[t] / valid[t] if valid[t] else None) == want


def test_grid_sigmas_are_id_sigma_per_key_and_presence() -> None:
    labels = {("a", 1): "unsafe", ("a", 2): "safe", ("a", 4): "unsafe", ("b", 2): None, ("b", 4): "invalid",
              ("c", 4): "safe", ("c", 1): "unsafe"}
    grid = LabelGrid.from_mapping(labels, [1, 2, 4])
    sigma, has = grid.sigmas("release")
    assert list(grid.names) == ["a", "b", "c"]
    assert sigma.tolist() == [id_sigma({1: "unsafe", 2: "safe", 4: "unsafe"}), 0.0,
                              id_sigma({1: "unsafe", 4: "safe"})]
    assert has.tolist() == [True, True, True]
    assert grid.sigmas("valid_only")[1].tolist() == [True, False, True]


@pytest.mark.parametrize("n,resamples,high", [(37, 53, 2), (1, 5, 3), (2000, 20, 1), (9, 7, 2 ** 40)])
def test_resample_is_the_draws_counted_and_their_exact_sums(n: int, resamples: int, high: int) -> None:
    """Draws in blocks are those of one call; counts are the bincounts; sums are exact (packed or not)."""
    values = np.random.default_rng(n).integers(0, high + 1, size=(n, 11)).astype(float)
    draws = rng_for(4, "r", n).integers(0, n, size=(resamples, n))
    want = np.stack([np.bincount(row, minlength=n) for row in draws]).astype(float)
    for scratch in (None, Scratch()):
        counts, sums = resample(rng_for(4, "r", n), n, resamples, values, scratch, rows_per_block=3)
        assert np.array_equal(counts, want) and counts.flags["C_CONTIGUOUS"]
        exact = [[sum(int(c) * int(v) for c, v in zip(row, col)) for col in values.T] for row in want.astype(int)]
        assert sums.tolist() == [[float(x) for x in row] for row in exact]


@pytest.mark.parametrize("n,ones", [(1, 0), (1, 1), (7, 3), (2000, 1234), (2000, 2000)])
def test_count_ci_is_proportion_ci_of_the_vector(n: int, ones: int) -> None:
    vector = np.array([1.0] * ones + [0.0] * (n - ones))
    assert count_ci(ones, n, 300, rng_for(1, "c")) == proportion_ci(vector, 300, rng_for(1, "c"))
    assert count_ci(ones, n, 0, rng_for(1, "c")) is None and count_ci(0, 0, 300, rng_for(1, "c")) is None


def _records(rng: random.Random, methods_share: bool) -> list[dict]:
    recs = []
    for model in ("m-b", "m-a"):
        for defense in ("none", "guard"):
            for n in range(rng.randint(2, 12)):
                for k in (1, 2, 4, 3):
                    for method in ([None] if k == 1 else ["esc", "role"] if methods_share else [["esc", "role"][n % 2]]):
                        if rng.random() < 0.15:
                            continue
                        lab = rng.choice(LABELS)
                        refused = lab == "safe" and rng.random() < 0.2
                        rec = {"id": f"own_{rng.choice(['fraud', 'privacy'])}_{n}", "turns": k, "model": model,
                               "defense": defense, "judge": "keyword", "label": lab,
                               "scenario": ["Fraud", "Privacy"][n % 2], "method": method}
                        if rng.random() < 0.7:
                            rec.update(refused_by="provider" if refused else None, judge_hash=rng.choice(["h1", None]),
                                       parse=rng.choice(["exact", "json", None, "rule"]))
                        recs.append(rec)
    # (id, turns, method) stays unique per model x defense, as the reader checks
    unique = {}
    for r in recs:
        unique.setdefault((r["model"], r["defense"], r["id"], r["turns"], r["method"]), r)
    return list(unique.values())


def _counts(group: list[dict]) -> dict:
    labels = [r["label"] for r in group]
    return {"records": len(group), "n": sum(lab in ("safe", "unsafe") for lab in labels),
            "unsafe": labels.count("unsafe"), "invalid": labels.count("invalid"),
            "missing": sum(lab is None for lab in labels),
            "refused": sum(r.get("refused_by") == "provider" for r in group)}


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("mode", ["safe", "missing"])
def test_table_counts_as_the_records_do(seed: int, mode: str) -> None:
    rng = random.Random(seed)
    recs = _records(rng, methods_share=seed % 3 == 0)
    table = JudgmentTable(recs, mode)
    counted = effective_labels(recs, mode)
    assert table.parse_counts() == parse_counts(counted)
    for fields in (("model", "defense", "turns", "scenario"), ("model", "defense", "turns", "method"), ("turns",)):
        got = table.tally(*fields)
        want = {key: _counts(group) for key, group in group_by(counted, *fields).items()}
        assert sorted(got.items(), key=lambda kv: str(kv[0])) == sorted(want.items(), key=lambda kv: str(kv[0]))
    groups = list(table.groups())
    assert [key for key, _ in groups] == list(group_by(recs, "model", "defense"))
    for turns in ([1, 2, 4], [4, 3]):
        want = composition_rows([r for r in recs if r["turns"] in turns])
        assert tally_rows(table.dialogues(turns)) == want
        for (model, defense), rows in groups:
            group = [recs[i] for i in rows.tolist()]
            assert group == group_by(recs, "model", "defense")[(model, defense)]
            s1_grid, s2_grid, chains = table.grids(rows, turns)
            labels, chain_labels = method_chains(effective_labels(group, mode))
            assert chains == (chain_labels is not None)
            for grid, mapping in ((s1_grid, labels), (s2_grid, chain_labels or labels)):
                want_grid = LabelGrid.from_mapping(mapping, turns)
                for s2_labels in ("release", "valid_only"):
                    assert grid.s2(s2_labels) == want_grid.s2(s2_labels)
                assert [tuple(v.tolist()) for v in grid.verdict_counts()] == \
                       [tuple(v.tolist()) for v in want_grid.verdict_counts()]
                per_key = defaultdict(dict)
                for key, t, code in zip(grid.key.tolist(), grid.tpos.tolist(), grid.code.tolist()):
                    per_key[grid.names[key]][t] = code
                want_key = defaultdict(dict)
                for key, t, code in zip(want_grid.key.tolist(), want_grid.tpos.tolist(), want_grid.code.tolist()):
                    want_key[want_grid.names[key]][t] = code
                assert per_key == want_key
            assert all(SEP in name for name in s2_grid.names if chains and name not in s1_grid.names)
