"""One trial's config, computed by one function for the Ray worker and for the driver alike.

    context = TrialContext.of(spec, sweep_folder)       # what the sweep adds to the spec: teachers, cache, CPUs
    trial = trial_config(spec, ray_config, context)     # -> Trial(params, config, repeat, point)
    train(trial.config, ...)                            # the worker runs exactly this config
    tracker.trial_started(..., config=trial.config.model_dump())   # and MLflow's config.json records the same config

No Ray here: Ray's trial config is a plain dict, and `babysweep status` reads it from Ray's saved
experiment state without starting (or importing) Ray.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babysweep.core.config import RunConfig
from babysweep.core.errors import UserError
from babysweep.core.paths import LAYOUT_FILE, MODELS, SPEC_FILE, TEACHERS_FILE
from babysweep.spec.sweep_spec import Spec

GRID_KEY = "grid_point"  # algorithm grid: the trial's grid point
REPEAT_KEY = "__trial_index__"  # set by Ray's Repeater (or our grid over seeds): which seed of a config
POINT_KEY = "point"  # algorithm points: the name of the trial's point


@dataclass(frozen=True)
class TrialContext:
    """What a sweep adds to its spec's values: the same for every trial of the sweep."""

    teachers: tuple[str, ...] | None  # teacher model folders of a student sweep
    cache_dir: str  # the token cache shared by the sweep's trials unless data.cache_dir is set
    cpu: float  # the trial's CPU allocation: its torch threads unless train.threads is set
    # Student finalists: the teachers of each repeat (index = repeat), retrained with that repeat's seed;
    # rows of teachers.json with a "repeat" (finalist_teachers.py). None: every trial has `teachers`.
    teachers_by_repeat: tuple[tuple[str, ...], ...] | None = None
    teacher_runs_by_repeat: tuple[tuple[str, ...], ...] | None = None  # their MLflow run ids
    # A sweep started before data.chunk_bos existed (core/paths.LAYOUT_FILE): every trial keeps the old chunks.
    old_chunks: bool = False

    @classmethod
    def of(cls, spec: Spec, folder: Path) -> "TrialContext":
        """The context of the sweep in `folder` (its teachers.json, when it is a student sweep)."""
        saved = Path(folder) / TEACHERS_FILE
        rows = json.loads(saved.read_text()) if saved.is_file() else None
        cache, cpu = str(Path(folder).parent / ".cache"), spec.resources.cpu
        old = made_before_chunk_bos(Path(folder))
        if old:
            _check_no_new_chunks(Path(folder))
        if rows and all("repeat" in r for r in rows):
            repeats = sorted({int(r["repeat"]) for r in rows})
            by = [[r for r in rows if int(r["repeat"]) == k] for k in range(max(repeats) + 1)]
            dirs = tuple(tuple(r["model_dir"] for r in group) for group in by)
            runs = tuple(tuple(r["run_id"] for r in group) for group in by)
            return cls(dirs[0], cache, cpu, dirs, runs, old)
        return cls(tuple(r["model_dir"] for r in rows) if rows is not None else None, cache, cpu, old_chunks=old)

    def teachers_of(self, repeat: int) -> tuple[str, ...] | None:
        if self.teachers_by_repeat is not None and repeat < len(self.teachers_by_repeat) and self.teachers_by_repeat[repeat]:
            return self.teachers_by_repeat[repeat]
        return self.teachers

    def teacher_runs_of(self, repeat: int) -> tuple[str, ...] | None:
        """The run ids of the repeat's own teachers, or None when every trial shares the sweep's."""
        if self.teacher_runs_by_repeat is not None and repeat < len(self.teacher_runs_by_repeat):
            return self.teacher_runs_by_repeat[repeat] or None
        return None


def made_before_chunk_bos(folder: Path) -> bool:
    """A sweep folder made before data.chunk_bos existed: its spec saved, no LAYOUT_FILE."""
    return (folder / SPEC_FILE).is_file() and not (folder / LAYOUT_FILE).is_file()


def _check_no_new_chunks(folder: Path) -> None:
    """A folder without LAYOUT_FILE whose trials trained <s>-first chunks lost the file: refuse, rather than
    give its next trials the older chunks."""
    for record in sorted((folder / MODELS).glob("*/run.json")):
        try:
            new = json.loads(record.read_text())["config"]["data"]["chunk_bos"] is True
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable or from before the key: says nothing about the layout
        if new:
            raise UserError(f"{folder / LAYOUT_FILE} is missing, yet {record} trained <s>-first chunks; restore it "
                            '(its content: {"chunk_bos": true}) to continue the sweep, or start over with --fresh.')


@dataclass
class Trial:
    params: dict[str, Any]  # the trial's values as dotted config keys (what the search chose)
    config: RunConfig  # the complete config the trainer runs with
    repeat: int  # which seed of a repeated config (0 for the first)
    point: str | None  # algorithm points: the point's name


def trial_params(spec: Spec, ray_config: dict) -> tuple[dict, int, str | None]:
    """(params as dotted config keys, repeat index, point name) from a trial's Ray config."""
    params = dict(ray_config)
    repeat = int(params.pop(REPEAT_KEY, 0) or 0)
    if GRID_KEY in params:
        params.update(params.pop(GRID_KEY) or {})
    point = params.pop(POINT_KEY, None)
    if point is not None:
        params.update(spec.search.points[point])
    return params, repeat, point


def trial_config(spec: Spec, ray_config: dict, context: TrialContext) -> Trial:
    """The trial's complete config: the spec's values and the trial's params, then the seed of its
    repeat, the sweep's token cache and the trial's CPU threads. Raises UserError for an invalid config."""
    params, repeat, point = trial_params(spec, ray_config)
    own = context.teachers_of(repeat)
    teachers = list(own) if own is not None else None
    config = RunConfig.of(spec.materialize(params, teachers=teachers))
    config.data.cache_dir = config.data.cache_dir or context.cache_dir
    config.train.seed += repeat
    config.train.threads = config.train.threads or max(1, int(context.cpu))
    if context.old_chunks:
        config.data.chunk_bos = False
    return Trial(params, config, repeat, point)
