"""Sweeps on Ray Tune. Ray stays in the sweep layer: this module (lazily), sweep_view.py and sweep_search.py.

    result = run_sweep(load_spec("search_spaces/teachers.yaml"))      # runs, or resumes, the sweep
    rows = sweep_status("teachers")                                    # from the folder, no Ray started

A sweep lives in <storage>/<name>/ (storage defaults to <project>/sweeps): Ray Tune's experiment
state, `spec.yaml` (the spec it was started with), `teachers.json` (resolved teachers of a student
sweep), `mlflow_runs.json` (trial -> MLflow run) and `models/<trial_id>/` (each trial's run folder:
checkpoints, final/ HF model, metrics.jsonl). Running a spec whose sweep folder exists restores it:
finished trials stay finished, unfinished ones continue from their last checkpoint, and Optuna's
study comes back with the searcher. ASHA's rungs are not restored by Ray (STACK-NOTES): trials
that resume are judged afresh at the rungs they still have to pass. ASHA judges a trial only after
its causal-LM epochs (ASHA_METRIC).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babysweep import metrics as M
from babysweep.atomic import write_text_atomic
from babysweep.checkpoint import checkpoints
from babysweep.data import project_dir
from babysweep.errors import UserError
from babysweep.sampler import make_sampler, mlflow_params, sampler_settings
from babysweep.space import OptunaSpace
from babysweep.spec import Spec, config_count, diff_specs, grid_points

GRID_KEY = "grid_point"
REPEAT_KEY = "__trial_index__"  # set by Ray's Repeater: which seed of a repeated config
POINT_KEY = "point"  # algorithm points: the name of the trial's point


def trial_params(spec: Spec, trial_config: dict) -> tuple[dict, int, str | None]:
    """(params as dotted config keys, repeat index, point name) from a trial's Ray config."""
    params = dict(trial_config)
    repeat = int(params.pop(REPEAT_KEY, 0) or 0)
    if GRID_KEY in params:
        params.update(params.pop(GRID_KEY) or {})
    point = params.pop(POINT_KEY, None)
    if point is not None:
        params.update(spec.search.points[point])
    return params, repeat, point


def default_storage() -> Path:
    return project_dir() / "sweeps"


def sweep_folder(name: str, storage: str | Path | None = None) -> Path:
    return Path(storage or default_storage()).expanduser().resolve() / name


def max_epochs(spec: Spec) -> int:
    """The largest epoch count a trial of this spec can run (ASHA's max_t)."""
    dist = spec.distributions().get("train.epochs")
    if dist is None:
        from babysweep.config import TrainConfig

        default = TrainConfig.model_fields["train"].default.epochs
        return int(fixed_value(spec, "train.epochs", default))
    values = dist.args if dist.kind in ("choice", "grid") else dist.args[:2]
    return int(max(values))


def fixed_value(spec: Spec, name: str, default: Any) -> Any:
    """The spec's fixed value of a dotted key (default when it does not set one)."""
    node: Any = spec.space
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def planned_trials(spec: Spec) -> int:
    """How many trials the sweep runs in all: configs (sampled, grid points or named points) x repeats."""
    return config_count(spec)[0] * spec.search.repeats


# --------------------------------------------------------------------------- the trial function
# ASHA's metric: the search metric, reported only after causal-LM epochs. An AntLM trial's causal dev
# loss and causal BLiMP are worse during its MLM epochs by design, and its per-epoch BLiMP subset
# switches to the PLL scorer there; judged at such an epoch, it would be stopped for the phase it is
# in at the rung, not for being worse. Ray's ASHA skips results without its metric, so an AntLM trial
# is judged at its first CLM epoch at or after each rung. No "/": the tracker does not log it.
ASHA_METRIC = "asha_metric"


def scheduler_result(metrics: dict, search_metric: str) -> dict:
    """The epoch's metrics plus ASHA_METRIC when the epoch was a causal-LM one."""
    if metrics.get(M.PHASE, 0.0) == 0.0 and search_metric in metrics:
        return {**metrics, ASHA_METRIC: metrics[search_metric]}
    return dict(metrics)


def run_trial(params: dict, payload: dict) -> None:
    """A Ray Tune function trainable: one training run of one sampled config."""
    import ray
    from ray import tune

    from babysweep.trainer import train

    spec: Spec = payload["spec"]
    params, repeat, _ = trial_params(spec, params)
    config = spec.materialize(params, teachers=payload["teachers"])
    config["data"]["cache_dir"] = config["data"]["cache_dir"] or payload["cache_dir"]
    config["train"]["seed"] += repeat
    config["train"]["threads"] = config["train"]["threads"] or max(1, int(payload["cpu"]))
    trial_id = tune.get_context().get_trial_id()
    node_id = ray.get_runtime_context().get_node_id()  # which cluster node ran it
    out_dir = Path(payload["models_dir"]) / trial_id

    def report(metrics: dict, folder: Path | None) -> None:
        tune.report({**scheduler_result(metrics, spec.search.metric), "trial_out_dir": str(out_dir), "node_id": node_id})

    # Checkpoints live in the trial's own folder in the sweep (shared storage on a cluster), not in
    # Ray's checkpoint registry: Ray prunes old checkpoints before its experiment state says so,
    # and a driver killed in between leaves a trial pointing at a deleted checkpoint. A restarted
    # trial (resume, retry) continues from the newest loadable checkpoint of its folder.
    if checkpoints(out_dir / "checkpoints"):
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / "resumes.log", "a") as log:  # evidence that a trial continued, not restarted
            log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} resumed from {checkpoints(out_dir / 'checkpoints')[-1]}\n")
    train(config, out_dir, reporter=report, resume=True)


def trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"  # Ray's default name spells out every sampled value


# --------------------------------------------------------------------------- driver
@dataclass
class SweepResult:
    name: str
    folder: Path
    interrupted: bool
    best: dict | None  # {"trial_id", "config", "metrics", "model_dir"}
    counts: dict[str, int]


def _prepare_folder(spec: Spec, folder: Path, fresh: bool) -> bool:
    """Returns True when an existing sweep is to be restored."""
    from ray.tune import Tuner

    if fresh and folder.exists():
        shutil.rmtree(folder)
    if folder.exists() and Tuner.can_restore(str(folder)):
        old = (folder / "spec.yaml").read_text() if (folder / "spec.yaml").is_file() else ""
        changed = diff_specs(old, spec)
        if changed:
            raise UserError(
                f"{spec.path}: sweep '{spec.name}' already exists in {folder} with a different "
                f"{', '.join(changed)}; Ray cannot change a search space on restore, so run it under "
                "another name (--name NEW) or start over (--fresh)."
            )
        return True
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "spec.yaml", spec.text)
    return False


def _resolve_teachers(spec: Spec, folder: Path, tracking_uri: str) -> tuple[list[str] | None, dict]:
    """Teacher folders of a student sweep and the lineage tags its runs carry: the spec's folders, or
    the best trials of another sweep (resolved once and kept in the sweep folder, so that a resume
    uses the same teachers)."""
    from babysweep.tracking import teacher_runs

    source = spec.teachers_from_sweep
    if source is None:
        return None, {}
    saved = folder / "teachers.json"
    if not saved.is_file():
        refs = teacher_runs(tracking_uri, source)
        rows = [{"run_id": r.run_id, "trial_id": r.trial_id, "model_dir": r.model_dir, "value": r.value} for r in refs]
        write_text_atomic(saved, json.dumps(rows, indent=1))  # a resume reads it back
    rows = json.loads(saved.read_text())
    tags = {"teachers.run_ids": ",".join(r["run_id"] for r in rows), "teachers.sweeps": source.sweep}
    return [r["model_dir"] for r in rows], tags


def _searcher(spec: Spec):
    from ray.tune.search import Repeater

    from babysweep.sweep_search import FinalResultOptunaSearch

    search = spec.search
    sampler = make_sampler(sampler_settings(search, spec.space))
    searcher = FinalResultOptunaSearch(space=OptunaSpace(spec.space), metric=search.metric, mode=search.mode, sampler=sampler)
    if search.repeats > 1:
        searcher = Repeater(searcher, repeat=search.repeats, set_index=True)
    return searcher


def _scheduler(spec: Spec):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if spec.search.scheduler == "none":
        return FIFOScheduler()
    # time_attr is our epoch, not Ray's iteration count, which restarts when a trial resumes.
    return ASHAScheduler(time_attr=M.EPOCH, metric=ASHA_METRIC, mode=spec.search.mode,
                         max_t=max_epochs(spec), grace_period=spec.search.grace_period,
                         reduction_factor=spec.search.reduction_factor)


def _init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    else:
        # address="local": always a new local Ray. Without it, ray.init joins whatever local cluster
        # /tmp/ray points at (another user's sweep, a test run) and then refuses num_cpus.
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 object_store_memory=300 * 1024**2)


def run_sweep(spec: Spec, *, fresh: bool = False, address: str | None = None, storage: str | Path | None = None,
              tracking_uri: str | None = None, live: bool = True) -> SweepResult:
    """Run the sweep of a spec, or continue it where it stopped."""
    from ray import tune

    from babysweep.sweep_view import SweepCallback
    from babysweep.tracking import resolve_tracking_uri

    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")  # experiment state saved at least every second
    # Ray wants the scheduler's and searcher's metrics in every result; ours are absent on purpose in some
    # (ASHA_METRIC in MLM epochs, blimp/* before the last epoch). The spec checks metric names instead.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    folder = sweep_folder(spec.name, storage)
    restoring = _prepare_folder(spec, folder, fresh)
    uri = resolve_tracking_uri(tracking_uri, project_dir())
    teachers, lineage = _resolve_teachers(spec, folder, uri)
    search = spec.search
    seeds = list(range(search.repeats))
    if search.algorithm == "grid":
        param_space = {GRID_KEY: tune.grid_search(grid_points(spec)), REPEAT_KEY: tune.grid_search(seeds)}
    elif search.algorithm == "points":
        param_space = {POINT_KEY: tune.grid_search(list(search.points)), REPEAT_KEY: tune.grid_search(seeds)}
    else:
        param_space = None
    total = planned_trials(spec)
    payload = {"spec": spec, "teachers": teachers, "cache_dir": str(folder.parent / ".cache"),
               "models_dir": str(folder / "models"), "cpu": spec.resources.cpu}
    trainable = tune.with_resources(tune.with_parameters(run_trial, payload=payload),
                                    {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})
    callback = SweepCallback(name=spec.name, folder=str(folder), tracking_uri=uri, spec_text=spec.text,
                             role=spec.role, metric=search.metric, mode=search.mode, total=total,
                             max_epochs=max_epochs(spec), models=spec.tracking.models,
                             search_settings={**{"search." + k: v for k, v in search.model_dump().items()},
                                              **mlflow_params(sampler_settings(search, spec.space))}, live=live,
                             spec=spec, teachers=teachers, lineage={**lineage, **spec.tracking.tags})

    _init_ray(address)
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))  # stop like Ctrl-C
    try:
        if restoring:
            tuner = tune.Tuner.restore(str(folder), trainable=trainable, resume_unfinished=True, resume_errored=False,
                                       param_space=param_space)
            tuner._local_tuner.get_run_config().callbacks = [callback]  # callbacks hold live objects: set anew
        else:
            tune_config = tune.TuneConfig(
                search_alg=None if param_space else _searcher(spec),
                scheduler=_scheduler(spec),
                num_samples=1 if param_space else total,
                max_concurrent_trials=search.concurrent,
                trial_dirname_creator=trial_dirname,
            )
            run_config = tune.RunConfig(
                name=spec.name, storage_path=str(folder.parent), callbacks=[callback], verbose=0,
                failure_config=tune.FailureConfig(max_failures=search.max_failures),
            )
            tuner = tune.Tuner(trainable, param_space=param_space or {}, tune_config=tune_config, run_config=run_config)
        tuner.fit()
    except KeyboardInterrupt:
        callback.interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
    best = callback.finish(callback.interrupted)
    return SweepResult(spec.name, folder, callback.interrupted, best, callback.counts())


# --------------------------------------------------------------------------- status (no Ray started)
def sweep_status(name: str, storage: str | Path | None = None) -> list[dict]:
    """The trials of a sweep as read from its folder: id, state, iterations, metrics, config."""
    from ray.tune import ExperimentAnalysis

    folder = sweep_folder(name, storage)
    if not folder.is_dir() or not any(folder.glob("experiment_state-*.json")):
        raise UserError(f"{folder}: no sweep named '{name}' (run `babysweep run SPEC` first).")
    analysis = ExperimentAnalysis(str(folder))
    rows = []
    for trial in analysis.trials:
        result = trial.last_result or {}
        rows.append({"trial_id": trial.trial_id, "state": trial.status, "iterations": result.get("training_iteration", 0),
                     "metrics": {k: v for k, v in result.items() if isinstance(v, (int, float)) and "/" in k},
                     "config": trial.config, "error": _error_line(trial), "metrics_raw": result})
    return rows


def _error_line(trial) -> str | None:
    """The last line of a trial's error.txt (the exception), read from storage: works without Ray running."""
    try:
        path = os.path.join(trial.storage.trial_fs_path, "error.txt")
    except Exception:
        return None
    if not os.path.exists(path):
        return None
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


def best_row(rows: list[dict], metric: str, mode: str) -> dict | None:
    scored = [r for r in rows if isinstance(r["metrics"].get(metric), (int, float)) and math.isfinite(r["metrics"][metric])]
    if not scored:
        return None
    return (min if mode == "min" else max)(scored, key=lambda r: r["metrics"][metric])
