"""The MLflow store: a client on it, a new sqlite store created whole (migrated in a temporary file, renamed into place),
and the limits MLflow puts on keys and values.

    client = client_for(uri)     # creates and migrates a new sqlite store under a file lock
"""

from __future__ import annotations

import contextlib

import logging
import os
import re
from pathlib import Path
import mlflow
from mlflow.exceptions import MlflowException
from babysweep.core.atomic import replace_file_durably
from babysweep.core.errors import UserError
from babysweep.core.paths import RUN_MAP_FILE, artifact_root, sqlite_path
from babysweep.core.storage_errors import writing

logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # "Creating initial tables..." is noise
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per downloaded JSON is noise


MAP_FILE = RUN_MAP_FILE
MODEL_ARTIFACT = "model"
# MLflow's limits (mlflow.utils.validation): longer values are truncated here, longer keys skipped.
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_KEY = 250
MAX_PER_BATCH = 100  # params or tags per log_batch call
MAX_METRICS_PER_BATCH = 1000
_TRUNCATED = "...[truncated]"
_KEY_OK = re.compile(r"^[/\w.\- ]+$")  # MLflow's portable key characters
TERMINAL = ("FINISHED", "FAILED", "STOPPED")


# ---------------------------------------------------------------------------------------- store


_READY: set[str] = set()  # sqlite stores this process has opened (tables created and migrated)


def _client(uri: str) -> mlflow.MlflowClient:
    db = sqlite_path(uri)
    if db is None or uri in _READY:
        return mlflow.MlflowClient(tracking_uri=uri)
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)  # sqlite creates the file, not its folder
    # MlflowClient's constructor opens the store, and MLflow's SqlAlchemyStore.__init__ creates and
    # migrates a new sqlite database without a lock: two drivers doing it at once fail ("duplicate
    # column name: step", "table alembic_version already exists"). The first open in each process
    # happens under a lock file beside the database; later opens find it migrated (and the store
    # is cached per process by MLflow).
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not db.exists() or db.stat().st_size == 0:  # an empty file is no store yet (sqlite would agree)
            _create_sqlite(db, uri)
        else:
            _check_sqlite(db)
        client = mlflow.MlflowClient(tracking_uri=uri)
    _READY.add(uri)
    return client


def _check_sqlite(db: Path) -> None:
    """Refuse a damaged store before MLflow opens it (and writes to it): sqlite's quick_check, read-only."""
    import sqlite3

    try:
        with open(db, "rb") as handle:  # sqlite takes a file shorter than its header for an empty database
            header = handle.read(16)
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            verdict = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        if header != b"SQLite format 3\x00":
            verdict = "no sqlite header"
    except (OSError, sqlite3.Error) as exc:
        verdict = str(exc)
    if verdict != "ok":
        raise UserError(f"{db}: the MLflow store is damaged ({verdict}); restore it from a backup, or move it away "
                        "to start a new store (each sweep's trials stay in its folder under sweeps/).")


def _create_sqlite(db: Path, uri: str) -> None:
    """Make and migrate a new store in a temporary file, then rename it into place (under the caller's lock).
    MLflow builds a database in many steps (its tables, then each migration), and a process killed between
    two leaves one that no later open can migrate ("table trace_metrics already exists"): the sweep could
    never continue. A temporary file that a killed creator left is just replaced."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    for stale in db.parent.glob(f".{db.name}.*.tmp*"):  # and its journal; the lock is ours: nobody else is creating one
        stale.unlink(missing_ok=True)
    tmp = db.with_name(f".{db.name}.{os.getpid()}.tmp")
    what = "the MLflow store's database"
    try:
        with writing(db.parent, what):
            SqlAlchemyStore(f"sqlite:///{tmp}", str(artifact_root(uri))).engine.dispose()  # connections closed
        replace_file_durably(tmp, db, what)
    finally:
        tmp.unlink(missing_ok=True)


def _reader(uri: str, sweep_name: str | None = None) -> mlflow.MlflowClient:
    """A client for reading: a sqlite store that does not exist yet is an error, not created."""
    db = sqlite_path(uri)
    if db is not None and (not db.is_file() or db.stat().st_size == 0):
        what = f"so sweep '{sweep_name}' has not run here; run it first" if sweep_name else "run a sweep first"
        raise UserError(f"there is no MLflow store at {db} yet, {what} (or give --tracking-uri)")
    return _client(uri)


def _missing(exc: MlflowException) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


