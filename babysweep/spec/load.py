"""Sweep specs: one YAML file -> a validated search space over babysweep.core.config's RunConfig.

    spec = load_spec("search_spaces/teachers.yaml", overrides={"train.epochs": 1})
    spec.distributions()                 # {"train.lr": Distribution(kind="loguniform", ...), ...}
    space = OptunaSpace(spec.space)      # babysweep.spec.space: define-by-run space for Ray's OptunaSearch
    config = spec.materialize({"train.lr": 3e-4, ...})     # complete training config (plain dict)
    grid_points(spec)                    # [{"model.arch": "llama"}, ...] for search.algorithm: grid

A spec has the top-level keys name, role, search, resources, tracking, plus the RunConfig
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

import glob as globlib
import math
import os
import re
from pathlib import Path
from typing import Any
import yaml
from pydantic import BaseModel, ValidationError
from babysweep.core.config import SECTIONS, RunConfig, flatten, unflatten
from babysweep.core.errors import UserError
from babysweep.core.paths import NAME_PATTERN
from babysweep.spec.space import (CATEGORICAL, FLOAT_KINDS, INT_KINDS, KINDS, NORMALS, Q_GRID, RANGES, BadValue,
                             Distribution, WhenCycle, assign_values, ordered_leaves)
from babysweep.spec.space import OptunaSpace as OptunaSpace  # sweeps saved before spec/space.py pickled babysweep.spec.load.OptunaSpace
from babysweep.spec.checks import _check_metric, _check_points, _check_schedule, _check_stratify, _set_override
from babysweep.spec.messages import yaml_read, _Ctx, _check_value, _first_error, _line_map, _suggest
from babysweep.spec.overrides import _embedded, _expand_variables, _with_marks
from babysweep.spec.schema import FromSweep, LEAVES, PATH_SPECIALS, ResourcesConfig, SECTION_MODELS, SearchConfig, TrackingConfig
from babysweep.spec.sweep_spec import Spec, _canonical, _dumps

ENVIRONMENT_MARK = "# babysweep environment: "
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")  # $NAME or ${NAME}
HEADER_KEYS = ("name", "role", "search", "resources", "tracking")


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
        elif name == "eval.suite":
            if not os.path.isdir(path):
                raise BadValue(f"the suite's data folder {path} does not exist (the layout of the pipeline's "
                               f"evaluation_data/full_eval)")
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
    with yaml_read(label):
        raw = yaml.safe_load(text)
        lines = _line_map(text, label)
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
        RunConfig.model_validate(unflatten(values))
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


def diff_specs(old_text: str, new_spec: Spec) -> list[str]:
    """Dotted keys whose search space or search settings differ between a saved spec's text and
    new_spec (search.concurrent, search.max_failures and search.reuse_workers may change). Blank old text: nothing to compare."""
    if not old_text.strip():
        return []
    old = _load_text(old_text, Path(f"{new_spec.path} (saved copy)"), None, check_paths=False)
    a, b = _canonical(old), _canonical(new_spec)
    return sorted(k for k in a.keys() | b.keys() if _dumps(a.get(k, "<unset>")) != _dumps(b.get(k, "<unset>")))
