"""The searcher's Optuna sampler, from a spec: what sweep/driver.py builds, MLflow records and the report shows.

    settings = sampler_settings(spec.search, spec.space)   # {"name": "TPESampler", "n_startup_trials": 2, ...}
    sampler = make_sampler(settings)                        # an optuna sampler, or None for grid/points
    describe_sampler({"search.sampler.name": "TPESampler", ...})   # one line for the report

Startup trials: Optuna's TPE samples its first n_startup_trials at random (default 10). Our sweeps
draw 8 to 32 configs, so with that default most or all of a sweep would be random search. The
default here is a quarter of the samples (at least 2, at most Optuna's 10), which leaves most
trials to TPE; `search.startup_trials` sets it. A space with `when` conditions gets multivariate
TPE with group=True: it models the parameters jointly within each set that occur together,
instead of one independent density per parameter.
"""

from __future__ import annotations

import warnings
from typing import Any

from babysweep.core.config import flatten

PREFIX = "sampler."  # MLflow param keys: <tracking's prefix>sampler.<setting>


def default_startup_trials(samples: int) -> int:
    return max(2, min(10, samples // 4))


def has_conditionals(space: dict) -> bool:
    """True when some leaf of the (nested) space has a `when` condition."""
    return any(getattr(leaf, "when", None) for leaf in flatten(space).values())


def sampler_settings(search: Any, space: dict) -> dict[str, Any]:
    """Plain settings of the sampler a sweep uses (search is a spec's SearchConfig)."""
    if search.algorithm == "random":
        return {"name": "RandomSampler", "seed": search.seed} | ({"stratify": search.stratify} if search.stratify else {})
    if search.algorithm != "optuna":
        return {"name": search.algorithm}  # grid and points enumerate their configs: no sampler
    startup = search.startup_trials if search.startup_trials is not None else default_startup_trials(search.samples)
    conditional = has_conditionals(space)
    settings = {"name": "TPESampler", "n_startup_trials": startup, "multivariate": conditional, "group": conditional,
                "seed": search.seed}
    return settings | ({"stratify": search.stratify} if search.stratify else {})


def make_sampler(settings: dict[str, Any]):
    """The Optuna sampler for sampler_settings(...); None when the algorithm needs none."""
    import optuna

    if settings["name"] == "RandomSampler":
        return optuna.samplers.RandomSampler(seed=settings["seed"])
    if settings["name"] != "TPESampler":
        return None
    with warnings.catch_warnings():  # multivariate and group are marked experimental in Optuna 4 and 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(n_startup_trials=settings["n_startup_trials"], multivariate=settings["multivariate"],
                                          group=settings["group"], seed=settings["seed"])


def mlflow_params(settings: dict[str, Any]) -> dict[str, Any]:
    return {PREFIX + k: v for k, v in settings.items()}


def describe_sampler(params: dict[str, str]) -> str | None:
    """One line from a sweep parent run's params (whatever prefix tracking put before "sampler.")."""
    found = {k.rsplit(PREFIX, 1)[1]: v for k, v in params.items() if PREFIX in k}
    name = found.get("name")
    if name is None:
        return None
    turns = f", {found['stratify']} in turn" if found.get("stratify") else ""
    if name == "TPESampler":
        kind = "multivariate TPE (group=True)" if found.get("multivariate") == "True" else "independent TPE"
        return f"{kind}, first {found.get('n_startup_trials')} trials random, seed {found.get('seed')}{turns}"
    if name == "RandomSampler":
        return f"random search, seed {found.get('seed')}{turns}"
    return f"{name}: every listed config runs, no sampler"


__all__ = ["default_startup_trials", "has_conditionals", "sampler_settings", "make_sampler", "mlflow_params", "describe_sampler"]
