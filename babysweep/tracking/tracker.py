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

import json
import logging
import math
import re
import threading
import time
from pathlib import Path
from typing import Any
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
import babysweep
from babysweep.core import records as R
from babysweep.core.config import flatten
from babysweep.core.metrics import BLIMP_OVERALL
from babysweep.core.errors import UserError
from babysweep.core.paths import artifact_root
from babysweep.tracking.store import MAP_FILE, MAX_PARAM_VALUE, MODEL_ARTIFACT, TERMINAL, _client, _missing
from babysweep.tracking.values import _blimp_table, _finite, _git_commit, _log_batch, _mark_model_training, _number, _params, _plain, _safe_key, _tag_dict, _tags, _text, _write_json

log = logging.getLogger(__name__)


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
                       blimp: dict | None = None, model_dir: str | None = None, stopped_by: str | None = None) -> None:
        """Close the trial's run. status: FINISHED, FAILED (with `error`) or STOPPED (early, by the scheduler,
        `stopped_by` saying which, where and why)."""
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
                    R.MODEL_DIR: str(model_dir) if model_dir else None,
                    R.STOPPED_BY: stopped_by if status == "STOPPED" else None}
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


