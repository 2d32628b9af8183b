"""Corpora, tokenizer and token cache behind one call.

    data = prepare(cfg.data)            # cfg: core.config.RunConfig; tokenizer + memory-mapped train/dev token arrays
    data.tokenizer, data.train, data.dev, data.tokenizer_dir
    data.tune                           # the held-out tuning slice of train's lines (None when data.tune_split is 0)
    data.chunk_bos                      # what training chunks begin with: BOS_ID, or None (data/batches.py)

`builtin` sources are the synthetic grammar corpus of babysweep.data.builtin, generated once into
the cache folder. The cache folder defaults to <project>/sweeps/.cache (babysweep.core.paths).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from babysweep.data.cache import split_words, token_array, tokenizer_entry
from babysweep.data.corpus import source_files
from babysweep.data.tokenizer import BOS_ID, load_tokenizer, with_bos
from babysweep.core.config import DataConfig, EvalConfig
from babysweep.core.paths import cache_dir

BUILTIN = "builtin"


def builtin_folder(data_cfg: DataConfig) -> Path:
    from babysweep.data import builtin  # the grammar is only loaded when used

    return builtin.build(cache_dir(data_cfg.cache_dir) / "builtin", words=data_cfg.builtin_words, seed=data_cfg.builtin_seed)


def split_files(data_cfg: DataConfig, split: str) -> list[Path]:
    source = getattr(data_cfg, split)
    if source == BUILTIN:
        return source_files(builtin_folder(data_cfg) / split, split)
    return source_files(source, split)


def blimp_source(eval_cfg: EvalConfig, data_cfg: DataConfig) -> Path | None:
    """The BLiMP folder a run evaluates on: None for "none", the built-in pairs for "builtin"."""
    source = eval_cfg.blimp
    if source == "none":
        return None
    if source == BUILTIN:
        return builtin_folder(data_cfg) / "blimp"
    return Path(source).expanduser()


@dataclass
class PreparedData:
    tokenizer: object  # PreTrainedTokenizerFast
    tokenizer_dir: Path
    train: np.ndarray  # without the tuning slice's lines
    dev: np.ndarray
    train_files: list[Path]
    dev_files: list[Path]
    tune: np.ndarray | None = None
    train_words: int | None = None  # words in train's lines (the tuning slice's left out): the corpus size papers quote
    chunk_bos: int | None = BOS_ID  # data/batches.py's layout: BOS_ID (data.chunk_bos true) or None


def prepare(data_cfg: DataConfig) -> PreparedData:
    train_files = split_files(data_cfg, "train")
    dev_files = split_files(data_cfg, "dev")
    tok_cfg = data_cfg.tokenizer
    entry = tokenizer_entry(cache_dir(data_cfg.cache_dir), train_files, tok_cfg.vocab_size, tok_cfg.min_frequency)
    tok = load_tokenizer(entry)  # trained on all of train's files, the tuning slice included (as the paper specs' teachers were)
    tok = with_bos(tok)  # tokenizer(text) = <s> + text, as every line is trained; the cache entry itself is unchanged
    dev = token_array(entry, dev_files, tok)
    bos = BOS_ID if data_cfg.chunk_bos else None
    if not data_cfg.tune_split:
        train = token_array(entry, train_files, tok)
        return PreparedData(tok, entry, train, dev, train_files, dev_files, train_words=split_words(entry, train_files), chunk_bos=bos)
    split = (data_cfg.tune_split, data_cfg.tune_seed)
    train, tune = (token_array(entry, train_files, tok, (name, *split)) for name in ("train", "tune"))
    return PreparedData(tok, entry, train, dev, train_files, dev_files, tune, split_words(entry, train_files, ("train", *split)), bos)
