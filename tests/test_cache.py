import os

import numpy as np

from babysweep.core.config import RunConfig
from babysweep.data import prepare
from babysweep.data.batches import batches_per_epoch, dev_batches, epoch_starts, train_batches
from babysweep.data.tokenizer import BOS_ID, MASK_ID, PAD_ID, load_tokenizer, train_tokenizer

LINES = ["the cat sees the dog .", "the dogs see a cat .", "where is the ball ?", "she likes herself ."] * 50


def _corpus(tmp_path, text="\n".join(LINES)):
    folder = tmp_path / "corpus"
    folder.mkdir(exist_ok=True)
    (folder / "a.train").write_text(text)
    (folder / "a.dev").write_text("the cat sees a ball .\n" * 20)
    return folder


def _cfg(tmp_path, folder):
    return RunConfig.of({"data": {"train": str(folder / "a.train"), "dev": str(folder / "a.dev"), "cache_dir": str(tmp_path / "cache"),
                             "tokenizer": {"vocab_size": 300, "min_frequency": 1}}}).data


def test_tokenizer_round_trip_and_specials(tmp_path):
    tok = train_tokenizer(LINES, vocab_size=300, min_frequency=1)
    assert [tok.pad_token_id, tok.bos_token_id, tok.mask_token_id] == [PAD_ID, BOS_ID, MASK_ID]
    text = "The CAT, über-naïve, sees 42 dogs!"  # unseen characters still encode (byte-level)
    assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text
    tok.save_pretrained(tmp_path / "tok")
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    again = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert isinstance(again, PreTrainedTokenizerFast)
    assert again(text, add_special_tokens=False).input_ids == tok(text, add_special_tokens=False).input_ids
    assert load_tokenizer(tmp_path / "tok")(text).input_ids == tok(text).input_ids


def test_cache_hit_encodes_lines_with_bos(tmp_path):
    folder = _corpus(tmp_path)
    cfg = _cfg(tmp_path, folder)
    first = prepare(cfg)
    assert first.train[0] == BOS_ID and (np.asarray(first.train) == BOS_ID).sum() == len(LINES)
    expected = [BOS_ID, *first.tokenizer(LINES[0], add_special_tokens=False).input_ids]
    assert list(first.train[: len(expected)]) == expected
    bin_file = first.train.filename
    mtime = os.stat(bin_file).st_mtime_ns
    second = prepare(cfg)
    assert str(second.train.filename) == str(bin_file) and os.stat(bin_file).st_mtime_ns == mtime  # not rebuilt
    assert isinstance(second.train, np.memmap)
    np.testing.assert_array_equal(first.train, second.train)


def test_cache_invalidated_when_a_file_changes(tmp_path):
    folder = _corpus(tmp_path)
    cfg = _cfg(tmp_path, folder)
    before = prepare(cfg)
    (folder / "a.train").write_text("\n".join(LINES + ["a brand new line ."]))
    after = prepare(cfg)
    assert after.tokenizer_dir != before.tokenizer_dir
    assert len(after.train) > len(before.train)


def test_half_written_cache_is_rebuilt(tmp_path):
    folder = _corpus(tmp_path)
    cfg = _cfg(tmp_path, folder)
    good = np.array(prepare(cfg).train)
    bin_file = prepare(cfg).train.filename
    with open(bin_file, "r+b") as handle:  # a crash mid-write: the file is shorter than its metadata says
        handle.truncate(10)
    np.testing.assert_array_equal(prepare(cfg).train, good)
    os.remove(str(bin_file).replace(".bin", ".json"))  # metadata never written
    np.testing.assert_array_equal(prepare(cfg).train, good)
    # a temporary folder left by a killed tokenizer build is never taken for an entry
    (tmp_path / "cache" / ".tmp-dead").mkdir()
    assert prepare(cfg).tokenizer_dir.name.startswith("tok-")


def test_epoch_batches_are_seeded_and_cover_chunks():
    tokens = np.arange(1000)
    starts0, starts0b, starts1 = epoch_starts(1000, 32, 0, 0), epoch_starts(1000, 32, 0, 0), epoch_starts(1000, 32, 0, 1)
    np.testing.assert_array_equal(starts0, starts0b)
    assert not np.array_equal(np.sort(starts0), np.sort(starts1)) or not np.array_equal(starts0, starts1)
    offsets = {int(epoch_starts(1000, 32, 0, e).min() % 32) for e in range(8)}
    assert len(offsets) > 1  # a fresh offset per epoch
    batches = list(train_batches(tokens, 32, 8, seed=0, epoch=2))
    assert len(batches) == batches_per_epoch(1000, 32, 8)
    rows = np.concatenate([b.numpy() for _, b in batches])
    assert all(np.array_equal(row, np.arange(row[0], row[0] + 32)) for row in rows)  # contiguous chunks
    assert len({int(r[0]) for r in rows}) == len(rows)  # no chunk twice
    resumed = list(train_batches(tokens, 32, 8, seed=0, epoch=2, start_batch=3))
    assert [i for i, _ in resumed] == [i for i, _ in batches][3:]
    assert all(np.array_equal(a.numpy(), b.numpy()) for (_, a), (_, b) in zip(resumed, batches[3:]))
    dev = list(dev_batches(tokens, 32, 8))
    assert dev[0][0, 0] == 0 and list(dev_batches(tokens, 32, 8, limit=2))[1].shape == (8, 32)


def _line_ids(tokens) -> set[tuple]:
    """The token lines of an encoded split (each line starts with <s>)."""
    out, current = set(), []
    for t in list(np.asarray(tokens)) + [BOS_ID]:
        if t == BOS_ID and current:
            out.add(tuple(current))
            current = []
        current.append(int(t))
    return out


def test_tune_split_holds_out_lines_that_train_never_sees(tmp_path):
    distinct = [f"line number {i} says {w} ." for i, w in enumerate(["hello", "bye", "cat", "dog"] * 100)]
    folder = _corpus(tmp_path, "\n".join(distinct + distinct[:40]))  # 40 lines twice: duplicates fall on one side
    cfg = _cfg(tmp_path, folder).model_copy(update={"tune_split": 0.2, "tune_seed": 3})
    data = prepare(cfg)
    assert data.tune is not None and prepare(_cfg(tmp_path, folder)).tune is None
    train_lines, tune_lines = _line_ids(data.train), _line_ids(data.tune)
    assert not train_lines & tune_lines
    full = _line_ids(prepare(_cfg(tmp_path, folder)).train)
    assert train_lines | tune_lines == full
    assert 0.12 < len(tune_lines) / len(full) < 0.28  # about the fraction asked for
    again = prepare(cfg)  # seeded: the same split from the cache, and the same when rebuilt elsewhere
    assert np.array_equal(again.tune, data.tune)
    other = prepare(cfg.model_copy(update={"tune_seed": 4}))
    assert not np.array_equal(other.tune, data.tune)


def test_tune_loss_needs_a_tune_split(tmp_path):
    import pytest

    from babysweep.core.errors import UserError
    from babysweep.spec.load import spec_from_text

    with pytest.raises(UserError, match="search.metric.*data.tune_split"):
        spec_from_text("name: x\nsearch: {metric: tune/loss}\n", "x.yaml")
    spec_from_text("name: x\ndata: {tune_split: 0.1}\nsearch: {metric: tune/loss}\n", "x.yaml")
