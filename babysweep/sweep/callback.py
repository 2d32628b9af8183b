"""The sweep driver's Ray Tune callback: live trial table, ETA, and MLflow tracking of every trial.

    callback = SweepCallback(name=..., folder=..., tracking_uri=..., ...)   # passed to RunConfig

Ray pickles callbacks into the experiment state, so this object keeps only plain settings when
pickled; the tracker and the display are made on first use and made again after a restore.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

from ray.tune import Callback
from rich.console import Console
from rich.live import Live

from babysweep.core import metrics as M, records as R
from babysweep.core.config import RunConfig, budget_spent
from babysweep.train.model_card import write_model_card
from babysweep.core.paths import MODELS
from babysweep.sweep.stops import read_stops, stop_note, stop_sentence
from babysweep.core.storage_errors import REPORT_KEY as STORAGE_KEY
from babysweep.sweep.state import error_line
from babysweep.sweep.status_view import cell  # one way to show a value, in the live table and in status
from babysweep.sweep.trial import TrialContext, trial_config

UNFINISHED = ("PENDING", "RUNNING", "PAUSED")


class SweepCallback(Callback):
    def __init__(self, *, name: str, folder: str, tracking_uri: str, spec_text: str, role: str, metric: str, mode: str,
                 total: int, max_epochs: int, models: str, search_settings: dict, live: bool = True,
                 spec=None, context: TrialContext | None = None, lineage: dict | None = None):
        self.settings = dict(name=name, folder=folder, tracking_uri=tracking_uri, spec_text=spec_text, role=role,
                             metric=metric, mode=mode, total=total, max_epochs=max_epochs, models=models,
                             search_settings=search_settings, live=live, spec=spec, context=context,
                             lineage=lineage or {})
        self.__dict__.update(self.settings)
        self._reset()

    def _reset(self) -> None:
        self.interrupted = False
        self.storage_error: str | None = None  # a trial's sentence about full or read-only storage
        self.rows: dict[str, dict] = {}
        self._tracker = None
        self._live = None
        self._console = Console(soft_wrap=True)
        self._started = time.time()
        self._iterations_at_start = None

    def __getstate__(self) -> dict:
        return {"settings": self.settings}

    def __setstate__(self, state: dict) -> None:
        self.settings = state["settings"]
        self.__dict__.update(self.settings)
        self._reset()

    # ------------------------------------------------------------------ tracking
    @property
    def tracker(self):
        if self._tracker is None:
            from babysweep.tracking.tracker import SweepTracker

            self._tracker = SweepTracker(self.tracking_uri, self.name, Path(self.folder), metric=self.metric, mode=self.mode,
                                         role=self.role, spec_text=self.spec_text, search_settings=self.search_settings,
                                         models=self.models, tags=self.lineage)
        return self._tracker

    def _config(self, trial) -> tuple[dict, RunConfig | None, int, str | None]:
        """(params, config, repeat, point): trial_config's result, the same the worker trains with (config None
        when it is invalid)."""
        try:
            found = trial_config(self.spec, trial.config, self.context)
        except Exception:  # an invalid config (the trial itself fails and records why), a point the spec lost
            return dict(trial.config), None, 0, None
        # Only what the search chose: Optuna's define-by-run space returns the spec's constants too, which
        # would otherwise be recorded as sampled (the tag finalists and reports read) and name the trial.
        chosen = set(self.spec.distributions()) | set(self.spec.search.points[found.point] if found.point else ())
        return {k: v for k, v in found.params.items() if k in chosen}, found.config, found.repeat, found.point

    def setup(self, **info) -> None:
        self.tracker  # open the parent run before the first trial starts
        self._start_view()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        params, config, repeat, point = self._config(trial)
        seed = config.train.seed if config else repeat
        tags = {R.SEED: str(seed), R.REPEAT: str(repeat), **({R.POINT: point} if point else {}), **self.lineage}
        own = self.context.teacher_runs_of(repeat) if self.context is not None else None
        if own:  # a student finalist: the teachers retrained with its seed
            tags[R.TEACHER_RUN_IDS] = ",".join(own)
        self.tracker.trial_started(trial.trial_id, params, config.model_dump() if config else {}, tags=tags)
        self._row(trial).update(state="running")
        row = self._row(trial)
        shown = ", ".join(f"{k}={cell(v)}" for k, v in row["params"].items())  # a log line: full keys, it may wrap
        self._refresh(trials, f"{trial.trial_id} started: " + (f"{row['point']} " if row.get("point") else "") + shown)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if STORAGE_KEY in result:
            self.storage_error = self.storage_error or result[STORAGE_KEY]
            os.kill(os.getpid(), signal.SIGINT)  # stop the sweep as Ctrl-C does: the trial stays unfinished
            return
        numeric = M.numeric_metrics(result)
        self.tracker.trial_result(trial.trial_id, numeric, step=int(result.get(M.EPOCH, result.get("training_iteration", 0))))
        own = {k: v for k, v in result.items() if k.startswith(M.CACHE_PARAMS)}  # the teacher cache's mode and why
        if own:
            self.tracker.trial_params(trial.trial_id, own)
        row = self._row(trial)
        row.update(state="running", epoch=result.get(M.EPOCH, 0), current=result.get(self.metric), out_dir=result.get("trial_out_dir"))
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            better = row.get("best") is None or (value < row["best"] if self.mode == "min" else value > row["best"])
            row["best"] = value if better else row["best"]
        self._refresh(trials, f"{trial.trial_id} epoch {row['epoch']}: {self.metric} {_fmt(value)}")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        out_dir = Path(result.get("trial_out_dir") or Path(self.folder) / MODELS / trial.trial_id)
        config = self._config(trial)[1]
        # Only the scheduler's decision is "stopped early": a trial that reached train.max_steps ran its budget.
        spent = config is not None and budget_spent(config.train, result.get(M.EPOCH, 0), result.get(M.STEP, 0))
        status = "FINISHED" if spent else "STOPPED"
        blimp = json.loads((out_dir / "blimp.json").read_text()) if (out_dir / "blimp.json").is_file() else None
        final = out_dir / "final"
        if final.is_dir() and config is not None:  # a Hugging Face model card next to the weights, before MLflow copies the folder
            teacher_runs = [r for r in self.lineage.get(R.TEACHER_RUN_IDS, "").split(",") if r]
            own = self.context.teacher_runs_of(self._config(trial)[2]) if self.context is not None else None
            teacher_runs = list(own) if own else teacher_runs
            write_model_card(final, config, M.numeric_metrics(result), sweep=self.name, trial_id=trial.trial_id, role=self.role,
                             run_id=self.tracker.run_id(trial.trial_id), tracking_uri=self.tracking_uri,
                             teacher_runs=teacher_runs)
        stop = read_stops(self.folder).get(trial.trial_id) if status == "STOPPED" else None
        scheduler = self.spec.search.scheduler if self.spec is not None else "the scheduler"
        why = stop_sentence(stop, scheduler) if status == "STOPPED" else None
        self.tracker.trial_finished(trial.trial_id, status, final_metrics=M.numeric_metrics(result), blimp=blimp,
                                    model_dir=str(final) if final.is_dir() else None, stopped_by=why)
        self._row(trial).update(state="done" if status == "FINISHED" else "stopped",
                                note=stop_note(stop, scheduler) if status == "STOPPED" else "")
        self._refresh(trials, f"{trial.trial_id} {'finished' if status == 'FINISHED' else why}")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        reason = _error_file_line(trial) or _exception_line(trial) or "the trial raised an error"
        self.tracker.trial_finished(trial.trial_id, "FAILED", error=reason)
        self._row(trial).update(state="error", error=reason)
        self._refresh(trials, f"{trial.trial_id} errored: {reason}")

    def on_experiment_end(self, trials, **info) -> None:
        self._trials = trials
        self.interrupted = any(t.status in UNFINISHED for t in trials) or len(trials) < self.total

    def counts(self) -> dict[str, int]:
        states = [t.status for t in getattr(self, "_trials", [])]
        done, errors = states.count("TERMINATED"), states.count("ERROR")
        return {"trials": self.total, "finished": done, "errored": errors, "unfinished": self.total - done - errors}

    def finish(self, interrupted: bool) -> dict | None:
        """Close the live view and the MLflow runs; return the best trial."""
        self._stop_view()
        best = self._best()
        if interrupted:
            self.tracker.interrupted()
        else:
            self.tracker.sweep_finished(best["trial_id"] if best else None)
        return best

    def _best(self) -> dict | None:
        trials = [t for t in getattr(self, "_trials", []) if isinstance((t.last_result or {}).get(self.metric), (int, float))]
        trials = [t for t in trials if math.isfinite(t.last_result[self.metric]) and t.status == "TERMINATED"]
        if not trials:
            return None
        best = (min if self.mode == "min" else max)(trials, key=lambda t: t.last_result[self.metric])
        out_dir = Path(best.last_result.get("trial_out_dir") or Path(self.folder) / MODELS / best.trial_id)
        params, config, _, _ = self._config(best)
        sampled = self.spec.distributions() if self.spec is not None else params
        return {"trial_id": best.trial_id, "config": config.model_dump() if config else {}, "params": {k: v for k, v in params.items() if k in sampled},
                "metrics": M.numeric_metrics(best.last_result), "model_dir": str(out_dir / "final")}

    # ------------------------------------------------------------------ display
    def _row(self, trial) -> dict:
        if trial.trial_id not in self.rows:
            params, _, repeat, point = self._config(trial)
            sampled = self.spec.distributions() if self.spec else {}
            self.rows[trial.trial_id] = {"state": _STATES.get(trial.status, trial.status.lower()), "epoch": 0, "current": None,
                                         "best": None, "point": f"{point} #{repeat}" if point else None,
                                         "params": {k: v for k, v in params.items() if k in sampled}, "note": ""}
        return self.rows[trial.trial_id]

    def _finished(self) -> int:
        return sum(r["state"] in ("done", "stopped", "error") for r in self.rows.values())

    def _table(self, width: int | None = None):
        """The live table, fitted to `width` (the terminal's): what does not fit is named under it."""
        from rich.console import Group
        from rich.text import Text

        from babysweep.core.fit_table import Column, fit_table, legend, number, short_headers

        elapsed = time.time() - self._started
        done_epochs = sum(r.get("epoch", 0) or 0 for r in self.rows.values())
        finished = self._finished()
        remaining_epochs = max(self.total * self.max_epochs - done_epochs, 0)
        eta = ""
        if done_epochs and finished < self.total:
            eta = f", ETA at most {_duration(elapsed / done_epochs * remaining_epochs)}"
            if self.spec is not None and self.spec.search.scheduler != "none":
                eta += f" ({self.spec.search.scheduler} stops some trials sooner)"
        keys = list(dict.fromkeys(k for r in self.rows.values() for k in r["params"]))
        names = short_headers([self.metric, *keys], taken=("trial", "state", "epoch", "best", "point", "note"))
        points = any(r.get("point") for r in self.rows.values())
        columns = [Column("trial", "trial"), Column("state", "state"), Column("epoch", "epoch", justify="right"),
                   *([Column("point", "point")] if points else []),
                   Column(self.metric, names[self.metric], justify="right"), Column("best", "best", justify="right"),
                   *(Column(k, names[k], priority=i + 1, justify="right") for i, k in enumerate(keys)),
                   Column("note", "note")]
        rows, errors = [], []
        for trial_id, row in sorted(self.rows.items()):
            note = row.get("note") or ""
            if row["state"] == "error":
                errors.append(f"{trial_id}: {row.get('error', '')}")
                note = "see below"
            rows.append([trial_id, row["state"], f"{row.get('epoch', 0)}/{self.max_epochs}",
                         *([row.get("point") or "-"] if points else []), number(row.get("current")), number(row.get("best")),
                         *(cell(row["params"].get(k)) for k in keys), note])
        title = f"sweep {self.name}: {finished}/{self.total} trials done, {_duration(elapsed)} elapsed{eta}"
        table, shown, left_out = fit_table(title, columns, rows, width or self._console.width)
        lines = [table]
        text = legend(shown, {self.metric: " (the sweep's metric)"})
        if text:
            lines.append(Text(text, style="dim"))
        if left_out:
            lines.append(Text("not shown here: " + ", ".join(c.key for c in left_out)
                              + f" (`babysweep status {self.name} TRIAL` shows every value)", style="dim"))
        lines += [Text(f"error in {line}", style="red") for line in errors]
        return Group(*lines)

    def _start_view(self) -> None:
        if self.live and self._console.is_terminal and self._live is None:
            self._live = Live(self._table(), console=self._console, refresh_per_second=2, transient=False)
            self._live.start()

    def _stop_view(self) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.stop()
            self._live = None
        elif self.live:
            self._console.print(self._table())

    def _refresh(self, trials, line: str = "") -> None:
        for trial in trials:  # trials restored from an earlier run have no events of their own
            if trial.trial_id not in self.rows:
                row = self._row(trial)
                result = trial.last_result or {}
                row.update(epoch=result.get(M.EPOCH, 0), current=result.get(self.metric), best=result.get(self.metric))
                stop = read_stops(self.folder).get(trial.trial_id) if trial.status == "TERMINATED" else None
                if stop:
                    row.update(state="stopped", note=stop_note(stop))
        if self._live is not None:
            self._live.update(self._table())
        elif self.live and line:  # not a terminal (CI, a log file): one plain line per event
            self._console.print(f"[{self.name} {self._finished()}/{self.total} done] {line}", highlight=False, markup=False, soft_wrap=True)


# Ray's trial states as the live table shows them (a restored trial's state before its first event).
_STATES = {"TERMINATED": "done", "ERROR": "error", "RUNNING": "running", "PENDING": "pending", "PAUSED": "paused"}


def _error_file_line(trial) -> str | None:
    """The last line of the trial's error.txt in its storage folder."""
    try:
        return error_line(Path(trial.storage.trial_fs_path) / "error.txt")
    except Exception:
        return None


def _exception_line(trial) -> str | None:
    """The exception's own message (its last line), from the trial object on the driver."""
    try:  # on the driver, Ray has just written error.txt to the trial's staging folder
        text = open(trial.error_file).read()
    except Exception:
        try:
            text = str(trial.get_error() or "")
        except Exception:
            return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
