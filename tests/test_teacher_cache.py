"""The teacher-output cache: same loss and gradient as on the fly, one build, never a half-written read."""

import math
import threading

import numpy as np
import pytest
import torch

from babysweep.lm import objectives

from babysweep.train import teacher_cache
from babysweep.train import teacher_cache_files as files
from babysweep.core.config import RunConfig, resolve
from babysweep.data import prepare
from babysweep.data.batches import train_batches
from babysweep.lm.models import build_model, save_model
from babysweep.train.trainer import batch_loss, setup

from conftest import tiny_config

ALPHA, T = 0.3, 2.0


@pytest.fixture(scope="module")
def teacher_dirs(tmp_path_factory):
    """Two untrained teachers (LLaMA, GPT-2) whose final norm is scaled so that logits reach |z| ~ 10,
    as trained models' do: float16's rounding then matters, and the bounds below are not vacuous."""
    cache = tmp_path_factory.mktemp("tc-cache")
    cfg = RunConfig.of(tiny_config(cache))
    data = prepare(cfg.data)
    folders = []
    for i, arch in enumerate(("llama", "gpt2")):
        torch.manual_seed(i)
        model = build_model(cfg.model.model_copy(update={"arch": arch}), vocab_size=len(data.tokenizer), seq_len=32)
        norm = model.model.norm if arch == "llama" else model.transformer.ln_f
        with torch.no_grad():
            norm.weight.mul_(40.0)
        folders.append(str(save_model(model, data.tokenizer, tmp_path_factory.mktemp(f"teacher{i}"))))
    return cache, folders


def _run(tmp_path, teacher_dirs, cache="exact", ensemble="logits", kd_reduction="token"):
    cache_dir, dirs = teacher_dirs
    config = tiny_config(cache_dir, eval={"blimp": "none"}, train={"epochs": 1},
                         distill={"teachers": dirs, "alpha": ALPHA, "temperature": T, "ensemble": ensemble,
                                  "cache": cache, "kd_reduction": kd_reduction})
    return setup(config, tmp_path / f"run-{cache}-{ensemble}")


def _last_batch(run):
    cfg = run.cfg
    *_, (index, batch) = train_batches(run.data.train, cfg.data.seq_len, cfg.train.batch_size, cfg.train.seed, 0,
                                       bos=run.data.chunk_bos)
    return index, batch


def _loss_and_grad(z, batch, teachers, ensemble, kd_reduction="token"):
    z = z.detach().clone().requires_grad_(True)
    loss = objectives.distillation_loss(z, batch, teachers, ALPHA, T, ensemble=ensemble, kd_reduction=kd_reduction).total
    loss.backward()
    return float(loss.detach()), z.grad


@pytest.mark.parametrize("ensemble", ["logits", "probs"])
def test_exact_cache_matches_on_the_fly_to_float16_rounding(tmp_path, teacher_dirs, ensemble):
    run = _run(tmp_path, teacher_dirs, "exact", ensemble)
    assert run.cache_plan.mode == "exact" and run.teacher_cache is not None
    index, batch = _last_batch(run)  # the last, short batch: rows must line up at the end of the epoch too
    assert index > 0 and batch.size(0) < run.cfg.train.batch_size
    with torch.no_grad():
        fresh = [t(input_ids=batch).logits.float() for t in run.teachers]
        z = run.model(input_ids=batch).logits
    stored = run.teacher_cache.read(0, index, run.cfg.train.batch_size, batch.size(0))
    assert all(s.dtype == torch.float16 for s in stored)
    loss_fly, grad_fly = _loss_and_grad(z, batch, fresh, ensemble)
    loss_cached, grad_cached = _loss_and_grad(z, batch, stored, ensemble)

    # Bound: stored logits differ from float32's by at most eps (after / T); so each teacher log-prob moves
    # by at most 2 eps and p' lies within p * e^(+-2 eps). Per row, |dKL| <= (e^(2 eps) - 1) * E_p|log p - log q|
    # + 2 eps, and the loss moves by at most the mean of that over the KD rows; per element,
    # |d grad| <= b * p * (e^(2 eps) - 1) with b = (1 - alpha) T / n_tokens.
    reference = fresh if ensemble == "probs" else [sum(fresh) / len(fresh)]
    eps = max(float((r - s.float()).abs().max()) for r, s in zip(reference, stored)) / T
    assert 0 < eps < 0.01  # float16 did round, and by about 2^-11 relative
    vocab = z.size(-1)
    p = torch.stack([torch.softmax(r.reshape(-1, vocab) / T, -1) for r in reference]).mean(0)  # the ensemble's
    log_q = torch.log_softmax(z.reshape(-1, vocab).float() / T, -1)
    # The KD term averages its rows (every position but each sequence's last), so the bound averages too.
    rows = (p * (p.log() - log_q).abs()).sum(1).reshape(batch.shape)[:, :-1]
    spread = float(rows.mean())
    growth = math.expm1(2 * eps)
    loss_bound = (1 - ALPHA) * T**2 * (growth * spread + 2 * eps)
    assert abs(loss_cached - loss_fly) <= loss_bound + 1e-6
    assert loss_bound < 0.02 * loss_fly  # the bound itself is tight enough to mean something
    n_tokens = batch.size(0) * (batch.size(1) - 1)
    grad_bound = (1 - ALPHA) * T / n_tokens * growth * p.reshape(grad_fly.shape) + 1e-7
    assert bool(((grad_cached - grad_fly).abs() <= grad_bound).all())

    # The trainer's path: the same batch, through batch_loss, with and without the cache.
    fly = _run(tmp_path, teacher_dirs, "none", ensemble)
    assert fly.teacher_cache is None and fly.cache_plan.mode == "none"
    fly.model.load_state_dict(run.model.state_dict())
    with torch.no_grad():
        a, b = float(batch_loss(run, batch, "clm", 0, index)), float(batch_loss(fly, batch, "clm", 0, index))
    assert abs(a - b) <= loss_bound + 1e-6


def test_topk_with_full_vocabulary_equals_exact(tmp_path, teacher_dirs):
    exact = _run(tmp_path, teacher_dirs, "exact")
    vocab = exact.teachers[0].config.vocab_size
    topk = _run(tmp_path, teacher_dirs, f"topk:{vocab}")
    assert topk.cache_plan.mode == "topk" and topk.cache_plan.k == vocab
    index, batch = _last_batch(exact)
    with torch.no_grad():
        z = exact.model(input_ids=batch).logits
    size = exact.cfg.train.batch_size
    for reduction in ("token", "babyllama"):
        loss_e, grad_e = _loss_and_grad(z, batch, exact.teacher_cache.read(0, index, size, batch.size(0)), "logits", reduction)
        zk = z.detach().clone().requires_grad_(True)
        values, indices, tail = topk.teacher_cache.read(0, index, size, batch.size(0))
        assert bool(torch.isneginf(tail).all())  # K = V: no tail
        loss_k = objectives.topk_distillation_loss(zk, batch, values, indices, tail, ALPHA, T, kd_reduction=reduction).total
        loss_k.backward()
        assert float(loss_k.detach()) == pytest.approx(loss_e, rel=1e-5)
        torch.testing.assert_close(zk.grad, grad_e, rtol=1e-4, atol=1e-8)


def test_topk_tail_bucket_is_exact_at_temperature_one():
    torch.manual_seed(0)
    teacher, z = torch.randn(2, 4, 50) * 3, torch.randn(2, 4, 50)
    ids = torch.randint(0, 50, (2, 4))
    values, indices = teacher.topk(8, -1)
    tail = teacher.scatter(-1, indices, float("-inf")).logsumexp(-1)
    loss = objectives.topk_distillation_loss(z, ids, values, indices, tail, 0.0, 1.0)
    # The K+1-bucket KL, computed directly from full distributions.
    p, q = torch.softmax(teacher, -1), torch.softmax(z, -1)
    pk, qk = p.gather(-1, indices), q.gather(-1, indices)
    pb = torch.cat([pk, 1 - pk.sum(-1, keepdim=True)], -1)
    qb = torch.cat([qk, 1 - qk.sum(-1, keepdim=True)], -1)
    kl = (pb * (pb.log() - qb.log())).sum(-1)[:, :-1].mean()  # token reduction: the last position has no target
    assert float(loss.kd) == pytest.approx(float(kl), rel=1e-4)
    full = (p * (p.log() - q.log())).sum(-1)[:, :-1].mean()
    assert float(loss.kd) <= float(full) + 1e-6  # a coarse-grained KL never exceeds the full one


def _built_entry(tmp_path, teacher_dirs):
    """A built exact-cache entry of epoch 0: the run, its logits as read, its folder and its meta.json."""
    import json

    run = _run(tmp_path, teacher_dirs, "exact")
    cache = _fresh_cache(run, tmp_path / "root")
    entry = tmp_path / "root" / cache.key(0)
    return run, np.array(cache.open(0)["logits"]), entry, json.loads((entry / files.META).read_text())


def _fresh_cache(run, root, shard_rows=400):
    plan, cfg = run.cache_plan, run.cfg
    return teacher_cache.TeacherCache(plan, root, run.teachers, cfg.distill.teachers, run.data.train, "test-tokens",
                                      cfg.data.seq_len, cfg.train.seed, cfg.distill.ensemble, run.dev,
                                      run.teachers[0].config.vocab_size, 1e12, [0], shard_rows=shard_rows)


def _count_shards(monkeypatch):
    built = []
    real = teacher_cache.TeacherCache._build_shard

    def counting(self, entry, layout, starts, shard):
        built.append(shard)
        return real(self, entry, layout, starts, shard)

    monkeypatch.setattr(teacher_cache.TeacherCache, "_build_shard", counting)
    return built


def test_concurrent_builders_build_each_shard_once(tmp_path, teacher_dirs, monkeypatch):
    run = _run(tmp_path, teacher_dirs, "exact")
    built = _count_shards(monkeypatch)
    caches = [_fresh_cache(run, tmp_path / "root") for _ in range(2)]
    results, errors = [None, None], []

    def build(i):
        try:
            results[i] = caches[i].open(0)["logits"]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    n_shards = math.ceil(caches[0].chunks / 400)
    assert sorted(built) == list(range(n_shards))  # every shard once, whoever built it
    assert np.array_equal(results[0], results[1])
    assert files.usage(tmp_path / "root")[1] == 1


def test_interrupted_build_is_never_read_and_resumes(tmp_path, teacher_dirs, monkeypatch):
    run = _run(tmp_path, teacher_dirs, "exact")
    root = tmp_path / "root"
    calls = []
    real = teacher_cache.TeacherCache._build_shard

    def dies_on_second(self, entry, layout, starts, shard):
        calls.append(shard)
        if len(calls) == 2:
            raise KeyboardInterrupt  # a kill half way through the build
        return real(self, entry, layout, starts, shard)

    monkeypatch.setattr(teacher_cache.TeacherCache, "_build_shard", dies_on_second)
    cache = _fresh_cache(run, root)
    entry = root / cache.key(0)
    with pytest.raises(KeyboardInterrupt):
        cache.open(0)
    assert files.complete_meta(entry) is None and not (entry / "logits.bin").exists()  # nothing a reader would open

    monkeypatch.setattr(teacher_cache.TeacherCache, "_build_shard", real)
    built = _count_shards(monkeypatch)
    resumed = np.array(cache.open(0)["logits"])
    n_shards = math.ceil(cache.chunks / 400)
    assert sorted(built) == list(range(1, n_shards))  # shard 0 was done: kept, not rebuilt
    fresh = _fresh_cache(run, tmp_path / "other").open(0)["logits"]
    assert np.array_equal(resumed, fresh)

    # A complete-looking entry whose file is short (a disk that filled up) is rebuilt, never read.
    with open(entry / "logits.bin", "r+b") as handle:
        handle.truncate(100)
    assert files.complete_meta(entry) is None
    assert np.array_equal(np.array(cache.open(0)["logits"]), fresh)


def test_a_marker_that_does_not_describe_the_run_is_rebuilt_not_read(tmp_path, teacher_dirs, capsys):
    # Issue 26: a damaged meta.json whose arrays still sum to the file's size (another shape, another
    # epoch, another run's key) was read as this run's outputs: silently wrong numbers.
    import json

    run, fresh, entry, meta = _built_entry(tmp_path, teacher_dirs)
    shape = meta["arrays"]["logits"]["shape"]
    for damage in ({"arrays": {"logits": {**meta["arrays"]["logits"], "shape": [shape[0], shape[1], shape[3], shape[2]]}}},
                   {"epoch": 1}, {"key": {**meta["key"], "seed": 12345}}):
        (entry / files.META).write_text(json.dumps({**meta, **damage}))
        assert files.complete_meta(entry) is not None  # sizes alone say complete
        reopened = _fresh_cache(run, tmp_path / "root").open(0)["logits"]
        assert np.array_equal(np.array(reopened), fresh)
        assert "does not describe this run's teacher outputs" in capsys.readouterr().err


def test_changed_teacher_weights_change_the_key(tmp_path, teacher_dirs):
    run = _run(tmp_path, teacher_dirs, "exact")
    before = _fresh_cache(run, tmp_path / "root").key(0)
    assert _fresh_cache(run, tmp_path / "root").key(1) != before  # another epoch, other chunks
    from babysweep.lm.models import load_model

    folder = tmp_path / "changed"
    model, tok = load_model(run.cfg.distill.teachers[0])
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    save_model(model, tok, folder)
    run.cfg.distill.teachers = [str(folder), run.cfg.distill.teachers[1]]
    assert _fresh_cache(run, tmp_path / "root").key(0) != before


def test_auto_picks_exact_within_the_budget_else_on_the_fly():
    kcfg = RunConfig.of({"distill": {"teachers": ["a", "b"], "cache_budget_gb": 8}}).distill
    assert kcfg.cache == "auto" and RunConfig().distill.cache_budget_gb is None  # default: from the free disk
    small = teacher_cache.plan(kcfg, chunks=1000, seq_len=64, vocab=2000, n_teachers=2, clm_epochs=4)
    assert small.mode == "exact" and small.estimate_bytes == 4 * 1000 * 64 * 2000 * 2
    big = teacher_cache.plan(kcfg, chunks=80_000, seq_len=128, vocab=16_000, n_teachers=2, clm_epochs=6)
    assert big.mode == "none" and "exceeds" in big.reason
    probs = teacher_cache.plan(kcfg.model_copy(update={"ensemble": "probs"}), chunks=1000, seq_len=64, vocab=2000, n_teachers=2, clm_epochs=4)
    assert probs.estimate_bytes == 2 * small.estimate_bytes  # each teacher's logits
    topk = teacher_cache.plan(kcfg.model_copy(update={"cache": "topk:64"}), chunks=80_000, seq_len=128, vocab=16_000, n_teachers=2, clm_epochs=6)
    assert topk.mode == "topk" and topk.estimate_bytes == 6 * 80_000 * 128 * (64 * 4 + 4)
    for bad in ("topk", "topk:0", "fast"):
        with pytest.raises(ValueError, match="cache"):
            resolve({"distill": {"cache": bad}})


def test_the_default_budget_is_a_share_of_the_free_disk_leaving_a_few_gb(tmp_path, monkeypatch):
    from babysweep.train import disk
    root = tmp_path / "cache" / "teachers"
    gb = 1e9
    for free, budget in ((40 * gb, 10 * gb), (8 * gb, 2 * gb), (6 * gb, 1 * gb), (4 * gb, 0.0)):
        monkeypatch.setattr(disk, "free_bytes", lambda path, free=free: free)
        assert disk.cache_budget(None, root)[0] == pytest.approx(budget)
    monkeypatch.setattr(disk, "free_bytes", lambda path: 4 * gb)
    held = root / "entry"
    held.mkdir(parents=True)
    (held / "a.bin").write_bytes(b"\0" * 1000)  # what the cache holds counts as usable: eviction frees it
    assert disk.cache_budget(None, root)[0] == 0.0
    assert disk.cache_budget(3.0, root) == (3 * gb, "distill.cache_budget_gb 3")
    # auto on a nearly full disk distils on the fly, and says why
    kcfg = RunConfig.of({"distill": {"teachers": ["a", "b"]}}).distill
    chosen = teacher_cache.plan(kcfg, chunks=1000, seq_len=64, vocab=2000, n_teachers=2, clm_epochs=4, root=root)
    assert chosen.mode == "none" and "leaving at least 5 GB free" in chosen.reason
    monkeypatch.setattr(disk, "free_bytes", lambda path: 100 * gb)
    chosen = teacher_cache.plan(kcfg, chunks=1000, seq_len=64, vocab=2000, n_teachers=2, clm_epochs=4, root=root)
    assert chosen.mode == "exact" and "fits the cache budget 25.00 GB (25% of the 100.00 GB it could use" in chosen.reason


def test_cache_show_and_clear_commands(tmp_path, teacher_dirs, monkeypatch, capsys):
    from babysweep.cli import main

    run = _run(tmp_path, teacher_dirs, "exact")
    root = files.cache_root(tmp_path / "sweeps" / ".cache")
    _fresh_cache(run, root).open(0)
    size = files.usage(root)[0]
    assert size > 0

    def cli(*args):
        monkeypatch.setattr("sys.argv", ["babysweep", *args])
        with pytest.raises(SystemExit) as ended:
            main()
        assert ended.value.code == 0
        return capsys.readouterr().out

    assert "1 complete epoch entries" in cli("cache", "show", "--storage", str(tmp_path / "sweeps"))
    assert f"freed {files.human(size)}" in cli("cache", "clear", "--storage", str(tmp_path / "sweeps"))
    assert files.usage(root) == (0, 0)


def test_a_full_disk_stops_the_build_with_one_sentence(tmp_path, teacher_dirs, monkeypatch):
    """The entry's blocks are reserved before any write through the memory map: a full disk is a
    sentence naming the cache (the trial's storage error), never a SIGBUS half way through a shard."""
    import errno
    import os

    from babysweep.core.storage_errors import StorageError

    run = _run(tmp_path, teacher_dirs, "exact")
    cache = _fresh_cache(run, tmp_path / "root")

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(StorageError, match=r"could not write the teacher cache .* the disk is full"):
        cache.open(0)
    assert files.complete_meta(tmp_path / "root" / cache.key(0)) is None
    monkeypatch.undo()
    assert cache.open(0)["logits"].shape[1] == cache.chunks  # space freed: the same call builds it


def test_a_damaged_shard_is_found_by_its_checksum_and_rebuilt(tmp_path, teacher_dirs, capsys, monkeypatch):
    # Issue 26: garbage written over a complete entry (same size, a marker that still describes the run) was
    # read as teacher outputs. Each shard's CRC-32 is checked on the first open in a process.
    run = _run(tmp_path, teacher_dirs, "exact")
    cache = _fresh_cache(run, tmp_path / "root", shard_rows=50)
    fresh = np.array(cache.open(0)["logits"])
    entry = tmp_path / "root" / cache.key(0)
    n_shards = math.ceil(cache.chunks / 50)
    assert n_shards >= 3
    size = (entry / "logits.bin").stat().st_size
    with open(entry / "logits.bin", "r+b") as handle:  # a page of garbage inside a middle shard
        handle.seek(size // 2)
        handle.write(np.random.default_rng(0).bytes(4096))
    assert files.complete_meta(entry) is not None  # sizes and marker alone say complete
    capsys.readouterr()

    monkeypatch.setattr(teacher_cache, "_VERIFIED", set())  # a new process
    checked = []
    real = teacher_cache.shard_crc
    monkeypatch.setattr(teacher_cache, "shard_crc", lambda *a: checked.append(a[1]) or real(*a))
    reopened = np.array(_fresh_cache(run, tmp_path / "root", shard_rows=50).open(0)["logits"])
    assert np.array_equal(reopened, fresh)
    err = capsys.readouterr().err
    assert "does not match its checksum (damaged); building the entry again" in err and str(entry) in err

    checked.clear()  # the rebuilt entry (this process built it) is not checked again, nor a second open of it
    again = _fresh_cache(run, tmp_path / "root", shard_rows=50)
    assert np.array_equal(np.array(again.open(0)["logits"]), fresh)
    assert checked == []
    monkeypatch.setattr(teacher_cache, "_VERIFIED", set())  # another process checks every shard once
    _fresh_cache(run, tmp_path / "root", shard_rows=50).open(0)
    assert len(checked) == n_shards


def test_a_marker_without_checksums_is_rebuilt(tmp_path, teacher_dirs, capsys):
    import json

    run, fresh, entry, meta = _built_entry(tmp_path, teacher_dirs)
    for damage in ({"crc32": meta["crc32"][:-1]}, {"crc32": None}, {"shard_rows": 0}):
        (entry / files.META).write_text(json.dumps({**meta, **damage}))
        assert np.array_equal(np.array(_fresh_cache(run, tmp_path / "root").open(0)["logits"]), fresh)
        assert "does not describe this run's teacher outputs" in capsys.readouterr().err
