"""Problems in a spec said as one sentence naming the file, the key path and its YAML line.
"""

from __future__ import annotations

from contextlib import contextmanager

import difflib
from typing import Any
import yaml
from pydantic import ValidationError
from babysweep.core.errors import UserError
from babysweep.spec.space import (BadValue)
from babysweep.spec.space import OptunaSpace as OptunaSpace  # sweeps saved before space.py pickled babysweep.spec.load.OptunaSpace
from babysweep.spec.schema import LEAVES



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


@contextmanager
def yaml_read(label: str):
    """YAML's own errors, raised inside the block, as one sentence naming the file (and the line where known)."""
    try:
        yield
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
