"""Training chunks that begin with <s> (data.chunk_bos), and runs and sweeps from before it that keep their chunks."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from babysweep.core.config import RunConfig
from babysweep.core.paths import LAYOUT_FILE, SPEC_FILE
from babysweep.data import prepare
from babysweep.data.batches import batches_per_epoch, chunk_rows, chunks_per_epoch, epoch_starts, train_batches
from babysweep.data.tokenizer import BOS_ID
from babysweep.train.trainer import train

from conftest import tiny_config

SEQ = 16


def _stream(n: int, seed: int = 0) -> np.ndarray:
    """Token ids 4..99 in lines of 1 to 12 tokens, each line after a <s>, as the token cache lays them out."""
    rng, out = np.random.default_rng(seed), []
    while len(out) < n:
        out += [BOS_ID, *rng.integers(4, 100, rng.integers(1, 13)).tolist()]
    return np.array(out[:n], dtype=np.uint16)


@pytest.mark.parametrize("seed,epoch,n", [(0, 0, 1000), (3, 5, 777), (1, 2, 2 * SEQ + 3)])
def test_every_chunk_begins_with_bos_and_reads_the_stream(seed, epoch, n):
    tokens = _stream(n, seed)
    starts = epoch_starts(n, SEQ, seed, epoch, BOS_ID)
    assert starts.size == chunks_per_epoch(n, SEQ, BOS_ID) > 0
    assert (starts + SEQ <= n).all()  # every chunk fits, whatever the offset
    steps = np.diff(np.sort(starts))
    assert (steps == SEQ - 1).all()  # consecutive chunks step by seq_len - 1: nothing skipped
    rows = chunk_rows(tokens, starts, SEQ, BOS_ID)
    assert rows.shape == (starts.size, SEQ) and (rows[:, 0] == BOS_ID).all()
    for row, s in zip(rows, starts):
        if tokens[s] == BOS_ID:  # a chunk that starts a line already has its <s>: no second one
            assert (row == tokens[s : s + SEQ]).all()
        else:
            assert (row[1:] == tokens[s : s + SEQ - 1]).all()
    if starts.size > 20:  # both kinds of chunk occur
        assert any(tokens[s] == BOS_ID for s in starts) and any(tokens[s] != BOS_ID for s in starts)
    batches = list(train_batches(tokens, SEQ, 8, seed, epoch, bos=BOS_ID))
    assert len(batches) == batches_per_epoch(n, SEQ, 8, BOS_ID)
    assert np.array_equal(np.concatenate([b.numpy() for _, b in batches]), rows)


def test_the_older_layout_is_unchanged():
    # Pinned from data/batches.py before data.chunk_bos existed: old runs resume on exactly these batches.
    tokens = (np.arange(5000) * 7919 % 997).astype(np.uint16)
    for (seq, batch, seed, epoch), (digest, count) in {(16, 4, 3, 2): ("f522dbb5fc23962a", 78), (128, 32, 0, 0): ("af6f210a709146d1", 2),
                                                       (9, 5, 1, 7): ("a226f32073476abf", 111)}.items():
        got = [b.numpy() for _, b in train_batches(tokens, seq, batch, seed, epoch)]
        assert len(got) == count
        assert hashlib.sha256(np.concatenate(got).tobytes()).hexdigest()[:16] == digest


def _epoch_rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_run_from_before_chunk_bos_resumes_on_its_old_chunks(tmp_path, cache_dir, capsys):
    config = tiny_config(cache_dir, eval={"blimp": "none", "dev_batches": 2})
    old = json.loads(json.dumps(config))
    old["data"]["chunk_bos"] = False
    train(old, tmp_path / "whole")  # two epochs, the old layout throughout

    class Stop(Exception):
        pass

    def stop_after_first_epoch(metrics, folder):
        raise Stop

    with pytest.raises(Stop):
        train(old, tmp_path / "cut", reporter=stop_after_first_epoch)
    for meta in (tmp_path / "cut" / "checkpoints").glob("step_*/meta.json"):  # as written before the key existed
        saved = json.loads(meta.read_text())
        del saved["config"]["data"]["chunk_bos"]
        meta.write_text(json.dumps(saved))
    train(config, tmp_path / "cut", resume=True)  # today's config: chunk_bos true by default
    assert "keep their old layout" in capsys.readouterr().err
    whole, cut = _epoch_rows(tmp_path / "whole"), _epoch_rows(tmp_path / "cut")
    # Checkpoints the resumed run writes say chunk_bos: false; one of those, resumed again with today's config
    # (true), is still followed: the first epoch's checkpoint as the resumed run would have written it.
    written = json.loads(max((tmp_path / "cut" / "checkpoints").glob("step_*/meta.json"), key=lambda p: p.stat().st_mtime).read_text())
    assert written["config"]["data"]["chunk_bos"] is False
    first_epoch = min((tmp_path / "cut" / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    meta = json.loads((first_epoch / "meta.json").read_text())
    meta["config"]["data"]["chunk_bos"] = False
    (first_epoch / "meta.json").write_text(json.dumps(meta))
    train(config, tmp_path / "again", resume=first_epoch)
    assert [r["train/loss"] for r in _epoch_rows(tmp_path / "again")] == pytest.approx([r["train/loss"] for r in whole], rel=1e-6)
    assert [r["train/loss"] for r in cut] == pytest.approx([r["train/loss"] for r in whole], rel=1e-6)
    assert [r["eval/loss"] for r in cut] == pytest.approx([r["eval/loss"] for r in whole], rel=1e-6)

    # A new run of the same config trains on other chunks (every one with <s> first): other losses.
    train(config, tmp_path / "new")
    assert _epoch_rows(tmp_path / "new")[-1]["train/loss"] != pytest.approx(whole[-1]["train/loss"], rel=1e-6)
    data = prepare(RunConfig.of(config).data)
    assert data.chunk_bos == BOS_ID and prepare(RunConfig.of(old).data).chunk_bos is None


def test_a_sweep_folder_from_before_chunk_bos_keeps_the_old_chunks_for_every_trial(tmp_path):
    from babysweep.spec.load import load_spec
    from babysweep.sweep.trial import TrialContext, trial_config

    spec_file = tmp_path / "s.yaml"
    spec_file.write_text("name: s\ntrain:\n  lr: {loguniform: [1.0e-4, 1.0e-2]}\nsearch: {samples: 2}\n")
    spec = load_spec(spec_file)
    folder = tmp_path / "sweeps" / "s"
    folder.mkdir(parents=True)
    assert trial_config(spec, {"train.lr": 1e-3}, TrialContext.of(spec, folder)).config.data.chunk_bos  # a new sweep
    (folder / SPEC_FILE).write_text(spec.text)  # started before: a spec, no layout file
    context = TrialContext.of(spec, folder)
    assert context.old_chunks and not trial_config(spec, {"train.lr": 1e-3}, context).config.data.chunk_bos
    (folder / LAYOUT_FILE).write_text(json.dumps({"chunk_bos": True}))
    assert trial_config(spec, {"train.lr": 1e-3}, TrialContext.of(spec, folder)).config.data.chunk_bos


def test_a_lost_layout_file_is_refused_when_trials_trained_the_new_chunks(tmp_path):
    from babysweep.core.errors import UserError
    from babysweep.spec.load import load_spec
    from babysweep.sweep.trial import TrialContext

    spec_file = tmp_path / "s.yaml"
    spec_file.write_text("name: s\nsearch: {samples: 1}\n")
    spec = load_spec(spec_file)
    folder = tmp_path / "sweeps" / "s"
    (folder / "models" / "t1").mkdir(parents=True)
    (folder / SPEC_FILE).write_text(spec.text)
    (folder / "models" / "t1" / "run.json").write_text(json.dumps({"config": {"data": {"seq_len": 64}}}))  # before the key
    assert TrialContext.of(spec, folder).old_chunks
    (folder / "models" / "t1" / "run.json").write_text(json.dumps({"config": {"data": {"chunk_bos": True}}}))
    with pytest.raises(UserError, match=r"data_layout.json is missing, yet .*run.json trained <s>-first chunks"):
        TrialContext.of(spec, folder)


def test_sweeps_made_inside_older_chunks_get_no_layout_file(tmp_path):
    from babysweep.spec.load import load_spec
    from babysweep.sweep.driver import _prepare_folder, older_chunks

    spec_file = tmp_path / "s.yaml"
    spec_file.write_text("name: s\nsearch: {samples: 1}\n")
    spec = load_spec(spec_file)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert not _prepare_folder(spec, tmp_path / "new", False, uri) and (tmp_path / "new" / LAYOUT_FILE).is_file()
    with older_chunks(True):
        _prepare_folder(spec, tmp_path / "old", False, uri)
    assert (tmp_path / "old" / SPEC_FILE).is_file() and not (tmp_path / "old" / LAYOUT_FILE).exists()


@pytest.mark.parametrize("saved,older", [(None, False), ({"done": {}, "settings": {}}, True),
                                         ({"done": {}, "settings": {}, "chunk_bos": True}, False),
                                         ({"done": {}, "settings": {}, "chunk_bos": False}, True)])
def test_a_study_started_before_chunk_bos_makes_its_later_sweeps_with_the_older_chunks(tmp_path, monkeypatch, saved, older):
    from babysweep.studies import study as study_module
    from babysweep.sweep import driver

    monkeypatch.setenv("BABYSWEEP_PROJECT", str(tmp_path))
    (tmp_path / "a.yaml").write_text("name: a\n")
    (tmp_path / "st.yaml").write_text("name: st\nsweeps: [a.yaml]\n")
    if saved is not None:
        (tmp_path / "sweeps").mkdir()
        (tmp_path / "sweeps" / "st.study.json").write_text(json.dumps(saved))
    seen = {}

    def fake_run_study(study, **kwargs):
        seen.update(older=driver._OLDER_CHUNKS.get(), chunk_bos=kwargs["chunk_bos"])

    monkeypatch.setattr(study_module, "_run_study", fake_run_study)
    lines = []
    study_module.run_study(study_module.load_study(tmp_path / "st.yaml"), storage=tmp_path / "sweeps", say=lines.append)
    assert seen == {"older": older, "chunk_bos": not older}
    assert any("started before data.chunk_bos" in line for line in lines) == older
    assert not driver._OLDER_CHUNKS.get()  # only inside the study


def test_a_damaged_layout_record_in_a_study_progress_file_is_refused(tmp_path, monkeypatch):
    from babysweep.core.errors import UserError
    from babysweep.studies import study as study_module

    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "st.study.json").write_text(json.dumps({"done": {}, "chunk_bos": "yes"}))
    with pytest.raises(UserError, match="progress file is damaged"):
        study_module._load_state(tmp_path / "sweeps" / "st.study.json")


@pytest.mark.parametrize("source_has_layout,outer,older", [(True, False, False), (False, False, True), (True, True, True)])
def test_finalists_of_a_sweep_from_before_chunk_bos_train_on_its_older_chunks(tmp_path, monkeypatch, source_has_layout,
                                                                               outer, older):
    import types

    from babysweep.studies import finalists
    from babysweep.sweep import driver

    source = tmp_path / "sweeps" / "tutors"
    source.mkdir(parents=True)
    (source / SPEC_FILE).write_text("name: tutors\n")
    if source_has_layout:
        (source / LAYOUT_FILE).write_text(json.dumps({"chunk_bos": True}))
    seen = []
    monkeypatch.setattr(finalists, "finalist_spec", lambda *a, **k: types.SimpleNamespace(name="tutors.final", teachers_from_sweep=None))
    monkeypatch.setattr(driver, "run_sweep", lambda spec, **k: seen.append(driver._OLDER_CHUNKS.get()))
    with driver.older_chunks(outer):  # a study started before data.chunk_bos holds its layout over the source's
        finalists.run_finalists("tutors", 2, storage=tmp_path / "sweeps", tracking_uri=f"sqlite:///{tmp_path}/m.db", live=False)
    assert seen == [older]
