"""Atomic training checkpoints: <root>/step_<N>/{state.pt, meta.json}; the newest loadable one wins.

    folder = save_checkpoint(root, step, state, meta)      # state: tensors/dicts; meta: JSON-able
    found = load_latest(root)                               # (folder, state, meta) or None

A checkpoint is written into a temporary folder and renamed into place, so a crash leaves either
the whole checkpoint or none. A checkpoint that still fails to load (a truncated copy, a disk
error) is skipped with a warning and the previous one is used.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

STATE, META = "state.pt", "meta.json"


def save_checkpoint(root: str | Path, step: int, state: dict, meta: dict, keep: int = 2) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"step_{step:08d}"
    import torch  # here, not at the top: listing checkpoints (`babysweep status`) needs no torch

    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    torch.save(state, tmp / STATE)
    (tmp / META).write_text(json.dumps(meta, indent=1))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
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
    import torch

    folder = Path(folder)
    meta = json.loads((folder / META).read_text())
    state = torch.load(folder / STATE, map_location="cpu", weights_only=False)
    return state, meta


def load_latest(root: str | Path) -> tuple[Path, dict, dict] | None:
    for folder in reversed(checkpoints(root)):
        try:
            state, meta = load_checkpoint(folder)
        except Exception as exc:  # any damage: fall back to the previous checkpoint
            warnings.warn(f"checkpoint {folder} cannot be loaded ({type(exc).__name__}: {exc}); trying the previous one")
            continue
        return folder, state, meta
    return None
