"""Atomic training checkpoints: <root>/step_<N>/{state.pt, meta.json}; the newest loadable one wins.

    folder = save_checkpoint(root, step, state, meta)      # state: tensors/dicts; meta: JSON-able
    found = load_latest(root)                               # (folder, state, meta) or None

A checkpoint is written into a temporary folder, flushed to disk and renamed into place (core/atomic.py),
so a crash, even of the machine, leaves either the whole checkpoint or none. A checkpoint that still
fails to load (a truncated copy, a disk error) is skipped with a warning and the previous one is used.

No code runs from a checkpoint: state.pt is read with torch.load(weights_only=True), so it may hold
tensors and plain containers only (anyone who can write to a shared sweep folder could otherwise run
code in every trial that resumes from it). Checkpoints written before this rule kept numpy's
RNG state as a numpy array; those load with numpy's array type allowed and nothing else. Any other
object is refused with UnsafeCheckpoint, never unpickled.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path

from babysweep.core.atomic import replace_dir_durably
from babysweep.core.storage_errors import writing
from babysweep.core.errors import UserError

STATE, META = "state.pt", "meta.json"


class UnsafeCheckpoint(UserError):
    """A state.pt that holds objects torch.load(weights_only=True) refuses to build."""


def save_checkpoint(root: str | Path, step: int, state: dict, meta: dict, keep: int = 2) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"step_{step:08d}"
    import torch  # here, not at the top: listing checkpoints (`babysweep status`) needs no torch

    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        with writing(folder, "a checkpoint"):
            torch.save(state, tmp / STATE)
            (tmp / META).write_text(json.dumps(meta, indent=1))
            replace_dir_durably(tmp, folder, "a checkpoint")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk: leave no half checkpoint behind
        raise
    for old in checkpoints(root)[:-keep] if keep else []:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def checkpoints(root: str | Path) -> list[Path]:
    """Checkpoint folders under root, oldest first (temporary folders are never listed)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step_*") if p.is_dir())


def load_checkpoint(folder: str | Path) -> tuple[dict, dict]:
    folder = Path(folder)
    meta = json.loads((folder / META).read_text())
    return _load_state(folder / STATE), meta


def _old_numpy_globals() -> list:
    """What np.random.get_state() pickles into: an array of uint32 (checkpoints written before weights_only)."""
    import numpy as np

    reconstruct = getattr(getattr(np, "_core", np.core), "multiarray")._reconstruct
    return [reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _load_state(path: Path) -> dict:
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as first:
        if "Unsupported global" not in str(first):
            raise  # damage, not an unsafe object
        try:
            with torch.serialization.safe_globals(_old_numpy_globals()):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            found = str(exc).split("Unsupported global: ", 1)[-1].split(" was not", 1)[0]
            raise UnsafeCheckpoint(
                f"{path}: the checkpoint holds an object that only unpickling can build ({found}), and unpickling a "
                "file from a sweep folder could run code; delete this checkpoint folder to train that run afresh."
            ) from None


def load_latest(root: str | Path) -> tuple[Path, dict, dict] | None:
    for folder in reversed(checkpoints(root)):
        try:
            state, meta = load_checkpoint(folder)
        except UnsafeCheckpoint:
            raise  # never skipped quietly: the run would start afresh without saying why
        except Exception as exc:  # any damage: fall back to the previous checkpoint
            warnings.warn(f"checkpoint {folder} cannot be loaded ({type(exc).__name__}: {exc}); trying the previous one")
            continue
        return folder, state, meta
    return None
