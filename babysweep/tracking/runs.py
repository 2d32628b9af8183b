"""Reading sweeps back from MLflow: best runs, teachers, a sweep's runs with their histories, report runs.

    teachers = best_runs(uri, "teachers", top=2)     # -> [RunRef(run_id, trial_id, model_dir, ...)]
    rows = sweep_runs(uri, "teachers", histories=True)
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from mlflow.entities import Metric, ViewType
from mlflow.exceptions import MlflowException
import babysweep
from babysweep.core import records as R
from babysweep.core.config import DEFAULT_ARCH
from babysweep.core.metrics import EVAL_LOSS
from babysweep.core.errors import UserError
from babysweep.tracking.store import MAP_FILE, _client, _missing, _reader
from babysweep.tracking.values import _log_batch, _number, _params, _safe_key, _tag_dict, _write_json



# ------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RunRef:
    """A finished trial run with a saved model: what a student needs to name its teachers."""

    sweep: str
    run_id: str
    trial_id: str
    model_dir: str
    metric: str
    value: float
    params: dict[str, str] = field(default_factory=dict)


def _parent(client, uri: str, sweep_name: str):
    """(experiment id, the sweep's newest parent run) or UserError."""
    exp = client.get_experiment_by_name(sweep_name)
    if exp is None or exp.lifecycle_stage != "active":
        raise UserError(f"there is no MLflow experiment for sweep '{sweep_name}' in {uri}; run that sweep first or check its name")
    parents = client.search_runs([exp.experiment_id], f"tags.{R.KIND} = 'sweep'", max_results=1, order_by=["attributes.start_time DESC"])
    if not parents:
        raise UserError(f"the MLflow experiment '{sweep_name}' in {uri} has no sweep run; run that sweep first")
    return exp.experiment_id, parents[0]


def _children(client, experiment_id: str, parent_id: str, extra: str = "") -> list:
    runs, token = [], None
    query = f"tags.`mlflow.parentRunId` = '{parent_id}'" + (f" and {extra}" if extra else "")
    while True:
        page = client.search_runs([experiment_id], query, ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def best_runs(tracking_uri: str, sweep_name: str, top: int, metric: str | None = None, mode: str | None = None,
              per_arch: bool = False) -> list[RunRef]:
    """The `top` best fully finished trials of a sweep that saved a model, best first; with per_arch,
    the `top` best of each model.arch, architectures in the order of their best trial.

    metric/mode default to the sweep's own. Trials stopped early by the scheduler do not count:
    their metric comes from fewer epochs.
    """
    if top < 1:
        raise UserError(f"top must be at least 1, not {top}")
    client = _reader(tracking_uri, sweep_name)
    experiment_id, parent = _parent(client, tracking_uri, sweep_name)
    metric = metric or parent.data.tags.get("metric")
    mode = mode or parent.data.tags.get("mode")
    if not metric or mode not in ("min", "max"):
        raise UserError(f"sweep '{sweep_name}' records no metric/mode (got {metric!r}, {mode!r}); give both explicitly")

    def group_of(params: dict) -> str:
        return params.get("model.arch", DEFAULT_ARCH) if per_arch else ""

    refs, tried = [], set()
    for run in _children(client, experiment_id, parent.info.run_id):
        tried.add(group_of(run.data.params))  # per_arch: an architecture none of whose trials finished counts too
        tags, value = run.data.tags, run.data.metrics.get(metric)
        model_dir = tags.get(R.MODEL_DIR)
        if not R.fully_trained({"status": run.info.status, "tags": tags}) or not model_dir or not Path(model_dir).is_dir():
            continue
        if value is None or not math.isfinite(value):
            continue
        refs.append(RunRef(sweep_name, run.info.run_id, tags.get(R.TRIAL_ID, run.info.run_name), model_dir, metric, value, dict(run.data.params)))
    refs.sort(key=lambda r: (r.value if mode == "min" else -r.value, r.trial_id))
    groups: dict[str, list[RunRef]] = {group_of(r.params): [] for r in refs}  # in the order of each one's best
    groups.update({arch: [] for arch in sorted(tried - set(groups))})
    for ref in refs:
        groups[group_of(ref.params)].append(ref)
    for arch, group in (groups or {"": []}).items():
        if len(group) < top:
            n, of = len(group), f" of model.arch {arch}" if arch else ""
            raise UserError(f"sweep '{sweep_name}' has {n} finished trial{'' if n == 1 else 's'}{of} with a saved "
                            f"model and a value of {metric}; the spec asks for top {top}")
    return [ref for group in groups.values() for ref in group[:top]]


def teacher_runs(tracking_uri: str, source) -> list[RunRef]:
    """best_runs for a spec's `from_sweep` (babysweep.spec.load.FromSweep: sweep, top, per_arch, metric, mode)."""
    return best_runs(tracking_uri, source.sweep, source.top, metric=source.metric, mode=source.mode,
                     per_arch=source.per_arch)


def sweep_objective(tracking_uri: str, sweep: str) -> tuple[str, str]:
    """(metric, mode) the sweep was tuned on, from its parent run's tags."""
    return R.objective(sweep_parent(tracking_uri, sweep)["tags"], EVAL_LOSS)


def sweep_parent(tracking_uri: str, sweep_name: str) -> dict:
    """The sweep's parent run as a plain dict: run_id, status, params (search.*), tags (metric, mode...)."""
    _, parent = _parent(_reader(tracking_uri, sweep_name), tracking_uri, sweep_name)
    return {"run_id": parent.info.run_id, "status": parent.info.status, "params": dict(parent.data.params), "tags": dict(parent.data.tags)}


def sweep_runs(tracking_uri: str, sweep_name: str, histories: bool | list[str] = False) -> list[dict]:
    """The sweep's trial runs as plain dicts, oldest first, for reports built from MLflow alone.

    Each: run_id, trial_id, status, start_time, end_time (ms), params, metrics (last values),
    tags, and with `histories` (True = every metric, or a list of keys) histories = {key: [(step, value)]}.
    """
    client = _reader(tracking_uri, sweep_name)
    experiment_id, parent = _parent(client, tracking_uri, sweep_name)
    out = []
    for run in sorted(_children(client, experiment_id, parent.info.run_id), key=lambda r: (r.info.start_time, r.info.run_id)):
        row = {"run_id": run.info.run_id, "trial_id": run.data.tags.get(R.TRIAL_ID, run.info.run_name),
               "status": run.info.status, "start_time": run.info.start_time, "end_time": run.info.end_time,
               "params": dict(run.data.params), "metrics": dict(run.data.metrics), "tags": dict(run.data.tags)}
        if histories:
            keys = list(run.data.metrics) if histories is True else [k for k in histories if k in run.data.metrics]
            row["histories"] = {k: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)) for k in keys}
        out.append(row)
    return out


def run_json(tracking_uri: str, run_id: str, path: str) -> dict | None:
    """A JSON artifact of a run (e.g. blimp.json, config.json), or None when it has none."""
    client = _reader(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
            return json.loads(Path(local).read_text())
        except (MlflowException, OSError, ValueError):
            return None


def discard_trial_runs(tracking_uri: str, sweep_dir: Path) -> int:
    """Delete the trial runs of a sweep whose Ray state is being started afresh (its driver was killed
    before Ray saved any trial, so none of them can continue): the sweep's trials get new ids and runs.
    The parent run stays. Returns how many runs were deleted."""
    path = Path(sweep_dir) / MAP_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    parent = state.get("parent_run_id")
    client = _client(tracking_uri)
    ids = {entry["run_id"] for entry in state.get("trials", {}).values()}
    if parent:  # runs created just before the kill, before the map recorded them, too
        try:
            experiment_id = client.get_run(parent).info.experiment_id
            ids |= {r.info.run_id for r in _children(client, experiment_id, parent)}
        except MlflowException as exc:
            if not _missing(exc):
                raise
    for run_id in ids:
        try:
            client.delete_run(run_id)
        except MlflowException as exc:
            if not _missing(exc):
                raise
    state["trials"] = {}
    _write_json(path, state)
    return len(ids)


REPORTS_EXPERIMENT = "reports"


def log_report(tracking_uri: str, name: str, params: dict[str, Any], metrics: dict[str, float], folder: Path) -> str:
    """Record a report as a run of the "reports" experiment: params, metrics, and the folder's files
    as artifacts. A report of the same name is replaced (it is recomputed from the runs), so a
    study that resumes at its report stage leaves one run. Returns the run id."""
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(REPORTS_EXPERIMENT)
    experiment_id = exp.experiment_id if exp is not None else client.create_experiment(
        REPORTS_EXPERIMENT, tags={R.EXPERIMENT_KIND: R.MODEL_TRAINING})
    if exp is not None and exp.lifecycle_stage != "active":
        client.restore_experiment(experiment_id)
    olds = [r.info.run_id for r in client.search_runs([experiment_id], f"tags.report = '{name}'", ViewType.ACTIVE_ONLY)]
    tags = {R.KIND: "report", "report": name, "babysweep.version": babysweep.__version__}
    run = client.create_run(experiment_id, run_name=name, tags=_tag_dict(tags))
    try:
        keyed = {k: v for k, v in ((_safe_key(k), v) for k, v in metrics.items()) if k}
        _log_batch(client, run.info.run_id, metrics=[Metric(k, float(v), int(time.time() * 1000), 0) for k, v in keyed.items()
                                                     if _number(v) is not None], params=_params(params))
        client.log_artifacts(run.info.run_id, str(folder))
        client.set_terminated(run.info.run_id, "FINISHED")
    except BaseException:
        # A write that fails (a damaged store, a full disk, Ctrl-C) leaves no half-written report run, and the
        # previous report's run stays: the old ones are deleted only once the new one is whole.
        with contextlib.suppress(Exception):
            client.delete_run(run.info.run_id)
        raise
    for old in olds:
        client.delete_run(old)
    return run.info.run_id


