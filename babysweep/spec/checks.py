"""Checks across keys of a spec: AntLM schedules against epochs, the search metric, strata and points, overrides.
"""

from __future__ import annotations

import copy
from typing import Any
from pydantic import ValidationError
from babysweep.core import metrics as M
from babysweep.core.config import RunConfig, flatten, unflatten
from babysweep.core.paths import NAME_PATTERN
from babysweep.core.schedule import parse_schedule
from babysweep.spec.space import (CATEGORICAL, DEFAULTS, BadValue,
                             Distribution, assign_values)
from babysweep.spec.space import OptunaSpace as OptunaSpace  # sweeps saved before space.py pickled babysweep.spec.load.OptunaSpace
from babysweep.spec.messages import _Ctx, _check_value, _first_error, _suggest
from babysweep.spec.schema import LEAVES, ResourcesConfig, SECTION_MODELS, SearchConfig, TrackingConfig
from babysweep.spec.sweep_spec import Spec

HEADER_KEYS = ("name", "role", "search", "resources", "tracking")


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
            RunConfig.model_validate(unflatten(values))
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


