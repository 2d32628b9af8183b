"""A full disk or read-only storage, said in one sentence that names the path and what was being written.

    with writing(folder, "a checkpoint"):     # an OSError ENOSPC/EDQUOT/EROFS inside -> StorageError
        ...
    found = find(exc)                           # the StorageError in an exception's chain, or None

A StorageError is a UserError (the CLI prints it, exit 2: the user frees space and runs the same
command again) and an OSError (code that handled the OSError before still does).
"""

from __future__ import annotations

import errno
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from babysweep.core.errors import UserError

REPORT_KEY = "storage_error"  # a trial's report that carries the sentence to the sweep's driver
WAIT_S = 300  # how long such a trial waits for the driver to stop it before it errors
REASONS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
           errno.EROFS: "the storage is read-only"}


class StorageError(UserError, OSError):
    """Its only argument is the sentence (so it pickles, e.g. out of a Ray worker)."""


def sentence(path: str | Path, what: str, code: int) -> str:
    return (f"could not write {what} to {path}: {REASONS[code]}; free space (or make it writable) and run the same "
            f"command again to continue (finished trials are kept)")


@contextmanager
def writing(path: str | Path, what: str) -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise  # the innermost write named it already
    except OSError as exc:
        if exc.errno in REASONS:
            raise StorageError(sentence(path, what, exc.errno)) from exc
        raise


# SQLite says so in words, not errno: MLflow's store raises sqlalchemy's OperationalError with these texts
SQLITE_MESSAGES = {"database or disk is full": errno.ENOSPC, "attempt to write a readonly database": errno.EROFS}


def find(exc: BaseException | None) -> StorageError | None:
    """The StorageError in an exception's chain; a full or read-only disk met outside our own writes (Ray's
    files, MLflow's database or artifacts) becomes one too, naming the file when the error does."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, StorageError):
            return exc
        if isinstance(exc, OSError) and exc.errno in REASONS:
            return StorageError(sentence(exc.filename or "the storage", "a file", exc.errno))
        code = next((c for text, c in SQLITE_MESSAGES.items() if text in str(exc)), None)
        if code is not None and type(exc).__name__ == "OperationalError":
            return StorageError(sentence("the MLflow store's database", "a tracking record", code))
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
