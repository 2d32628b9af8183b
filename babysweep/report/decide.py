"""Decisions behind the verdict: a test per comparison (paired over shared seeds, else Welch), Holm's
correction over the verdict's family, three outcomes, power, BLiMP against chance, and the
group-sequential rule of `finalists.seeds: auto`.

    t = seed_test(a_by_seed, b_by_seed)                # {"seed label": value}: paired when the seeds match
    adjusted = holm([0.001, 0.04, 0.3])                # Holm-adjusted p-values, same order
    outcome(t.diff, p_adj, higher_is_better=True)      # "better" | "worse" | "cannot tell"
    mdd = t.detectable()                               # smallest difference detectable at 80% power
    n = t.seeds_needed()                               # seeds per arm the observed difference would need
    p = above_chance(right=35_240, pairs=67_000)       # one-sided binomial p against 50%
    looks = spending_schedule(first=3, batch=2, cap=11)  # [(seeds, alpha spent at that look), ...]

Belongs with the report's statistics (report/ in the package layout); numpy and scipy only.

Paired or independent. Finalists of every role run the same seeds (tuning seed + 1000 + k), so
student seed k and baseline seed k start from the same initial weights and read the same chunks in
the same order: they are matched pairs, and a paired t test over the seeds they share removes the
luck they share. When the two sides' seed labels differ (older records, a missing run), the
comparison falls back to Welch's t over independent groups, and says so.

Power figures use the t approximation (t_{1-alpha/2, df} + t_{power, df}) x standard error, with the
standard error and df of the test that was run (Welch: the observed variances of both sides); the
seeds an observed difference would need are the smallest n for which that figure is below it.

The sequential rule spends alpha over looks with an O'Brien-Fleming-type spending function
(Lan-DeMets): alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)), t = seeds / cap. Look k tests the
still undecided comparisons with Holm at level alpha(t_k) - alpha(t_{k-1}). A false decision
needs one at some look, so by the union bound the family-wise false-positive rate over every look
is at most the sum of those levels, alpha (tests/test_decide.py simulates it).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

ALPHA = 0.05  # family-wise error rate of the verdict's decisions
POWER = 0.80  # for the smallest detectable difference
MAX_SEEDS = 1_000_000  # seeds_needed gives up (None) beyond this
OUTCOMES = ("better", "worse", "cannot tell")
SEQUENTIAL_TAG = "sequential"  # finalist runs' tag: "first,batch,cap" of the finalists.seeds: auto design they belong to


def _t_ppf(q: float, df: float) -> float:
    from scipy.stats import t  # lazy: only reports need scipy

    return float(t.ppf(q, df))


def _t_sf(x: float, df: float) -> float:
    from scipy.stats import t

    return float(t.sf(x, df))


@dataclass
class SeedTest:
    """One comparison a - b over seeds. method: "paired" (matched by seed), "welch", "one side's seeds"
    (the other side has one run, taken as fixed) or "none" (one run each: no interval, no test)."""

    diff: float
    low: float | None
    high: float | None
    p: float | None
    se: float | None
    df: float | None
    method: str
    n_a: int
    n_b: int
    var_a: float = 0.0  # per-seed variances (paired: var_a holds the variance of the differences)
    var_b: float = 0.0

    def detectable(self, alpha: float = ALPHA, power: float = POWER) -> float | None:
        """The smallest |difference| this comparison detects with probability `power` at level `alpha`."""
        if self.se is None or self.df is None or self.se == 0:
            return None
        return (_t_ppf(1 - alpha / 2, self.df) + _t_ppf(power, self.df)) * self.se

    def seeds_needed(self, diff: float | None = None, alpha: float = ALPHA, power: float = POWER) -> int | None:
        """Seeds per arm (paired: pairs of seeds) at which `diff` (default: the observed one) would be detected
        with `power`; None when there is no spread to go by or it would take over MAX_SEEDS."""
        diff = abs(self.diff if diff is None else diff)
        if self.method not in ("paired", "welch") or diff == 0 or self.var_a + self.var_b == 0:
            return None

        def enough(n: int) -> bool:
            if self.method == "paired":
                se, df = math.sqrt(self.var_a / n), n - 1
            else:
                va, vb = self.var_a / n, self.var_b / n
                se = math.sqrt(va + vb)
                df = (va + vb) ** 2 / ((va**2 + vb**2) / (n - 1))
            return (_t_ppf(1 - alpha / 2, df) + _t_ppf(power, df)) * se <= diff

        if not enough(MAX_SEEDS):
            return None
        low, high = 2, 2
        while not enough(high):  # doubling, then bisection: the figure shrinks as n grows
            low, high = high, high * 2
        while low < high:
            mid = (low + high) // 2
            low, high = (low, mid) if enough(mid) else (mid + 1, high)
        return high


def seed_test(a: Mapping[str, float] | Sequence[float], b: Mapping[str, float] | Sequence[float],
              level: float = 0.95) -> SeedTest:
    """Test a - b. With mappings {seed label: value} whose labels are the same set (2+ seeds), a paired t
    test matched by seed; otherwise Welch's t over the values (sequences are always independent)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping) and set(a) == set(b) and len(a) > 1:
        keys = sorted(a)
        return paired_test([a[k] for k in keys], [b[k] for k in keys], level)
    va = list(a.values()) if isinstance(a, Mapping) else list(a)
    vb = list(b.values()) if isinstance(b, Mapping) else list(b)
    return welch_test(va, vb, level)


def paired_test(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> SeedTest:
    """Paired t over matched seeds (equal to scipy.stats.ttest_rel)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or x.shape != y.shape:
        raise ValueError(f"paired_test needs the same seeds on both sides, not {x.size} and {y.size} values")
    d = x - y
    diff = float(d.mean())
    if d.size == 1:
        return SeedTest(diff, None, None, None, None, None, "none", 1, 1)
    var = float(d.var(ddof=1))
    return _finish(diff, math.sqrt(var / d.size), d.size - 1, "paired", d.size, d.size, var, 0.0, level)


def welch_test(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> SeedTest:
    """Welch's t over independent seeds (equal to scipy.stats.ttest_ind(equal_var=False)); one side with a
    single run is taken as a fixed value (a one-sample t test of the other side, its own variation missing)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        raise ValueError("welch_test needs at least one seed in each group")
    diff = float(x.mean() - y.mean())
    if x.size == 1 and y.size == 1:
        return SeedTest(diff, None, None, None, None, None, "none", 1, 1)
    var_a = float(x.var(ddof=1)) if x.size > 1 else 0.0
    var_b = float(y.var(ddof=1)) if y.size > 1 else 0.0
    sa, sb = var_a / x.size, var_b / y.size
    se = math.sqrt(sa + sb)
    if se == 0:
        df = float(max(x.size, y.size) - 1)
    else:
        df = (sa + sb) ** 2 / sum(v**2 / (n - 1) for v, n in ((sa, x.size), (sb, y.size)) if n > 1)
    method = "welch" if x.size > 1 and y.size > 1 else "one side's seeds"
    return _finish(diff, se, df, method, x.size, y.size, var_a, var_b, level)


def _finish(diff, se, df, method, n_a, n_b, var_a, var_b, level) -> SeedTest:
    if se == 0:  # no spread at all: the difference is what it is
        return SeedTest(diff, diff, diff, 1.0 if diff == 0 else 0.0, 0.0, df, method, n_a, n_b, var_a, var_b)
    half = _t_ppf(0.5 + level / 2, df) * se
    p = min(1.0, 2 * _t_sf(abs(diff) / se, df))
    return SeedTest(diff, diff - half, diff + half, p, se, df, method, n_a, n_b, var_a, var_b)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the given order (None stays None and is not counted)."""
    known = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    m = len(known)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(known)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def outcome(diff: float, p_adjusted: float | None, higher_is_better: bool, alpha: float = ALPHA) -> str:
    """better / worse / cannot tell: decided only when the adjusted p-value is at most alpha."""
    if p_adjusted is None or p_adjusted > alpha or diff == 0:
        return "cannot tell"
    return "better" if (diff > 0) == higher_is_better else "worse"


def above_chance(right: float, pairs: int, chance: float = 0.5) -> float:
    """One-sided binomial p-value that a model getting `right` of `pairs` minimal pairs right is above chance."""
    from scipy.stats import binomtest

    return float(binomtest(int(round(right)), int(pairs), chance, alternative="greater").pvalue)


# ----------------------------------------------------------------------------- sequential seeds


def spent(t: float, alpha: float = ALPHA) -> float:
    """O'Brien-Fleming-type alpha spent by information fraction t (Lan-DeMets): 0 at 0, alpha at 1."""
    from scipy.stats import norm

    if t <= 0:
        return 0.0
    return float(2 - 2 * norm.cdf(norm.ppf(1 - alpha / 2) / math.sqrt(min(t, 1.0))))


@functools.lru_cache(maxsize=64)
def spending_schedule(first: int, batch: int, cap: int, alpha: float = ALPHA) -> tuple[tuple[int, float], ...]:
    """((seeds at the look, the level of that look's tests), ...): looks at first, first + batch, ..., cap."""
    if not 2 <= first <= cap or batch < 1:
        raise ValueError(f"a sequential design needs 2 <= first <= cap and batch >= 1, not first={first}, batch={batch}, cap={cap}")
    ns = list(range(first, cap, batch)) + [cap]
    levels, before = [], 0.0
    for n in ns:
        now = spent(n / cap, alpha)
        levels.append((n, now - before))
        before = now
    return tuple(levels)


def sequential_look(tests: Mapping[str, SeedTest], decided: Mapping[str, str], level: float,
                    higher_is_better: Mapping[str, bool], adjusted_out: dict | None = None) -> dict[str, str]:
    """One look: Holm at `level` over the comparisons not decided before; returns every comparison's outcome
    (earlier decisions kept). adjusted_out, when given, receives this look's Holm-adjusted p-values."""
    open_ = [k for k in tests if decided.get(k, "cannot tell") == "cannot tell"]
    adjusted = dict(zip(open_, holm([tests[k].p for k in open_])))
    if adjusted_out is not None:
        adjusted_out.update(adjusted)
    out = dict(decided)
    for k in open_:
        out[k] = outcome(tests[k].diff, adjusted[k], higher_is_better[k], level)
    return out


def run_sequential(draw: Callable[[int], Mapping[str, SeedTest]], first: int, batch: int, cap: int,
                   higher_is_better: Mapping[str, bool], alpha: float = ALPHA) -> tuple[dict[str, str], int]:
    """Look after each batch until every comparison is decided or the cap is reached: (outcomes, seeds used).
    draw(n) gives the tests on the first n seeds (a study runs more seeds; a simulation draws them)."""
    decided: dict[str, str] = {}
    n = first
    for n, level in spending_schedule(first, batch, cap, alpha):
        decided = sequential_look(draw(n), decided, level, higher_is_better)
        if all(v != "cannot tell" for v in decided.values()):
            break
    return decided, n


__all__ = ["ALPHA", "POWER", "OUTCOMES", "SEQUENTIAL_TAG", "SeedTest", "seed_test", "paired_test", "welch_test", "holm", "outcome",
           "above_chance", "spent", "spending_schedule", "sequential_look", "run_sequential"]
