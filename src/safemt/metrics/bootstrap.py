"""Seeded bootstrap confidence intervals, resampling dialogues."""

from __future__ import annotations

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
    means = rng.binomial(n, float(np.mean(successes)), size=n_resamples) / n
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)
