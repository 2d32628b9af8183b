"""The word-statistics floor: an interpolated Kneser-Ney trigram over token ids."""

import math

import numpy as np
import pytest

from babysweep.lm.ngram import EPS, KneserNeyTrigram


def _all_next(lm: KneserNeyTrigram, a: int, b: int, has_a=True, has_b=True) -> np.ndarray:
    c = np.arange(lm.vocab)
    return np.exp(lm.logprobs(np.full(lm.vocab, a), np.full(lm.vocab, b), c,
                              np.full(lm.vocab, has_a), np.full(lm.vocab, has_b)))


def test_every_context_gives_a_distribution():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 12, size=3000)
    lm = KneserNeyTrigram.fit(tokens, vocab_size=20)  # 8 tokens never seen
    for a, b in ((1, 2), (3, 3), (15, 16), (0, 19)):  # seen and unseen contexts
        assert _all_next(lm, a, b).sum() == pytest.approx(1.0, abs=1e-9)
    assert _all_next(lm, 0, 5, has_a=False).sum() == pytest.approx(1.0, abs=1e-9)
    assert _all_next(lm, 0, 0, has_a=False, has_b=False).sum() == pytest.approx(1.0, abs=1e-9)
    assert (_all_next(lm, 1, 2) > 0).all()


def test_a_hand_computed_trigram_probability():
    # 0 1 2 0 1 3 0 1 2: trigrams 012 (x2), 120, 201, 013, 130, 301
    lm = KneserNeyTrigram.fit([0, 1, 2, 0, 1, 3, 0, 1, 2], vocab_size=4)
    d3 = 5 / (5 + 2 * 1)  # five trigram types seen once, one twice
    # continuation bigrams (.bc): 12 {0} , 20 {1}, 01 {2,3}, 13 {0}, 30 {1}: counts 1,1,2,1,1
    d2 = 4 / (4 + 2 * 1)
    cont = np.array([2, 1, 1, 1], dtype=float)  # N1+(.c): c=0 after 2,3; c=1 after 0; c=2 after 1; c=3 after 1
    p1 = (1 - EPS) * cont / cont.sum() + EPS / 4
    # p2(1 | 0): N1+(.01) = 2, N1+(.0.) = 2 (01 only), N1+(0.) = 1
    first = (2 - d2) / 2 + d2 * 1 / 2 * p1[1]
    # p2(2 | 1): N1+(.12) = 1, N1+(.1.) = 2 (12 and 13), N1+(1.) = 2
    p2 = (1 - d2) / 2 + d2 * 2 / 2 * p1[2]
    # p3(2 | 0 1): c(012) = 2, c(01.) = 3, N1+(01.) = 2
    p3 = (2 - d3) / 3 + d3 * 2 / 3 * p2
    assert lm.sequence_logprob([0, 1, 2]) == pytest.approx(math.log(first) + math.log(p3))


def test_dev_loss_reads_chunks_like_the_trainer_and_beats_uniform_on_patterned_text():
    pattern = np.tile([0, 1, 2, 3, 4, 5, 6, 7], 200)
    lm = KneserNeyTrigram.fit(pattern, vocab_size=50)
    loss = lm.dev_loss(pattern[:640], seq_len=32)
    assert loss < 0.2 < math.log(50)
    first_two = lm.dev_loss(np.array([0, 1] * 16), seq_len=2)  # one prediction per chunk, from one token only
    assert first_two == pytest.approx(-lm.sequence_logprob([0, 1]))
    with pytest.raises(ValueError, match="fewer than 64"):
        lm.dev_loss(pattern[:10], seq_len=64)


def test_the_floor_scores_a_run_like_its_models(cache_dir):
    from babysweep.core import metrics as M
    from babysweep.core.config import RunConfig
    from babysweep.data import prepare
    from babysweep.eval.ngram_floor import ngram_floor, sentence_scores
    from conftest import tiny_config

    config = RunConfig.of(tiny_config(cache_dir))
    floor = ngram_floor(config)
    assert 0 < floor[M.EVAL_LOSS] < math.log(config.data.tokenizer.vocab_size)
    assert 0.0 <= floor[M.BLIMP_OVERALL] <= 1.0 and any(k.startswith(M.BLIMP_FIELD_PREFIX) for k in floor)
    data = prepare(config.data)
    lm = KneserNeyTrigram.fit(data.train, vocab_size=len(data.tokenizer))
    sentence = "the dog sees a ball ."
    ids = data.tokenizer(sentence).input_ids  # the babylm rule: the tokenizer's own encoding, first token context
    assert sentence_scores(lm, data.tokenizer, [sentence], "babylm") == [pytest.approx(lm.sequence_logprob(ids))]
