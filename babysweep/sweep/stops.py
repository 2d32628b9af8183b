"""Why the scheduler stopped a trial early, as the sweep's folder records it (no Ray imported here).

    record_stop(folder, "a1b2_00003", scheduler="asha", rung=1, metric="tune/loss", mode="min",
                value=3.41, cutoff=3.38, compared=2, among="earlier waves")
    stops = read_stops(folder)            # {trial id: that record}
    stop_sentence(stops["a1b2_00003"])   # "stopped by asha at rung 1 (epoch 1): tune/loss 3.41, worse than ..."
    stop_note(stops["a1b2_00003"])       # "asha@1" (a table cell)

The scheduler decides in the driver and writes `stops.json` in the sweep folder at once, so that
`babysweep status`, the live table and the MLflow run say which scheduler stopped the trial (named
as the spec's `search.scheduler` names it), at which rung, and the value it compared with.
"""

from __future__ import annotations

import json
from pathlib import Path

from babysweep.core.atomic import write_text_atomic

STOPS_FILE = "stops.json"


def read_stops(folder: str | Path) -> dict[str, dict]:
    try:
        found = json.loads((Path(folder) / STOPS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def record_stop(folder: str | Path, trial_id: str, *, scheduler: str, rung: float, metric: str, mode: str,
                value: float, cutoff: float, compared: int, among: str) -> dict:
    """Add one decision to the folder's stops.json (the driver is its only writer)."""
    entry = {"scheduler": scheduler, "rung": _plain(rung), "metric": metric, "mode": mode, "value": float(value),
             "cutoff": float(cutoff), "compared": int(compared), "among": among}
    stops = read_stops(folder)
    stops[trial_id] = entry
    write_text_atomic(Path(folder) / STOPS_FILE, json.dumps(stops, indent=1, sort_keys=True), "the scheduler's stop record")
    return entry


def _plain(rung: float):
    return int(rung) if float(rung).is_integer() else float(rung)


def stop_sentence(stop: dict | None, scheduler: str = "the scheduler") -> str:
    """One sentence for a person; without a record (a sweep from an older babysweep), the scheduler's name only."""
    if not stop:
        return f"stopped early by {scheduler}"
    worse = "above" if stop.get("mode") == "min" else "below"
    return (f"stopped early by {stop['scheduler']} at its rung of epoch {stop['rung']}: {stop['metric']} "
            f"{stop['value']:.4g}, {worse} the cutoff {stop['cutoff']:.4g} set by {stop['compared']} "
            f"trial{'s' if stop['compared'] != 1 else ''} of {stop['among']}")


def stop_note(stop: dict | None, scheduler: str = "sched") -> str:
    """A short table cell: "<scheduler>@<rung>"."""
    if not stop:
        return f"{scheduler}"
    return f"{stop['scheduler']}@{stop['rung']}"
