"""Sweep specs: one YAML file -> a validated search space over babysweep.config's TrainConfig.

    spec = load_spec("search_spaces/teachers.yaml", overrides={"train.epochs": 1})
    spec.distributions()                 # {"train.lr": Distribution(kind="loguniform", ...), ...}
    space = OptunaSpace(spec.space)      # babysweep.space: define-by-run space for Ray's OptunaSearch
    config = spec.materialize({"train.lr": 3e-4, ...})     # complete training config (plain dict)
    grid_points(spec)                    # [{"model.arch": "llama"}, ...] for search.algorithm: grid

A spec has the top-level keys name, role, search, resources, tracking, plus the TrainConfig
sections (data, model, train, distill, antlm, eval) with the same keys. Any leaf is a fixed value or
a mapping with one distribution key and an optional `when`:

    choice / grid: [a, b, ...]           uniform / loguniform: [low, high]
    normal / lognormal: [mu, sigma]      randint / lograndint: [low, high]   (both ends INCLUSIVE,
    quniform / qloguniform / qrandint: [low, high, q]                         unlike Ray's randint)
    qnormal / qlognormal: [mu, sigma, q] value: X   (a fixed value that has a `when`)
    when: {model.arch: llama}            the leaf exists only if every condition holds (a list = any
                                         of); otherwise it is left out and the schema default applies

Quantised values are multiples of q (ranged kinds stay inside [low, high]); integer kinds, and q kinds
on an integer field, give ints. Optuna has no normal distribution: normal kinds are sampled as a
quantile u in [1e-6, 1 - 1e-6] (trial.suggest_float) and mapped through the inverse normal CDF, so TPE
searches quantile space while the prior stays normal; the study stores u, the config gets the value.
The same clamp bounds Distribution.sample, so a normal leaf's reachable values are mu +- 4.75 sigma,
and both extremes must be valid values of the field. `grid` is a synonym of `choice` except that
search.algorithm: grid accepts only these two (grid_points enumerates them).

Every mistake raises UserError with one sentence naming the file, the key path and the YAML line.
Relative paths (data.train, data.dev, eval.blimp, distill.teachers, data.cache_dir) are made absolute
against the current directory: Ray changes the working directory of trials. `--set` overrides are
recorded in Spec.text as a trailing `# babysweep overrides: {json}` comment, which load_spec applies
again, so the copy kept in a sweep folder reproduces the spec that ran.

Path keys may name environment variables, `$BABYSWEEP_DATA/train_10M` or `${BABYSWEEP_BLIMP}`, so that
shipped specs need no editing; the values used are recorded in Spec.text as a trailing
`# babysweep environment: {json}` comment, which wins over the environment when the copy is loaded
again (a resumed sweep or its finalists read the data it ran on). An unset variable is an error where
paths are checked, and left as written (a warning of `validate`) where they are not.
"""

from __future__ import annotations

import copy
import difflib
import glob as globlib
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from babysweep import metrics as M
from babysweep.config import SECTIONS, TrainConfig, flatten, resolve, unflatten
from babysweep.errors import UserError
from babysweep.paths import NAME_PATTERN
from babysweep.schedule import parse_schedule
from babysweep.space import (CATEGORICAL, DEFAULTS, FLOAT_KINDS, INT_KINDS, KINDS, NORMALS, Q_GRID, RANGES, BadValue,
                             Distribution, WhenCycle, assign_values, holds, ordered_leaves)
from babysweep.space import OptunaSpace as OptunaSpace  # sweeps saved before space.py pickled babysweep.spec.OptunaSpace

RUNTIME_SEARCH_KEYS = ("concurrent", "max_failures")  # may change when a sweep resumes
OVERRIDES_MARK = "# babysweep overrides: "
ENVIRONMENT_MARK = "# babysweep environment: "
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")  # $NAME or ${NAME}
HEADER_KEYS = ("name", "role", "search", "resources", "tracking")


# ------------------------------------------------------------------ top-level settings
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchConfig(_Strict):
    algorithm: Literal["optuna", "random", "grid", "points"] = "optuna"
    # algorithm points: named configs, each {dotted key: value} over the spec's values (finalists, ablations)
    points: dict[str, dict[str, Any]] | None = None
    metric: str = M.EVAL_LOSS
    mode: Literal["min", "max"] = "min"
    samples: int = Field(8, ge=1)  # sampled configs (ignored by grid: every point runs)
    scheduler: Literal["asha", "none"] = "asha"  # asha stops weak trials early, by epoch
    concurrent: int = Field(2, ge=1)  # trials at once
    repeats: int = Field(1, ge=1)  # seeds per config (train.seed + 0..repeats-1)
    seed: int = 0  # the searcher's seed
    # optuna: random trials before TPE (Optuna's own default, 10, would leave an 8-sample sweep all random);
    # None = samples // 4, at least 2 and at most 10 (sampler.py). Other algorithms ignore it.
    startup_trials: int | None = Field(None, ge=1)
    # a choice key (e.g. model.arch) whose values take turns: each gets samples / len(values) trials, so
    # TPE cannot spend a whole sweep on the value it liked first; Optuna samples every other key
    stratify: str | None = None
    max_failures: int = Field(1, ge=0)  # retries of a failed trial
    grace_period: int = Field(1, ge=1)  # ASHA: epochs before a trial may be stopped
    reduction_factor: float = Field(2, gt=1)  # ASHA: keep 1/reduction_factor at each rung


class ResourcesConfig(_Strict):
    cpu: float = Field(1, gt=0)  # per trial; Ray's gpu-only requests would mean 0 CPUs
    gpu: float = Field(0, ge=0)  # fractional shares a GPU between trials


class TrackingConfig(_Strict):
    models: Literal["best", "all", "none"] = "best"  # which trained models MLflow keeps
    tags: dict[str, str] = Field(default_factory=dict)  # carried by every run of the sweep, e.g. finalist_of


class FromSweep(_Strict):
    sweep: str  # written `from_sweep:` in the spec
    top: int = Field(2, ge=1)  # BabyLlama distils from an ensemble of two teachers
    per_arch: bool = False  # top N of each model.arch (Baby Llama: the best GPT-2 and the best LLaMA)
    metric: str | None = None  # None = that sweep's own search.metric and mode
    mode: Literal["min", "max"] | None = None


# ------------------------------------------------------------------ the schema's leaves
@dataclass
class _Leaf:
    adapter: TypeAdapter
    number: str | None  # "int" / "float" when the field is numeric (None allowed), else None


def _numeric(annotation: Any) -> str | None:
    union = get_origin(annotation) in (Union, type(int | None))
    members = [a for a in get_args(annotation) if a is not type(None)] if union else [annotation]
    if members == [int]:
        return "int"
    if members == [float]:
        return "float"
    return None


def _schema(model: type[BaseModel], prefix: str = "") -> tuple[dict[str, _Leaf], dict[str, type[BaseModel]]]:
    leaves: dict[str, _Leaf] = {}
    sections: dict[str, type[BaseModel]] = {}
    for key, info in model.model_fields.items():
        name = prefix + key
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            sections[name] = info.annotation
            sub_leaves, sub_sections = _schema(info.annotation, name + ".")
            leaves.update(sub_leaves)
            sections.update(sub_sections)
        else:
            # A lone field with its constraints, without the model's cross-field validators.
            ann = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
            leaves[name] = _Leaf(TypeAdapter(ann), _numeric(info.annotation))
    return leaves, sections


LEAVES, SECTION_MODELS = _schema(TrainConfig)
PATH_SPECIALS = {"data.train": ("builtin",), "data.dev": ("builtin",), "eval.blimp": ("builtin", "none"),
                 "distill.teachers": (), "distill.teacher": (), "data.cache_dir": ()}  # teacher: one entry


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


def diff_specs(old_text: str, new_spec: Spec) -> list[str]:
    """Dotted keys whose search space or search settings differ between a saved spec's text and
    new_spec (search.concurrent and search.max_failures may change). Blank old text: nothing to compare."""
    if not old_text.strip():
        return []
    old = _load_text(old_text, Path(f"{new_spec.path} (saved copy)"), None, check_paths=False)
    a, b = _canonical(old), _canonical(new_spec)
    return sorted(k for k in a.keys() | b.keys() if _dumps(a.get(k, "<unset>")) != _dumps(b.get(k, "<unset>")))


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


# ------------------------------------------------------------------ overrides
def parse_override(text: str) -> tuple[str, Any]:
    """'train.epochs=1' -> ('train.epochs', 1); the value is parsed as YAML."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"--set {text}: expected key=value, e.g. --set train.epochs=1.")
    try:
        return key, yaml.safe_load(value)
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError):  # ValueError: a tag such as !!int 0b102
        raise UserError(f"--set {text}: the value {value!r} is not valid YAML.") from None


def _embedded(text: str, mark: str = OVERRIDES_MARK) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for line in text.splitlines():
        if line.startswith(mark):
            try:
                found.update(json.loads(line[len(mark):]))
            except (ValueError, TypeError):
                pass  # a hand-edited, broken comment is just a comment
    return found


def _with_marks(text: str, overrides: dict[str, Any], environment: dict[str, str]) -> str:
    kept = "".join(line for line in text.splitlines(keepends=True) if not line.startswith((OVERRIDES_MARK, ENVIRONMENT_MARK)))
    for mark, values in ((OVERRIDES_MARK, overrides), (ENVIRONMENT_MARK, environment)):
        if values:
            kept = kept.rstrip("\n") + "\n" + mark + json.dumps(values, default=str, sort_keys=True) + "\n"
    return kept


def _expand_variables(raw: dict, saved: dict[str, str]) -> dict[str, str]:
    """Replace $NAME / ${NAME} in raw's path keys, in place, from `saved` (the recorded values) or the
    environment; returns {name: value} of those replaced. Unset ones stay as written (_resolve_path)."""
    used: dict[str, str] = {}

    def sub(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        value = saved.get(name, os.environ.get(name))
        if value is None:
            return match.group(0)
        used[name] = value
        return value

    def expand(node: Any) -> Any:
        if isinstance(node, str):
            return _VARIABLE.sub(sub, node)
        if isinstance(node, list):
            return [expand(v) for v in node]
        if isinstance(node, dict):  # a distribution's candidates (and its `when`)
            return {k: expand(v) for k, v in node.items()}
        return node

    for key in PATH_SPECIALS:
        section, _, leaf = key.partition(".")
        node = raw.get(section)
        if isinstance(node, dict) and leaf in node:
            node[leaf] = expand(node[leaf])
    return used


# ------------------------------------------------------------------ loading
class _Ctx:
    """File name, YAML line of each key path and overridden keys: turns problems into sentences."""

    def __init__(self, label: str, lines: dict[str, int], overridden: set[str]):
        self.label, self.lines, self.overridden = label, lines, overridden

    def where(self, path: str) -> str:
        if any(path == k or path.startswith(k + ".") for k in self.overridden):
            return " (set by override)"
        parts = path.split(".")
        for n in range(len(parts), 0, -1):
            line = self.lines.get(".".join(parts[:n]))
            if line:
                return f" (line {line})"
        return ""

    def fail(self, path: str, msg: str) -> UserError:
        msg = msg if msg.endswith((".", "?")) else msg + "."
        return UserError(f"{self.label}: {path}{self.where(path)}: {msg}" if path else f"{self.label}: {msg}")


def _line_map(text: str, label: str) -> dict[str, int]:
    """Key path -> 1-based line of the key, from the YAML node tree; duplicate keys are errors."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        seen = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            path = prefix + key_node.value
            line = key_node.start_mark.line + 1
            if key_node.value in seen:
                raise UserError(f"{label}: {path} (line {line}): duplicate key.")
            seen.add(key_node.value)
            lines[path] = line
            walk(value_node, path + ".")

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, "")
    return lines


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1)
    return f"; did you mean {close[0]}?" if close else f"; expected one of {', '.join(options)}"


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    msg = err["msg"].removeprefix("Value error, ")
    return ".".join(str(p) for p in err["loc"]), msg[:1].lower() + msg[1:]


def _check_value(name: str, value: Any, what: str) -> Any:
    """A lone field value, validated and coerced ("1e-4" -> 0.0001 for a float field)."""
    try:
        return LEAVES[name].adapter.validate_python(value)
    except ValidationError as exc:
        raise BadValue(f"{what}{value!r} is invalid: {_first_error(exc)[1]}") from None


def _resolve_path(name: str, value: Any, check: bool) -> Any:
    """Relative paths -> absolute (against the cwd); with check, they must exist."""
    if name not in PATH_SPECIALS or value is None:
        return value
    if name == "distill.teachers":
        return [_resolve_path("distill.teacher", v, check) for v in value]
    if value in PATH_SPECIALS.get(name, ()):
        return value
    unset = _VARIABLE.search(value)  # _expand_variables found no value for it
    if unset:
        if check:
            variable = unset.group(1) or unset.group(2)
            raise BadValue(f"{value} uses ${variable}, which is not set in the environment; export {variable}=PATH first")
        return value
    path = os.path.normpath(os.path.join(os.getcwd(), os.path.expanduser(value)))
    if check and name != "data.cache_dir":
        if name == "distill.teacher":
            if not os.path.isdir(path):
                raise BadValue(f"the teacher folder {path} does not exist")
        elif any(c in value for c in "*?["):
            if not globlib.glob(path):
                raise BadValue(f"no file matches the glob {path}")
        elif not os.path.exists(path):
            raise BadValue(f"{path} does not exist")
    return path


def missing_paths(spec: "Spec") -> list[str]:
    """'key: why' for each fixed data, BLiMP or teacher path of the spec that this machine lacks."""
    out = []
    for name, value in flatten(spec.space).items():
        if name in PATH_SPECIALS and not isinstance(value, Distribution) and value is not None:
            try:
                _resolve_path(name, value, check=True)
            except BadValue as exc:
                out.append(f"{name}: {exc}")
    return out


def _fixed_value(name: str, value: Any, what: str, check: bool) -> Any:
    return _resolve_path(name, _check_value(name, value, what), check)


def _number(x: Any, integer: bool = False) -> Any:
    if isinstance(x, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            x = float(x)
        except ValueError:
            raise BadValue(f"{x!r} is not a number") from None
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise BadValue(f"{x!r} is not a finite number")
    if integer:
        if not float(x).is_integer():
            raise BadValue(f"{x!r} is not an integer")
        return int(x)
    return x


def _range(name: str, kind: str, raw: Any) -> Distribution:
    names = RANGES[kind]
    if not isinstance(raw, list) or len(raw) != len(names):
        raise BadValue(f"{kind} needs [{', '.join(names)}], got {raw!r}")
    leaf = LEAVES[name]
    if leaf.number is None:
        raise BadValue(f"{kind} needs a numeric field, but {name} is not one; use choice")
    if leaf.number == "int" and kind in FLOAT_KINDS:
        raise BadValue(f"{kind} gives non-integer values but {name} takes integers; use randint, lograndint or qrandint")
    try:
        args = [_number(x, integer=kind in INT_KINDS) for x in raw]
    except BadValue as exc:
        raise BadValue(f"{kind} {raw!r}: {exc}") from None
    q_int = kind.startswith("q") and float(args[-1]).is_integer()
    if leaf.number == "int" and kind.startswith("q") and not q_int:
        raise BadValue(f"{kind} on an integer field needs an integer q, got {args[-1]}")
    if kind in NORMALS:
        if args[1] <= 0:
            raise BadValue(f"{kind} needs sigma > 0, got {raw!r}")
    elif kind in ("loguniform", "qloguniform"):
        if not 0 < args[0] < args[1]:
            raise BadValue(f"{kind} needs 0 < low < high, got {raw!r}")
    elif kind == "lograndint":
        if not 1 <= args[0] <= args[1]:
            raise BadValue(f"{kind} needs 1 <= low <= high, got {raw!r}")
    elif kind in INT_KINDS:
        if args[0] > args[1]:
            raise BadValue(f"{kind} needs low <= high (both inclusive), got {raw!r}")
    elif not args[0] < args[1]:
        raise BadValue(f"{kind} needs low < high, got {raw!r}")
    if kind.startswith("q") and args[-1] <= 0:
        raise BadValue(f"{kind} needs q > 0, got {raw!r}")
    dist = Distribution(kind, tuple(args), integer=kind in INT_KINDS or (leaf.number == "int" and q_int))
    if kind in Q_GRID:
        lo, hi = dist._k_bounds()
        if lo > hi:
            raise BadValue(f"{kind} {raw!r} holds no multiple of q")
    try:
        ends = dist.extremes()
    except (OverflowError, ValueError):
        raise BadValue(f"{kind} {raw!r} reaches values too large to represent") from None
    for end in ends:
        try:
            leaf.adapter.validate_python(end)
        except ValidationError as exc:
            shown = f"{end:.6g}" if isinstance(end, float) else repr(end)
            raise BadValue(f"{kind} {raw!r} can give {shown}, which is invalid: {_first_error(exc)[1]}") from None
    return dist


def _choice(name: str, kind: str, raw: Any, check: bool) -> Distribution:
    if not isinstance(raw, list) or not raw:
        raise BadValue(f"{kind} needs a non-empty list of candidates, got {raw!r}")
    candidates: list[Any] = []
    for item in raw:
        value = _fixed_value(name, item, f"{kind} candidate ", check)
        if value in candidates:
            raise BadValue(f"{kind} lists {item!r} twice")
        candidates.append(value)
    return Distribution(kind, tuple(candidates))


def _when(name: str, raw: Any) -> dict[str, tuple]:
    if not isinstance(raw, dict) or not raw:
        raise BadValue(f"when needs a mapping like {{model.arch: llama}}, got {raw!r}")
    when: dict[str, tuple] = {}
    for key, allowed in raw.items():
        if key not in LEAVES:
            raise BadValue(f"when refers to {key}, which is not a config key{_suggest(key, LEAVES)}")
        values = allowed if isinstance(allowed, list) else [allowed]
        when[key] = tuple(_resolve_path(key, _check_value(key, v, f"when value for {key} "), False) for v in values)
    return when


def _leaf(name: str, raw: Any, check: bool) -> Any:
    """A fixed value, a Distribution, or a FromSweep (distill.teachers only)."""
    if not isinstance(raw, dict):
        return _fixed_value(name, raw, "", check)
    if name == "distill.teachers" and "from_sweep" in raw:
        data = {("sweep" if k == "from_sweep" else k): v for k, v in raw.items()}
        try:
            return FromSweep.model_validate(data)
        except ValidationError as exc:
            where, msg = _first_error(exc)
            if exc.errors()[0]["type"] == "extra_forbidden":
                raise BadValue(f"from_sweep takes top, per_arch, metric and mode, not {where}") from None
            raise BadValue(f"from_sweep {where}: {msg}") from None
    keys = [k for k in raw if k in KINDS or k == "value"]
    others = [k for k in raw if k not in keys and k != "when"]
    if len(keys) > 1:
        raise BadValue(f"a leaf takes one distribution, got {' and '.join(keys)}")
    if others:
        if not keys:
            raise BadValue(f"unknown distribution {others[0]!r}{_suggest(others[0], (*KINDS, 'value'))}")
        raise BadValue(f"unknown key {others[0]!r} beside {keys[0]}; only when may go with it")
    if not keys:
        raise BadValue("when needs a distribution or a value beside it, e.g. {value: 2, when: {...}}")
    kind = keys[0]
    when = _when(name, raw["when"]) if "when" in raw else {}
    if kind == "value":
        value = _fixed_value(name, raw["value"], "", check)
        return Distribution("value", (value,), when) if when else value
    dist = _choice(name, kind, raw[kind], check) if kind in CATEGORICAL else _range(name, kind, raw[kind])
    dist.when = when
    return dist


def _schedule_epochs(text: str) -> int:
    """Epochs of an AntLM schedule such as '4clm+16mlm+4clm'."""
    try:
        return len(parse_schedule(text))
    except ValueError as exc:
        raise BadValue(f"schedule {text!r} is invalid: {exc}") from None


def _check_schedule(flat: dict[str, Any], ctx: _Ctx) -> None:
    leaf = flat.get("antlm.schedule")
    if leaf is None:
        return
    epochs = flat.get("train.epochs", DEFAULTS["train.epochs"])
    schedules = leaf.extremes() if isinstance(leaf, Distribution) else [leaf]
    if isinstance(leaf, Distribution) and "train.epochs" in leaf.when:
        possible = set(leaf.when["train.epochs"])
    elif not isinstance(epochs, Distribution):
        possible = {epochs}
    elif epochs.kind in CATEGORICAL:
        possible = set(epochs.args)
    else:
        possible = None  # a ranged epochs: cannot tell here
    for text in schedules:
        if text is None:
            continue
        try:
            n = _schedule_epochs(text)
        except BadValue as exc:
            raise ctx.fail("antlm.schedule", str(exc)) from None
        if possible is not None and n not in possible:
            shown = sorted(possible)[0] if len(possible) == 1 else sorted(possible)
            raise ctx.fail("antlm.schedule", f"schedule {text!r} has {n} epochs but train.epochs is {shown}")


EPOCH_METRICS = (M.TUNE_LOSS, M.EVAL_LOSS, M.EVAL_PPL, M.TRAIN_LOSS, M.TOKENS_PER_S, M.ELAPSED_S, M.BLIMP_SUBSET_OVERALL)
FINAL_METRICS = (M.BLIMP_OVERALL,)  # and blimp/field/*, blimp/paradigm/*: measured once, after the last epoch


def _check_metric(search: SearchConfig, flat: dict[str, Any], ctx: _Ctx) -> None:
    """search.metric must be one the trainer reports, and reported when the scheduler needs it."""
    metric = search.metric

    def setting(name: str) -> Any:  # None when sampled: nothing to check before a trial runs
        value = flat.get(name, DEFAULTS.get(name))
        return None if isinstance(value, Distribution) else value

    final = metric in FINAL_METRICS or metric.startswith((M.BLIMP_FIELD_PREFIX, M.BLIMP_PARADIGM_PREFIX))
    if not final and metric not in EPOCH_METRICS:
        raise ctx.fail("search.metric", f"{metric!r} is not a metric babysweep reports; use one of "
                       f"{', '.join(EPOCH_METRICS + FINAL_METRICS)}, {M.BLIMP_FIELD_PREFIX}FIELD or {M.BLIMP_PARADIGM_PREFIX}UID")
    if (final or metric == M.BLIMP_SUBSET_OVERALL) and setting("eval.blimp") == "none":
        raise ctx.fail("search.metric", f"{metric} needs BLiMP, but eval.blimp is none")
    if metric == M.TUNE_LOSS and setting("data.tune_split") == 0:
        raise ctx.fail("search.metric", f"{metric} is measured only on a held-out slice of the training lines; "
                       "set data.tune_split, e.g. 0.1")
    if metric == M.BLIMP_SUBSET_OVERALL and setting("eval.blimp_pairs_per_paradigm") == 0:
        raise ctx.fail("search.metric", f"{metric} is measured only with eval.blimp_pairs_per_paradigm above 0")
    if final and setting("eval.blimp_final") == "subset":
        raise ctx.fail("search.metric", f"{metric} is measured on full BLiMP, but eval.blimp_final is subset; "
                       f"use {M.BLIMP_SUBSET_OVERALL} or eval.blimp_final: full")
    if final and search.scheduler == "asha":
        raise ctx.fail("search.metric", f"{metric} is measured after a trial's last epoch only, so ASHA could "
                       f"never compare trials at its rungs; use {M.BLIMP_SUBSET_OVERALL} (with "
                       "eval.blimp_pairs_per_paradigm) or scheduler: none")


def _check_stratify(search: SearchConfig, flat: dict[str, Any], ctx: _Ctx) -> None:
    """search.stratify names a sampled choice without conditions, and samples divide evenly among its values."""
    key = search.stratify
    if key is None:
        return
    if search.algorithm not in ("optuna", "random"):
        raise ctx.fail("search.stratify", f"stratify splits sampled trials; search.algorithm {search.algorithm} "
                       "enumerates its configs already")
    leaf = flat.get(key)
    if not isinstance(leaf, Distribution) or leaf.kind not in CATEGORICAL:
        raise ctx.fail("search.stratify", f"{key} is not a choice in this spec; stratify takes a key such as "
                       "model.arch: {choice: [llama, gpt2]}")
    if leaf.when:
        raise ctx.fail("search.stratify", f"{key} has a when condition; stratify needs a key that every trial sets")
    if not all(isinstance(v, (bool, int, float, str)) for v in leaf.args):
        raise ctx.fail("search.stratify", f"{key}'s values must be plain numbers or strings to take turns")
    if search.samples % len(leaf.args):
        raise ctx.fail("search.samples", f"{search.samples} samples do not split evenly among the "
                       f"{len(leaf.args)} values of {key} (search.stratify); use a multiple of {len(leaf.args)}")


def stratified_points(spec: Spec) -> list[dict[str, Any]]:
    """[{key: value}] for each sampled trial in turn, cycling through the stratified key's values."""
    key = spec.search.stratify
    if key is None:
        return []
    values = flatten(spec.space)[key].args
    return [{key: values[i % len(values)]} for i in range(spec.search.samples)]


def _check_points(search: SearchConfig, order: list[tuple[str, Any]], ctx: _Ctx) -> None:
    """algorithm points needs points; each point sets config keys to valid values, and with the
    spec's values (distributions at their first value) makes a valid config."""
    if search.algorithm != "points":
        if search.points is not None:
            raise ctx.fail("search.points", "points are used only with search.algorithm: points")
        return
    if not search.points:
        raise ctx.fail("search.points", "search.algorithm points needs at least one point, e.g. points: {base: {}}")
    for label, point in search.points.items():
        if not NAME_PATTERN.fullmatch(label):
            raise ctx.fail(f"search.points.{label}", "a point's name uses letters, digits, '_', '.' and '-'")
        for key, value in point.items():
            if key not in LEAVES:
                raise ctx.fail(f"search.points.{label}.{key}", f"not a config key{_suggest(key, LEAVES)}")
            try:
                _check_value(key, value, "")
            except BadValue as exc:
                raise ctx.fail(f"search.points.{label}.{key}", str(exc)) from None
        values = assign_values(order, lambda n, d: d.first(), fixed=point)
        leaves = {name for name, _ in order}
        values.update({k: v for k, v in point.items() if k not in leaves})  # as Spec.materialize does
        try:
            TrainConfig.model_validate(unflatten(values))
        except ValidationError as exc:
            where, msg = _first_error(exc)
            raise ctx.fail(f"search.points.{label}", f"gives an invalid config: {where}: {msg}") from None


def _set_override(raw: dict, key: str, value: Any, ctx: _Ctx) -> None:
    parts = key.split(".")
    headers = {"search": SearchConfig, "resources": ResourcesConfig, "tracking": TrackingConfig}
    known = (key in ("name", "role") or key in headers or key in SECTION_MODELS or key in LEAVES
             or (len(parts) == 2 and parts[0] in headers and parts[1] in headers[parts[0]].model_fields))
    if not known:
        options = [*HEADER_KEYS, *LEAVES, *(f"{h}.{f}" for h, m in headers.items() for f in m.model_fields)]
        raise ctx.fail("", f"override {key}: unknown key{_suggest(key, options)}")
    node = raw
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = copy.deepcopy(value)


MAX_FILE_BYTES = 1 << 20  # a spec or study file is a few KB; YAML reads about 1 MB a second, so a larger one is a wrong file


def check_size(path: Path, what: str) -> None:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UserError(f"{path}: {size / 2**20:.1f} MB is too large for a {what} file (at most 1 MB); is it the right file?")


def load_spec(path: str | os.PathLike, overrides: dict[str, Any] | None = None, *, check_paths: bool = True) -> Spec:
    """Read, override, validate. check_paths=False skips the existence checks of data/teacher paths."""
    label = str(path)
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{label}: the spec file does not exist." if not p.exists() else f"{label}: not a file.")
    check_size(p, "spec")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{label}: cannot read the spec ({exc}).") from None
    return _load_text(text, p, overrides, check_paths)


def spec_from_text(text: str, label: str, *, check_paths: bool = False) -> Spec:
    """A spec from YAML text that babysweep wrote (finalists, ablations); `label` names it in messages."""
    return _load_text(text, Path(label), None, check_paths)


def _load_text(text: str, path: Path, overrides: dict[str, Any] | None, check_paths: bool) -> Spec:
    label = str(path)
    try:
        raw = yaml.safe_load(text)
        lines = _line_map(text, label)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" (line {mark.line + 1})" if mark else ""
        raise UserError(f"{label}{at}: YAML syntax error: {exc.problem or exc.context}.") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{label}: YAML syntax error: {exc}.") from None
    except RecursionError:
        raise UserError(f"{label}: the YAML is nested too deeply to read.") from None
    except (ValueError, OverflowError) as exc:  # a tagged scalar YAML cannot convert, e.g. !!int 0b102
        raise UserError(f"{label}: a YAML value cannot be read ({exc}).") from None
    if not isinstance(raw, dict):
        got = type(raw).__name__ if raw is not None else "nothing"
        raise UserError(f"{label}: the spec must be a mapping of keys (name, model, train, ...), got {got}.")
    applied = {**_embedded(text), **(overrides or {})}
    ctx = _Ctx(label, lines, set(applied))
    for key, value in applied.items():
        _set_override(raw, key, value, ctx)
    environment = _expand_variables(raw, _embedded(text, ENVIRONMENT_MARK))

    for key in raw:
        if key not in HEADER_KEYS and key not in SECTIONS:
            raise ctx.fail(str(key), f"unknown key{_suggest(key, (*HEADER_KEYS, *SECTIONS))}")
    sweep_name = raw.get("name")
    if sweep_name is None:
        raise ctx.fail("", "name is missing; every spec needs one, e.g. name: teachers")
    if not isinstance(sweep_name, str) or not NAME_PATTERN.fullmatch(sweep_name):
        raise ctx.fail("name", f"{sweep_name!r} is not a valid sweep name; use letters, digits, '_', '.' and '-'")
    headers = {}
    for key, model in (("search", SearchConfig), ("resources", ResourcesConfig), ("tracking", TrackingConfig)):
        section = raw.get(key) or {}
        if not isinstance(section, dict):
            raise ctx.fail(key, f"expected a mapping, got {section!r}")
        try:
            headers[key] = model.model_validate(section)
        except ValidationError as exc:
            where, msg = _first_error(exc)
            if exc.errors()[0]["type"] == "extra_forbidden":
                msg = f"unknown key{_suggest(where, model.model_fields)}"
            else:
                msg = f"{exc.errors()[0]['input']!r} is invalid: {msg}"
            raise ctx.fail(f"{key}.{where}", msg) from None

    # The training sections: every leaf a fixed value or a distribution.
    space: dict[str, Any] = {}
    from_sweep: FromSweep | None = None

    def walk(model: type[BaseModel], node: Any, prefix: str, out: dict) -> None:
        nonlocal from_sweep
        if node is None:
            return
        if not isinstance(node, dict):
            raise ctx.fail(prefix, f"expected a mapping of {prefix} settings, got {node!r}")
        for key, value in node.items():
            name = f"{prefix}.{key}"
            if key not in model.model_fields:
                raise ctx.fail(name, f"unknown key{_suggest(key, model.model_fields)}")
            if name in SECTION_MODELS:
                out[key] = {}
                walk(SECTION_MODELS[name], value, name, out[key])
                continue
            try:
                leaf = _leaf(name, value, check_paths)
            except BadValue as exc:
                raise ctx.fail(name, str(exc)) from None
            if isinstance(leaf, FromSweep):
                from_sweep = leaf
            else:
                out[key] = leaf

    for section in SECTIONS:
        if section in raw:
            space[section] = {}
            walk(SECTION_MODELS[section], raw[section], section, space[section])

    flat = flatten(space)
    for name, leaf in flat.items():
        if isinstance(leaf, Distribution):
            for key in leaf.when:
                if key not in flat:
                    raise ctx.fail(f"{name}.when", f"when refers to {key}, which this spec does not set")
    try:
        order = ordered_leaves(space)
    except WhenCycle as exc:
        raise ctx.fail(f"{exc.names[0]}.when", f"when conditions form a cycle: {exc}") from None
    search = headers["search"]
    if search.algorithm == "grid":
        for name, leaf in flat.items():
            if isinstance(leaf, Distribution) and not leaf.is_constant and leaf.kind not in CATEGORICAL:
                raise ctx.fail(name, f"search.algorithm grid takes only choice or grid values, got {leaf.kind}")
    _check_points(search, order, ctx)
    _check_stratify(search, flat, ctx)
    _check_schedule(flat, ctx)
    _check_metric(search, flat, ctx)
    if search.algorithm == "optuna" and search.repeats > 1 and search.scheduler == "asha":
        # Ray's Repeater hands Optuna the mean of a config's seeds' last results, whatever epoch each reached
        raise ctx.fail("search.repeats", "repeats > 1 with scheduler asha would give Optuna the mean of seeds that "
                       "ASHA stopped early and seeds that finished; set scheduler: none or repeats: 1")

    # The whole config with each distribution at its first value: the cross-field checks.
    values = assign_values(order, lambda n, d: d.first())
    try:
        TrainConfig.model_validate(unflatten(values))
    except ValidationError as exc:
        where, msg = _first_error(exc)
        what = "the config with each distribution at its first value" if any(
            isinstance(v, Distribution) for v in flat.values()) else "the config"
        raise ctx.fail(where, f"{what} is invalid: {msg}") from None

    role = raw.get("role")
    if role is None:
        teachers = flat.get("distill.teachers")
        role = "student" if from_sweep is not None or teachers else "teacher"
    elif role not in ("teacher", "student", "baseline"):
        raise ctx.fail("role", f"{role!r} is not a role; use teacher, student or baseline")
    return Spec(name=sweep_name, role=role, path=path, text=_with_marks(text, applied, environment), search=search,
                resources=headers["resources"], tracking=headers["tracking"], space=space,
                teachers_from_sweep=from_sweep, overrides=applied)
