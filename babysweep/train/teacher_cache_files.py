"""The teacher cache's files: layout, locks, completeness, size and eviction (no torch, so `status` stays fast).

    root = cache_root(cache_dir(data.cache_dir))  # <cache>/teachers
    usage(root)                                 # (bytes, complete entries)
    clear(root)                                 # frees it (`babysweep cache clear`)
    make_room(root, needed, budget, keep)       # evicts least recently used entries

An entry is a folder <root>/<key>/ holding one .bin file per array. While it is built the arrays
are <name>.bin.partial and each finished shard leaves shard-<i>.done (its CRC-32); when every shard is done the
partials are renamed and meta.json, the completeness marker, is written last (atomically). A reader
only opens an entry whose meta.json exists and whose files have the sizes it states, so a
half-written entry is never read (and checks the shards' CRC-32s, in train/teacher_cache.py). Locks are flock(2) files: they vanish with a killed holder.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from contextlib import contextmanager
from pathlib import Path

META = "meta.json"
PARTIAL = ".partial"


def cache_root(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / "teachers"


@contextmanager
def locked(path: Path, blocking: bool = True):
    """An exclusive flock on `path`; yields False (and holds nothing) when not blocking and taken."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def array_bytes(spec: dict) -> int:
    """Bytes of one array described as {"dtype_bytes": b, "shape": [...]}."""
    n = spec["dtype_bytes"]
    for size in spec["shape"]:
        n *= size
    return n


def complete_meta(entry: Path) -> dict | None:
    """The entry's meta when it is complete (marker present, every file of the stated size), else None."""
    try:
        meta = json.loads((entry / META).read_text())
        for name, spec in meta["arrays"].items():
            if (entry / f"{name}.bin").stat().st_size != array_bytes(spec):
                return None
        return meta
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # a damaged marker: the entry is incomplete
        return None


def touch(entry: Path) -> None:
    """Mark an entry as used now (eviction removes the least recently used first)."""
    try:
        (entry / META).touch()
    except OSError:
        pass


def entries(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).glob("*") if p.is_dir()) if Path(root).is_dir() else []


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def usage(root: Path) -> tuple[int, int]:
    """(bytes on disk under root, complete entries). Sparse partial files count at their apparent size."""
    found = entries(root)
    return sum(folder_bytes(e) for e in found), sum(complete_meta(e) is not None for e in found)


def building(entry: Path) -> bool:
    """Some process holds one of the entry's shard locks: it is writing a shard now."""
    for lock in entry.glob("shard-*.lock"):
        with locked(lock, blocking=False) as got:
            if not got:
                return True
    return False


def clear(root: Path) -> int:
    """Delete every entry that nobody is building; returns the bytes freed. Readers that hold an
    entry memory-mapped keep reading it (POSIX unlink); they rebuild on their next epoch if needed."""
    freed = 0
    for entry in entries(root):
        with locked(root / f"{entry.name}.lock", blocking=False) as got:
            if got and not building(entry):
                freed += folder_bytes(entry)
                shutil.rmtree(entry, ignore_errors=True)
    return freed


def make_room(root: Path, needed: int, budget: int, keep: set[str]) -> list[str]:
    """Evict complete entries, least recently used first and never those in `keep`, until the
    entries' total plus `needed` fits `budget`. Returns the evicted keys."""
    found = [(e, complete_meta(e)) for e in entries(root)]
    total = sum(folder_bytes(e) for e, _ in found)
    evicted = []
    idle = sorted(((e.joinpath(META).stat().st_mtime, e) for e, m in found if m is not None and e.name not in keep),
                  key=lambda pair: pair[0])
    for _, entry in idle:
        if total + needed <= budget:
            break
        with locked(root / f"{entry.name}.lock", blocking=False) as got:
            if got:
                total -= folder_bytes(entry)
                shutil.rmtree(entry, ignore_errors=True)
                evicted.append(entry.name)
    return evicted


def human(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.2f} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:.2f} TB"
