"""Files and folders that appear whole or not at all, and stay after a crash of the machine.

    write_text_atomic(path, text)                       # text files
    write_file_atomic(path, lambda f: array.tofile(f))  # anything written to a binary file object
    replace_dir_durably(tmp_folder, folder)             # a folder built aside (checkpoints, cache entries)
    replace_file_durably(tmp_file, path)                # a file built aside by code that takes a path (SQLite)

A rename within one folder is atomic, so a SIGKILL or a full disk mid-write leaves the old file. A rename
alone is not durable: after a power loss or a node crash the new name can point at blocks that never
reached the disk. So the data is fsynced before the rename, and the folder holding the name after it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from babysweep.core.storage_errors import writing


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (a rename, a new file) to disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: str | Path) -> None:
    """Flush every file under a folder, then the folders themselves (deepest first)."""
    folders = []
    for root, _, files in os.walk(folder):
        folders.append(root)
        for name in files:
            fsync_file(os.path.join(root, name))
    for root in reversed(folders):
        fsync_dir(root)


def write_file_atomic(path: str | Path, write: Callable[[BinaryIO], object], what: str = "a file") -> Path:
    """Call `write(f)` on a temporary file next to `path`, flush it to disk, rename it over `path` and flush
    the folder. The temporary name is unique, so two writers never mix. A full disk or read-only storage
    raises StorageError naming `path` and `what`, the old file left in place."""
    with writing(path, what):
        return _write_file_atomic(Path(path), write)


def _write_file_atomic(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | Path, text: str, what: str = "a file") -> Path:
    return write_file_atomic(path, lambda f: f.write(text.encode("utf-8")), what)


def replace_file_durably(tmp: str | Path, path: str | Path, what: str = "a file") -> Path:
    """Move a finished temporary file (same folder) over `path`: flushed before the rename, the folder after
    it. For files that a library writes by name; a full disk: StorageError, as write_file_atomic."""
    with writing(path, what):
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(Path(path).parent)
    return Path(path)


def replace_dir_durably(tmp: str | Path, folder: str | Path, what: str = "a folder") -> Path:
    """Move a finished temporary folder to `folder` (same parent): its files are flushed before the rename,
    the parent after it. An existing `folder` is replaced (it is never read while it is incomplete: readers
    then fall back to what they would use without it). A full disk: StorageError, as write_file_atomic."""
    with writing(folder, what):
        return _replace_dir_durably(Path(tmp), Path(folder))


def _replace_dir_durably(tmp: Path, folder: Path) -> Path:
    import shutil

    fsync_tree(tmp)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    fsync_dir(folder.parent)
    return folder
