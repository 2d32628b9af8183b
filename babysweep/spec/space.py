"""Search-space leaves: distributions, `when` conditions, and drawing a config from them.

    dist = Distribution("loguniform", (1e-4, 1e-2))
    dist.sample(random.Random(0)); dist.suggest(optuna_trial, "train.lr"); dist.first(); dist.extremes()
    OptunaSpace(spec)(trial)             # {dotted name: value} for every active leaf (define-by-run)
    sample_params(spec, rng)             # one random draw of the sampled leaves, without Optuna

babysweep.spec.load parses YAML into these and documents each kind; this module samples them.
"""

from __future__ import annotations

import copy
import json
import math
import random
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Callable

from babysweep.core.config import flatten, resolve

CATEGORICAL = ("choice", "grid")
RANGES = {  # kind -> argument names
    "uniform": ("low", "high"), "loguniform": ("low", "high"),
    "normal": ("mu", "sigma"), "lognormal": ("mu", "sigma"),
    "randint": ("low", "high"), "lograndint": ("low", "high"),
    "quniform": ("low", "high", "q"), "qloguniform": ("low", "high", "q"), "qrandint": ("low", "high", "q"),
    "qnormal": ("mu", "sigma", "q"), "qlognormal": ("mu", "sigma", "q"),
}
KINDS = (*CATEGORICAL, *RANGES)
NORMALS = ("normal", "lognormal", "qnormal", "qlognormal")
INT_KINDS = ("randint", "lograndint", "qrandint")
FLOAT_KINDS = ("uniform", "loguniform", "normal", "lognormal")  # never integers
Q_GRID = ("quniform", "qloguniform", "qrandint")  # quantised and bounded
QUANTILE_EPS = 1e-6  # normal kinds sample a quantile in [eps, 1 - eps]
DEFAULTS = flatten(resolve())  # a condition on an unset key reads its default


# ------------------------------------------------------------------ distributions
class BadValue(Exception):
    """A problem with one value; the caller adds file, key path and line."""


def _clean(x: float) -> float:
    return float(f"{x:.12g}")  # 0.30000000000000004 -> 0.3 after quantising


@dataclass
class Distribution:
    """One sampled leaf. kind is a KINDS name, or "value" for a fixed value that has a `when`."""

    kind: str
    args: tuple
    when: dict[str, tuple] = field(default_factory=dict)  # dotted key -> allowed values
    integer: bool = False  # values are ints (integer kinds; q kinds on an int field)

    @property
    def is_constant(self) -> bool:
        return self.kind == "value"

    def _k_bounds(self) -> tuple[int, int]:
        low, high, q = self.args
        return math.ceil(low / q - 1e-9), math.floor(high / q + 1e-9)

    def _num(self, x: float) -> Any:
        return int(round(x)) if self.integer else _clean(x)

    def _quantise(self, x: float) -> Any:
        q = self.args[-1]
        k = round(x / q)
        if self.kind in Q_GRID:
            lo, hi = self._k_bounds()
            k = min(max(k, lo), hi)
        return self._num(k * q)

    def _from_quantile(self, u: float) -> Any:
        mu, sigma = self.args[:2]
        x = NormalDist(mu, sigma).inv_cdf(u)
        if self.kind in ("lognormal", "qlognormal"):
            x = math.exp(x)
        return self._quantise(x) if self.kind.startswith("q") else x

    def _labels(self) -> dict[str, Any] | None:
        """Optuna's categorical takes None/bool/int/float/str only: other candidates get text labels."""
        if all(c is None or isinstance(c, (bool, int, float, str)) for c in self.args):
            return None
        return {json.dumps(c, sort_keys=True, default=str): c for c in self.args}

    def sample(self, rng: random.Random) -> Any:
        """A value drawn from the prior (the same law as OptunaSpace under a RandomSampler)."""
        kind, a = self.kind, self.args
        if kind == "value":
            return copy.deepcopy(a[0])
        if kind in CATEGORICAL:
            return copy.deepcopy(rng.choice(a))
        if kind == "uniform":
            return rng.uniform(a[0], a[1])
        if kind == "loguniform":
            return math.exp(rng.uniform(math.log(a[0]), math.log(a[1])))
        if kind in NORMALS:
            return self._from_quantile(rng.uniform(QUANTILE_EPS, 1 - QUANTILE_EPS))
        if kind == "randint":
            return rng.randint(a[0], a[1])
        if kind == "lograndint":  # log-uniform on [low - 0.5, high + 0.5], rounded (as Optuna does)
            x = math.exp(rng.uniform(math.log(a[0] - 0.5), math.log(a[1] + 0.5)))
            return min(max(int(round(x)), a[0]), a[1])
        if kind in ("quniform", "qrandint"):  # uniform over the multiples of q in range
            return self._num(rng.randint(*self._k_bounds()) * a[2])
        if kind == "qloguniform":
            return self._quantise(math.exp(rng.uniform(math.log(a[0]), math.log(a[1]))))
        raise AssertionError(kind)

    def suggest(self, trial: Any, name: str) -> Any:
        """The value for an Optuna trial (or Ray's wrapper of one), asked through trial.suggest_*."""
        kind, a = self.kind, self.args
        if kind == "value":
            return copy.deepcopy(a[0])
        if kind in CATEGORICAL:
            labels = self._labels()
            if labels is None:
                return trial.suggest_categorical(name, list(a))
            return copy.deepcopy(labels[trial.suggest_categorical(name, list(labels))])
        if kind in ("uniform", "loguniform"):
            return trial.suggest_float(name, a[0], a[1], log=kind == "loguniform")
        if kind in NORMALS:
            return self._from_quantile(trial.suggest_float(name, QUANTILE_EPS, 1 - QUANTILE_EPS))
        if kind in ("randint", "lograndint"):
            return trial.suggest_int(name, a[0], a[1], log=kind == "lograndint")
        lo, hi = self._k_bounds()
        if kind == "qrandint":
            return trial.suggest_int(name, lo * a[2], hi * a[2], step=a[2])
        if kind == "quniform":
            return self._num(trial.suggest_float(name, _clean(lo * a[2]), _clean(hi * a[2]), step=a[2]))
        if kind == "qloguniform":
            return self._quantise(trial.suggest_float(name, a[0], a[1], log=True))
        raise AssertionError(kind)

    def first(self) -> Any:
        """A representative value: the first candidate, the low end of a range, a normal's median."""
        if self.kind == "value" or self.kind in CATEGORICAL:
            return copy.deepcopy(self.args[0])
        if self.kind in NORMALS:
            return self._from_quantile(0.5)
        if self.kind in Q_GRID:
            return self._num(self._k_bounds()[0] * self.args[2])
        return self.args[0]

    def extremes(self) -> list[Any]:
        """Every value that bounds what this leaf can take (all candidates of a choice)."""
        if self.kind == "value" or self.kind in CATEGORICAL:
            return list(self.args)
        if self.kind in NORMALS:
            return [self._from_quantile(QUANTILE_EPS), self._from_quantile(1 - QUANTILE_EPS)]
        if self.kind in Q_GRID:
            lo, hi = self._k_bounds()
            return [self._num(lo * self.args[2]), self._num(hi * self.args[2])]
        return [self.args[0], self.args[1]]

    def canonical(self) -> dict[str, Any]:
        return {"kind": self.kind, "args": list(self.args), "when": {k: list(v) for k, v in sorted(self.when.items())}}

    def __str__(self) -> str:
        if self.kind == "value":
            text = repr(self.args[0])
        elif self.kind in CATEGORICAL:
            text = f"{self.kind} {list(self.args)}"
        else:
            text = f"{self.kind} " + ", ".join(f"{n}={v}" for n, v in zip(RANGES[self.kind], self.args))
            text += " (inclusive)" if self.kind in INT_KINDS else ""
        return text


# ------------------------------------------------------------------ conditions and ordering
class WhenCycle(Exception):
    def __init__(self, names: list[str]):
        super().__init__(" -> ".join(names))
        self.names = names


def holds(when: dict[str, tuple], values: dict[str, Any]) -> bool:
    """Every condition holds; a key that is absent (unset or itself inactive) has its default."""
    return all((values[k] if k in values else DEFAULTS.get(k)) in allowed for k, allowed in when.items())


def ordered_leaves(space: dict) -> list[tuple[str, Any]]:
    """Leaves in spec order, unconditional first, then conditional ones after what they depend on."""
    flat = flatten(space)
    conditional = {n: v for n, v in flat.items() if isinstance(v, Distribution) and v.when}
    order = [(n, v) for n, v in flat.items() if n not in conditional]
    state: dict[str, str] = {}  # name -> "visiting" | "done"

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise WhenCycle(trail[trail.index(name):] + [name])
        state[name] = "visiting"
        for dep in conditional[name].when:
            if dep in conditional:
                visit(dep, trail + [name])
        state[name] = "done"
        order.append((name, conditional[name]))

    for name in conditional:
        visit(name, [])
    return order


def assign_values(order: list[tuple[str, Any]], pick: Callable[[str, Distribution], Any],
            fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """{dotted name: value} for every active leaf; pick() gives each sampled leaf's value."""
    values: dict[str, Any] = {}
    for name, leaf in order:
        if isinstance(leaf, Distribution):
            if not holds(leaf.when, values):
                continue
            if fixed is not None and name in fixed:
                values[name] = fixed[name]
            else:
                values[name] = copy.deepcopy(leaf.args[0]) if leaf.is_constant else pick(name, leaf)
        else:
            values[name] = fixed[name] if fixed is not None and name in fixed else copy.deepcopy(leaf)
    return values


class OptunaSpace:
    """Define-by-run search space for optuna / Ray's OptunaSearch: suggests every active leaf and
    returns {dotted name: value} for all active leaves, constants included. Module-level and
    holding only data, so Ray can pickle it with the searcher."""

    def __init__(self, spec_space):
        """spec_space: a Spec, or its .space ({section: {key: value or Distribution}})."""
        self.space = getattr(spec_space, "space", spec_space)
        self.order = ordered_leaves(self.space)

    def __call__(self, trial: Any) -> dict[str, Any]:
        return assign_values(self.order, lambda name, dist: dist.suggest(trial, name))


def sample_params(spec, rng: random.Random) -> dict[str, Any]:
    """One random draw of every active sampled leaf (without Optuna)."""
    values = assign_values(ordered_leaves(spec.space), lambda name, dist: dist.sample(rng))
    sampled = spec.distributions()
    return {k: v for k, v in values.items() if k in sampled}
