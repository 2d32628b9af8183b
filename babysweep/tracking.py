"""MLflow tracking for sweeps: one experiment per sweep, a parent run, one child run per trial.

The only module that imports mlflow (and it never imports ray). The sweep layer calls a
`SweepTracker` from the driver.

    uri = paths.tracking_uri()                        # explicit > $MLFLOW_TRACKING_URI > sqlite default
    tracker = SweepTracker(uri, "teachers", project_dir / "sweeps" / "teachers",
                           metric="eval/loss", mode="min", role="teacher",
                           spec_text=spec_yaml, search_settings={"algorithm": "optuna"})
    tracker.trial_started("t1", params={"train.lr": 1e-3}, config=resolved_config)
    tracker.trial_result("t1", {"eval/loss": 3.2}, step=1)          # one log_batch per report
    tracker.trial_finished("t1", "FINISHED", final_metrics={...}, blimp={...}, model_dir="...")
    tracker.sweep_finished(best_trial_id="t1")                          # or tracker.interrupted()

    teachers = best_runs(uri, "teachers", top=2)     # -> [RunRef(run_id, trial_id, model_dir, ...)]
    proc, address = serve_ui(uri)                     # `mlflow server` on the project's store
    links = ui_links(uri, address, "teachers")        # -> [UiLinks(sweep, runs=URL, charts=URL, compare=URL, ...)]

Resume safety: the trial-id -> run-id map lives in `<sweep_dir>/mlflow_runs.json` (written
atomically). A new tracker on the same folder reuses the parent run and every known trial's run,
and skips metric steps that are already logged, so a driver killed with SIGKILL and resumed
leaves one run per trial, one value per step, and no run RUNNING after `sweep_finished`.

For MLflow's UI: experiments get the model-training kind, each trial run a name that says what
varies and tags to group by (records.group_tags), and the parent run the sweep's summary (metrics
best/<metric>, best/blimp/overall, trials/...; best.* params when the sweep finishes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
import os
import posixpath
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import quote
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException

import babysweep
from babysweep.atomic import replace_file_durably, write_text_atomic
from babysweep import records as R
from babysweep.config import DEFAULT_ARCH, flatten
from babysweep.metrics import BLIMP_OVERALL, EVAL_LOSS, TRAIN_LOSS
from babysweep.errors import UserError
from babysweep.paths import RUN_MAP_FILE, artifact_root, sqlite_path
from babysweep.storage_errors import writing

log = logging.getLogger(__name__)
logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "Creating initial tables..." is noise
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per downloaded JSON is noise

MAP_FILE = RUN_MAP_FILE
MODEL_ARTIFACT = "model"
# MLflow's limits (mlflow.utils.validation): longer values are truncated here, longer keys skipped.
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
MAX_PER_BATCH = 100  # params or tags per log_batch call
MAX_METRICS_PER_BATCH = 1000
_TRUNCATED = "...[truncated]"
_KEY_OK = re.compile(r"^[/\w.\- ]+$")  # MLflow's portable key characters
TERMINAL = ("FINISHED", "FAILED", "STOPPED")


# ---------------------------------------------------------------------------------------- store


_READY: set[str] = set()  # sqlite stores this process has opened (tables created and migrated)


def _client(uri: str) -> mlflow.MlflowClient:
    db = sqlite_path(uri)
    if db is None or uri in _READY:
        return mlflow.MlflowClient(tracking_uri=uri)
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)  # sqlite creates the file, not its folder
    # MlflowClient's constructor opens the store, and MLflow's SqlAlchemyStore.__init__ creates and
    # migrates a new sqlite database without a lock: two drivers doing it at once fail ("duplicate
    # column name: step", "table alembic_version already exists"). The first open in each process
    # happens under a lock file beside the database; later opens find it migrated (and the store
    # is cached per process by MLflow).
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not db.exists() or db.stat().st_size == 0:  # an empty file is no store yet (sqlite would agree)
            _create_sqlite(db, uri)
        else:
            _check_sqlite(db)
        client = mlflow.MlflowClient(tracking_uri=uri)
    _READY.add(uri)
    return client


def _check_sqlite(db: Path) -> None:
    """Refuse a damaged store before MLflow opens it (and writes to it): sqlite's quick_check, read-only."""
    import sqlite3

    try:
        with open(db, "rb") as handle:  # sqlite takes a file shorter than its header for an empty database
            header = handle.read(16)
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            verdict = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        if header != b"SQLite format 3\x00":
            verdict = "no sqlite header"
    except (OSError, sqlite3.Error) as exc:
        verdict = str(exc)
    if verdict != "ok":
        raise UserError(f"{db}: the MLflow store is damaged ({verdict}); restore it from a backup, or move it away "
                        "to start a new store (each sweep's trials stay in its folder under sweeps/).")


def _create_sqlite(db: Path, uri: str) -> None:
    """Make and migrate a new store in a temporary file, then rename it into place (under the caller's lock).
    MLflow builds a database in many steps (its tables, then each migration), and a process killed between
    two leaves one that no later open can migrate ("table trace_metrics already exists"): the sweep could
    never continue. A temporary file that a killed creator left is just replaced."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    for stale in db.parent.glob(f".{db.name}.*.tmp*"):  # and its journal; the lock is ours: nobody else is creating one
        stale.unlink(missing_ok=True)
    tmp = db.with_name(f".{db.name}.{os.getpid()}.tmp")
    what = "the MLflow store's database"
    try:
        with writing(db.parent, what):
            SqlAlchemyStore(f"sqlite:///{tmp}", str(artifact_root(uri))).engine.dispose()  # connections closed
        replace_file_durably(tmp, db, what)
    finally:
        tmp.unlink(missing_ok=True)


def _reader(uri: str, sweep_name: str | None = None) -> mlflow.MlflowClient:
    """A client for reading: a sqlite store that does not exist yet is an error, not created."""
    db = sqlite_path(uri)
    if db is not None and (not db.is_file() or db.stat().st_size == 0):
        what = f"so sweep '{sweep_name}' has not run here; run it first" if sweep_name else "run a sweep first"
        raise UserError(f"there is no MLflow store at {db} yet, {what} (or give --tracking-uri)")
    return _client(uri)


def _missing(exc: MlflowException) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


# --------------------------------------------------------------------------------- value shaping


def _safe_key(key: str) -> str | None:
    """A key MLflow accepts (odd characters -> '_'), or None when it cannot be made one."""
    key = re.sub(r"[^/\w.\- ]", "_", str(key))
    ok = _KEY_OK.match(key) and len(key) <= MAX_KEY
    norm = posixpath.normpath(key)
    return key if ok and norm == key and not norm.startswith(("/", "..")) and norm != "." else None


def _text(value: Any, limit: int) -> str:
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        value = value.item()  # numpy / torch scalars
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, default=str, separators=(",", ":"))
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def _number(value: Any) -> float | None:
    """A float for real numbers (numpy/torch scalars included); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "item") and getattr(value, "shape", None) in ((), (1,)):
        return _number(value.item())
    return None


def _params(flat: dict[str, Any]) -> list[Param]:
    out = []
    for key, value in flat.items():
        name = _safe_key(key)
        if name is None:
            log.debug("param %r has a name MLflow refuses; it is only in config.json", key)
            continue
        out.append(Param(name, _text(value, MAX_PARAM_VALUE)))
    return out


def _tag_dict(tags: dict[str, Any]) -> dict[str, str]:
    """Tags as MLflow takes them: strings, truncated; None values and unloggable keys dropped."""
    return {k: _text(v, MAX_TAG_VALUE) for k, v in tags.items() if v is not None and _safe_key(k) == k}


def _tags(tags: dict[str, Any]) -> list[RunTag]:
    return [RunTag(k, v) for k, v in _tag_dict(tags).items()]


def _log_batch(client, run_id: str, metrics=(), params=(), tags=()) -> None:
    """One log_batch call unless MLflow's per-call limits force more."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    while metrics or params or tags:
        client.log_batch(run_id, metrics=metrics[:MAX_METRICS_PER_BATCH], params=params[:MAX_PER_BATCH], tags=tags[:MAX_PER_BATCH])
        metrics, params, tags = metrics[MAX_METRICS_PER_BATCH:], params[MAX_PER_BATCH:], tags[MAX_PER_BATCH:]


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a sampled value for the run map (numpy scalars become floats)."""
    if isinstance(value, (str, bool, int, float, list)) or value is None:
        return value
    number = _number(value)
    return number if number is not None else str(value)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _mark_model_training(client, experiment) -> None:
    """Give an experiment babysweep uses the kind that opens MLflow 3's model-training view (once)."""
    if experiment.tags.get(R.EXPERIMENT_KIND) is None:
        client.set_experiment_tag(experiment.experiment_id, R.EXPERIMENT_KIND, R.MODEL_TRAINING)


def _git_commit(directory: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit) else None


def _blimp_table(paradigms: dict[str, float]) -> dict[str, list]:
    """{paradigm: accuracy} -> the columns {"paradigm": [...], "accuracy": [...]} MLflow's UI shows as a table."""
    rows = sorted(paradigms)
    return {"paradigm": rows, "accuracy": [paradigms[r] for r in rows]}


def _write_json(path: Path, data: dict) -> None:
    """A SIGKILL leaves either the old file or the new one, never half of one."""
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True), "the sweep's MLflow run map")


# ------------------------------------------------------------------------------------- tracker


class SweepTracker:
    """Logs one sweep to MLflow; resume-safe through `<sweep_dir>/mlflow_runs.json`.

    Call it from one process (the driver). `warnings` lists what the tracker repaired on
    opening (a deleted parent run, a deleted trial run), each also sent to the logger.
    """

    def __init__(self, tracking_uri: str, sweep_name: str, sweep_dir: Path, *, metric: str, mode: str,
                 role: str, spec_text: str, search_settings: dict, models: str = "best",
                 tags: dict | None = None, project_dir: Path | None = None):
        if models not in ("best", "all", "none"):
            raise UserError(f"models must be best, all or none, not '{models}'")
        if mode not in ("min", "max"):
            raise UserError(f"mode must be min or max, not '{mode}'")
        self.tracking_uri, self.sweep_name, self.metric, self.mode = tracking_uri, sweep_name, metric, mode
        self.role, self.models = role, models
        self.sweep_dir = Path(sweep_dir)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        self.map_path = self.sweep_dir / MAP_FILE
        self.warnings: list[str] = []
        self._lock = threading.Lock()  # Ray callbacks run on one thread, but be safe
        self._client = _client(tracking_uri)
        commit = _git_commit(Path(project_dir) if project_dir else self.sweep_dir)
        # Tags every run of this sweep carries.
        self._common = {R.SWEEP: sweep_name, R.ROLE: role, "babysweep.version": babysweep.__version__,
                        "mlflow.source.git.commit": commit}
        self._synced: set[str] = set()  # trials checked against MLflow in this process
        self._keys_at_last: dict[str, set[str]] = {}  # per trial: metric keys logged at its last step
        self._state = self._load_map()
        self._reopened = bool(self._state.get("parent_run_id"))
        self._experiment_id = self._experiment()
        self._open_parent(spec_text, search_settings, tags or {})

    # -- opening

    def _load_map(self) -> dict:
        if not self.map_path.exists():
            return {"version": 1, "trials": {}}
        try:
            state = json.loads(self.map_path.read_text())
            if not isinstance(state.get("trials"), dict):
                raise ValueError("no 'trials' object")
            return state
        except (ValueError, AttributeError) as exc:
            raise UserError(f"{self.map_path} is not a valid run map ({exc}); delete it to start new MLflow runs for this sweep") from exc

    def _save(self) -> None:
        self._state["tracking_uri"] = self.tracking_uri
        _write_json(self.map_path, self._state)

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

    def _experiment(self) -> str:
        exp = self._client.get_experiment_by_name(self.sweep_name)
        if exp is None:
            root = artifact_root(self.tracking_uri)
            location = None
            if root is not None:
                location = (root / re.sub(r"[^\w.\-]", "_", self.sweep_name)).as_uri()
            return self._client.create_experiment(self.sweep_name, artifact_location=location,
                                                  tags={R.EXPERIMENT_KIND: R.MODEL_TRAINING})
        if exp.lifecycle_stage == "deleted":  # its name is still taken: bring it back
            self._client.restore_experiment(exp.experiment_id)
            self._warn(f"MLflow experiment '{self.sweep_name}' was deleted; restored it")
        _mark_model_training(self._client, exp)
        return exp.experiment_id

    def _run_alive(self, run_id: str | None):
        """The run if it exists, is not deleted and belongs to this sweep's experiment."""
        if not run_id:
            return None
        try:
            run = self._client.get_run(run_id)
        except MlflowException as exc:
            if _missing(exc):
                return None
            raise
        ok = run.info.lifecycle_stage == "active" and run.info.experiment_id == self._experiment_id
        return run if ok else None

    def _open_parent(self, spec_text: str, search_settings: dict, tags: dict) -> None:
        old = self._state.get("parent_run_id")
        if self._run_alive(old):
            self._client.update_run(old, "RUNNING")
            return
        if old:
            self._warn(f"the parent MLflow run {old} of sweep '{self.sweep_name}' is gone (deleted?); "
                       f"created a new parent run and will move this sweep's trial runs under it")
        parent_tags = {**self._common, R.KIND: "sweep", R.METRIC: self.metric, R.MODE: self.mode, "models": self.models, **tags}
        run = self._client.create_run(self._experiment_id, tags=_tag_dict(parent_tags), run_name=self.sweep_name)
        self._state["parent_run_id"] = run.info.run_id
        self._save()
        for trial_id, entry in self._state["trials"].items():
            if self._run_alive(entry["run_id"]):  # keep the sweep's trials under its (new) parent
                self._client.set_tag(entry["run_id"], "mlflow.parentRunId", run.info.run_id)
        flat = {**flatten(search_settings, "search."), "search.metric": self.metric, "search.mode": self.mode}
        _log_batch(self._client, run.info.run_id, params=_params(flat))
        self._client.log_text(run.info.run_id, spec_text, "spec.yaml")

    @property
    def parent_run_id(self) -> str:
        return self._state["parent_run_id"]

    def run_id(self, trial_id: str) -> str | None:
        """The trial's MLflow run id (None before trial_started)."""
        entry = self._entry(trial_id)
        return entry["run_id"] if entry else None

    # -- trials

    def _entry(self, trial_id: str) -> dict | None:
        return self._state["trials"].get(trial_id)

    def _sync(self, trial_id: str) -> bool:
        """First touch of a known trial in this process: check its run, learn its last logged step."""
        if trial_id in self._synced:
            return True
        entry = self._entry(trial_id)
        run = self._run_alive(entry["run_id"])
        if run is None:
            self._warn(f"the MLflow run {entry['run_id']} of trial {trial_id} is gone (deleted?); starting a new run for it")
            del self._state["trials"][trial_id]
            return False
        last_per_key = {}
        for key in run.data.metrics:  # one history query per key, once per reopen
            steps = [m.step for m in self._client.get_metric_history(run.info.run_id, key)]
            if steps:
                last_per_key[key] = max(steps)
        # The map can be one report behind MLflow (a kill between log_batch and the map write).
        known = [s for s in (max(last_per_key.values(), default=None), entry.get("last_step")) if s is not None]
        entry["last_step"] = max(known, default=None)
        self._keys_at_last[trial_id] = {k for k, s in last_per_key.items() if s == entry["last_step"]}
        self._synced.add(trial_id)
        return True

    def _adopt_orphan(self, trial_id: str) -> str | None:
        """A run created just before a SIGKILL, before the map recorded it."""
        if not self._reopened or "'" in trial_id:
            return None
        query = f"tags.{R.TRIAL_ID} = '{trial_id}' and tags.`mlflow.parentRunId` = '{self.parent_run_id}'"
        runs = self._client.search_runs([self._experiment_id], query, max_results=1)
        return runs[0].info.run_id if runs else None

    def _open_trial(self, trial_id: str, params: dict | None = None, config: dict | None = None,
                    tags: dict | None = None, reopen: bool = False) -> str:
        """The trial's run id: its known run (RUNNING again when `reopen`), or a new child run."""
        entry = self._entry(trial_id)
        if entry is not None and not self._sync(trial_id):
            entry = None  # its run was deleted
        if entry is None:
            run_id = self._adopt_orphan(trial_id)
            flat = {**flatten(config or {}), **flatten(params or {})}
            sampled = {**{k: _plain(v) for k, v in flatten(params or {}).items()}, R.SEED_KEY: _plain(flat.get(R.SEED_KEY))}
            name = R.trial_run_name(self.sweep_name, trial_id, sampled, self._varying([sampled]))
            if run_id is not None:
                name = None  # adopted: the summary gives it its name
            else:
                child_tags = {**self._common, R.KIND: "trial", R.TRIAL_ID: trial_id, "mlflow.parentRunId": self.parent_run_id,
                              R.SEED: flat.get(R.SEED_KEY), R.SAMPLED: R.sampled_tag(flatten(params or {})),
                              **(R.group_tags(config) if config else {}), **(tags or {})}
                run = self._client.create_run(self._experiment_id, run_name=name, tags=_tag_dict(child_tags))
                run_id = run.info.run_id
            entry = {"run_id": run_id, "status": "RUNNING", "last_step": None, "params_logged": False,
                     "sampled": sampled, "name": name}
            self._state["trials"][trial_id] = entry
            self._save()  # before logging anything: a kill from here on reuses this run
            self._synced.add(trial_id)
            self._keys_at_last[trial_id] = set()
        elif entry["status"] != "RUNNING" and (reopen or entry["status"] == "KILLED"):
            if entry["status"] == "FAILED":
                self._client.delete_tag(entry["run_id"], "error")  # restarted after an error
            self._client.update_run(entry["run_id"], "RUNNING")
            entry["status"] = "RUNNING"
            self._save()
        if not entry["params_logged"] and (params is not None or config is not None):
            flat = {**flatten(config or {}), **flatten(params or {})}  # sampled values win
            _log_batch(self._client, entry["run_id"], params=_params(flat))
            if config:
                self._client.log_text(entry["run_id"], json.dumps(config, indent=2, sort_keys=True, default=str), "config.json")
            entry["params_logged"] = True
            self._save()
        return entry["run_id"]

    def trial_started(self, trial_id: str, params: dict, config: dict, tags: dict | None = None) -> str:
        """Open (or reopen) the trial's child run; returns its run id. Idempotent."""
        with self._lock:
            return self._open_trial(trial_id, params, config, tags, reopen=True)

    def trial_params(self, trial_id: str, params: dict[str, Any]) -> None:
        """Params the trial itself decides (the teacher cache's mode and estimate): logged once; a later
        different value (a resumed trial that chose otherwise) goes to a tag of the same name."""
        with self._lock:
            run_id = self._open_trial(trial_id)
            entry = self._entry(trial_id)
            new = {k: v for k, v in params.items() if entry.setdefault("own_params", {}).get(k) != _text(v, MAX_PARAM_VALUE)}
            if not new:
                return
            try:
                _log_batch(self._client, run_id, params=_params(new))
            except MlflowException:
                _log_batch(self._client, run_id, tags=_tags(new))
            entry["own_params"].update({k: _text(v, MAX_PARAM_VALUE) for k, v in new.items()})
            self._save()

    def trial_result(self, trial_id: str, metrics: dict[str, Any], step: int) -> None:
        """Log one report at `step` in one log_batch; steps already logged are skipped."""
        with self._lock:
            run_id = self._open_trial(trial_id)
            entry = self._entry(trial_id)
            if entry["last_step"] is not None and step <= entry["last_step"]:
                log.debug("trial %s: step %s already logged (last %s); skipped", trial_id, step, entry["last_step"])
                return
            logged, nonfinite = self._metrics(metrics, step)
            _log_batch(self._client, run_id, metrics=logged, tags=nonfinite)
            entry["last_step"] = step
            self._keys_at_last[trial_id] = {m.key for m in logged}
            self._save()

    def _metrics(self, metrics: dict[str, Any], step: int, skip: set[str] = frozenset()):
        now = int(time.time() * 1000)
        logged, nonfinite = [], []
        for key, value in metrics.items():
            number, name = _number(value), _safe_key(key)
            if number is None or name is None or name in skip:
                continue  # strings, dicts, bools and unloggable names are not metrics
            if math.isfinite(number):
                logged.append(Metric(name, number, now, int(step)))
            elif _safe_key("nonfinite." + name):
                nonfinite.append(RunTag("nonfinite." + name, f"{number} at step {step}"))
        return logged, nonfinite

    def trial_finished(self, trial_id: str, status: str, *, error: str | None = None, final_metrics: dict | None = None,
                       blimp: dict | None = None, model_dir: str | None = None) -> None:
        """Close the trial's run. status: FINISHED, FAILED (with `error`) or STOPPED (early, by the scheduler)."""
        if status not in TERMINAL:
            raise ValueError(f"status must be one of {TERMINAL}, not {status!r}")
        with self._lock:
            run_id = self._open_trial(trial_id)
            entry = self._entry(trial_id)
            step = entry["last_step"] if entry["last_step"] is not None else 0
            # Final metrics go at the last step; a key already logged at that step is not repeated.
            done = self._keys_at_last.setdefault(trial_id, set()) if entry["last_step"] is not None else set()
            logged, nonfinite = self._metrics(final_metrics or {}, step, skip=done)
            tags = {R.ERROR: error if status == "FAILED" else None, R.STOPPED_EARLY: R.TRUE if status == "STOPPED" else None,
                    R.MODEL_DIR: str(model_dir) if model_dir else None}
            _log_batch(self._client, run_id, metrics=logged, tags=nonfinite + _tags(tags))
            entry["last_step"] = step if (logged or entry["last_step"] is not None) else None
            done |= {m.key for m in logged}
            self._keys_at_last[trial_id] = done
            if blimp:
                self._client.log_dict(run_id, blimp, "blimp.json")  # overwrites: idempotent
                if isinstance(blimp.get("paradigms"), dict):  # a table MLflow's UI shows
                    self._client.log_dict(run_id, _blimp_table(blimp["paradigms"]), "blimp_table.json")
            if model_dir:
                entry["model_dir"] = str(model_dir)
            if self.models == "all" and status != "FAILED":
                self._log_model(trial_id)
            self._client.set_terminated(run_id, "FAILED" if status == "FAILED" else "FINISHED")
            entry["status"] = status
            self._remember_values(trial_id)
            self._save()
            self._update_summary()

    def _log_model(self, trial_id: str) -> bool:
        entry = self._entry(trial_id)
        folder = entry.get("model_dir")
        if entry.get("model_logged"):
            return True
        if not folder or not Path(folder).is_dir():
            return False
        self._client.log_artifacts(entry["run_id"], folder, MODEL_ARTIFACT)
        entry["model_logged"] = True
        self._save()
        return True

    def _best_known_trial(self) -> str | None:
        """The best trial that finished fully with a saved model, by the sweep's metric and mode."""
        candidates = []
        for trial_id, entry in self._state["trials"].items():
            if entry["status"] != "FINISHED" or not entry.get("model_dir") or not Path(entry["model_dir"]).is_dir():
                continue
            run = self._run_alive(entry["run_id"])
            value = run.data.metrics.get(self.metric) if run else None
            if value is not None and math.isfinite(value):
                candidates.append((value if self.mode == "min" else -value, trial_id))
        return min(candidates)[1] if candidates else None

    def sweep_finished(self, best_trial_id: str | None) -> None:
        """Log the best model (models=best), close every open trial run and the parent run."""
        with self._lock:
            if self.models == "best":
                entry = self._entry(best_trial_id) if best_trial_id else None
                if entry is None or entry["status"] == "FAILED" or not entry.get("model_dir"):
                    best_trial_id = self._best_known_trial()
                if best_trial_id and self._log_model(best_trial_id):
                    self._client.set_tag(self.parent_run_id, R.BEST_TRIAL_ID, best_trial_id)
                    self._client.set_tag(self.parent_run_id, R.BEST_RUN_ID, self._entry(best_trial_id)["run_id"])
                else:
                    best_trial_id = None
            for trial_id, entry in self._state["trials"].items():
                if entry["status"] in TERMINAL:
                    continue
                # Never reported an end (stopped by the scheduler, or the sweep ended first).
                try:
                    self._client.set_tag(entry["run_id"], R.STOPPED_EARLY, R.TRUE)
                    self._client.set_terminated(entry["run_id"], "FINISHED")
                except MlflowException as exc:
                    self._warn(f"could not close the MLflow run {entry['run_id']} of trial {trial_id}: {exc.message}")
                entry["status"] = "STOPPED"
            self._update_summary()
            self._log_best_params(best_trial_id if self.models == "best" else None)
            self._client.set_terminated(self.parent_run_id, "FINISHED")
            self._save()

    def interrupted(self) -> None:
        """The sweep was stopped (Ctrl+C): parent and open trial runs KILLED; a resume reopens them."""
        with self._lock:
            for trial_id, entry in self._state["trials"].items():
                if entry["status"] == "RUNNING":
                    try:
                        self._client.set_terminated(entry["run_id"], "KILLED")
                    except MlflowException as exc:
                        self._warn(f"could not mark the MLflow run of trial {trial_id} KILLED: {exc.message}")
                    entry["status"] = "KILLED"
            self._update_summary()
            self._client.set_terminated(self.parent_run_id, "KILLED")
            self._save()

    # -- the parent run's summary

    def _varying(self, extra: list[dict] = ()) -> list[str]:
        """The one or two sampled keys that vary most across the sweep's trials (names show them)."""
        known = [e["sampled"] for e in self._state["trials"].values() if e.get("sampled")]
        return R.varying_keys(known + list(extra))

    def _remember_values(self, trial_id: str) -> None:
        """Keep the trial's final search metric and BLiMP in the map: the summary needs no query per trial."""
        entry = self._entry(trial_id)
        run = self._run_alive(entry["run_id"])
        metrics = run.data.metrics if run else {}
        entry["value"], entry["blimp"] = metrics.get(self.metric), metrics.get(BLIMP_OVERALL)

    def _ranked(self) -> list[tuple[float, str]]:
        """(signed value, trial id) of the fully trained trials, best first (the parent's "best")."""
        out = []
        for trial_id, entry in self._state["trials"].items():
            if entry["status"] != "FINISHED":
                continue
            if "value" not in entry:  # a map written before values were kept
                self._remember_values(trial_id)
            value = entry.get("value")
            if value is not None and math.isfinite(value):
                out.append((value if self.mode == "min" else -value, trial_id))
        return sorted(out)

    def _update_summary(self) -> None:
        """Metrics on the parent run: best values, trials finished / stopped early / errored.

        Metrics, not params: they change as trials end and across resumes (MLflow params cannot).
        The step counts the summary's updates and only grows (MLflow shows a metric's value at its
        highest step; the number of ended trials can fall when a rerun retries errored trials).
        Also renames trial runs whose varying keys changed."""
        entries = self._state["trials"]
        statuses = [e["status"] for e in entries.values()]
        ranked = self._ranked()
        blimps = [e["blimp"] for e in entries.values() if e["status"] == "FINISHED" and _finite(e.get("blimp"))]
        summary = {R.TRIALS_FINISHED: statuses.count("FINISHED"), R.TRIALS_STOPPED: statuses.count("STOPPED"),
                   R.TRIALS_ERRORED: statuses.count("FAILED")}
        if ranked:
            summary[R.SUMMARY_BEST + self.metric] = ranked[0][0] if self.mode == "min" else -ranked[0][0]
        if blimps:
            summary[R.SUMMARY_BEST + BLIMP_OVERALL] = max(blimps)
        logged = self._state.setdefault("summary", {})
        step = self._state.get("summary_step", 0) + 1
        now = int(time.time() * 1000)
        changed = [Metric(k, float(v), now, step) for k, v in summary.items() if logged.get(k) != float(v) and _safe_key(k)]
        if changed:
            _log_batch(self._client, self.parent_run_id, metrics=changed)
            self._state["summary_step"] = step
            logged.update({m.key: m.value for m in changed})
        keys = self._varying()
        for trial_id, entry in entries.items():
            if not entry.get("sampled"):
                continue
            name = R.trial_run_name(self.sweep_name, trial_id, entry["sampled"], keys)
            if entry.get("name") != name:
                try:
                    self._client.update_run(entry["run_id"], name=name)
                    entry["name"] = name
                except MlflowException as exc:
                    self._warn(f"could not rename the MLflow run of trial {trial_id}: {exc.message}")
        self._save()

    def _log_best_params(self, best_trial_id: str | None) -> None:
        """`best.*` params on the parent: the best trial's id, run id and sampled values.

        MLflow params are write-once, so they are written when the sweep first finishes. If a later
        finish (a rerun that retried errored trials) has another best, the new values go into tags of
        the same names instead, and the parent's `best_trial_id` tag always names the current best."""
        if best_trial_id is None:
            ranked = self._ranked()
            best_trial_id = ranked[0][1] if ranked else None
        entry = self._entry(best_trial_id) if best_trial_id else None
        if entry is None:
            return
        self._client.set_tag(self.parent_run_id, R.BEST_TRIAL_ID, best_trial_id)
        self._client.set_tag(self.parent_run_id, R.BEST_RUN_ID, entry["run_id"])
        values = {"trial_id": best_trial_id, "run_id": entry["run_id"], **(entry.get("sampled") or {})}
        wanted = {p.key: p.value for p in _params({R.BEST_PARAM_PREFIX + k: v for k, v in values.items()})}
        have = self._client.get_run(self.parent_run_id).data.params
        if any(k in have and have[k] != v for k, v in wanted.items()):
            self._warn(f"sweep '{self.sweep_name}' has a new best trial ({best_trial_id}) after its best.* params "
                       f"were written; MLflow params cannot change, so the new values are tags of the same names")
            _log_batch(self._client, self.parent_run_id, tags=[RunTag(k, v) for k, v in wanted.items()])
            return
        new = [Param(k, v) for k, v in wanted.items() if k not in have]
        if new:
            _log_batch(self._client, self.parent_run_id, params=new)


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
    """best_runs for a spec's `from_sweep` (babysweep.spec.FromSweep: sweep, top, per_arch, metric, mode)."""
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
    for old in client.search_runs([experiment_id], f"tags.report = '{name}'", ViewType.ACTIVE_ONLY):
        client.delete_run(old.info.run_id)
    tags = {R.KIND: "report", "report": name, "babysweep.version": babysweep.__version__}
    run = client.create_run(experiment_id, run_name=name, tags=_tag_dict(tags))
    keyed = {k: v for k, v in ((_safe_key(k), v) for k, v in metrics.items()) if k}
    _log_batch(client, run.info.run_id, metrics=[Metric(k, float(v), int(time.time() * 1000), 0) for k, v in keyed.items() if _number(v) is not None],
               params=_params(params))
    client.log_artifacts(run.info.run_id, str(folder))
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


# ------------------------------------------------------------------------------------------- UI


def serve_ui(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000, *, log_path: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start `mlflow server` (what `mlflow ui` runs) on the store; returns (process, address).

    Terminate the process to stop it (MLflow passes SIGTERM on to its workers). Its output goes
    to the terminal, or to `log_path` when given.
    """
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
           "--host", host, "--port", str(port), "--workers", "1"]  # one user: one worker is plenty
    root = artifact_root(tracking_uri)
    if root is not None:
        _client(tracking_uri)  # a new store is created here, safely (the server would migrate it in place)
        root.mkdir(parents=True, exist_ok=True)
        cmd += ["--default-artifact-root", root.as_uri(), "--artifacts-destination", root.as_uri()]
    out = open(log_path, "ab") if log_path else None
    try:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None, stdin=subprocess.DEVNULL)
    finally:
        if out:
            out.close()  # the child holds its own copy
    return proc, ui_address(host, port)


def ui_address(host: str, port: int) -> str:
    """The UI's base URL for a bind address (IPv6 addresses in brackets)."""
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def stop_ui(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Stop a server from serve_ui: SIGTERM (MLflow passes it to its workers), SIGKILL if it lingers."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_up(address: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> bool:
    """Poll the server's experiments API until it answers (True), `timeout` passes or `process` exits (False)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # local: never via a proxy
    url = f"{address}/api/2.0/mlflow/experiments/search?max_results=1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with opener.open(url, timeout=5) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    return False


# ------------------------------------------------------------------------------------ deep links

VIEW_KEY = "babysweep-trials"  # the shared view state babysweep writes on each sweep's experiment
SHARED_VIEW_TAG = "mlflow.sharedViewState."  # MLflow's UI reads `?viewStateShareKey=K` from this tag + K


@dataclass(frozen=True)
class UiLinks:
    """Deep links into MLflow's UI for one sweep."""

    sweep: str
    experiment_id: str
    runs: str  # the experiment's runs table: trials only, sorted by the sweep's metric, its columns shown
    charts: str  # the same trials in the chart view, showing the sweep's metrics first
    compare: str  # the compare page of the fully trained trials: parallel coordinates, scatter and metric plots
    trials: int  # how many trials the compare page shows


# MLflow's sidebar shows its model-training pages (not GenAI's) for this URL parameter.
WORKFLOW = "workflowType=machine_learning"


def sweeps_link(address: str, links: list[UiLinks]) -> str:
    """Several sweeps side by side in the chart view: one parent run each, a chart per summary metric
    (best/..., trials/...), each line the metric's value as the sweep's trials ended."""
    ids = quote(json.dumps([link.experiment_id for link in links]))
    parents = quote(f"tags.{R.KIND} = 'sweep'")
    return f"{address}/#/compare-experiments/s?experiments={ids}&searchFilter={parents}&{WORKFLOW}&compareRunsMode=CHART"


def _view_state(metric: str, mode: str, varying: list[str]) -> dict:
    """A runs-table view as MLflow's "Share" button stores it: a filter, a sort and the columns."""
    def column(kind: str, key: str) -> str:
        return f"{kind}.`{key}`"

    metrics = list(dict.fromkeys([metric, EVAL_LOSS, BLIMP_OVERALL]))
    return {"searchFilter": f"tags.{R.KIND} = 'trial'", "orderByKey": column("metrics", metric), "orderByAsc": mode == "min",
            "selectedColumns": [*(column("metrics", m) for m in metrics), *(column("params", k) for k in varying),
                                *(column("tags", t) for t in (R.ROLE, R.ARCH, R.SCHEDULE))],
            # the chart view's search box, a case-insensitive regular expression on metric names
            "chartsSearchFilter": "|".join(re.escape(m) for m in [*metrics, TRAIN_LOSS]),
            "runListHidden": False}


def ui_links(tracking_uri: str, address: str, sweep: str | None = None) -> list[UiLinks]:
    """Deep links for `sweep` (or for every sweep in the store), oldest experiment first.

    Writes on each sweep's experiment the shared view state its runs link names, and the
    experiment kind of the model-training view where a store from an older babysweep lacks it."""
    client = _reader(tracking_uri, sweep)
    if sweep is not None:
        names = [sweep]
    else:
        names = [e.name for e in client.search_experiments(ViewType.ACTIVE_ONLY, order_by=["creation_time ASC"])
                 if e.name != REPORTS_EXPERIMENT]
    out = []
    for name in names:
        try:
            experiment_id, parent = _parent(client, tracking_uri, name)
        except UserError:
            if sweep is not None:
                raise
            continue  # an experiment that is not a sweep
        _mark_model_training(client, client.get_experiment(experiment_id))
        metric, mode = R.objective(parent.data.tags, EVAL_LOSS)
        runs = [{"run_id": r.info.run_id, "status": r.info.status, "tags": r.data.tags, "params": r.data.params}
                for r in _children(client, experiment_id, parent.info.run_id)]
        finished = [r for r in runs if R.fully_trained(r)]
        varying = R.varying_keys([{k: r["params"].get(k) for k in R.sampled_keys(r, with_seed=True)} for r in runs])
        state = json.dumps(_view_state(metric, mode, varying), sort_keys=True)
        client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + VIEW_KEY, state)
        ids = json.dumps([r["run_id"] for r in finished], separators=(",", ":"))
        compare = f"{address}/#/compare-runs?runs={quote(ids)}&experiments={quote(json.dumps([experiment_id]))}&{WORKFLOW}"
        runs_url = f"{address}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}&{WORKFLOW}"
        out.append(UiLinks(name, experiment_id, runs_url, runs_url + "&compareRunsMode=CHART", compare, len(finished)))
    return out
