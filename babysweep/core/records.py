"""The rules about run records: tag names, which runs count as fully trained, which config is best.

A run record is a plain dict as babysweep.tracking.tracker.sweep_runs returns it (run_id, status, params,
metrics, tags). Tracking writes these tags; finalists, ablations and reports read them through the
functions here, so each rule has one home. No MLflow, Ray or torch here.

    good = [r for r in runs if fully_trained(r)]
    chosen = best_config(runs, "eval/loss", "min")     # every repeat of the best config
    run_arch(run), sampled_keys(run), config_key(run)
    group_tags(config)                                  # {"arch": "llama", "schedule": "clm", "teachers": "none"}
    keys = varying_keys([{"train.lr": 1e-3}, {"train.lr": 2e-3}])   # -> ["train.lr"]
    trial_run_name("teachers", "a1_00001", {"train.lr": 1e-3}, keys)  # -> "teachers/a1_00001 lr=0.001"
"""

from __future__ import annotations

import math
from typing import Any

from babysweep.core.config import DEFAULT_ARCH

# Tags every babysweep run carries (MLflow tag names).
KIND = "kind"  # "sweep" (a sweep's parent run), "trial", "report"
SWEEP = "sweep"
ROLE = "role"  # teacher, student, baseline
TRIAL_ID = "trial_id"
SEED = "seed"
REPEAT = "repeat"
POINT = "point"  # algorithm points: the point's name
SAMPLED = "sampled"  # comma-separated dotted keys the search chose for the trial
STOPPED_EARLY = "stopped_early"  # "true": the scheduler ended the trial before its planned budget
STOPPED_BY = "stopped_by"  # which scheduler stopped it, at which rung, compared with what (stops.stop_sentence)
MODEL_DIR = "model_dir"  # the trial's final/ model folder
ERROR = "error"
METRIC, MODE = "metric", "mode"  # on a sweep's parent run: what it was tuned on
BEST_TRIAL_ID, BEST_RUN_ID = "best_trial_id", "best_run_id"
FINALIST_OF = "finalist_of"  # on `<sweep>.final` runs: the tuning sweep
ABLATION_OF = "ablation_of"
TEACHER_RUN_IDS, TEACHER_SWEEPS = "teachers.run_ids", "teachers.sweeps"  # a student's lineage
# Trial tags MLflow's runs table can group by (Group by -> tags).
ARCH = "arch"  # model.arch
SCHEDULE = "schedule"  # the AntLM schedule ("clm" when all epochs are causal)
TEACHERS = "teachers"  # a student's teachers as "<sweep>/<trial>,...", or "none"
TRUE = "true"

# On a sweep's parent run: its summary, updated as trials end, so parent rows compare across sweeps.
BEST_PARAM_PREFIX = "best."  # params best.trial_id, best.run_id, best.<sampled key> (written once)
SUMMARY_BEST = "best/"  # metrics best/<search metric>, best/blimp/overall
TRIALS_FINISHED, TRIALS_STOPPED, TRIALS_ERRORED = "trials/finished", "trials/stopped_early", "trials/errored"

# On every experiment babysweep creates: MLflow 3's UI opens the model-training view for this kind
# (the value is one of the UI's ExperimentKind names; "genai_development" would open the traces view).
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"

FINAL = ".final"  # the finalists of sweep X run as sweep "X.final"
ABLATION = ".ablation"  # the ablations of X's best config run as sweep "X.ablation"
SEED_KEY = "train.seed"


def sampled_tag(params: dict[str, Any]) -> str | None:
    """The SAMPLED tag's value for a trial's params (dotted keys)."""
    return ",".join(sorted(params)) or None


def sampled_keys(run: dict, with_seed: bool = False) -> list[str]:
    """The dotted keys the search chose for a run (the seed left out unless asked for)."""
    keys = [k for k in run.get("tags", {}).get(SAMPLED, "").split(",") if k]
    return keys if with_seed else [k for k in keys if k != SEED_KEY]


def stopped_early(run: dict) -> bool:
    return run.get("tags", {}).get(STOPPED_EARLY) == TRUE


def fully_trained(run: dict) -> bool:
    """Ran its planned budget: finished, and not stopped early by the scheduler."""
    return run.get("status") == "FINISHED" and not stopped_early(run)


def run_arch(run: dict) -> str:
    return run.get("params", {}).get("model.arch", DEFAULT_ARCH)


def config_key(run: dict) -> tuple:
    """Runs of one config (repeats differ only in seed) share this key."""
    sampled = sampled_keys(run)
    if not sampled:
        return (run["run_id"],)
    return tuple((k, run["params"].get(k)) for k in sorted(sampled))


def metric_value(run: dict, metric: str) -> float | None:
    value = run.get("metrics", {}).get(metric)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def best_config(runs: list[dict], metric: str, mode: str) -> list[dict]:
    """The fully trained runs of the config with the best mean `metric` (all its repeats)."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        if fully_trained(run) and metric_value(run, metric) is not None:
            groups.setdefault(config_key(run), []).append(run)
    if not groups:
        return []
    sign = 1.0 if mode == "min" else -1.0
    return min(groups.values(), key=lambda g: sign * sum(metric_value(r, metric) for r in g) / len(g))


def lineage_tags(teacher_run_ids: list[str], teacher_sweeps: list[str]) -> dict[str, str]:
    """Tags a student run carries to name its teachers' runs (its params hold their folders)."""
    return {TEACHER_RUN_IDS: ",".join(teacher_run_ids), TEACHER_SWEEPS: ",".join(sorted(set(teacher_sweeps)))}


def objective(parent_tags: dict[str, str], default_metric: str, default_mode: str = "min") -> tuple[str, str]:
    """(metric, mode) a sweep was tuned on, from its parent run's tags."""
    return parent_tags.get(METRIC, default_metric), parent_tags.get(MODE, default_mode)


def _teacher_label(folder: str) -> str:
    """`<sweeps>/<sweep>/models/<trial>/final` -> "<sweep>/<trial>"; any other folder -> its name."""
    parts = str(folder).rstrip("/").split("/")
    if len(parts) >= 4 and parts[-1] == "final" and parts[-3] == "models":
        return f"{parts[-4]}/{parts[-2]}"
    return parts[-1]


def group_tags(config: dict) -> dict[str, str]:
    """The tags a trial run carries for MLflow's "Group by": architecture, AntLM schedule, teachers."""
    antlm = config.get("antlm") or {}
    if antlm.get("schedule"):
        schedule = str(antlm["schedule"])
    elif antlm.get("mlm_ratio"):
        schedule = f"mlm_ratio={antlm['mlm_ratio']:g}"
    else:
        schedule = "clm"
    teachers = (config.get("distill") or {}).get("teachers") or []
    return {ARCH: (config.get("model") or {}).get("arch", DEFAULT_ARCH), SCHEDULE: schedule,
            TEACHERS: ",".join(_teacher_label(t) for t in teachers) or "none"}


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_teacher_label(v) if isinstance(v, str) else _short(v) for v in value) + "]"
    return str(value)


def varying_keys(trials: list[dict[str, Any]], most: int = 2) -> list[str]:
    """The `most` keys whose values differ most across trials (most distinct values; ties: key order).

    Keys with one value are left out, so a lone trial has none: nothing varies yet."""
    values: dict[str, set[str]] = {}
    for params in trials:
        for key, value in params.items():
            values.setdefault(key, set()).add(_short(value))
    return sorted([k for k in values if len(values[k]) > 1], key=lambda k: (-len(values[k]), k))[:most]


def trial_run_name(sweep: str, trial_id: str, params: dict[str, Any], keys: list[str]) -> str:
    """A trial run's name: "<sweep>/<trial id>" and the values of `keys` ("lr=0.0031 hidden=64")."""
    shown = " ".join(f"{k.split('.')[-1]}={_short(params[k])}" for k in keys if k in params)
    return f"{sweep}/{trial_id}" + (f" {shown}" if shown else "")
