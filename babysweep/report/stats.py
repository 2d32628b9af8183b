"""Small statistics for reports: mean ± std over seeds, seed-level t intervals of a difference (the
verdict's), and a bootstrap over BLiMP pairs (evaluation noise).

    m, s = mean_std([3.10, 3.14, 3.12])                        # std with ddof=1; 0 for one value
    diff, low, high = welch_interval([0.86, 0.85, 0.87], [0.84, 0.86, 0.83])   # independent seeds
    diff, low, high = paired_interval(variant_by_seed, base_by_seed)          # same seeds (ablations)
    diff, low, high = pair_noise_interval(a_pairs, b_pairs, weights=w)         # BLiMP pairs only

A seed is one training run; a pair is one BLiMP minimal pair, decided right (1) or wrong (0).

Why t intervals for the verdict: with 3 seeds a percentile bootstrap over seeds can only reshuffle
3 numbers: on the example study's numbers it was half as wide as Welch's t interval, which accounts
for estimating the spread from so few runs. With one run on both sides there is no interval
(low = high = None). The pairs are the evaluation set, shared by all models: resampling them (the
same draw for both sides) shows how much the finite test set moves a difference, a separate
question from what another seed would do.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from babysweep.report.decide import paired_test, welch_test

CHUNK = 64  # replicates whose pair counts are drawn at once (bounds memory for 60k+ BLiMP pairs)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample std with ddof=1); the std is 0.0 for a single value."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("mean_std of no values")
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


def welch_interval(a_seeds: Sequence[float], b_seeds: Sequence[float], level: float = 0.95
                   ) -> tuple[float, float | None, float | None]:
    """(mean(a) - mean(b), low, high): Welch's t interval for independent groups of seeds.

    One side with a single run is taken as a fixed value: the interval is the other side's one-sample
    t interval, and lacks the single run's own seed variation (report/build.py marks it). One run on both
    sides: no interval, (diff, None, None). No spread at all (equal values): (diff, diff, diff)."""
    test = welch_test(a_seeds, b_seeds, level)  # report/decide.py: the same test the verdict decides with
    return test.diff, test.low, test.high


def paired_interval(a_seeds: Sequence[float], b_seeds: Sequence[float], level: float = 0.95
                    ) -> tuple[float, float | None, float | None]:
    """(mean(a - b), low, high): the paired t interval of a and b measured on the same seeds, in the
    same order; the seed's shared luck cancels. One seed: no interval, (diff, None, None)."""
    test = paired_test(a_seeds, b_seeds, level)
    return test.diff, test.low, test.high


def pair_noise_interval(a_pairs, b_pairs, *, weights=None, n: int = 2000, seed: int = 0, level: float = 0.95
                        ) -> tuple[float, float, float]:
    """(diff, low, high) of the seed-averaged scores a - b when only the evaluation pairs are resampled
    (the same draw for both: they were scored on the same pairs). It measures how much the finite
    BLiMP set moves the difference, not how much another seed would: the verdict does not use it."""
    pa = np.asarray([np.asarray(p, dtype=float) for p in a_pairs])
    pb = np.asarray([np.asarray(p, dtype=float) for p in b_pairs])
    if pa.ndim != 2 or pb.ndim != 2 or pa.shape[1] != pb.shape[1] or not pa.size or not pb.size:
        raise ValueError("pair_noise_interval needs one equally long decision array per seed on both sides")
    w = np.ones(pa.shape[1]) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (pa.shape[1],):
        raise ValueError(f"weights must have one value per pair ({pa.shape[1]}), not shape {w.shape}")
    per_pair = pa.mean(0) - pb.mean(0)  # the seed-averaged difference on each pair
    diff = float(per_pair @ w / w.sum())
    rng = np.random.default_rng(seed)
    reps = np.empty(n)
    for start in range(0, n, CHUNK):
        k = min(CHUNK, n - start)
        counts = _draw_counts(rng, k, pa.shape[1]) * w
        reps[start:start + k] = counts @ per_pair / counts.sum(1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(reps, [tail, 100 - tail])
    return diff, float(low), float(high)


def _draw_counts(rng, k: int, size: int) -> np.ndarray:
    """[k, size]: how often each pair is drawn in each of k resamples of `size` pairs with replacement."""
    idx = rng.integers(0, size, (k, size)) + np.arange(k)[:, None] * size  # one bincount for all k rows
    return np.bincount(idx.ravel(), minlength=k * size).reshape(k, size).astype(float)


def excludes_zero(low: float | None, high: float | None) -> bool:
    """True when there is an interval and it lies wholly on one side of zero."""
    if low is None or high is None:
        return False
    return low > 0 or high < 0


__all__ = ["mean_std", "welch_interval", "paired_interval", "pair_noise_interval", "excludes_zero"]
