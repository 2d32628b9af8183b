"""`--set key=value` overrides and `$VARIABLE` paths, recorded in the spec's text so that a saved copy reproduces the run.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
import yaml
from babysweep.core.errors import UserError
from babysweep.spec.space import OptunaSpace as OptunaSpace  # sweeps saved before space.py pickled babysweep.spec.load.OptunaSpace
from babysweep.spec.schema import PATH_SPECIALS

OVERRIDES_MARK = "# babysweep overrides: "
ENVIRONMENT_MARK = "# babysweep environment: "
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")  # $NAME or ${NAME}


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


