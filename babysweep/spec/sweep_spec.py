"""A loaded spec (`Spec`): its fixed values and distributions, how it materialises a config, how two specs differ,
its grid points and its description for `validate`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from pydantic import ValidationError
from babysweep.core.config import flatten, resolve, unflatten
from babysweep.core.errors import UserError
from babysweep.spec.space import (CATEGORICAL, Distribution, assign_values, holds, ordered_leaves)
from babysweep.spec.space import OptunaSpace as OptunaSpace  # sweeps saved before space.py pickled babysweep.spec.load.OptunaSpace
from babysweep.spec.messages import _first_error
from babysweep.spec.schema import FromSweep, LEAVES, ResourcesConfig, SearchConfig, TrackingConfig

RUNTIME_SEARCH_KEYS = ("concurrent", "max_failures", "reuse_workers")  # may change when a sweep resumes


# ------------------------------------------------------------------ the spec
@dataclass
class Spec:
    name: str
    role: str  # teacher | student | baseline
    path: Path  # as the user gave it (used in messages)
    text: str  # the YAML source (+ the overrides comment), for the sweep folder's copy
    search: SearchConfig
    resources: ResourcesConfig
    tracking: TrackingConfig
    space: dict  # nested: fixed values and Distribution objects, only what the spec sets
    teachers_from_sweep: FromSweep | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def distributions(self) -> dict[str, Distribution]:
        return {n: v for n, v in flatten(self.space).items() if isinstance(v, Distribution) and not v.is_constant}

    def is_fixed(self) -> bool:
        return not self.distributions()

    def fingerprint(self) -> str:
        return hashlib.sha256(_dumps(_canonical(self)).encode()).hexdigest()[:16]

    def materialize(self, params: dict[str, Any], teachers: list[str] | None = None) -> dict:
        """A complete training config: fixed values, active conditional values and params (dotted
        names; a param also overrides a fixed leaf or sets an unset config key). Params of inactive
        conditional leaves are dropped; keys that are not config leaves raise ValueError."""
        unknown = [k for k in params if k not in LEAVES]
        if unknown:
            raise ValueError(f"not config keys: {', '.join(unknown)}")
        order = ordered_leaves(self.space)

        def pick(name: str, dist: Distribution) -> Any:
            raise ValueError(f"{name} is active but has no sampled value in params")

        values = assign_values(order, pick, fixed=params)
        spec_leaves = {name for name, _ in order}
        values.update({k: v for k, v in params.items() if k not in spec_leaves})
        if teachers is not None:
            values["distill.teachers"] = [str(Path(t).expanduser().resolve()) for t in teachers]
        elif self.teachers_from_sweep is not None:
            raise UserError(f"{self.path}: distill.teachers comes from sweep '{self.teachers_from_sweep.sweep}', "
                            "so its teacher folders must be given.")
        try:
            return resolve(unflatten(values))
        except ValidationError as exc:
            where, msg = _first_error(exc)
            shown = {k: v for k, v in params.items() if k in self.distributions()}
            raise UserError(f"{self.path}: {where}: the config sampled with {shown} is invalid: {msg}.") from None


def _canonical(spec: Spec) -> dict[str, Any]:
    """Dotted key -> what decides which trials run (comments, resources, tracking left out)."""
    flat: dict[str, Any] = {"role": spec.role}
    for name, leaf in flatten(spec.space).items():
        flat[name] = leaf.canonical() if isinstance(leaf, Distribution) else leaf
    if spec.teachers_from_sweep is not None:
        flat["distill.teachers"] = {"from_sweep": spec.teachers_from_sweep.model_dump()}
    for key, value in spec.search.model_dump().items():
        if key not in RUNTIME_SEARCH_KEYS:
            flat[f"search.{key}"] = value
    return flat


def _floats(x: Any) -> Any:
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, (int, float)):
        return float(x)  # 2 and 2.0 are the same setting
    if isinstance(x, dict):
        return {k: _floats(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_floats(v) for v in x]
    return x


def _dumps(x: Any) -> str:
    return json.dumps(_floats(x), sort_keys=True, default=str)


def grid_points(spec: Spec) -> list[dict[str, Any]]:
    """Every combination of choice/grid candidates, conditions respected: [{dotted name: value}]."""
    points: list[dict[str, Any]] = [{}]
    for name, leaf in ordered_leaves(spec.space):
        grown = []
        for point in points:
            if not isinstance(leaf, Distribution):
                grown.append({**point, name: leaf})
            elif not holds(leaf.when, point):
                grown.append(point)
            elif leaf.is_constant:
                grown.append({**point, name: leaf.args[0]})
            elif leaf.kind in CATEGORICAL:
                grown.extend({**point, name: copy.deepcopy(c)} for c in leaf.args)
            else:
                raise UserError(f"{spec.path}: {name}: a grid takes only choice or grid values, got {leaf.kind}.")
        points = grown
    sampled = spec.distributions()
    return [{k: v for k, v in p.items() if k in sampled} for p in points]


def config_count(spec: Spec) -> tuple[int, str]:
    """How many configs the sweep runs before repeats, and what they are: samples, grid points or points."""
    search = spec.search
    if search.algorithm == "grid":
        return len(grid_points(spec)), "grid points"
    if search.algorithm == "points":
        return len(search.points), "points"
    return search.samples, "samples"


def describe(spec: Spec):
    """The resolved search space as a rich Table (for `babysweep validate`)."""
    from rich.table import Table

    s = spec.search
    count, kind = config_count(spec)
    table = Table(title=f"{spec.name} ({spec.role}): {s.algorithm}, {count} {kind} x {s.repeats} repeats, "
                        f"{s.mode} {s.metric}, scheduler {s.scheduler}")
    for column in ("key", "value / distribution", "when"):
        table.add_column(column)
    for name, leaf in ordered_leaves(spec.space):
        when = " and ".join(f"{k} in {list(v)}" for k, v in leaf.when.items()) if isinstance(leaf, Distribution) else ""
        table.add_row(name, str(leaf) if isinstance(leaf, Distribution) else repr(leaf), when)
    if spec.teachers_from_sweep is not None:
        t = spec.teachers_from_sweep
        each = " of each model.arch" if t.per_arch else ""
        table.add_row("distill.teachers", f"top {t.top}{each} of sweep {t.sweep} by {t.metric or 'its metric'}", "")
    return table


