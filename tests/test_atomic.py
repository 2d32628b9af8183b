import os

import pytest

from babysweep.atomic import write_text_atomic


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
