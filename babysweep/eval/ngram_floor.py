"""The word-statistics floor of a study: a Kneser-Ney trigram (lm/ngram.py) trained on a run's training
tokens, scored on its dev loss and on BLiMP exactly as the models are (the same tokens, chunks and rule).

    floor = ngram_floor(RunConfig.of(config))   # {"eval/loss": ..., "blimp/overall": ..., "blimp/field/...": ...}

A model that does not beat it has learned no more than which tokens follow which two tokens.
"""

from __future__ import annotations

import numpy as np

from babysweep.core import metrics as M
from babysweep.core.config import RunConfig
from babysweep.data import blimp_source, prepare
from babysweep.eval import blimp
from babysweep.eval.logprobs import encode_ids
from babysweep.lm.ngram import KneserNeyTrigram


def sentence_scores(lm: KneserNeyTrigram, tokenizer, sentences: list[str], rule: str) -> list[float]:
    """Each sentence's log-probability under `rule`: the scored tokens of encode_ids, each given the two before it."""
    out = []
    for seq, mask in encode_ids(tokenizer, sentences, rule):
        scored = [i + 1 for i, keep in enumerate(mask) if keep]
        if not scored:
            out.append(0.0)
            continue
        ids = np.asarray(seq, dtype=np.int64)
        pos = np.asarray(scored)
        a = np.where(pos >= 2, ids[np.maximum(pos - 2, 0)], 0)
        out.append(float(lm.logprobs(a, ids[pos - 1], ids[pos], pos >= 2, np.ones(len(pos), dtype=bool)).sum()))
    return out


def ngram_floor(config: RunConfig) -> dict[str, float]:
    """Dev loss (and tune loss, with data.tune_split) and BLiMP (eval.rule) of a trigram fitted on the training tokens."""
    data = prepare(config.data)
    lm = KneserNeyTrigram.fit(data.train, vocab_size=len(data.tokenizer))
    metrics = {M.EVAL_LOSS: lm.dev_loss(data.dev, config.data.seq_len)}
    if data.tune is not None:
        metrics[M.TUNE_LOSS] = lm.dev_loss(data.tune, config.data.seq_len)
    source = blimp_source(config.eval, config.data)
    if source is not None:
        pairs = blimp.load_pairs(source)
        sentences = list(dict.fromkeys(s for p in pairs for s in (p.good, p.bad)))
        score = dict(zip(sentences, sentence_scores(lm, data.tokenizer, sentences, config.eval.rule)))
        results = blimp.aggregate(pairs, [score[p.good] >= score[p.bad] for p in pairs], pooled_fields=config.eval.rule == "babylm")
        metrics.update(blimp.to_metrics(results))
    return metrics
