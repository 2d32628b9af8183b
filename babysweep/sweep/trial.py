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
from babysweep.core.paths import TEACHERS_FILE
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

    @classmethod
    def of(cls, spec: Spec, folder: Path) -> "TrialContext":
        """The context of the sweep in `folder` (its teachers.json, when it is a student sweep)."""
        saved = Path(folder) / TEACHERS_FILE
        teachers = tuple(r["model_dir"] for r in json.loads(saved.read_text())) if saved.is_file() else None
        return cls(teachers, str(Path(folder).parent / ".cache"), spec.resources.cpu)


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
    teachers = list(context.teachers) if context.teachers is not None else None
    config = RunConfig.of(spec.materialize(params, teachers=teachers))
    config.data.cache_dir = config.data.cache_dir or context.cache_dir
    config.train.seed += repeat
    config.train.threads = config.train.threads or max(1, int(context.cpu))
    return Trial(params, config, repeat, point)
