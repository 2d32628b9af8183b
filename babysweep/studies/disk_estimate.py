"""The study's disk estimate, printed before its first stage: teacher caches, models and checkpoints.

    for line in study_estimate(specs, seeds=5, root=sweeps_dir()): print(line)
"""

from __future__ import annotations

from pathlib import Path

from babysweep.train import teacher_cache_files as files
from babysweep.train import disk


def _fixed(spec, key: str, default=None):
    """A spec's value for a dotted key: the fixed value, the largest of a numeric distribution, else `default`."""
    from babysweep.core.config import flatten

    from babysweep.spec.space import Distribution

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
    from babysweep.core.config import RunConfig, unflatten
    from babysweep.data import prepare
    from babysweep.data.batches import chunks_per_epoch
    from babysweep.spec.sweep_spec import config_count

    cache_root = None
    cache_total, model_total, notes = 0.0, 0.0, []
    for spec in specs:
        from babysweep.core.config import flatten

        data_cfg = RunConfig.of(unflatten({k: v for k, v in flatten(spec.space).items() if k.startswith("data.")})).data
        prepared = prepare(data_cfg)  # tokenises once; every trial reuses it
        vocab, seq_len = data_cfg.tokenizer.vocab_size, data_cfg.seq_len
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
        chunks = chunks_per_epoch(len(prepared.train), seq_len, prepared.chunk_bos)
        per_seed = epochs * chunks * seq_len * vocab * 2 * n_stored
        if mode.startswith("topk"):
            k = int(mode.partition(":")[2])
            per_seed = epochs * chunks * seq_len * (k * 4 + 4)
        cache_root = files.cache_root(Path(data_cfg.cache_dir or Path(root) / ".cache"))
        budget, why = disk.cache_budget(_fixed(spec, "distill.cache_budget_gb", None), cache_root)
        sets = 1 + seeds  # the tuning trials share one seed; each finalist seed has its own entries
        if mode == "auto" and per_seed > budget:
            notes.append(f"{spec.name}: {files.human(per_seed)} per seed exceeds {why}: distilled on the fly, nothing cached")
            continue
        need = min(per_seed * sets, budget)
        cache_total += need
        notes.append(f"{spec.name}: {files.human(per_seed)} per seed x {sets} seeds, kept within {why}")
    free = disk.free_bytes(root)
    lines = [f"disk estimate: at most {files.human(cache_total + model_total)} "
             f"(teacher cache {files.human(cache_total)}, models and checkpoints about {files.human(model_total)}); "
             f"{files.human(free)} free under {Path(root).expanduser().resolve()}"]
    lines += [f"  teacher cache, {note}" for note in notes]
    if cache_total + model_total > free:
        lines.append("  that is more than is free: set distill.cache_budget_gb lower, or distill.cache: none")
    return lines
