from pathlib import Path

import pytest

from babysweep.data.corpus import clean_lines, read_corpus, source_files
from babysweep.core.errors import UserError

from conftest import needs_shared


def _babylm(root: Path) -> Path:
    (root / "train_10M").mkdir(parents=True)
    (root / "dev").mkdir()
    (root / "test").mkdir()
    (root / "train_10M" / "childes.train").write_text("*CHI:  hi  mummy \n\n  look\tat   that\n")
    (root / "train_10M" / "wiki.train").write_text("The cat sat.\n")
    (root / "train_10M" / ".hidden.train").write_text("never read\n")
    (root / "dev" / "childes.dev").write_text("dev line\n")
    (root / "test" / "childes.test").write_text("test line\n")
    return root


def test_clean_lines_is_light():
    assert clean_lines("  a\u00a0 b\t c \n\n\r\nD.  \n") == ["a b c", "D."]


def test_babylm_layout_by_split(tmp_path):
    root = _babylm(tmp_path / "babylm")
    train = source_files(root, "train")
    assert [p.name for p in train] == ["childes.train", "wiki.train"]
    assert [p.name for p in source_files(root, "dev")] == ["childes.dev"]
    assert [p.name for p in source_files(root / "train_10M", "train")] == ["childes.train", "wiki.train"]
    docs = read_corpus(train)
    assert docs[0].name == "childes.train"
    assert docs[0].lines == ["*CHI: hi mummy", "look at that"]
    assert docs[1].words == 3


def test_file_and_glob(tmp_path):
    root = _babylm(tmp_path / "b")
    assert source_files(root / "dev" / "childes.dev", "train") == [root / "dev" / "childes.dev"]
    assert [p.name for p in source_files(str(root / "*" / "childes.*"), "train")] == ["childes.dev", "childes.test", "childes.train"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing", "no such file or folder"),
        (lambda d: str(d / "*.nothing"), "matches no file"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "holds no text file"),
    ],
)
def test_bad_sources(tmp_path, make, message):
    with pytest.raises(UserError, match=message):
        source_files(make(tmp_path), "train")


def test_empty_and_unreadable(tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n")
    with pytest.raises(UserError, match="empty after cleaning"):
        read_corpus([blank])
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(UserError, match="bin.txt: is not UTF-8"):
        read_corpus([binary])


def test_several_train_folders_are_ambiguous(tmp_path):
    root = _babylm(tmp_path / "b")
    (root / "train_100M").mkdir()
    with pytest.raises(UserError, match="several training folders"):
        source_files(root, "train")


def test_storybooks():
    root = needs_shared("storybooks")
    train = source_files(root, "train")
    assert len(train) == 12 and all(p.suffix == ".train" for p in train)
    words = sum(doc.words for doc in read_corpus(train))
    assert 5_000_000 < words < 6_000_000
    assert len(source_files(root, "dev")) == 6
