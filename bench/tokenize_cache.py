"""Token cache timing: cold (train the tokenizer and encode) vs warm (cache hit, memory-mapped).

    python bench/tokenize_cache.py [SOURCE]     # default ../shared/data/storybooks, else the built-in corpus

Also times building the default built-in corpus (250k words) from nothing. Prints the figures and
the cold/warm ratio; each cold run uses a fresh temporary cache folder.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from babysweep.core.config import RunConfig
from babysweep.data import builtin, prepare

root = Path(__file__).resolve().parents[2] / "shared" / "data" / "storybooks"
source = sys.argv[1] if len(sys.argv) > 1 else (str(root) if root.exists() else "builtin")

with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    folder = builtin.build(Path(tmp) / "builtin")
    built = time.perf_counter() - start
    words = sum(len(line.split()) for line in (folder / "train" / "builtin.train").read_text().splitlines())
    print(f"built-in corpus (default, {words:,} train words): built in {built:.2f} s (target <= 10 s)")

with tempfile.TemporaryDirectory() as tmp:
    cfg = RunConfig.of({"data": {"train": source, "dev": source, "cache_dir": tmp}}).data
    start = time.perf_counter()
    data = prepare(cfg)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    again = prepare(cfg)
    total = int(again.train.sum(dtype="int64"))  # touch every token: the memory map really is read
    warm = time.perf_counter() - start
    print(f"source: {source}")
    print(f"train tokens {len(data.train):,}, dev tokens {len(data.dev):,}, vocab {len(data.tokenizer):,}")
    print(f"cold (train tokenizer + encode train and dev): {cold:.2f} s (target <= 60 s)")
    print(f"warm (cache hit, memory-mapped, every token read): {warm:.3f} s (target <= 1 s) [checksum {total % 997}]")
    print(f"cold / warm ratio: {cold / warm:.0f}x")
