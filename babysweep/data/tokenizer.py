"""Byte-level BPE tokenizer, trained on the training split only, saved as tokenizer.json.

    tok = train_tokenizer(lines, vocab_size=8000, min_frequency=2)   # PreTrainedTokenizerFast
    tok.save_pretrained(folder); tok = load_tokenizer(folder)

Special tokens have fixed ids so every model of a project agrees on them: <pad>=0, <s>=1,
</s>=2, <mask>=3. Encoding adds no special tokens; the corpus encoder puts <s> before each line
and BLiMP scoring puts <s> before each sentence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, MASK = "<pad>", "<s>", "</s>", "<mask>"
SPECIAL_TOKENS = [PAD, BOS, EOS, MASK]  # ids 0..3, in this order
PAD_ID, BOS_ID, EOS_ID, MASK_ID = range(4)


def train_tokenizer(lines: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train byte-level BPE on an iterable of text lines (the training split only)."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable, no <unk>
        show_progress=False,
    )
    core.train_from_iterator(lines, trainer=trainer)
    return wrap(core)


def wrap(core: Tokenizer) -> PreTrainedTokenizerFast:
    """A transformers tokenizer around a `tokenizers` one, with our special tokens named."""
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        mask_token=MASK,
        unk_token=None,
    )


def load_tokenizer(folder: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved by `save_pretrained` (or any folder holding our tokenizer.json)."""
    return wrap(Tokenizer.from_file(str(Path(folder) / "tokenizer.json")))


def fingerprint(tok: PreTrainedTokenizerFast) -> str:
    """A short hash of the vocabulary and merges: equal iff two tokenizers encode identically."""
    import hashlib

    return hashlib.sha256(tok.backend_tokenizer.to_str().encode()).hexdigest()[:16]
