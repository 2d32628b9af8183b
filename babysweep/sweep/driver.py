"""Sweeps on Ray Tune. Ray stays in the sweep layer: this module (lazily), sweep/ray_cluster.py (starting or joining Ray),
sweep/callback.py, sweep/searcher.py and sweep/scheduler.py.

    result = run_sweep(load_spec("search_spaces/teachers.yaml"))      # runs, or resumes, the sweep
    rows = sweep_status("teachers")                                    # from the folder, no Ray started

A sweep lives in <storage>/<name>/ (storage defaults to <project>/sweeps): Ray Tune's experiment
state, `spec.yaml` (the spec it was started with), `teachers.json` (resolved teachers of a student
sweep), `mlflow_runs.json` (trial -> MLflow run) and `models/<trial_id>/` (each trial's run folder:
checkpoints, final/ HF model, metrics.jsonl). With --storage an object-store URI, that folder is the
driver's local copy and the URI holds the sweep (sweep/object_store.py, sweep/mirror.py). Running a spec whose sweep folder exists restores it:
finished trials stay finished, unfinished ones continue from their last checkpoint, and Optuna's
study comes back with the searcher. ASHA's rungs are not restored by Ray (STACK-NOTES): trials
that resume are judged afresh at the rungs they still have to pass. Early stopping judges a trial only
from half its budget on, at epochs that are causal-LM (after a causal-LM epoch) for every schedule the
spec can sample (ASHA_METRIC, judged_epochs), and only against trials of its search.stratify stratum.

Reproducible: Optuna and random sweeps run their trials in waves of `search.concurrent` (in_waves), and
early stopping is sweep_scheduler.WaveHalving, which compares a trial at a rung only with earlier
waves; so the same spec on the same machine keeps the same trials and picks the same best config,
whichever trial of a wave reports first. The price: a wave's slots wait for its slowest trial.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babysweep.core import metrics as M, paths
from babysweep.core import run_lock, storage_errors
from babysweep.core.atomic import write_text_atomic
from babysweep.train.checkpoint import checkpoints
from babysweep.core.config import RunConfig
from babysweep.core.errors import UserError
from babysweep.sweep.object_store import Mirror, scratch_dir
from babysweep.core.records import lineage_tags
from babysweep.spec.sampler import make_sampler, mlflow_params, sampler_settings
from babysweep.spec.space import OptunaSpace
from babysweep.spec.sweep_spec import Spec, config_count, grid_points
from babysweep.spec.load import diff_specs
from babysweep.spec.checks import stratified_points
from babysweep.core.paths import LAYOUT_FILE, MODELS, RUN_MAP_FILE, SPEC_FILE, TEACHERS_FILE
from babysweep.sweep.ray_cluster import init_ray
from babysweep.sweep.state import driver_running, resume_summary, saved_results, sweep_status
from babysweep.sweep.worker_cache import keeping_workers
from babysweep.sweep.trial import GRID_KEY, POINT_KEY, REPEAT_KEY, TrialContext, made_before_chunk_bos, trial_config


def max_epochs(spec: Spec) -> int:
    """The largest epoch count a trial of this spec can run (ASHA's max_t)."""
    dist = spec.distributions().get("train.epochs")
    if dist is None:
        default = RunConfig.model_fields["train"].default.epochs
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
# ASHA's metric: the search metric, reported only at the sweep's judged epochs (judged_epochs): from half
# the budget on, and only where every schedule the spec can sample is in a causal-LM epoch that follows
# a causal-LM epoch. An AntLM trial's causal dev loss and causal BLiMP are worse in and right after its
# MLM epochs by design, and its per-epoch BLiMP subset switches to the PLL scorer there; judged at such
# an epoch, it would be stopped for its phase, not its config. A KD-heavy student's loss falls later:
# judging from half the budget on keeps early epochs from deciding. Every trial of a sweep reports the
# metric at the same epochs, so Ray's ASHA (grid and points sweeps) and WaveHalving alike compare values
# of the same epoch. No "/": the tracker does not log it.
ASHA_METRIC = "asha_metric"
PLACEMENT_FILE = "placement.json"  # in the trial's folder: node, GPU ids, CUDA_VISIBLE_DEVICES, start and end


def possible_schedules(spec: Spec) -> list[list[str]]:
    """Every AntLM phase list a trial of the spec can run (train.epochs x antlm.schedule x antlm.mlm_ratio,
    conditions ignored: a superset is safe)."""
    from babysweep.core.config import flatten
    from babysweep.core.schedule import parse_schedule, schedule_from_ratio
    from babysweep.spec.space import CATEGORICAL, Distribution

    flat = flatten(spec.space)
    antlm = RunConfig.model_fields["antlm"].default

    def values(key: str, default: Any) -> tuple[list, bool]:  # (candidates, ranged)
        leaf = flat.get(key, default)
        if not isinstance(leaf, Distribution):
            return [leaf], False
        found = list(leaf.args) if leaf.kind == "value" or leaf.kind in CATEGORICAL else leaf.extremes()
        return found + ([default] if leaf.when else []), not (leaf.kind == "value" or leaf.kind in CATEGORICAL)

    epochs, ranged = values("train.epochs", RunConfig.model_fields["train"].default.epochs)
    epochs = list(range(int(min(epochs)), int(max(epochs)) + 1)) if ranged else [int(e) for e in epochs]
    schedules, _ = values("antlm.schedule", antlm.schedule)
    ratios, ranged_ratio = values("antlm.mlm_ratio", antlm.mlm_ratio)
    out = []
    for n in epochs:
        for text in schedules:
            if text:
                phases = parse_schedule(text)
                out += [phases] if len(phases) == n else []  # other lengths go with other epochs (the spec checks)
                continue
            rs = [float(r or 0.0) for r in ratios]
            if ranged_ratio:  # every MLM count the range can round to
                rs = [k / n for k in range(round(n * min(rs)), round(n * max(rs)) + 1)] + rs
            out += [schedule_from_ratio(n, r) for r in rs]
    return out or [["clm"] * max_epochs(spec)]


def judged_epochs(spec: Spec) -> set[int]:
    """The epochs at which early stopping may judge a trial of this spec (schedule.comparable_epochs)."""
    from babysweep.core.schedule import comparable_epochs

    return comparable_epochs(possible_schedules(spec), max_epochs(spec))


def scheduler_result(metrics: dict, search_metric: str, judged: set[int] | None = None) -> dict:
    """The epoch's metrics plus ASHA_METRIC when the epoch was a causal-LM one and one of the judged epochs."""
    epoch = metrics.get(M.EPOCH)
    if judged is not None and (epoch is None or int(epoch) not in judged):
        return dict(metrics)
    if metrics.get(M.PHASE, 0.0) == 0.0 and search_metric in metrics:
        return {**metrics, ASHA_METRIC: metrics[search_metric]}
    return dict(metrics)


def run_trial(params: dict, payload: dict) -> None:
    """A Ray Tune function trainable: one training run of one sampled config."""
    import ray
    from ray import tune

    from babysweep.train.trainer import train

    # A warm worker (search.reuse_workers) runs its next trial only once this trial's thread has ended; Ray waits
    # 2 s for that by default and then fails the *next* trial. Unwinding a stopped trial can take longer on a
    # loaded machine. Everything else the trial relies on is set by the trainer in every trial: threads
    # (train.threads, from the trial's CPUs), the python, numpy and torch seeds, the device; module-level caches
    # are keyed by content (teacher digests, the built-in grammar); the run's objects are the thread's own.
    os.environ.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", "120")
    spec: Spec = payload["spec"]
    config = trial_config(spec, params, payload["context"]).config  # the very config the driver logs to MLflow
    trial_id = tune.get_context().get_trial_id()
    node_id = ray.get_runtime_context().get_node_id()  # which cluster node ran it
    out_dir = Path(payload["models_dir"]) / trial_id  # where the driver reads the trial's files
    sync = None
    if payload.get("mirror"):  # object storage: work in this node's scratch folder, copy to the URI
        from babysweep.sweep.object_store import Mirror, scratch_dir

        mirror, rel = Mirror(payload["mirror"]), f"{spec.name}/{MODELS}/{trial_id}"
        work_dir = scratch_dir() / rel
        mirror.get(rel, work_dir, skip=("final",))  # where the trial's last node left it (nothing when new)
        config.distill.teachers = [_local_model(t, mirror, payload["local_root"]) for t in config.distill.teachers]
        sync = lambda: mirror.sync_trial(work_dir, rel)  # noqa: E731
    else:
        work_dir = out_dir

    judged = judged_epochs(spec)

    def report(metrics: dict, folder: Path | None) -> None:
        if sync:
            sync()  # before the report: the driver copies the trial's files back when it sees the last one
        tune.report({**scheduler_result(metrics, spec.search.metric, judged), "trial_out_dir": str(out_dir), "node_id": node_id})

    # Checkpoints live in the trial's own folder in the sweep (shared storage on a cluster, or mirrored to
    # object storage), not in Ray's checkpoint registry: Ray prunes old checkpoints before its experiment
    # state says so, and a driver killed in between leaves a trial pointing at a deleted checkpoint. A
    # restarted trial (resume, retry) continues from the newest loadable checkpoint of its folder.
    if checkpoints(work_dir / "checkpoints"):
        work_dir.mkdir(parents=True, exist_ok=True)
        with open(work_dir / "resumes.log", "a") as log:  # evidence that a trial continued, not restarted
            log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} resumed from {checkpoints(work_dir / 'checkpoints')[-1]}\n")
    placement = _placement(node_id)
    _write_placement(work_dir, placement)
    try:
        train(config, work_dir, reporter=report, resume=True)
        _write_placement(work_dir, {**placement, "finished": time.time()})
    except Exception as exc:
        found = storage_errors.find(exc)
        if found is None:
            raise
        # A full disk is no fault of the trial's: raising would end it as errored for good. The driver
        # stops the sweep as Ctrl-C does instead, so the trial stays unfinished and a rerun continues it.
        tune.report({storage_errors.REPORT_KEY: str(found)})
        time.sleep(storage_errors.WAIT_S)
        raise


def _placement(node_id: str) -> dict:
    """Where Ray put the trial: its node, the GPU ids it was given (fractions of one GPU share an id) and the
    CUDA_VISIBLE_DEVICES Ray set from them; the trainer uses CUDA when torch finds it and the CPU otherwise."""
    import ray

    return {"node_id": node_id, "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "pid": os.getpid(), "started": time.time()}


def _write_placement(work_dir: Path, placement: dict) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(work_dir / PLACEMENT_FILE, json.dumps(placement), "the trial's placement record")


def _local_model(path: str, mirror, local_root: str) -> str:
    """A teacher folder on this node: the driver's path when this node sees it, else a copy from the URI
    (a teacher of a mirrored sweep lives at the same place under the URI as under the driver's sweeps/)."""
    from babysweep.sweep.object_store import scratch_dir

    if (Path(path) / "config.json").is_file():
        return path
    try:
        rel = Path(path).relative_to(local_root).as_posix()
    except ValueError:
        return path  # not a sweep's model: the trainer says it is missing
    local = scratch_dir() / rel
    if not (local / "config.json").is_file():
        mirror.get(rel, local)
    return str(local)


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


# True inside older_chunks(): new sweep folders get no LAYOUT_FILE, so their trials keep the older chunk layout.
_OLDER_CHUNKS: contextvars.ContextVar[bool] = contextvars.ContextVar("older_chunks", default=False)


@contextlib.contextmanager
def older_chunks(on: bool):
    """Sweeps made inside keep the older chunk layout (data.chunk_bos false) when `on`: a study started before
    data.chunk_bos makes its later sweeps (finalists, later looks, equal-FLOPs arms) so, and so do the finalists,
    ablations and equal-FLOPs arms of a sweep made before it, so that they are trained like their source."""
    token = _OLDER_CHUNKS.set(on or _OLDER_CHUNKS.get())  # an outer older_chunks(True) holds inside
    try:
        yield
    finally:
        _OLDER_CHUNKS.reset(token)


def trained_like(source: Path | None):
    """older_chunks for the sweeps made from a sweep's results (finalists, ablations, equal-FLOPs arms): the older
    chunks when the sweep folder `source` was made before data.chunk_bos, as its trials were (None: a new layout)."""
    return older_chunks(source is not None and made_before_chunk_bos(source))


# What a sweep folder keeps when Ray's part starts afresh: the spec, the resolved teachers, the MLflow run map.
_KEPT_ON_RAY_RESTART = {SPEC_FILE, TEACHERS_FILE, RUN_MAP_FILE, LAYOUT_FILE}


def _prepare_folder(spec: Spec, folder: Path, fresh: bool, tracking_uri: str) -> bool:
    """Returns True when an existing sweep is to be restored."""
    from ray.tune import Tuner

    if fresh and folder.exists():
        shutil.rmtree(folder)
    if folder.exists() and Tuner.can_restore(str(folder)):
        try:
            old = (folder / SPEC_FILE).read_text() if (folder / SPEC_FILE).is_file() else ""
        except UnicodeDecodeError:
            raise UserError(f"{folder / SPEC_FILE}: the sweep's saved spec is damaged (not UTF-8 text); restore it, "
                            "or start the sweep over with --fresh.") from None
        changed = diff_specs(old, spec)
        if changed:
            raise UserError(
                f"{spec.path}: sweep '{spec.name}' already exists in {folder} with a different "
                f"{', '.join(changed)}; Ray cannot change a search space on restore, so run it under "
                "another name (--name NEW) or start over (--fresh)."
            )
        if any(folder.glob("experiment_state-*.json")):
            return True
        # Killed after Ray wrote tuner.pkl but before it saved any trial: nothing can continue, and a restore
        # would know no trial. Start Ray's part afresh; trials (and their runs) get new ids. Only when no trial
        # saved anything: a folder whose experiment state went missing later (deleted, a lost copy) keeps its
        # finished trials, and the user decides.
        kept = saved_results(folder)
        if kept:
            n, shown = len(kept), ", ".join(kept[:3]) + (", ..." if len(kept) > 3 else "")
            raise UserError(f"{folder}: Ray's saved state (experiment_state-*.json) is missing, yet {n} trial"
                            f"{'' if n == 1 else 's'} ({shown}) saved results under {folder / MODELS}; restore that "
                            "file to continue the sweep, or run it under another name (--name NEW) to keep them, "
                            "or start over with --fresh (deletes them).")
        from babysweep.tracking.runs import discard_trial_runs

        for path in folder.iterdir():
            if path.name not in _KEPT_ON_RAY_RESTART:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        discard_trial_runs(tracking_uri, folder)
    new = not (folder / SPEC_FILE).is_file()
    folder.mkdir(parents=True, exist_ok=True)
    if new and not _OLDER_CHUNKS.get():
        write_text_atomic(folder / LAYOUT_FILE, json.dumps({"chunk_bos": True}), "the sweep's data layout")
    write_text_atomic(folder / SPEC_FILE, spec.text, "the sweep's spec")
    return False


def _resolve_teachers(spec: Spec, folder: Path, tracking_uri: str, mirror: Mirror | None = None) -> dict:
    """A student sweep whose teachers come from another sweep: its best trials, resolved once into
    teachers.json (TrialContext reads it back, so a resume uses the same teachers); returns the
    lineage tags the student's runs carry."""
    from babysweep.tracking.runs import teacher_runs

    source = spec.teachers_from_sweep
    if source is None:
        return {}
    saved = folder / TEACHERS_FILE
    if not saved.is_file():
        if mirror is not None and not (folder.parent / source.sweep).is_dir():
            from babysweep.sweep.mirror import pull_driver_state

            # The teachers' sweep ran under another driver: its models must be here to be chosen.
            pull_driver_state(mirror, folder.parent / source.sweep, with_final=True)
        refs = teacher_runs(tracking_uri, source)
        rows = [{"run_id": r.run_id, "trial_id": r.trial_id, "model_dir": r.model_dir, "value": r.value} for r in refs]
        write_text_atomic(saved, json.dumps(rows, indent=1), "the sweep's teachers")
    rows = json.loads(saved.read_text())  # student finalists: each repeat's own teachers (their runs carry their own)
    return lineage_tags(list(dict.fromkeys(r["run_id"] for r in rows)), [source.sweep])


def _searcher(spec: Spec):
    from ray.tune.search import ConcurrencyLimiter, Repeater

    from babysweep.sweep.searcher import FinalResultOptunaSearch

    search = spec.search
    sampler = make_sampler(sampler_settings(search, spec.space))
    # search.stratify: each trial's stratified value is enqueued in turn; Optuna samples the rest around it
    searcher = FinalResultOptunaSearch(space=OptunaSpace(spec.space), metric=search.metric, mode=search.mode, sampler=sampler,
                                       points_to_evaluate=stratified_points(spec) or None)
    if search.repeats > 1:
        searcher = Repeater(searcher, repeat=search.repeats, set_index=True)
    if in_waves(spec):
        # The next wave of `concurrent` trials is suggested only when the whole previous wave has ended: TPE
        # then learns from the same finished trials in every run, and WaveHalving's rungs are complete.
        searcher = ConcurrencyLimiter(searcher, max_concurrent=search.concurrent, batch=True)
    return searcher


def in_waves(spec: Spec) -> bool:
    """Trials run in waves when what happens next depends on earlier results: TPE's suggestions, early stopping.
    Grid and points sweeps have no searcher to hold back; their early stopping is Ray's ASHA, whose decisions
    depend on the order in which concurrent trials report (a documented source of variance)."""
    search = spec.search
    return search.algorithm in ("optuna", "random") and (search.algorithm == "optuna" or search.scheduler == "asha")


def _scheduler(spec: Spec, folder: Path | None = None):
    from ray.tune.schedulers import FIFOScheduler

    from babysweep.sweep.scheduler import RecordingASHA, WaveHalving

    if spec.search.scheduler == "none":
        return FIFOScheduler()
    # time_attr is our epoch, not Ray's iteration count, which restarts when a trial resumes.
    if in_waves(spec):
        return WaveHalving(metric=ASHA_METRIC, mode=spec.search.mode, time_attr=M.EPOCH, max_t=max_epochs(spec),
                           grace_period=spec.search.grace_period, reduction_factor=spec.search.reduction_factor,
                           wave_size=spec.search.concurrent, stratify=spec.search.stratify, judged=judged_epochs(spec),
                           folder=folder and str(folder), name=spec.search.scheduler, reported_metric=spec.search.metric)
    return RecordingASHA(time_attr=M.EPOCH, metric=ASHA_METRIC, mode=spec.search.mode,
                         max_t=max_epochs(spec), grace_period=spec.search.grace_period,
                         reduction_factor=spec.search.reduction_factor, folder=folder and str(folder),
                         name=spec.search.scheduler, reported_metric=spec.search.metric)


def run_sweep(spec: Spec, *, fresh: bool = False, address: str | None = None, storage: str | Path | None = None,
              tracking_uri: str | None = None, live: bool = True) -> SweepResult:
    """Run the sweep of a spec, or continue it where it stopped (saying first what continues). A second
    driver of the same sweep on this machine is refused while this one runs (run_lock)."""
    with run_lock.held(run_lock.lock_path(paths.sweeps_dir(storage), spec.name), f"sweep '{spec.name}'"):
        return _run_sweep(spec, fresh=fresh, address=address, storage=storage, tracking_uri=tracking_uri, live=live)


def _run_sweep(spec: Spec, *, fresh: bool, address: str | None, storage: str | Path | None,
               tracking_uri: str | None, live: bool) -> SweepResult:
    from ray import tune
    from rich.console import Console

    from babysweep.sweep.callback import SweepCallback

    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")  # experiment state saved at least every second
    # Ray wants the scheduler's and searcher's metrics in every result; ours are absent on purpose in some
    # (ASHA_METRIC in MLM epochs, blimp/* before the last epoch). The spec checks metric names instead.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    folder = paths.sweep_folder(spec.name, storage)
    mirror = Mirror.of(storage)
    if mirror is not None and not fresh and not (folder / "tuner.pkl").is_file():
        from babysweep.sweep.mirror import pull_driver_state

        pull_driver_state(mirror, folder)  # a driver on another machine ran it before: continue from the URI
    uri = paths.tracking_uri(tracking_uri)
    restoring = _prepare_folder(spec, folder, fresh, uri)
    lineage = _resolve_teachers(spec, folder, uri, mirror)
    context = TrialContext.of(spec, folder)
    if mirror is not None:  # no folder is shared: each node builds the token cache in its own scratch folder
        context = dataclasses.replace(context, cache_dir=str(scratch_dir() / ".cache"))
    search = spec.search
    seeds = list(range(search.repeats))
    if search.algorithm == "grid":
        param_space = {GRID_KEY: tune.grid_search(grid_points(spec)), REPEAT_KEY: tune.grid_search(seeds)}
    elif search.algorithm == "points":
        param_space = {POINT_KEY: tune.grid_search(list(search.points)), REPEAT_KEY: tune.grid_search(seeds)}
    else:
        param_space = None
    total = planned_trials(spec)
    payload = {"spec": spec, "context": context, "models_dir": str(folder / MODELS),
               "mirror": mirror and mirror.uri, "local_root": str(folder.parent)}
    trainable = tune.with_resources(tune.with_parameters(run_trial, payload=payload),
                                    {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})
    callback = SweepCallback(name=spec.name, folder=str(folder), tracking_uri=uri, spec_text=spec.text,
                             role=spec.role, metric=search.metric, mode=search.mode, total=total,
                             max_epochs=max_epochs(spec), models=spec.tracking.models,
                             # tracking puts "search." before each key
                             search_settings={**search.model_dump(), **mlflow_params(sampler_settings(search, spec.space))},
                             live=live, spec=spec, context=context, lineage={**lineage, **spec.tracking.tags})
    if restoring and live:
        console = Console(soft_wrap=True, highlight=False)
        console.print(f"sweep {spec.name}: an earlier run of this sweep stopped before its end; continuing it", markup=False)
        for line in resume_summary(sweep_status(spec.name, storage, spec), total):
            console.print(line, markup=False)

    callbacks = [callback]
    if mirror is not None:
        from babysweep.sweep.mirror import MirrorCallback, push_driver_state

        push_driver_state(mirror, folder)  # the spec (and a student's teachers) before any trial runs
        callbacks = [MirrorCallback(mirror, folder), callback]  # first: trial files come back before the tracker reads them
    init_ray(address)
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))  # stop like Ctrl-C
    with driver_running(folder):  # `babysweep status` tells running trials from interrupted ones by it
        try:
            if restoring:
                try:
                    tuner = tune.Tuner.restore(str(folder), trainable=trainable, resume_unfinished=True,
                                               resume_errored=False, param_space=param_space)
                except Exception as exc:  # noqa: BLE001 - Ray reads only the saved state here: it is damaged
                    text = " ".join(str(exc).split())[:160] or type(exc).__name__
                    raise UserError(f"{folder / 'tuner.pkl'}: Ray cannot restore the sweep from its saved state "
                                    f"({text}); restore the folder, or start the sweep over with --fresh.") from None
                tuner._local_tuner.get_run_config().callbacks = callbacks  # callbacks hold live objects: set anew
                tuner._local_tuner._tune_config.reuse_actors = search.reuse_workers  # a runtime setting, as the spec's now
            else:
                tune_config = tune.TuneConfig(
                    search_alg=None if param_space else _searcher(spec),
                    scheduler=_scheduler(spec, folder),
                    num_samples=1 if param_space else total,
                    max_concurrent_trials=None if in_waves(spec) else search.concurrent,  # else the limiter's
                    trial_dirname_creator=trial_dirname,
                    reuse_actors=search.reuse_workers,  # warm workers: run_trial sets all the process state it relies on
                )
                run_config = tune.RunConfig(
                    name=spec.name, storage_path=str(folder.parent), callbacks=callbacks, verbose=0,
                    failure_config=tune.FailureConfig(max_failures=search.max_failures),
                )
                tuner = tune.Tuner(trainable, param_space=param_space or {}, tune_config=tune_config, run_config=run_config)
            with keeping_workers(search.concurrent if search.reuse_workers else 0):
                tuner.fit()
        except KeyboardInterrupt:
            callback.interrupted = True
        finally:
            signal.signal(signal.SIGTERM, previous)
        try:
            best = callback.finish(callback.interrupted)
        except storage_errors.StorageError:
            if not callback.storage_error:
                raise
        if mirror is not None:
            push_driver_state(mirror, folder)
        if callback.storage_error:  # a trial's storage filled up: the sweep stopped as after Ctrl-C
            raise storage_errors.StorageError(callback.storage_error)
    return SweepResult(spec.name, folder, callback.interrupted, best, callback.counts())
