"""Values shaped for MLflow: keys it accepts, texts cut to its limits, numbers, batches of params and tags.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import posixpath
import re
import subprocess
from pathlib import Path
from typing import Any
from mlflow.entities import Param, RunTag
from babysweep.core.atomic import write_text_atomic
from babysweep.core import records as R
from babysweep.tracking.store import MAX_KEY, MAX_METRICS_PER_BATCH, MAX_PARAM_VALUE, MAX_PER_BATCH, MAX_TAG_VALUE, _KEY_OK, _TRUNCATED

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------- value shaping


def _safe_key(key: str) -> str | None:
    """A key MLflow accepts (odd characters -> '_'), or None when it cannot be made one."""
    key = re.sub(r"[^/\w.\- ]", "_", str(key))
    ok = _KEY_OK.match(key) and len(key) <= MAX_KEY
    norm = posixpath.normpath(key)
    return key if ok and norm == key and not norm.startswith(("/", "..")) and norm != "." else None


def _text(value: Any, limit: int) -> str:
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        value = value.item()  # numpy / torch scalars
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, default=str, separators=(",", ":"))
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def _number(value: Any) -> float | None:
    """A float for real numbers (numpy/torch scalars included); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "item") and getattr(value, "shape", None) in ((), (1,)):
        return _number(value.item())
    return None


def _params(flat: dict[str, Any]) -> list[Param]:
    out = []
    for key, value in flat.items():
        name = _safe_key(key)
        if name is None:
            log.debug("param %r has a name MLflow refuses; it is only in config.json", key)
            continue
        out.append(Param(name, _text(value, MAX_PARAM_VALUE)))
    return out


def _tag_dict(tags: dict[str, Any]) -> dict[str, str]:
    """Tags as MLflow takes them: strings, truncated; None values and unloggable keys dropped."""
    return {k: _text(v, MAX_TAG_VALUE) for k, v in tags.items() if v is not None and _safe_key(k) == k}


def _tags(tags: dict[str, Any]) -> list[RunTag]:
    return [RunTag(k, v) for k, v in _tag_dict(tags).items()]


def _log_batch(client, run_id: str, metrics=(), params=(), tags=()) -> None:
    """One log_batch call unless MLflow's per-call limits force more."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    while metrics or params or tags:
        client.log_batch(run_id, metrics=metrics[:MAX_METRICS_PER_BATCH], params=params[:MAX_PER_BATCH], tags=tags[:MAX_PER_BATCH])
        metrics, params, tags = metrics[MAX_METRICS_PER_BATCH:], params[MAX_PER_BATCH:], tags[MAX_PER_BATCH:]


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a sampled value for the run map (numpy scalars become floats)."""
    if isinstance(value, (str, bool, int, float, list)) or value is None:
        return value
    number = _number(value)
    return number if number is not None else str(value)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _mark_model_training(client, experiment) -> None:
    """Give an experiment babysweep uses the kind that opens MLflow 3's model-training view (once)."""
    if experiment.tags.get(R.EXPERIMENT_KIND) is None:
        client.set_experiment_tag(experiment.experiment_id, R.EXPERIMENT_KIND, R.MODEL_TRAINING)


def _git_commit(directory: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit) else None


def _blimp_table(paradigms: dict[str, float]) -> dict[str, list]:
    """{paradigm: accuracy} -> the columns {"paradigm": [...], "accuracy": [...]} MLflow's UI shows as a table."""
    rows = sorted(paradigms)
    return {"paradigm": rows, "accuracy": [paradigms[r] for r in rows]}


def _write_json(path: Path, data: dict) -> None:
    """A SIGKILL leaves either the old file or the new one, never half of one."""
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True), "the sweep's MLflow run map")


