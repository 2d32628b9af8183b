"""Checkpoints: nothing in state.pt can run code when loaded, old checkpoints still load, and a
checkpoint reaches the disk (files and folder flushed) before and after its rename."""

import errno
import os
import random

import numpy as np
import pytest
import torch

from babysweep.train.checkpoint import STATE, UnsafeCheckpoint, checkpoints, load_checkpoint, load_latest, save_checkpoint
from babysweep.train.trainer import rng_state, set_rng_state

RAN = []


class Payload:
    """Unpickling this would call RAN.append: what an attacker's checkpoint would do."""

    def __reduce__(self):
        return (RAN.append, ("code ran",))


def test_a_checkpoint_with_code_is_refused_not_run(tmp_path):
    save_checkpoint(tmp_path, 1, {"model": {"w": torch.zeros(2)}}, {"loop": {}})
    (folder,) = checkpoints(tmp_path)
    torch.save({"model": {"w": torch.zeros(2)}, "evil": Payload()}, folder / STATE)
    with pytest.raises(UnsafeCheckpoint, match=r"state\.pt: .*could run code; delete this checkpoint folder"):
        load_latest(tmp_path)  # refused, not skipped: the run would otherwise start afresh silently
    assert RAN == []


def test_rng_states_round_trip_and_old_numpy_arrays_still_load(tmp_path):
    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    state = rng_state()
    save_checkpoint(tmp_path, 1, {"rng": state}, {})
    old = dict(state, numpy=np.random.get_state())  # how checkpoints kept numpy's state before weights_only
    save_checkpoint(tmp_path, 2, {"rng": old}, {})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    for folder in checkpoints(tmp_path):  # the new form, then the old one
        random.seed(9), np.random.seed(9), torch.manual_seed(9)
        set_rng_state(load_checkpoint(folder)[0]["rng"])
        assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_a_checkpoint_is_flushed_before_and_after_its_rename(tmp_path, monkeypatch):
    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    folder = save_checkpoint(tmp_path, 7, {"w": torch.ones(1)}, {"loop": {"step": 7}})
    renamed = events.index(("replace", str(folder)))
    before = [path.rsplit("/", 1)[-1] for _, path in events[:renamed]]
    assert {"state.pt", "meta.json"} <= set(before) and any(p.startswith(".tmp-") for p in before)  # files, then their folder
    assert events[renamed + 1:] == [("fsync", str(tmp_path))]  # the new name itself


def test_a_full_disk_leaves_the_previous_checkpoint_and_no_debris(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 1, {"w": torch.ones(1)}, {"loop": {"step": 1}})

    def full(obj, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 2, {"w": torch.ones(1)}, {"loop": {"step": 2}})
    assert os.listdir(tmp_path) == ["step_00000001"] and load_latest(tmp_path)[2]["loop"]["step"] == 1
