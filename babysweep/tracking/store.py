"""The MLflow store: a client on it, a new sqlite store created whole (migrated in a temporary file, renamed into place),
and the limits MLflow puts on keys and values.

    client = client_for(uri)     # creates and migrates a new sqlite store under a file lock

A sqlite store is checked (quick_check) when a process first opens it; damage that check cannot see (a
text value that is no longer UTF-8 in an intact page) surfaces in a later call, and the client says so in
one sentence too (DamagedStore), not in a traceback from inside MLflow.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
from pathlib import Path
from typing import Any

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


class DamagedStore(UserError, MlflowException):
    """A sqlite store whose content MLflow cannot read back. A UserError (the CLI prints one sentence, exit 2)
    and an MlflowException (code that handled MLflow's own error before still does)."""

    def __init__(self, message: str):
        MlflowException.__init__(self, message)

    def __reduce__(self):  # pickles with its one argument, e.g. out of a Ray worker
        return (type(self), (self.message,))


_DAMAGE_TEXTS = ("could not decode to utf-8", "database disk image is malformed", "file is not a database")


def damage_sentence(db: Path, detail: str) -> str:
    return (f"{db}: the MLflow store is damaged ({detail}); restore it from a backup, or move it away to start a "
            "new store (each sweep's trials stay in its folder under sweeps/).")


def _damage(exc: BaseException | None) -> str | None:
    """What in an exception's chain says the store's content is damaged (a few words), or None."""
    from babysweep.core.storage_errors import find as storage_error

    if storage_error(exc) is not None:  # a full or read-only disk: said by storage_errors, in its own words
        return None
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, DamagedStore):
            return None  # said already
        if isinstance(exc, UnicodeDecodeError):
            return "a text value that is not UTF-8"
        text = str(exc).lower()
        hit = next((t for t in _DAMAGE_TEXTS if t in text), None)
        if hit is not None:
            return "a text value that is not UTF-8" if hit.startswith("could not") else hit
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class _QuietAboutDamage(logging.Filter):
    """MLflow logs a traceback before it raises an OperationalError again; for damage, the sentence is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and record.exc_info[1] is not None and _damage(record.exc_info[1]))


logging.getLogger("mlflow.store.db.utils").addFilter(_QuietAboutDamage())


class _Guarded:
    """An MlflowClient on a sqlite store whose calls raise DamagedStore where MLflow meets damaged content."""

    def __init__(self, client: mlflow.MlflowClient, db: Path):
        self._inner, self._db = client, db

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args, **kwargs):
            with _refusing_damage(self._db):
                return value(*args, **kwargs)
        return call


@contextlib.contextmanager
def _refusing_damage(db: Path):
    try:
        yield
    except Exception as exc:
        detail = _damage(exc)
        if detail is None:
            raise
        raise DamagedStore(damage_sentence(db, detail)) from exc


def _client(uri: str) -> mlflow.MlflowClient:
    db = sqlite_path(uri)
    if db is None:
        return mlflow.MlflowClient(tracking_uri=uri)
    if uri in _READY:
        with _refusing_damage(db):
            return _Guarded(mlflow.MlflowClient(tracking_uri=uri), db)  # type: ignore[return-value]
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
        with _refusing_damage(db):
            client = mlflow.MlflowClient(tracking_uri=uri)
    _READY.add(uri)
    return _Guarded(client, db)  # type: ignore[return-value]


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
    except UnicodeDecodeError:  # sqlite's own error message quotes damaged bytes (a schema entry), and Python cannot decode it
        verdict = "a damaged page that sqlite cannot describe"
    if verdict != "ok":
        raise UserError(damage_sentence(db, " ".join(verdict.split())[:120]))


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


