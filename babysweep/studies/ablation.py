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

from babysweep.core import metrics as M, records as R
from babysweep.core.config import flatten, resolve, set_dotted
from babysweep.core.errors import UserError
from babysweep.core.schedule import phases
from babysweep.report.stats import excludes_zero, mean_std, paired_interval, welch_interval


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
    if "mlm" in phases(base["antlm.schedule"], base["antlm.mlm_ratio"], base["train.epochs"]):
        changes["no-antlm"] = {"antlm.schedule": None, "antlm.mlm_ratio": 0.0}  # "4clm" is already all CLM

    variants = {"base": copy.deepcopy(base_config)}
    for name, change in changes.items():
        variant = copy.deepcopy(base_config)
        for key, value in change.items():
            set_dotted(variant, key, copy.deepcopy(value))
        if _effective(variant) != base:  # e.g. no-antlm of a config without AntLM
            variants[name] = variant
    return variants


def _by_seed(results: list[dict], key: str) -> dict:
    """{seed: value of `key`} from metric dicts or run dicts (which hold them under "metrics");
    runs without a seed tag (plain metric dicts) are keyed by position."""
    out = {}
    for i, r in enumerate(results):
        m = r.get("metrics", r)
        if m.get(key) is not None:
            seed = r.get("tags", {}).get(R.SEED, r.get("params", {}).get(R.SEED_KEY))
            out[("seed", seed) if seed is not None else ("position", i)] = float(m[key])
    return out


def _interval(variant: dict, base: dict) -> tuple[float, float | None, float | None]:
    """Paired t over the seeds both sides ran (every variant reuses the base's seeds), else Welch's t."""
    if len(variant) == len(base) and variant.keys() == base.keys():
        seeds = sorted(variant, key=str)
        return paired_interval([variant[s] for s in seeds], [base[s] for s in seeds])
    return welch_interval(list(variant.values()), list(base.values()))


def ablation_table(results: dict[str, list[dict]]) -> list[dict]:
    """One row per variant: n seeds, mean ± std of dev loss and BLiMP (percent), and each
    variant's difference to base (variant - base) with a 95% t interval, paired by seed. With one
    seed there is no interval, and excludes_zero is False (no star)."""
    if "base" not in results or not results["base"]:
        raise UserError("the ablation results have no runs of the 'base' variant, so there is nothing to compare to")
    rows = []
    for name, runs in results.items():
        row: dict[str, Any] = {"variant": name, "n": len(runs)}
        for col, key, scale in (("dev_loss", M.EVAL_LOSS, 1.0), ("blimp", M.BLIMP_OVERALL, 100.0)):
            mine = {k: v * scale for k, v in _by_seed(runs, key).items()}
            base = {k: v * scale for k, v in _by_seed(results["base"], key).items()}
            vals = list(mine.values())
            row[f"{col}_mean"], row[f"{col}_std"] = mean_std(vals) if vals else (None, None)
            diff = low = high = None
            if vals and base and name != "base":
                diff, low, high = _interval(mine, base)
            row.update({f"{col}_diff": diff, f"{col}_low": low, f"{col}_high": high,
                        f"{col}_excludes_zero": None if diff is None else excludes_zero(low, high)})
        rows.append(row)
    return rows


__all__ = ["ablation_variants", "ablation_table"]
