"""Small helpers shared by test modules (fixtures live in conftest.py): tiny sweep specs, trackers, free ports."""

from __future__ import annotations

import socket
from pathlib import Path

from babysweep.tracking.tracker import SweepTracker

TINY = """
name: {name}
data: {{seq_len: 32, builtin_words: 20000, tokenizer: {{vocab_size: 500}}, cache_dir: {cache}}}
model: {{layers: 1, hidden: {hidden}, heads: 2}}
train: {{epochs: {epochs}, batch_size: 32, lr: {lr}, warmup_steps: 5}}
eval: {{dev_batches: 2, blimp: builtin}}
search: {{algorithm: {algorithm}, samples: {samples}, scheduler: none, concurrent: 2, max_failures: 0}}
resources: {{cpu: 1}}
"""


def write_spec(folder: Path, cache: Path, **values) -> Path:
    fields = dict(name="tiny", hidden=32, epochs=2, lr="{loguniform: [1.0e-3, 1.0e-2]}", algorithm="random", samples=3)
    fields.update(values)
    path = folder / f"{fields['name']}.yaml"
    path.write_text(TINY.format(cache=cache, **fields))
    return path


def make_tracker(uri: str, project: Path, name: str, **kw) -> SweepTracker:
    args = dict(metric="eval/loss", mode="min", role="teacher", spec_text=f"name: {name}\n",
                search_settings={"algorithm": "optuna", "samples": 3})
    args.update(kw)
    return SweepTracker(uri, name, project / "sweeps" / name, **args)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
