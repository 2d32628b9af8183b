"""Hyperparameter importances of a sweep (PED-ANOVA) from its run records.

    values, note = importances(runs, "eval/loss", "min")     # ({param: importance} or None, why)
"""

from __future__ import annotations

import math
import warnings as pywarnings

from babysweep.core.records import fully_trained, sampled_keys
from babysweep.report.entries import number

PED_ANOVA_QUANTILE = 0.1  # Optuna's default target quantile, named so the note can count its trials


def _distribution(values: list[str]):
    """FloatDistribution over the observed range when every value is a number, else categorical."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    numbers = [number(_parse(v)) for v in values]
    if all(x is not None for x in numbers):
        low, high = min(numbers), max(numbers)
        return FloatDistribution(low, high, log=low > 0 and high / low >= 10)  # wide positive ranges: log priors
    return CategoricalDistribution(sorted(set(values)))


def _parse(text: str):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def importances(runs: list[dict], metric: str, mode: str) -> tuple[dict[str, float] | None, str]:
    """PED-ANOVA importances of the sampled params for the sweep's metric, from fully trained trials
    only (a trial ASHA stopped carries a value from fewer epochs); (None, why) when they cannot be
    computed. The evaluator is named: Optuna's default one differs between versions 4 and 5."""
    import optuna  # lazy: only reports with importances need it

    rows = []
    for run in runs:
        value = number(run.get("metrics", {}).get(metric))
        sampled = [k for k in sampled_keys(run, with_seed=True) if k in run.get("params", {})]
        if fully_trained(run) and value is not None and sampled:
            rows.append(({k: run["params"][k] for k in sampled}, value))
    if len(rows) < 3:
        return None, f"too few fully trained trials with sampled params and a value of {metric} ({len(rows)}) for PED-ANOVA"
    names = sorted({k for params, _ in rows for k in params})
    varied = {k for k in names if len({p.get(k) for p, _ in rows}) > 1}  # a constant explains nothing
    rows = [({k: v for k, v in params.items() if k in varied}, value) for params, value in rows]
    names = sorted(varied)
    if not names:
        return None, f"no sampled parameter took more than one value in {len(rows)} trials"
    dists = {k: _distribution([p[k] for p, _ in rows if k in p]) for k in names}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line per sweep
    try:
        study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
        for params, value in rows:
            values = {k: v if isinstance(dists[k], optuna.distributions.CategoricalDistribution) else float(v)
                      for k, v in params.items()}
            trial = optuna.trial.create_trial(params=values, distributions={k: dists[k] for k in params}, value=value)
            study.add_trial(trial)
        with pywarnings.catch_warnings(record=True) as caught:
            pywarnings.simplefilter("always")
            pywarnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # PED-ANOVA in Optuna 4
            evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=PED_ANOVA_QUANTILE)
            result = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        return None, f"PED-ANOVA failed on {len(rows)} trials: {exc}"
    finally:
        optuna.logging.set_verbosity(verbosity)
    notes = sorted({str(w.message).split(". ")[0] for w in caught})
    if not any(v > 0 for v in result.values()):
        return None, f"PED-ANOVA found no difference between the best trials and the rest ({len(rows)} trials)" + \
            (f": {'; '.join(notes)}" if notes else "")
    note = f"PED-ANOVA on {len(rows)} fully trained trials, {metric} ({mode})" + (f"; Optuna noted: {'; '.join(notes)}" if notes else "")
    top = math.ceil(PED_ANOVA_QUANTILE * len(rows))  # the trials PED-ANOVA contrasts with the rest
    if top < 5:  # Optuna's advice: at least 5 trials in the top quantile
        note += (f"; its top {PED_ANOVA_QUANTILE:.0%} holds {top} trial{'s' if top > 1 else ''} (fewer than 5), "
                 f"so these values are only indicative")
    return {k: float(v) for k, v in result.items()}, note
