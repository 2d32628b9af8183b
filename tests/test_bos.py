"""<s> first: new tokenizers read text as training reads each line, old folders and caches keep working."""

from __future__ import annotations

import pytest

from babysweep.eval import blimp, logprobs
from babysweep.eval.blimp import Pair
from babysweep.core.config import RunConfig
from babysweep.data import prepare
from babysweep.data.tokenizer import BOS_ID, fingerprint, load_tokenizer, reads_bos, train_tokenizer, with_bos
from babysweep.lm.models import load_model
from babysweep.train.trainer import train

from conftest import tiny_config

LINES = ["The cat sees a dog.", "A dog runs.", "Who saw the cat?"] * 30


def test_with_bos_adds_s_first_and_keeps_the_fingerprint(tmp_path):
    old = train_tokenizer(LINES, vocab_size=300, min_frequency=1)
    new = with_bos(old)
    plain = old("The cat runs.")["input_ids"]
    assert new("The cat runs.")["input_ids"] == [BOS_ID] + plain
    assert new("The cat runs.", add_special_tokens=False)["input_ids"] == plain
    assert not reads_bos(old) and reads_bos(new)
    assert fingerprint(old) == fingerprint(new)
    new.save_pretrained(tmp_path / "new")
    old.save_pretrained(tmp_path / "old")
    assert reads_bos(load_tokenizer(tmp_path / "new")) and not reads_bos(load_tokenizer(tmp_path / "old"))


def test_prepare_gives_a_bos_tokenizer_and_leaves_the_cache_as_it_was(cache_dir):
    cfg = RunConfig.of(tiny_config(cache_dir)).data
    prepared = prepare(cfg)
    assert reads_bos(prepared.tokenizer)
    stored = load_tokenizer(prepared.tokenizer_dir)  # the cache entry: as every earlier version wrote it
    assert not reads_bos(stored) and fingerprint(stored) == fingerprint(prepared.tokenizer)
    assert prepared.train[0] == BOS_ID  # training reads <s> before each line, as before


def test_new_folders_score_every_word_old_ones_are_marked(tmp_path, cache_dir):
    train(tiny_config(cache_dir, eval={"blimp": "none"}, train={"epochs": 1}), tmp_path / "run")
    model, tok = load_model(tmp_path / "run" / "final")
    assert reads_bos(tok)
    pairs = [Pair("The cat sees a dog.", "The cat see a dog.", "p", "f", "", "p/1"),
             Pair("Who saw the cat?", "Cat the saw who?", "p", "f", "", "p/2")]
    new = blimp.evaluate(model, tok, pairs)
    (tmp_path / "old").mkdir()
    old_tok = load_tokenizer(tmp_path / "run" / "final")
    old_tok._tokenizer.post_processor = None  # a folder saved before with_bos: no template
    old = blimp.evaluate(model, old_tok, pairs)
    assert new["first_word_scored"] and not old["first_word_scored"]
    assert blimp.method(new) == "causal scorer, babylm rule, <s> read first"
    assert blimp.method(old) == blimp.method({"scorer": "causal", "rule": "babylm"}) == "causal scorer, babylm rule"
    # new: the whole sentence after <s> is scored, exactly lm-eval's reading without its leading space
    (ids, scored), = logprobs.encode(model, tok, ["The cat sees a dog."])
    assert ids[0] == BOS_ID and len(scored) == len(ids) - 1 and all(scored)
    with pytest.raises(Exception):
        blimp.check_comparable({"new": blimp.method(new), "old": blimp.method(old)})
