"""Hashing files by content: the token cache's key and a teacher's digest read them the same way."""

from __future__ import annotations

from pathlib import Path

BLOCK = 1 << 22  # 4 MiB reads: large files hash without being loaded whole


def update_with_files(digest, paths: list[Path], after_each: bytes = b""):
    """Feed each file's name and bytes to a hashlib digest, in the order given; `after_each` is fed after
    every file (the token cache's key marks file ends; a teacher's digest does not). Returns the digest."""
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(BLOCK), b""):
                digest.update(block)
        digest.update(after_each)
    return digest
