"""One driver per sweep and per study on a machine: a second `babysweep run` (or `study`) of the same
name is refused in one sentence while the first runs, instead of both writing one folder.

    with run_lock.held(paths.sweeps_dir(storage) / ".teachers.lock", "sweep 'teachers'"):
        ...  # this process alone drives sweep 'teachers' from this project

An flock on a file beside the sweep folders (not inside: `--fresh` deletes the folder): the kernel
releases it when its holder ends, however it ends, so a killed driver never leaves a stale lock.
It guards the drivers of one machine (the sweeps folder of a cluster is driven from one head node).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Iterator

from babysweep.core.errors import UserError


def lock_path(folder: Path, name: str) -> Path:
    return Path(folder) / f".{name}.lock"


@contextlib.contextmanager
def held(path: Path, what: str) -> Iterator[None]:
    """Hold the lock for the block, or raise a UserError naming the process that holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                holder = json.loads(handle.read() or "{}")
            except ValueError:
                holder = {}
            who = f"pid {holder.get('pid')} on {holder.get('host')}" if holder.get("pid") else "another process"
            raise UserError(f"{path}: {what} is already being run by another babysweep ({who}); wait for it to end "
                            "(or stop it), then run the same command again to continue.") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
