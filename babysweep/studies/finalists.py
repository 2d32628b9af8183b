"""Finalists: the best config of a tuning sweep retrained with fresh seeds, as the sweep `<name>.final`.

    spec = finalist_spec("teachers", seeds=3, tracking_uri=uri)     # a points sweep, ready for run_sweep
    result = run_finalists("teachers", seeds=3)                     # runs (or resumes) it

The best config is chosen as the report chooses it (records.best_config: the fully trained config
with the best mean metric over its repeats), from MLflow; its values come from the run's
config.json, so they keep their types. A teacher sweep gets one finalist per architecture (each is
a contender of its own), other sweeps one. Seeds start at the tuning seed + SEED_OFFSET, so no
finalist repeats a tuning run: a value selected as the best of many would be optimistic. Finalists
score full BLiMP (eval.blimp_final: full) and dev loss on every dev chunk (eval.dev_batches: all, unless
--set gave it) even when the tuning trials scored a subset, and BabyLM's zero-shot suite when the spec's
eval.suite names its data (eval.suite_on: all for them). Student finalist k distils from its tuning
trials' teacher configs retrained with its own seed (finalist_teachers.py: the teacher finalists where they
are those configs and seeds, else the sweep `<student>.final.teachers`).

More seeds later (a study's `finalists.seeds: auto`): look k > 0 of a sequential design runs the same
best points as the sweep `<sweep>.final.b<k+1>`, with the next seeds; the report reads those batches as
part of `<sweep>.final`, and every batch's runs carry the design in their `sequential` tag.

    spec = finalist_spec("students", seeds=2, tracking_uri=uri, look=1, first_seed=3, design=(3, 2, 11))
"""

from __future__ import annotations

import shutil
from pathlib import Path

from babysweep.core import paths
from babysweep.core.config import RunConfig, flatten
from babysweep.core.errors import UserError
from babysweep.core.records import FINAL, FINALIST_OF, best_config, fully_trained, metric_value, run_arch, sampled_keys
from babysweep.spec.sweep_spec import Spec
from babysweep.spec.load import load_spec

SEED_OFFSET = 1000
BLIMP_FINAL = "eval.blimp_final"
DEV_BATCHES = "eval.dev_batches"
SUITE, SUITE_ON = "eval.suite", "eval.suite_on"
DEFAULT_SEEDS = 5


def batch_name(sweep: str, look: int = 0) -> str:
    """The finalist sweep of a look: `<sweep>.final` first, then `<sweep>.final.b2`, `.b3`, ..."""
    return sweep + FINAL if look == 0 else f"{sweep}{FINAL}.b{look + 1}"


def tuning_spec(sweep: str, storage: str | Path | None = None) -> Spec:
    """The spec a sweep was started with, from its folder."""
    saved = paths.sweep_folder(sweep, storage) / paths.SPEC_FILE
    if not saved.is_file():
        raise UserError(f"{saved.parent}: no sweep named '{sweep}' (run it first).")
    return load_spec(saved, check_paths=False)


def best_run_config(tracking_uri: str, sweep: str, runs: list[dict], metric: str, mode: str) -> tuple[dict, dict] | None:
    """(a run of the best fully trained config, its full config.json), or None when no run qualifies."""
    from babysweep.tracking.runs import run_json  # here: `validate` of a study imports this module and must start fast

    chosen = best_config(runs, metric, mode)
    if not chosen:
        return None
    config = run_json(tracking_uri, chosen[0]["run_id"], "config.json")
    if config is None:
        raise UserError(f"run {chosen[0]['run_id']} of sweep '{sweep}' has no config.json in MLflow, so its config cannot be retrained")
    return chosen[0], config


def best_points(tracking_uri: str, sweep: str, role: str) -> dict[str, dict]:
    """{point name: {dotted key: value}}: the best config's sampled values, per architecture for teachers."""
    from babysweep.tracking.runs import sweep_objective, sweep_runs

    metric, mode = sweep_objective(tracking_uri, sweep)
    runs = sweep_runs(tracking_uri, sweep)
    if role == "teacher":
        groups = {arch: [r for r in runs if run_arch(r) == arch] for arch in sorted({run_arch(r) for r in runs})}
    else:
        groups = {"best": runs}
    points = {}
    for label, group in groups.items():
        best = best_run_config(tracking_uri, sweep, group, metric, mode)
        if best is None:
            continue
        run, config = best
        flat = flatten(config)
        points[label] = {k: flat[k] for k in sampled_keys(run) if k in flat}
    if not points:
        raise UserError(f"sweep '{sweep}' has no fully trained trial with a value of {metric}; it has no finalist to retrain")
    return points


def few_trials(tracking_uri: str, sweep: str, least: int = 3) -> list[str]:
    """A line for each finalist config of the sweep (each architecture's, for teachers) chosen among fewer
    than `least` fully trained trials with a value of the sweep's metric."""
    from babysweep.tracking.runs import sweep_objective, sweep_runs

    metric, mode = sweep_objective(tracking_uri, sweep)
    runs = [r for r in sweep_runs(tracking_uri, sweep) if fully_trained(r) and metric_value(r, metric) is not None]
    role = _role(runs)
    groups = {f"{sweep}/{a}": [r for r in runs if run_arch(r) == a] for a in sorted({run_arch(r) for r in runs})} \
        if role == "teacher" else {sweep: runs}
    return [f"{label}: its finalist config was chosen among only {len(group)} fully trained trial"
            f"{'' if len(group) == 1 else 's'} (fewer than {least})" for label, group in groups.items() if len(group) < least]


def _role(runs: list[dict]) -> str:
    roles = {r.get("tags", {}).get("role", "teacher") for r in runs}
    return roles.pop() if len(roles) == 1 else "teacher"


def finalist_spec(sweep: str, seeds: int = DEFAULT_SEEDS, *, storage: str | Path | None = None,
                  tracking_uri: str, look: int = 0, first_seed: int = 0, design: tuple[int, int, int] | None = None) -> Spec:
    """The spec of `<sweep>.final`: the tuning spec with its best points, `seeds` repeats each, no early stopping.
    A later look of a sequential design (look > 0) is `<sweep>.final.b<look+1>`, its seeds after `first_seed` ones."""
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, not {seeds}")
    from babysweep.report.decide import SEQUENTIAL_TAG
    from babysweep.sweep.driver import fixed_value

    spec = tuning_spec(sweep, storage)
    base_seed = int(fixed_value(spec, "train.seed", RunConfig.model_fields["train"].default.seed))
    overrides = {
        "name": batch_name(sweep, look),
        "role": spec.role,
        "search.algorithm": "points",
        "search.points": {label: {k: v for k, v in point.items() if k != BLIMP_FINAL}  # the override below decides
                          for label, point in best_points(tracking_uri, sweep, spec.role).items()},
        "search.repeats": seeds,
        "search.scheduler": "none",
        "search.stratify": None,  # the points are the configs: nothing left to take turns
        "train.seed": base_seed + SEED_OFFSET + first_seed,
        BLIMP_FINAL: "full",  # the report's BLiMP numbers: every pair, whatever the tuning trials scored
        "tracking.tags": {**spec.tracking.tags, FINALIST_OF: sweep,
                          **({SEQUENTIAL_TAG: ",".join(map(str, design))} if design else {})},
    }
    if fixed_value(spec, SUITE, None) is not None:  # eval.suite set: finalists score BabyLM's suite at their end
        overrides[SUITE_ON] = "all"                    # (tuning trials only with eval.suite_on: all)
    if DEV_BATCHES not in spec.overrides:  # the report's dev loss: every dev chunk, not a spec's cap for tuning
        overrides[DEV_BATCHES] = None  # (storybooks: 20 batches, 81,920 tokens); an explicit --set (a smoke run) stays
    return load_spec(spec.path, {**spec.overrides, **overrides}, check_paths=False)


def run_finalists(sweep: str, seeds: int = DEFAULT_SEEDS, *, address: str | None = None, storage: str | Path | None = None,
                  tracking_uri: str | None = None, live: bool = True, look: int = 0, first_seed: int = 0,
                  design: tuple[int, int, int] | None = None):
    """Run (or resume) `<sweep>.final` (or a later look's batch); returns run_sweep's SweepResult. Finalists of a
    sweep made before data.chunk_bos train on its older chunks, as its trials did."""
    from babysweep.sweep.driver import trained_like

    with trained_like(paths.sweep_folder(sweep, storage)):
        return _run_finalists(sweep, seeds, address=address, storage=storage, tracking_uri=tracking_uri, live=live,
                              look=look, first_seed=first_seed, design=design)


def _run_finalists(sweep: str, seeds: int, *, address: str | None, storage: str | Path | None, tracking_uri: str | None,
                   live: bool, look: int, first_seed: int, design: tuple[int, int, int] | None):
    from babysweep.sweep.driver import run_sweep

    uri = paths.tracking_uri(tracking_uri)
    spec = finalist_spec(sweep, seeds, storage=storage, tracking_uri=uri, look=look, first_seed=first_seed, design=design)
    chosen = paths.sweep_folder(sweep, storage) / paths.TEACHERS_FILE
    target = paths.sweep_folder(spec.name, storage) / paths.TEACHERS_FILE
    if chosen.is_file() and not target.is_file():
        if spec.teachers_from_sweep is not None:
            # Each student finalist distils from the tuning trials' teacher configs retrained with its own seed.
            from babysweep.studies.finalist_teachers import seeded_teachers

            interrupted = seeded_teachers(sweep, spec, address=address, storage=storage, tracking_uri=uri, live=live)
            if interrupted is not None:
                return interrupted
        else:  # teacher folders named in the spec: nothing to retrain, the very teachers the tuning trials used
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(chosen, target)
    return run_sweep(spec, address=address, storage=storage, tracking_uri=uri, live=live)


__all__ = ["SEED_OFFSET", "DEFAULT_SEEDS", "batch_name", "tuning_spec", "best_run_config", "best_points", "finalist_spec", "run_finalists"]
