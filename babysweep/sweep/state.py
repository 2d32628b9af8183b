"""A sweep's trials as its folder records them, read without Ray (`babysweep status` must start fast).

    rows = sweep_status("teachers")        # [{"trial_id", "state", "epoch", "planned", "params", ...}]
    with driver_running(folder): ...       # run_sweep marks the folder while its driver lives

Ray saves its experiment state as JSON (experiment_state-*.json: each trial's config, status and
last result). Ray writes a RUNNING trial as PENDING there, so a trial's own folder
(models/<trial>/metrics.jsonl, checkpoints/) and the driver's mark (driver.json) tell running,
interrupted and not-yet-started trials apart. States:

    FINISHED     ran its planned budget (all epochs, or train.max_steps)
    STOPPED      stopped early by the scheduler (stops.json says which, at which rung, against what)
    ERROR        raised; `error` holds the exception's last line
    RUNNING      the driver is alive and the trial has started
    INTERRUPTED  started, but the driver is gone: a rerun continues it from `checkpoint`
    PENDING      not started yet
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
from pathlib import Path
from typing import Iterator

from babysweep.core import metrics as M
from babysweep.train.checkpoint import checkpoints
from babysweep.core.config import budget_spent
from babysweep.core.errors import UserError
from babysweep.core.paths import MODELS, RUN_MAP_FILE, SPEC_FILE, sweep_folder
from babysweep.spec.sweep_spec import Spec
from babysweep.spec.load import load_spec
from babysweep.sweep.trial import TrialContext, trial_config

DRIVER_FILE = "driver.json"


@contextlib.contextmanager
def driver_running(folder: Path) -> Iterator[None]:
    """Mark the sweep folder as driven by this process while the block runs."""
    mark = Path(folder) / DRIVER_FILE
    mark.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    try:
        yield
    finally:
        mark.unlink(missing_ok=True)


def saved_results(folder: Path) -> list[str]:
    """What a sweep folder holds that a restart of Ray's part would lose: each trial (by id) that wrote an
    epoch's metrics, a checkpoint, a final model or BLiMP scores under models/, or whose MLflow run (by the run
    map, mlflow_runs.json) logged a metric or finished; a run map that cannot be read counts too. [] when a
    killed driver left only what trials write as they start (run.json, placement, empty metrics.jsonl)."""
    folder = Path(folder)
    found: set[str] = set()
    models = folder / MODELS
    for trial in sorted(models.iterdir()) if models.is_dir() else []:
        if not trial.is_dir():
            found.add(trial.name)
            continue
        metrics = trial / "metrics.jsonl"
        try:
            wrote_epoch = metrics.is_file() and metrics.stat().st_size > 0 and bool(metrics.read_bytes().strip())
        except OSError:
            wrote_epoch = True  # unreadable: not ours to delete
        saved = any((trial / name).exists() for name in ("final", "blimp.json"))
        ckpt = trial / "checkpoints"
        if wrote_epoch or saved or (ckpt.is_dir() and any(ckpt.iterdir())):
            found.add(trial.name)
    run_map = folder / RUN_MAP_FILE
    if run_map.exists():
        try:
            entries = json.loads(run_map.read_bytes()).get("trials", {})
            for trial_id, entry in entries.items():
                if (not isinstance(entry, dict) or entry.get("last_step") is not None or entry.get("model_dir")
                        or entry.get("status") not in ("RUNNING", "KILLED", "FAILED")):  # FAILED before a metric: reruns
                    found.add(str(trial_id))
        except (OSError, ValueError, AttributeError, TypeError):
            found.add(RUN_MAP_FILE)
    return sorted(found)


def driver_alive(folder: Path) -> bool:
    """A driver runs this sweep now. A driver on another host is believed while its mark exists."""
    try:
        mark = json.loads((Path(folder) / DRIVER_FILE).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(mark, dict):  # a damaged mark: no driver can be named by it
        return False
    if mark.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(mark["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    return True


def error_line(path: Path) -> str | None:
    """The last line of an error.txt (the exception), or None."""
    try:
        lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1].strip() if lines else None


def _experiment_state(folder: Path) -> Path | None:
    # The newest run's file, by the timestamp in its name (as Ray picks it): a restored run rewrites the
    # old file too, so modification times do not tell them apart.
    found = sorted(folder.glob("experiment_state-*.json"))
    return found[-1] if found else None


def _trial_data(state_file: Path) -> list[tuple[dict, dict]]:
    """(trial info, runtime) of each trial in Ray's experiment state; a damaged file is a UserError."""
    try:
        pairs = [(json.loads(trial), json.loads(runtime)) for trial, runtime in json.loads(state_file.read_text())["trial_data"]]
        for info, runtime in pairs:
            if not (isinstance(info, dict) and isinstance(runtime, dict) and isinstance(info["trial_id"], str)):
                raise ValueError("a trial is not a mapping with a trial_id")
        return pairs
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{state_file}: the sweep's saved state is damaged ({type(exc).__name__}: {str(exc)[:80]}); "
                        "restore the file, or start the sweep over with `babysweep run SPEC --fresh`.") from None


def _epochs_done(out_dir: Path) -> list[dict]:
    """The trial's own per-epoch metrics (newer than Ray's saved last result while it runs)."""
    try:
        rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []
    return [row for row in rows if isinstance(row, dict)]


def _state(ray_status: str, out_dir: Path, budget_done: bool, alive: bool) -> str:
    if ray_status == "ERROR":
        return "ERROR"
    if ray_status == "TERMINATED":
        return "FINISHED" if budget_done else "STOPPED"
    if not out_dir.is_dir():
        return "PENDING"
    return "RUNNING" if alive else "INTERRUPTED"


def sweep_status(name: str, storage: str | Path | None = None, spec: Spec | None = None) -> list[dict]:
    """The trials of a sweep, oldest first: trial_id, state, epoch, planned (epochs), params (what the
    search chose), point, repeat, metrics (the last numbers with a "/" in their name), error,
    checkpoint (the newest, for unfinished trials), metrics_raw (Ray's last result)."""
    folder = sweep_folder(name, storage)
    state_file = _experiment_state(folder) if folder.is_dir() else None
    if state_file is None:
        raise UserError(f"{folder}: no sweep named '{name}' (run `babysweep run SPEC` first).")
    spec = spec or load_spec(folder / SPEC_FILE, check_paths=False)
    context = TrialContext.of(spec, folder)
    alive = driver_alive(folder)
    rows = []
    for info, runtime in _trial_data(state_file):
        result = runtime.get("last_result") or {}
        if not isinstance(result, dict):
            result = {}
        out_dir = Path(result.get("trial_out_dir") or folder / MODELS / info["trial_id"])
        try:
            trial = trial_config(spec, info.get("config") or {}, context)
            params, config, point, repeat = trial.params, trial.config, trial.point, trial.repeat
        except (UserError, ValueError, KeyError):  # an invalid config: the trial errored and says why
            params, config, point, repeat = dict(info.get("config") or {}), None, None, 0
        history = _epochs_done(out_dir)
        last = history[-1] if history and history[-1].get(M.EPOCH, 0) >= result.get(M.EPOCH, 0) else result
        epoch, step = int(last.get(M.EPOCH, 0)), int(last.get(M.STEP, 0))
        budget_done = config is not None and budget_spent(config.train, epoch, step)
        state = _state(info.get("status", "PENDING"), out_dir, budget_done, alive)
        saved = checkpoints(out_dir / "checkpoints") if state in ("RUNNING", "INTERRUPTED") else []
        rows.append({"trial_id": info["trial_id"], "state": state, "epoch": epoch,
                     "planned": config.train.epochs if config else None, "params": params, "point": point,
                     "repeat": repeat, "metrics": M.numeric_metrics(last), "checkpoint": saved[-1].name if saved else None,
                     "error": error_line(folder / info.get("relative_logdir", "") / "error.txt") if state == "ERROR" else None,
                     "metrics_raw": result})
    return rows


def best_row(rows: list[dict], metric: str, mode: str) -> dict | None:
    """The best trial that ran its planned budget."""
    scored = [r for r in rows if r["state"] == "FINISHED" and math.isfinite(r["metrics"].get(metric, math.nan))]
    if not scored:
        return None
    return (min if mode == "min" else max)(scored, key=lambda r: r["metrics"][metric])


def varying_params(rows: list[dict]) -> list[str]:
    """The dotted keys whose value differs between trials (what tells one trial's config from another's)."""
    keys = sorted({k for r in rows for k in r["params"]})
    return [k for k in keys if len({json.dumps(r["params"].get(k), sort_keys=True, default=str) for r in rows}) > 1]


def resume_summary(rows: list[dict], total: int) -> list[str]:
    """What a rerun of an interrupted sweep continues: lines for the user, before anything runs."""
    by_state: dict[str, list[dict]] = {}
    for row in rows:
        by_state.setdefault(row["state"], []).append(row)
    done = len(by_state.get("FINISHED", [])) + len(by_state.get("STOPPED", []))
    lines = [f"continuing: {done} of {total} trials done ({len(by_state.get('STOPPED', []))} of them stopped early), "
             f"{len(by_state.get('ERROR', []))} errored, {total - len(rows)} not created yet"]
    for row in by_state.get("INTERRUPTED", []) + by_state.get("RUNNING", []):
        where = f"from {row['checkpoint']} (epoch {row['epoch']})" if row["checkpoint"] else "from its start (no checkpoint yet)"
        lines.append(f"  {row['trial_id']} continues {where}")
    pending = by_state.get("PENDING", [])
    if pending:
        lines.append(f"  {len(pending)} created but not started: " + ", ".join(r["trial_id"] for r in pending))
    return lines
