"""Disk asked, not taken: the teacher cache's default budget from the free disk, and a study's estimate
printed before it starts. No Ray or MLflow here; torch only through data.prepare (the token cache).

    budget, why = cache_budget(None, root)      # distill.cache_budget_gb unset: a share of the free disk
    lines = study_estimate(specs, seeds, storage_root)   # ["disk estimate: ...", ...]

The default budget is FREE_SHARE of the space the cache could use (the free space plus what the cache
already holds, which eviction can reuse), and never more than that space minus KEEP_FREE_GB: a laptop
with 40 GB free gets a 10 GB budget, one with 8 GB free gets 2 GB, one with 4 GB none (the students
then distil on the fly). `distill.cache_budget_gb` set in a spec wins.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from babysweep import teacher_cache_files as files

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


def _fixed(spec, key: str, default=None):
    """A spec's value for a dotted key: the fixed value, the largest of a numeric distribution, else `default`."""
    from babysweep.config import flatten

    from babysweep.space import Distribution

    value = flatten(spec.space).get(key, default)
    if isinstance(value, Distribution):
        numbers = [a for a in value.args if isinstance(a, (int, float)) and not isinstance(a, bool)]
        if value.kind in ("choice", "grid"):
            options = value.args[0] if value.args and isinstance(value.args[0], (list, tuple)) else value.args
            numbers = [a for a in options if isinstance(a, (int, float)) and not isinstance(a, bool)]
        return max(numbers) if numbers else default
    return value


def _params(spec, vocab: int) -> int:
    """A transformer's parameter count, roughly: 12 h^2 per layer plus the embeddings and the head."""
    layers, hidden = int(_fixed(spec, "model.layers", 4) or 4), int(_fixed(spec, "model.hidden", 256) or 256)
    return 12 * layers * hidden * hidden + 2 * vocab * hidden


def study_estimate(specs: list, seeds: int, root: str | Path) -> list[str]:
    """Lines saying how much disk a study will take at most, and what is free, before anything runs."""
    from babysweep.config import resolve, unflatten
    from babysweep.data import prepare
    from babysweep.data.batches import chunks_per_epoch
    from babysweep.spec import config_count

    cache_root = None
    cache_total, model_total, notes = 0.0, 0.0, []
    for spec in specs:
        from babysweep.config import flatten

        data_cfg = resolve(unflatten({k: v for k, v in flatten(spec.space).items() if k.startswith("data.")}))["data"]
        prepared = prepare(data_cfg)  # tokenises once; every trial reuses it
        vocab = int(data_cfg["tokenizer"]["vocab_size"])
        seq_len = int(data_cfg["seq_len"])
        epochs = int(_fixed(spec, "train.epochs", 1) or 1)
        trials = config_count(spec)[0] * spec.search.repeats
        arches = _fixed(spec, "model.arch", "llama")
        finalists = seeds * (2 if spec.role == "teacher" and "model.arch" in spec.distributions() else 1)
        model_total += (trials + finalists) * _params(spec, vocab) * 4 * (1 + 3 * 2)  # final weights, 2 checkpoints (weights + Adam's 2 moments)
        distils = spec.teachers_from_sweep is not None or bool(_fixed(spec, "distill.teachers", []))
        if not distils:
            continue
        mode = str(_fixed(spec, "distill.cache", "auto") or "auto")
        if mode == "none":
            notes.append(f"{spec.name}: distill.cache none, nothing cached")
            continue
        n_stored = 1
        if _fixed(spec, "distill.ensemble", "logits") == "probs":
            n_stored = spec.teachers_from_sweep.top if spec.teachers_from_sweep is not None else len(_fixed(spec, "distill.teachers", []))
        chunks = chunks_per_epoch(len(prepared.train), seq_len)
        per_seed = epochs * chunks * seq_len * vocab * 2 * n_stored
        if mode.startswith("topk"):
            k = int(mode.partition(":")[2])
            per_seed = epochs * chunks * seq_len * (k * 4 + 4)
        cache_root = files.cache_root(Path(data_cfg.get("cache_dir") or Path(root) / ".cache"))
        budget, why = cache_budget(_fixed(spec, "distill.cache_budget_gb", None), cache_root)
        sets = 1 + seeds  # the tuning trials share one seed; each finalist seed has its own entries
        if mode == "auto" and per_seed > budget:
            notes.append(f"{spec.name}: {files.human(per_seed)} per seed exceeds {why}: distilled on the fly, nothing cached")
            continue
        need = min(per_seed * sets, budget)
        cache_total += need
        notes.append(f"{spec.name}: {files.human(per_seed)} per seed x {sets} seeds, kept within {why}")
    free = free_bytes(root)
    lines = [f"disk estimate: at most {files.human(cache_total + model_total)} "
             f"(teacher cache {files.human(cache_total)}, models and checkpoints about {files.human(model_total)}); "
             f"{files.human(free)} free under {Path(root).expanduser().resolve()}"]
    lines += [f"  teacher cache, {note}" for note in notes]
    if cache_total + model_total > free:
        lines.append("  that is more than is free: set distill.cache_budget_gb lower, or distill.cache: none")
    return lines
