"""Byte-level BPE tokenizer, trained on the training split only, saved as tokenizer.json.

    tok = train_tokenizer(lines, vocab_size=8000, min_frequency=2)   # PreTrainedTokenizerFast
    tok.save_pretrained(folder); tok = load_tokenizer(folder)

Special tokens have fixed ids so every model of a project agrees on them: <pad>=0, <s>=1,
</s>=2, <mask>=3. The corpus encoder puts <s> before each line (add_special_tokens=False, then <s>).
with_bos(tok) gives the tokenizer a template that puts <s> first, so tokenizer(text) reads text as
training read every line; data.prepare returns that one, so it is what a model folder saves and what
the BabyLM pipeline (which adds no BOS itself) reads: every word of a sentence is scored. Tokenizers
saved before it (no template: reads_bos is False) still load and encode as they did; their models
are scored without their first word, by us and by the pipeline alike. The fingerprint ignores the
template: a teacher saved before it and a student after it share a tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
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


def with_bos(tok: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    """The same vocabulary and merges, with a template that puts <s> before the text (LLaMA's way)."""
    core = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    core.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                        special_tokens=[(BOS, BOS_ID)])
    return wrap(core)


def reads_bos(tok) -> bool:
    """Whether tokenizer(text) starts with <s> (the template adds it): then the BabyLM pipeline scores a
    sentence's first word; without it the first token is context only and the first word is unscored."""
    bos = getattr(tok, "bos_token_id", None)
    return bos is not None and tok("a")["input_ids"][:1] == [bos]


def load_tokenizer(folder: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved by `save_pretrained` (or any folder holding our tokenizer.json)."""
    return wrap(Tokenizer.from_file(str(Path(folder) / "tokenizer.json")))


def fingerprint(tok: PreTrainedTokenizerFast) -> str:
    """A short hash of the vocabulary and merges: equal iff two tokenizers encode text identically
    (special tokens a template adds aside: training adds <s> itself, with or without one)."""
    import hashlib

    core = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    core.post_processor = None  # as saved before with_bos existed: their fingerprints are unchanged
    return hashlib.sha256(core.to_str().encode()).hexdigest()[:16]
