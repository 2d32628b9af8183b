"""Plain-text corpus reader: a folder in BabyLM's layout, a folder of text files, a file, or a glob.

    files = source_files("~/babylm", "train")     # -> [Path(.../train_10M/childes.train), ...]
    docs = read_corpus(files)                      # -> [Document(name="childes.train", lines=[...]), ...]

BabyLM layout: a root folder holding `train_*/` (e.g. train_10M), `dev/` and `test/` subfolders of
`*.train`, `*.dev`, `*.test` files. Given the root, the split's subfolder is used; given a split folder
itself (or any folder), every visible text file in it (recursively) is read.

Cleaning is deliberately light, so that the text is the corpus's text: each line is stripped, runs of
whitespace (tabs, non-breaking spaces) become one space, and empty lines are dropped. Nothing else is
changed: no lower-casing, no unicode folding, no sentence splitting.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

from babysweep.core.errors import UserError

SPLIT_SUFFIXES = {"train": ".train", "dev": ".dev", "test": ".test"}
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Document:
    name: str  # the file's name: its source, e.g. "childes.train"
    lines: list[str]

    @property
    def words(self) -> int:
        return sum(len(line.split()) for line in self.lines)


def clean_lines(text: str) -> list[str]:
    """Strip each line, collapse whitespace runs to one space, drop empty lines."""
    out = []
    for line in text.splitlines():
        line = _WHITESPACE.sub(" ", line).strip()
        if line:
            out.append(line)
    return out


def _split_folder(root: Path, split: str) -> Path:
    """The split's subfolder of a BabyLM-layout root, or root itself when it has none."""
    if split == "train":
        candidates = sorted(p for p in root.glob("train*") if p.is_dir())
    else:
        candidates = [root / split] if (root / split).is_dir() else []
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise UserError(f"{root}: holds several training folders ({names}); point data.train at one of them.")
    return candidates[0] if candidates else root


def _text_files(folder: Path, split: str) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    suffix = SPLIT_SUFFIXES.get(split)
    with_suffix = [p for p in files if p.suffix == suffix]
    if with_suffix:
        return with_suffix
    return [p for p in files if p.suffix in ("", ".txt", ".text")] or files


def source_files(source: str | Path, split: str = "train") -> list[Path]:
    """The text files of a data source (folder, file or glob), sorted, for one split."""
    text = os.path.expanduser(str(source))
    if any(ch in text for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not matches:
            raise UserError(f"{text}: the glob matches no file.")
        return matches
    path = Path(text)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = _text_files(_split_folder(path, split), split)
        if not files:
            raise UserError(f"{path}: the folder holds no text file for the {split} split.")
        return files
    raise UserError(f"{path}: no such file or folder.")


def read_corpus(files: list[Path]) -> list[Document]:
    """Read and clean each file; an unreadable or empty corpus is a UserError."""
    docs = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: is not UTF-8 text (byte {exc.start}).") from None
        except OSError as exc:
            raise UserError(f"{path}: cannot be read ({exc.strerror}).") from None
        docs.append(Document(path.name, clean_lines(text)))
    if not any(doc.lines for doc in docs):
        raise UserError(f"{files[0] if len(files) == 1 else files[0].parent}: the corpus is empty after cleaning.")
    return docs
