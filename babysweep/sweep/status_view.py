"""`babysweep status`: a sweep's trials as a table that fits the terminal, one trial in full, and
where the disk space went. Reads the sweep's folder only (no Ray, MLflow or torch).

    for part in sweep_table(root, "teachers", width=80): console.print(part)
    for line in trial_lines(root, "teachers", "3e207fb6"): console.print(line)
    disk_lines(project_dir(), root)      # ["disk: sweeps 41 MB (teachers 30 MB, ...), ..."]
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rich.text import Text

from babysweep.core import metrics as M
from babysweep.core.errors import UserError
from babysweep.core.fit_table import Column, fit_tables, legend, number, short_headers
from babysweep.core.paths import SPEC_FILE

# Trial states as words that fit a cell (sweep_state's names in capitals).
STATE_WORDS = {"FINISHED": "done", "STOPPED": "stopped", "ERROR": "error", "RUNNING": "running",
               "INTERRUPTED": "interrupted", "PENDING": "pending"}
FIXED = ("trial", "state", "epoch", "point", "note")


def _load(root: Path, sweep_name: str):
    from babysweep.spec.load import load_spec
    from babysweep.sweep.state import sweep_status

    if not (root / sweep_name / SPEC_FILE).is_file():
        raise UserError(f"{root / sweep_name}: no sweep named '{sweep_name}' (run `babysweep run SPEC` first).")
    spec = load_spec(root / sweep_name / SPEC_FILE, check_paths=False)
    return spec, sweep_status(sweep_name, root, spec)


def cell(value) -> str:
    if isinstance(value, float):
        return number(value, 3)
    if isinstance(value, list):  # teacher folders: their trial ids say which
        return ",".join(Path(str(v)).parent.name if Path(str(v)).name == "final" else str(v) for v in value)
    return number(value)


def sweep_table(root: Path, sweep_name: str, width: int) -> list:
    """The renderables of one sweep: its table fitted to `width`, a legend, what was left out, errors."""
    from babysweep.spec.sweep_spec import config_count
    from babysweep.sweep.stops import read_stops, stop_note
    from babysweep.sweep.state import best_row, varying_params

    spec, rows = _load(root, sweep_name)
    search = spec.search
    stops = read_stops(root / sweep_name)
    best = best_row(rows, search.metric, search.mode)
    order = {k: i for i, k in enumerate(spec.distributions())}  # the spec's order: the sweep's author chose it
    varying = sorted(varying_params(rows), key=lambda k: (order.get(k, len(order)), k))
    metrics = list(dict.fromkeys([search.metric, M.EVAL_LOSS, M.BLIMP_OVERALL]))  # each metric once
    points = any(r["point"] for r in rows)
    total = config_count(spec)[0] * search.repeats
    names = short_headers([*metrics, *varying], taken=FIXED)
    # Left out first when the terminal is narrow: the later parameters, then BLiMP and the dev loss, then the first two.
    rank = {k: (i + 1 if i < 2 else i + 3) for i, k in enumerate(varying)}
    rank.update({m: (len(varying) and 3) + i for i, m in enumerate(metrics[1:])})
    columns = [Column("trial", "trial"), Column("state", "state"), Column("epoch", "epoch", justify="right"),
               *([Column("point", "point")] if points else []),
               *(Column(m, names[m], priority=rank.get(m, 0), justify="right") for m in metrics),
               *(Column(k, names[k], priority=rank[k], justify="right") for k in varying), Column("note", "note")]
    cells, errors, stopped = [], [], []
    for row in rows:
        note = ""
        if best is row:
            note = "best"
        elif row["state"] == "STOPPED":
            note = stop_note(stops.get(row["trial_id"]), search.scheduler)
            stopped.append(row["trial_id"])
        elif row["state"] == "ERROR":
            note = "see below"
            errors.append(f"error in {row['trial_id']}: {row['error'] or 'no error.txt'}")
        elif row["state"] == "INTERRUPTED":
            note = "rerun"
        epoch = f"{row['epoch']}/{row['planned']}" if row["planned"] else str(row["epoch"])
        cells.append([row["trial_id"], STATE_WORDS.get(row["state"], row["state"].lower()), epoch,
                      *([row["point"] or "-"] if points else []),
                      *(number(row["metrics"].get(m)) for m in metrics), *(cell(row["params"].get(k)) for k in varying), note])
    title = f"{sweep_name}: {len(rows)} of {total} trials, {search.mode} {search.metric}"
    tables, shown, left_out = fit_tables(title, columns, cells, width)
    out: list = list(tables)
    notes = {search.metric: " (the sweep's metric)"}
    text = legend(shown, notes)
    if stopped:
        text = (text + "; " if text else "") + f"{search.scheduler}@N = stopped early by {search.scheduler} at its rung of epoch N"
    if text:
        out.append(Text(text, style="dim"))
    if left_out:
        out.append(Text("not shown at this width: " + ", ".join(c.key for c in left_out), style="dim"))
    if rows:
        example = (best or rows[0])["trial_id"]
        out.append(Text(f"one trial in full: babysweep status {sweep_name} {example}", style="dim"))
    out += [Text(line, style="red") for line in errors]
    return out


def trial_lines(root: Path, sweep_name: str, trial_id: str) -> list[str]:
    """Everything `status` knows about one trial, one fact a line (a line may wrap, never be cut)."""
    from babysweep.core.paths import MODELS
    from babysweep.sweep.stops import read_stops, stop_sentence

    spec, rows = _load(root, sweep_name)
    found = [r for r in rows if r["trial_id"] == trial_id or r["trial_id"].startswith(trial_id)]
    if len(found) != 1:
        known = ", ".join(r["trial_id"] for r in rows) or "none"
        raise UserError(f"{root / sweep_name}: {'no' if not found else 'more than one'} trial '{trial_id}' "
                        f"in sweep '{sweep_name}' (its trials: {known}).")
    row = found[0]
    state = STATE_WORDS.get(row["state"], row["state"].lower())
    lines = [f"{sweep_name} {row['trial_id']}: {state}, epoch {row['epoch']}" + (f" of {row['planned']}" if row["planned"] else "")]
    if row["state"] == "STOPPED":
        lines.append("  " + stop_sentence(read_stops(root / sweep_name).get(row["trial_id"]), spec.search.scheduler))
    if row["error"]:
        lines.append(f"  error: {row['error']}")
    if row["checkpoint"]:
        lines.append(f"  continues from checkpoint {row['checkpoint']} on rerun")
    if row["point"]:
        lines.append(f"  point {row['point']} repeat {row['repeat']}")
    sampled = set(spec.distributions()) | set((spec.search.points or {}).get(row["point"], {}) if row["point"] else ())
    lines.append("  sampled:")
    lines += [f"    {k} = {cell(v) if not isinstance(v, float) else f'{v:.6g}'}" for k, v in row["params"].items()
              if k in sampled or not sampled]
    lines.append("  metrics (last reported):")
    lines += [f"    {k} = {v:.6g}" for k, v in sorted(row["metrics"].items())]
    model = root / sweep_name / MODELS / row["trial_id"] / "final"
    if model.is_dir():
        lines.append(f"  model: {model}")
    return lines


def _size(path: Path) -> int:
    """Bytes under a folder (files only; links not followed)."""
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total


def disk_lines(project: Path, root: Path) -> list[str]:
    """Where the space went: each sweep folder, the teacher cache, the token cache, MLflow's store, and what is free."""
    from babysweep.train import teacher_cache_files as files
    human = files.human
    sweeps = sorted(p for p in root.glob("*") if p.is_dir() and not p.name.startswith("."))
    sizes = {p.name: _size(p) for p in sweeps}
    cache = root / ".cache"
    teacher = _size(files.cache_root(cache)) if cache.is_dir() else 0
    token = (_size(cache) - teacher) if cache.is_dir() else 0
    mlruns = _size(project / "mlruns") if (project / "mlruns").is_dir() else 0
    parts = [f"sweeps {human(sum(sizes.values()))}"
             + (" (" + ", ".join(f"{k} {human(v)}" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])) + ")" if sizes else ""),
             f"teacher cache {human(teacher)}", f"token cache {human(token)}", f"mlruns {human(mlruns)}"]
    try:
        free = shutil.disk_usage(root if root.is_dir() else project).free
        tail = f"; {human(free)} free on that disk"
    except OSError:
        tail = ""
    return ["disk: " + ", ".join(parts) + tail]
