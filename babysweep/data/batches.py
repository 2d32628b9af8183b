"""Training and dev batches from a token array (BabyLlama's scheme).

    for index, batch in train_batches(tokens, seq_len=128, batch_size=32, seed=0, epoch=3):
        ...   # batch: LongTensor [<=32, 128]

Each epoch cuts the token stream into seq_len chunks starting at a fresh random offset, then visits
the chunks in a fresh random order; both come from (seed, epoch) alone, so a resumed run only needs
the epoch and the batch index to continue exactly. The chunk count per epoch is the same for every
offset, so the number of optimiser steps is known before training starts. Dev chunks are fixed:
offset 0, file order.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch


def chunks_per_epoch(n_tokens: int, seq_len: int) -> int:
    # Fits whatever the offset (< seq_len) is.
    return max((n_tokens - seq_len) // seq_len, 0)


def batches_per_epoch(n_tokens: int, seq_len: int, batch_size: int) -> int:
    return math.ceil(chunks_per_epoch(n_tokens, seq_len) / batch_size)


def epoch_starts(n_tokens: int, seq_len: int, seed: int, epoch: int) -> np.ndarray:
    rng = np.random.default_rng([seed, epoch])
    offset = int(rng.integers(seq_len))
    starts = offset + seq_len * np.arange(chunks_per_epoch(n_tokens, seq_len), dtype=np.int64)
    return starts[rng.permutation(starts.size)]


def _gather(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> torch.Tensor:
    rows = np.stack([tokens[s : s + seq_len] for s in starts]).astype(np.int64)
    return torch.from_numpy(rows)


def train_batches(tokens: np.ndarray, seq_len: int, batch_size: int, seed: int, epoch: int, start_batch: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
    starts = epoch_starts(len(tokens), seq_len, seed, epoch)
    for index in range(start_batch, math.ceil(starts.size / batch_size)):
        yield index, _gather(tokens, starts[index * batch_size : (index + 1) * batch_size], seq_len)


def dev_batches(tokens: np.ndarray, seq_len: int, batch_size: int, limit: int | None = None) -> Iterator[torch.Tensor]:
    n_chunks = len(tokens) // seq_len
    starts = seq_len * np.arange(n_chunks, dtype=np.int64)
    n_batches = math.ceil(n_chunks / batch_size)
    for index in range(n_batches if limit is None else min(limit, n_batches)):
        yield _gather(tokens, starts[index * batch_size : (index + 1) * batch_size], seq_len)
