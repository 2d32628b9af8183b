"""The equal-FLOPs baseline arm: the baseline's finalist config and seeds trained longer, to the student
finalists' training FLOPs, beside the equal-tokens baseline. (Belongs in studies/.)

    result = run_equal_flops("baselines", "students", seeds=5)     # sweep "baselines.equal-flops.final"

Opt-in from a study file (`finalists: {equal_flops_baseline: true}`), run after the finalists. The student
trains on the baseline's tokens but adds its teachers' forward passes (2-3x the baseline's FLOPs in the
examples), so equal tokens favour the baseline's compute budget less than equal FLOPs would. The arm
multiplies the baseline's epochs (and train.max_steps, when set) by the ratio of the finalists' mean
FLOPs, rounded to whole epochs: the realised ratio is in the report (report_fairness.py). A baseline
with a fixed AntLM schedule string has a fixed epoch count and is refused; antlm.mlm_ratio scales.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from babysweep.core import metrics as M, paths
from babysweep.core.config import RunConfig
from babysweep.core.errors import UserError
from babysweep.core.records import FINAL, FINALIST_OF, fully_trained
from babysweep.report.fairness import EQUAL_FLOPS

EQUAL_FLOPS_OF = "equal_flops_of"  # tag on the arm's runs: the student whose FLOPs it matches


def mean_flops(runs: list[dict]) -> float | None:
    values = [r["metrics"][M.FLOPS] for r in runs if fully_trained(r) and r.get("metrics", {}).get(M.FLOPS)]
    return float(np.mean(values)) if values else None


def scaled(value: int, ratio: float) -> int:
    """The longer budget: value x ratio rounded, never below value."""
    return max(int(value), int(round(value * ratio)))


def arm_spec(baseline: str, student: str, seeds: int, *, storage: str | Path | None = None, tracking_uri: str):
    """(the spec of `<baseline>.equal-flops.final`, the FLOPs ratio it scales the baseline's budget by)."""
    from babysweep.studies.finalists import finalist_spec
    from babysweep.spec.load import load_spec
    from babysweep.sweep.driver import fixed_value
    from babysweep.tracking.runs import sweep_runs

    fs, fb = mean_flops(sweep_runs(tracking_uri, student + FINAL)), mean_flops(sweep_runs(tracking_uri, baseline + FINAL))
    if not fs or not fb:
        raise UserError(f"the finalists of '{student}' and '{baseline}' record no {M.FLOPS}; the equal-FLOPs arm "
                        f"(finalists.equal_flops_baseline) needs both")
    ratio = fs / fb
    spec = finalist_spec(baseline, seeds, storage=storage, tracking_uri=tracking_uri)
    train = RunConfig.model_fields["train"].default
    if fixed_value(spec, "antlm.schedule", None) or any(p.get("antlm.schedule") for p in spec.search.points.values()):
        raise UserError(f"sweep '{baseline}' has a fixed AntLM schedule string, whose epoch count cannot grow; the "
                        f"equal-FLOPs arm (finalists.equal_flops_baseline) needs antlm.mlm_ratio instead")
    epochs = int(fixed_value(spec, "train.epochs", train.epochs))
    points = {label: {**p, "train.epochs": scaled(int(p.get("train.epochs", epochs)), ratio)}
              for label, p in spec.search.points.items()}
    overrides = {**spec.overrides, "name": baseline + EQUAL_FLOPS + FINAL, "search.points": points,
                 "tracking.tags": {**spec.tracking.tags, FINALIST_OF: baseline + EQUAL_FLOPS, EQUAL_FLOPS_OF: student,
                                   "flops_ratio": f"{ratio:.4f}"}}
    max_steps = fixed_value(spec, "train.max_steps", train.max_steps)
    if max_steps:
        overrides["train.max_steps"] = scaled(int(max_steps), ratio)
    return load_spec(spec.path, overrides, check_paths=False), ratio


def run_equal_flops(baseline: str, student: str, seeds: int, *, address: str | None = None,
                    storage: str | Path | None = None, tracking_uri: str | None = None, live: bool = True):
    """Run (or resume) `<baseline>.equal-flops.final`; returns run_sweep's SweepResult."""
    from babysweep.sweep.driver import run_sweep, trained_like

    uri = paths.tracking_uri(tracking_uri)
    spec, _ = arm_spec(baseline, student, seeds, storage=storage, tracking_uri=uri)
    with trained_like(paths.sweep_folder(baseline, storage)):  # on the chunks its baseline's trials trained
        return run_sweep(spec, address=address, storage=storage, tracking_uri=uri, live=live)


__all__ = ["EQUAL_FLOPS_OF", "mean_flops", "scaled", "arm_spec", "run_equal_flops"]
