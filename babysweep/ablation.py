"""One-factor-at-a-time ablations of a training config, and their comparison table. Pure: no training.

    variants = ablation_variants(best_student_config)
    # -> {"base": {...}, "no-distillation": {...}, "teacher-0": {...}, "teacher-1": {...},
    #     "no-antlm": {...}, "temperature-1": {...}}   (only those that differ from base)
    ... train each variant with a few seeds ...
    rows = ablation_table({"base": [metrics, ...], "no-antlm": [metrics, ...]})

Each variant changes one thing: no-distillation (alpha 1, no teachers), teacher-<i> (only the
i-th teacher of distill.teachers, 0-based, when there are at least two), no-antlm (all CLM),
temperature-1 (distill.temperature 1.0). A variant that would behave like the base is left out.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import ValidationError

from babysweep import metrics as M
from babysweep.config import flatten, resolve, set_dotted
from babysweep.errors import UserError
from babysweep.schedule import phases
from babysweep.stats import bootstrap_diff, excludes_zero, mean_std


def _effective(config: dict) -> dict[str, Any]:
    """The flat config with every default filled in: what the trainer would actually use."""
    try:
        return flatten(resolve(config))
    except ValidationError as exc:
        raise UserError(f"the base config of the ablation is not a valid training config: {exc.errors()[0]['msg']}") from exc


def ablation_variants(base_config: dict) -> dict[str, dict]:
    """{"base": copy of base_config, variant name: a copy with one factor changed}."""
    base = _effective(base_config)
    teachers = list(base["distill.teachers"])
    changes: dict[str, dict[str, Any]] = {}
    if teachers:  # without teachers there is no distillation to take away
        changes["no-distillation"] = {"distill.alpha": 1.0, "distill.teachers": []}
        if len(teachers) >= 2:
            for i, teacher in enumerate(teachers):
                changes[f"teacher-{i}"] = {"distill.teachers": [teacher]}
        changes["temperature-1"] = {"distill.temperature": 1.0}
    if "mlm" in phases({"schedule": base["antlm.schedule"], "mlm_ratio": base["antlm.mlm_ratio"]}, base["train.epochs"]):
        changes["no-antlm"] = {"antlm.schedule": None, "antlm.mlm_ratio": 0.0}  # "4clm" is already all CLM

    variants = {"base": copy.deepcopy(base_config)}
    for name, change in changes.items():
        variant = copy.deepcopy(base_config)
        for key, value in change.items():
            set_dotted(variant, key, copy.deepcopy(value))
        if _effective(variant) != base:  # e.g. no-antlm of a config without AntLM
            variants[name] = variant
    return variants


def _values(results: list[dict], key: str) -> list[float]:
    """Per-seed values of `key` from metric dicts or run dicts (which hold them under "metrics")."""
    out = []
    for r in results:
        m = r.get("metrics", r)
        if m.get(key) is not None:
            out.append(float(m[key]))
    return out


def ablation_table(results: dict[str, list[dict]], n: int = 2000, seed: int = 0) -> list[dict]:
    """One row per variant: n seeds, mean ± std of dev loss and BLiMP (percent), and each
    variant's difference to base (variant - base) with a 95% seed-bootstrap interval."""
    if "base" not in results or not results["base"]:
        raise UserError("the ablation results have no runs of the 'base' variant, so there is nothing to compare to")
    rows = []
    for name, runs in results.items():
        row: dict[str, Any] = {"variant": name, "n": len(runs)}
        for col, key, scale in (("dev_loss", M.EVAL_LOSS, 1.0), ("blimp", M.BLIMP_OVERALL, 100.0)):
            vals, base = [v * scale for v in _values(runs, key)], [v * scale for v in _values(results["base"], key)]
            row[f"{col}_mean"], row[f"{col}_std"] = mean_std(vals) if vals else (None, None)
            diff = low = high = None
            if vals and base and name != "base":
                diff, low, high = bootstrap_diff(vals, base, n=n, seed=seed)
            row.update({f"{col}_diff": diff, f"{col}_low": low, f"{col}_high": high,
                        f"{col}_excludes_zero": None if diff is None else excludes_zero(low, high)})
        rows.append(row)
    return rows


__all__ = ["ablation_variants", "ablation_table"]
