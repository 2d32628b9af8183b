import errno
import os

import pytest

from babysweep.core.atomic import replace_dir_durably, write_text_atomic
from babysweep.core.errors import UserError
from babysweep.core.storage_errors import StorageError


def test_writes_the_text_and_leaves_no_temporary_file(tmp_path):
    path = write_text_atomic(tmp_path / "sub" / "state.json", '{"a": 1}\n')
    assert path.read_text() == '{"a": 1}\n'
    assert os.listdir(tmp_path / "sub") == ["state.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    path.write_text("old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomic(path, "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["state.json"]


@pytest.mark.parametrize("code, reason", [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "the storage is read-only")])
def test_a_write_on_full_or_read_only_storage_names_the_path_and_what_and_keeps_the_old_file(tmp_path, monkeypatch, code, reason):
    path = tmp_path / "state.json"
    write_text_atomic(path, "old")

    def refuse(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", refuse)
    with pytest.raises(StorageError) as caught:
        write_text_atomic(path, "new", "the study's progress")
    assert str(caught.value).startswith(f"could not write the study's progress to {path}: {reason}")
    assert isinstance(caught.value, UserError) and isinstance(caught.value, OSError)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["state.json"]
    folder = tmp_path / "built"
    folder.mkdir()
    (folder / "weights").write_text("w")
    with pytest.raises(StorageError, match=f"could not write a checkpoint to {tmp_path / 'ckpt'}: {reason}"):
        replace_dir_durably(folder, tmp_path / "ckpt", "a checkpoint")
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError) as other:  # any other error is not a storage one: unchanged
        write_text_atomic(path, "new")
    assert not isinstance(other.value, StorageError)


def test_a_full_disk_met_inside_other_libraries_becomes_one_sentence():
    import sqlite3

    from babysweep.core.storage_errors import find

    class OperationalError(Exception):  # sqlalchemy's wrapper of sqlite3's error, as MLflow's store raises it
        pass

    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as inner:
            raise OperationalError("(sqlite3.OperationalError) database or disk is full") from inner
    except OperationalError as exc:
        found = find(RuntimeError("logging failed").with_traceback(None)) or find(exc)
    assert "the MLflow store's database" in str(found) and "the disk is full" in str(found)
    ray_side = RuntimeError("checkpoint upload failed")
    ray_side.__cause__ = OSError(errno.EROFS, "Read-only file system", "/shared/sweeps/t/tuner.pkl")
    assert str(find(ray_side)).startswith("could not write a file to /shared/sweeps/t/tuner.pkl: the storage is read-only")
    assert find(RuntimeError("something else")) is None
    assert find(OSError(errno.ENOENT, "missing", "/x")) is None
