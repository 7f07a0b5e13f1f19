"""The judgments as columns: one pass over the records, then arrays.

Each record is visited once, for a combination code (its model, defense, turns, label, method,
scenario, judge, judge hash, parse kind and provider refusal together) and an id code (ids in sorted
order). Combinations are few (judgments share them), so everything counted per cell (ASR, breakdowns,
provenance) is counted per combination and added up with numpy. Per model x defense the labels are
a `LabelGrid` built from the two codes, without a dict per record; a model x defense where several
methods share an (id, turns) keys its S2 chains as `method_chains` does, from its records.
"""

from __future__ import annotations

import math
from operator import itemgetter
from typing import Any, Hashable, Iterable, Iterator

import numpy as np

from safemt.errors import SafemtError
from safemt.metrics.labels import PROVIDER_REFUSALS, effective_labels, method_chains
from safemt.metrics.safety_index import GRID_LABELS, INVALID, SAFE, UNSAFE, LabelGrid
from safemt.records import PARSE_KINDS, PROVIDER

COMBO = ("model", "defense", "turns", "label", "method", "scenario", "judge",  # required by the contract
         "judge_hash", "parse", "refused_by")  # optional
_CODE = {lab: code for code, lab in enumerate(GRID_LABELS)}


class _Codes(dict):
    """value -> its index in order of first appearance, assigned on first lookup."""

    def __missing__(self, key: Hashable) -> int:
        self[key] = code = len(self)
        return code


def _codes(values: Iterable[Hashable], n: int) -> tuple[list, np.ndarray]:
    """The distinct values in order of first appearance and each value's index among them."""
    codes = _Codes()
    index = np.fromiter(map(codes.__getitem__, values), dtype=np.intp, count=n)
    return list(codes), index


def _repeats(key: np.ndarray, size: int) -> bool:
    """Does a value occur twice in `key` (integers in [0, size))?"""
    if size <= 4 * len(key) + 65536:
        return bool(len(key)) and int(np.bincount(key, minlength=size).max()) > 1
    return len(np.unique(key)) < len(key)


def _dense(codes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of `codes` (integers in [0, size)), sorted, and each code's index among them."""
    if size <= 4 * len(codes) + 65536:
        seen = np.zeros(size, dtype=bool)
        seen[codes] = True
        return np.flatnonzero(seen), (np.cumsum(seen) - 1)[codes]
    values, index = np.unique(codes, return_inverse=True)
    return values, index.reshape(-1).astype(np.intp)


def group_sort_key(key: tuple) -> tuple[str, ...]:
    """The order of `labels.group_by`'s groups."""
    return tuple(str(x) for x in key)


class JudgmentTable:
    """Checked judgment records (`load_judgments`) as the metrics count them under `provider_refusals`."""

    def __init__(self, records: list[dict[str, Any]], provider_refusals: str) -> None:
        if provider_refusals not in PROVIDER_REFUSALS:
            raise SafemtError(f"metrics.provider_refusals must be one of {PROVIDER_REFUSALS}")
        self.records, self.provider_refusals, n = records, provider_refusals, len(records)
        get = dict.get
        self.combos, self.combo = _codes(((r["model"], r["defense"], r["turns"], r["label"], r["method"],
                                           r["scenario"], r["judge"], get(r, "judge_hash"), get(r, "parse"),
                                           get(r, "refused_by")) for r in records), n)
        ids, id_code = _codes(map(itemgetter("id"), records), n)
        order = sorted(range(len(ids)), key=ids.__getitem__)
        rank = np.empty(len(ids), dtype=np.intp)
        rank[order] = np.arange(len(ids))
        self.ids = [ids[i] for i in order]  # sorted: a code's order is its id's
        self.id = rank[id_code]
        self.count = np.bincount(self.combo, minlength=len(self.combos))  # records per combination
        # per field: its distinct values (first appearance) and each combination's index among them
        self.fields = {f: _codes(map(itemgetter(i), self.combos), len(self.combos)) for i, f in enumerate(COMBO)}
        self.refused = self.per_value("refused_by", lambda v: v == PROVIDER, bool)
        label = self.per_value("label", _CODE.__getitem__, np.int8)
        if provider_refusals == "missing":  # `effective_labels`: a provider refusal is unjudged
            label = np.where(self.refused, np.int8(0), label)
        self.label = label  # per combination, as counted: an index of GRID_LABELS
        self._cache: dict[Any, Any] = {}

    def __len__(self) -> int:
        return len(self.records)

    def per_value(self, field: str, fn: Any, dtype: Any) -> np.ndarray:
        """`fn` of each combination's value of `field`, evaluated once per distinct value."""
        values, code = self.fields[field]
        return np.array([fn(v) for v in values], dtype=dtype)[code] if values else np.zeros(0, dtype=dtype)

    def values(self, field: str) -> list:
        """The distinct values of a field, in order of first appearance."""
        return self.fields[field][0]

    def project(self, *fields: str) -> tuple[list[tuple], np.ndarray]:
        """The distinct values of `fields` (first appearance order) and each combination's index among them."""
        if fields not in self._cache:
            if math.prod(len(self.fields[f][0]) for f in fields) >= 2 ** 62:
                where = [COMBO.index(f) for f in fields]
                self._cache[fields] = _codes((tuple(c[w] for w in where) for c in self.combos), len(self.combos))
                return self._cache[fields]
            key = np.zeros(len(self.combos), dtype=np.int64)
            for f in fields:
                values, code = self.fields[f]
                key = key * len(values) + code
            _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
            order = np.argsort(first, kind="stable")  # distinct values by first appearance
            rank = np.empty(len(order), dtype=np.intp)
            rank[order] = np.arange(len(order))
            where = [COMBO.index(f) for f in fields]
            keys = [tuple(self.combos[i][w] for w in where) for i in first[order].tolist()]
            self._cache[fields] = keys, rank[inverse.reshape(-1)]
        return self._cache[fields]

    def tally(self, *fields: str) -> dict[tuple, dict[str, int]]:
        """Counts per distinct value of `fields` (first appearance order): records, n (safe or unsafe),
        unsafe, invalid, missing (null label), refused (by the provider)."""
        keys, per_combo = self.project(*fields)
        count, label = self.count, self.label
        columns = {"records": count, "n": count * ((label == SAFE) | (label == UNSAFE)),
                   "unsafe": count * (label == UNSAFE), "invalid": count * (label == INVALID),
                   "missing": count * (label == 0), "refused": count * self.refused}
        sums = {name: np.bincount(per_combo, weights=col, minlength=len(keys)).astype(np.int64).tolist()
                for name, col in columns.items()}
        return {key: {name: sums[name][i] for name in columns} for i, key in enumerate(keys)}

    def parse_counts(self) -> dict[str, int]:
        """`judges.parsing.parse_counts` of the records as counted."""
        kinds, code = self.fields["parse"]
        judged = np.bincount(code, weights=self.count * (self.label != 0), minlength=len(kinds))
        seen: dict[str, int] = {}
        for kind, n in zip(kinds, judged.astype(np.int64).tolist()):
            if n:
                seen[kind or "unrecorded"] = seen.get(kind or "unrecorded", 0) + n
        return {kind: seen[kind] for kind in (*PARSE_KINDS, "unrecorded") if kind in seen}

    def groups(self) -> Iterator[tuple[tuple, np.ndarray]]:
        """(model, defense) and the indices of its records in file order, groups as `group_by` sorts them."""
        keys, per_combo = self.project("model", "defense")
        group = per_combo[self.combo]
        order = np.argsort(group, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(group, minlength=len(keys)))])
        for g in sorted(range(len(keys)), key=lambda g: group_sort_key(keys[g])):
            yield keys[g], order[bounds[g]:bounds[g + 1]]

    def turn_position(self, turns: list[int]) -> np.ndarray:
        """Per combination: the index of its turns in `turns`, -1 outside."""
        position = {k: t for t, k in reversed(list(enumerate(turns)))}
        return self.per_value("turns", lambda k: position.get(k, -1), np.intp)

    def grids(self, rows: np.ndarray, turns: list[int]) -> tuple[LabelGrid, LabelGrid, bool]:
        """The S1 and S2 label grids of one model x defense's records `rows` at `turns`, and whether
        S2 runs per (id, method) chain (several methods share an (id, turns))."""
        turn_values, turn_code = self.fields["turns"]
        combo = self.combo[rows]
        if _repeats(self.id[rows] * len(turn_values) + turn_code[combo], len(self.ids) * len(turn_values)):
            # several methods at one (id, turns): S2 per (id, method) chain, keyed as method_chains keys it
            recs = effective_labels([self.records[i] for i in rows.tolist()], self.provider_refusals)
            labels, chains = method_chains(recs)
            return LabelGrid.from_mapping(labels, turns), LabelGrid.from_mapping(chains, turns), True
        if ("tpos", tuple(turns)) not in self._cache:
            self._cache[("tpos", tuple(turns))] = self.turn_position(turns)
        tpos = self._cache[("tpos", tuple(turns))][combo]
        inside = tpos >= 0
        ids, key = _dense(self.id[rows[inside]], len(self.ids))
        grid = LabelGrid(tuple(turns), [self.ids[i] for i in ids.tolist()], key, tpos[inside], self.label[combo[inside]])
        return grid, grid, False

    def dialogues(self, turns: list[int]) -> dict[tuple, int]:
        """Distinct dialogues (id, turns, method or 'none', scenario) at `turns`, counted by
        (scenario, method, turns), as `extras.composition_rows`."""
        keys, per_combo = _codes(((c[5], c[4] or "none", c[2]) for c in self.combos), len(self.combos))
        inside = self.per_value("turns", lambda k: k in turns, bool)
        rows = np.flatnonzero(inside[self.combo])
        pair = self.id[rows] * len(keys) + per_combo[self.combo[rows]]
        if len(self.ids) * len(keys) <= 4 * len(rows) + 1024:  # a mark per possible pair
            seen = np.bincount(pair, minlength=len(self.ids) * len(keys)).reshape(len(self.ids), len(keys)) > 0
            n = seen.sum(axis=0)
        else:
            n = np.bincount(np.unique(pair) % len(keys), minlength=len(keys))
        return {k: int(c) for k, c in zip(keys, n.tolist()) if c}
