"""Training and dev batches from a token array (BabyLlama's scheme, each chunk read as evaluation reads).

    for index, batch in train_batches(tokens, seq_len=128, batch_size=32, seed=0, epoch=3, bos=BOS_ID):
        ...   # batch: LongTensor [<=32, 128], every row beginning with <s>

Each epoch cuts the token stream into chunks starting at a fresh random offset, then visits the chunks in
a fresh random order; both come from (seed, epoch) alone, so a resumed run only needs the epoch and the
batch index to continue exactly. The chunk count per epoch is the same for every offset, so the number
of optimiser steps is known before training starts. Dev chunks are fixed: offset 0, file order, the
stream as it is (so dev loss stays comparable across layouts and with the n-gram floor).

Two layouts of the training chunks (data.chunk_bos):
- bos=BOS_ID (data.chunk_bos true, every run since it existed): a chunk is <s> followed by seq_len - 1
  tokens of the stream, or seq_len tokens when the stream's own <s> (a line start) is the first; chunks
  step by seq_len - 1. The model then always meets <s> at position 0 with nothing before it, which is
  how evaluation (and the BabyLM pipeline, through the tokenizer's template) reads a sentence.
- bos=None (runs and sweeps made before): seq_len-token slices of the stream, stepping by seq_len, so
  most chunks begin mid-line. Kept so that those runs resume and their teacher caches stay valid.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch


def _stride(seq_len: int, bos: int | None) -> int:
    return seq_len - 1 if bos is not None else seq_len


def chunks_per_epoch(n_tokens: int, seq_len: int, bos: int | None = None) -> int:
    # Fits whatever the offset (< stride) is: the last chunk reads at most seq_len tokens from its start.
    return max((n_tokens - seq_len) // _stride(seq_len, bos), 0)


def batches_per_epoch(n_tokens: int, seq_len: int, batch_size: int, bos: int | None = None) -> int:
    return math.ceil(chunks_per_epoch(n_tokens, seq_len, bos) / batch_size)


def epoch_starts(n_tokens: int, seq_len: int, seed: int, epoch: int, bos: int | None = None) -> np.ndarray:
    rng = np.random.default_rng([seed, epoch])
    stride = _stride(seq_len, bos)
    offset = int(rng.integers(stride))
    starts = offset + stride * np.arange(chunks_per_epoch(n_tokens, seq_len, bos), dtype=np.int64)
    return starts[rng.permutation(starts.size)]


def chunk_rows(tokens: np.ndarray, starts: np.ndarray, seq_len: int, bos: int | None = None) -> np.ndarray:
    """The chunks beginning at `starts`, as an int64 array [len(starts), seq_len] (see the layouts above)."""
    rows = np.stack([tokens[s : s + seq_len] for s in starts]).astype(np.int64)
    if bos is not None:
        # A row whose stream slice does not begin a line: <s> + its first seq_len - 1 tokens.
        shift = rows[:, 0] != bos
        rows[shift, 1:] = rows[shift, :-1]
        rows[shift, 0] = bos
    return rows


def train_batches(tokens: np.ndarray, seq_len: int, batch_size: int, seed: int, epoch: int, start_batch: int = 0,
                  bos: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    starts = epoch_starts(len(tokens), seq_len, seed, epoch, bos)
    for index in range(start_batch, math.ceil(starts.size / batch_size)):
        yield index, torch.from_numpy(chunk_rows(tokens, starts[index * batch_size : (index + 1) * batch_size], seq_len, bos))


def dev_batches(tokens: np.ndarray, seq_len: int, batch_size: int, limit: int | None = None) -> Iterator[torch.Tensor]:
    n_chunks = len(tokens) // seq_len
    starts = seq_len * np.arange(n_chunks, dtype=np.int64)
    n_batches = math.ceil(n_chunks / batch_size)
    for index in range(n_batches if limit is None else min(limit, n_batches)):
        yield torch.from_numpy(chunk_rows(tokens, starts[index * batch_size : (index + 1) * batch_size], seq_len))
