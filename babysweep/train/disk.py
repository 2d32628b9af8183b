"""Disk asked, not taken: the teacher cache's default budget from the free disk (a study's estimate,
printed before it starts, is studies/disk_estimate.py).

    budget, why = cache_budget(None, root)      # distill.cache_budget_gb unset: a share of the free disk

The default budget is FREE_SHARE of the space the cache could use (the free space plus what the cache
already holds, which eviction can reuse), and never more than that space minus KEEP_FREE_GB: a laptop
with 40 GB free gets a 10 GB budget, one with 8 GB free gets 2 GB, one with 4 GB none (the students
then distil on the fly). `distill.cache_budget_gb` set in a spec wins.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from babysweep.train import teacher_cache_files as files

FREE_SHARE = 0.25  # of the disk the cache could use
KEEP_FREE_GB = 5.0  # never planned into: the system, MLflow, checkpoints and the user's own files need room


def free_bytes(path: str | Path) -> int:
    """Free bytes on the disk that holds `path` (its nearest existing ancestor)."""
    path = Path(path).expanduser().resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def cache_budget(given_gb: float | None, root: str | Path) -> tuple[float, str]:
    """(budget in bytes, how it was set) for the teacher cache under `root`."""
    if given_gb is not None:
        return given_gb * 1e9, f"distill.cache_budget_gb {given_gb:g}"
    held = files.usage(Path(root))[0]
    usable = free_bytes(root) + held
    budget = max(0.0, min(FREE_SHARE * usable, usable - KEEP_FREE_GB * 1e9))
    return budget, (f"the cache budget {files.human(budget)} ({FREE_SHARE:.0%} of the {files.human(usable)} it could use, "
                    f"leaving at least {KEEP_FREE_GB:g} GB free; distill.cache_budget_gb sets another)")
