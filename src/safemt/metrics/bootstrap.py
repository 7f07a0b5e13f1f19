"""Seeded bootstrap confidence intervals, resampling dialogues."""

from __future__ import annotations

import functools
import hashlib

import numpy as np


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    """A generator per cell, so a cell's CI does not depend on which other cells were computed."""
    digest = hashlib.sha256("|".join(map(str, (seed, *parts))).encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def proportion_ci(successes: np.ndarray, n_resamples: int, rng: np.random.Generator,
                  level: float = 0.95) -> tuple[float, float] | None:
    """Percentile CI of the mean of a 0/1 vector; None when empty or no resamples.

    Resampling n dialogues with replacement from a 0/1 vector with s ones draws Binomial(n, s/n)
    ones, so the bootstrap distribution is sampled exactly without materialising the resamples.
    """
    n = len(successes)
    if n == 0 or n_resamples == 0:
        return None
    return _binomial_ci(n, float(np.mean(successes)), n_resamples, rng, level)


def count_ci(successes: int, n: int, n_resamples: int, rng: np.random.Generator,
             level: float = 0.95) -> tuple[float, float] | None:
    """`proportion_ci` of a 0/1 vector of length n with `successes` ones, from the two counts."""
    if n == 0 or n_resamples == 0:
        return None
    return _binomial_ci(n, successes / n, n_resamples, rng, level)  # the vector's mean, to the last bit


def _binomial_ci(n: int, p: float, n_resamples: int, rng: np.random.Generator,
                 level: float) -> tuple[float, float]:
    means = rng.binomial(n, p, size=n_resamples) / n
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


class Scratch:
    """A float64 array reused from one resampling to the next: a fresh one per cell (16 MB at paper
    scale) costs its page faults each time."""

    def __init__(self) -> None:
        self._data = np.empty(0)

    def array(self, rows: int, columns: int) -> np.ndarray:
        """A C-contiguous rows x columns view, its values undefined; valid until the next call."""
        if self._data.size < rows * columns:
            self._data = np.empty(rows * columns)
        return self._data[:rows * columns].reshape(rows, columns)


def resample(rng: np.random.Generator, n: int, n_resamples: int, values: np.ndarray,
             scratch: Scratch | None = None, rows_per_block: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Resamples of n items with replacement: the draws `rng.integers(0, n, size=(n_resamples, n))`
    counted per item (row b: `np.bincount(draws[b], minlength=n)`, as floats), and `counts @ values` for
    non-negative integer `values` (n x m), exactly: several columns of `values` are packed into the bits
    of one float64 (`_Packing`). The counts live in `scratch` when given.

    The draws are taken a block of rows at a time, each block counted while it is in cache; the
    generator gives the same numbers in blocks as in one call (checked once per process, else one call)."""
    counts = np.empty((n_resamples, n)) if scratch is None else scratch.array(n_resamples, n)
    packing = _Packing(values, n)
    sums = np.empty((n_resamples, packing.columns))
    step = rows_per_block if _blocks_keep_the_stream() else max(n_resamples, 1)
    for start in range(0, n_resamples, step):
        draws = rng.integers(0, n, size=(min(step, n_resamples - start), n))
        block = counts[start:start + len(draws)]
        for row, out in zip(draws, block):
            out[...] = np.bincount(row, None, n)  # minlength n, passed by position (cheaper to parse)
        sums[start:start + len(draws)] = packing.sums(block)
    return counts, packing.unpack(sums)


class _Packing:
    """Integer columns packed into float64 bit fields: a field's sum over a row of counts stays below
    2**bits when the row sums to at most `row_total`, and a float holds `per` fields in 52 bits. Every
    product and partial sum is then an integer below 2**52, so the sums are exact in any order; row by
    row dot products (`np.vecdot`) keep them off the BLAS thread pool."""

    def __init__(self, values: np.ndarray, row_total: int) -> None:
        self.values, self.width = values, values.shape[1]
        self.bits = max((int(row_total) * int(values.max(initial=0))).bit_length(), 1)
        self.per = 52 // self.bits
        if self.per < 1:  # too wide to pack: the plain product, exact while below 2**53
            self.vectors, self.columns = [], self.width
            return
        self.blocks = [range(f, min(f + self.per, self.width)) for f in range(0, self.width, self.per)]
        self.vectors = [sum(values[:, f] * float(1 << (self.bits * slot)) for slot, f in enumerate(block))
                        for block in self.blocks]
        self.columns = len(self.vectors)

    def sums(self, counts: np.ndarray) -> np.ndarray:
        """The packed sums of each row of `counts` (`unpack` reads the columns' sums out of them)."""
        if not self.vectors:
            return counts @ self.values
        return np.column_stack([_rowdot(counts, v) for v in self.vectors])

    def unpack(self, sums: np.ndarray) -> np.ndarray:
        if not self.vectors:
            return sums
        out = np.empty((len(sums), self.width))
        for column, block in enumerate(self.blocks):
            total = sums[:, column].astype(np.int64)
            for slot, f in enumerate(block):
                out[:, f] = (total >> (self.bits * slot)) & ((1 << self.bits) - 1)
        return out


def _rowdot(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    vecdot = getattr(np, "vecdot", None)  # numpy >= 2
    return vecdot(matrix, vector) if vecdot is not None else np.einsum("ij,j->i", matrix, vector)


@functools.lru_cache(maxsize=None)
def _blocks_keep_the_stream() -> bool:
    """Does `Generator.integers` give the same numbers drawn in blocks as in one call? (A range that
    rejects half of the raw draws, odd block sizes.)"""
    n = 2 ** 31 + 5
    whole = rng_for(0, "blocks").integers(0, n, size=(9, 3))
    rng = rng_for(0, "blocks")
    parts = np.concatenate([rng.integers(0, n, size=(k, 3)) for k in (1, 3, 2, 3)])
    return bool(np.array_equal(whole, parts))
