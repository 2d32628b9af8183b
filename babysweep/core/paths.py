"""The project's on-disk layout, in one place (no torch, no Ray, no MLflow imported here).

    project_dir()                 # $BABYSWEEP_PROJECT or the current directory
    sweeps_dir(storage)           # <project>/sweeps, or the --storage folder (for an s3:// URI: <project>/sweeps)
    sweep_folder("teachers")      # <sweeps>/teachers: Ray state, spec.yaml, models/, run map
    cache_dir(given)              # data.cache_dir, else <project>/sweeps/.cache
    tracking_uri(explicit)        # explicit > $MLFLOW_TRACKING_URI > sqlite:///<project>/mlruns/mlflow.db
    report_dir("r1")              # <project>/reports/r1
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from babysweep.core.errors import UserError

# A sweep, study or report name: it becomes a folder and an MLflow experiment.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def check_name(name: str, where: str) -> str:
    if not NAME_PATTERN.fullmatch(str(name)):
        raise UserError(f"{where}: {name!r} is not a valid name; use letters, digits, '_', '.' and '-'.")
    return name


def safe_name(name: str) -> str:
    """A name made usable as a folder: characters outside the pattern become '_'."""
    return re.sub(r"[^\w.-]", "_", name)


def project_dir() -> Path:
    return Path(os.environ.get("BABYSWEEP_PROJECT") or os.getcwd()).resolve()


def sweeps_dir(storage: str | Path | None = None) -> Path:
    """The sweeps' folder on this machine; for an object-store URI, the driver's local copy of it (sweep/object_store.py)."""
    if not storage or "://" in str(storage) and not str(storage).startswith("file://"):
        return project_dir() / "sweeps"
    return Path(str(storage).removeprefix("file://")).expanduser().resolve()


def sweep_folder(name: str, storage: str | Path | None = None) -> Path:
    return sweeps_dir(storage) / name


# Inside a sweep folder (besides Ray's own files):
SPEC_FILE = "spec.yaml"  # the spec the sweep was started with; a resume checks the new spec against it
TEACHERS_FILE = "teachers.json"  # a student sweep's resolved teachers, so that a resume uses the same ones
# Written when a sweep folder is made; a sweep folder without it was started before data.chunk_bos existed,
# so its trials (resumed or new) keep the older chunk layout and stay comparable with one another.
LAYOUT_FILE = "data_layout.json"
RUN_MAP_FILE = "mlflow_runs.json"  # trial id -> MLflow run id (tracking/tracker.py), so that a resume reuses the runs
MODELS = "models"  # models/<trial_id>/: checkpoints/, final/ (HF model), metrics.jsonl, run.json, blimp.json


def cache_dir(given: str | Path | None = None) -> Path:
    """The token cache every trial shares: `given` (data.cache_dir), else <project>/sweeps/.cache."""
    return Path(given or project_dir() / "sweeps" / ".cache").expanduser().resolve()


def report_dir(name: str) -> Path:
    return project_dir() / "reports" / name


# ------------------------------------------------------------------------------- MLflow's store
def default_tracking_uri(project: Path | None = None) -> str:
    """sqlite:///<project>/mlruns/mlflow.db (MLflow 3 refuses the file store)."""
    return "sqlite:///" + str(Path(project or project_dir()).resolve() / "mlruns" / "mlflow.db")


def tracking_uri(explicit: str | None = None, project: Path | None = None) -> str:
    """The explicit argument wins, then $MLFLOW_TRACKING_URI, then the project's sqlite store."""
    for uri, source in ((explicit, "the tracking URI given"), (os.environ.get("MLFLOW_TRACKING_URI"), "MLFLOW_TRACKING_URI")):
        if uri:
            return _checked_uri(uri, source, project)
    return default_tracking_uri(project)


TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks", "databricks-uc", "uc", "file")


def _checked_uri(uri: str, source: str, project: Path | None) -> str:
    try:
        from urllib.parse import urlsplit

        urlsplit(uri).port  # noqa: B018 - raises ValueError for a malformed host or port
    except ValueError as exc:
        raise UserError(f"{source} '{uri}' is not a valid URI ({exc}).") from None
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""
    if "://" in uri and scheme not in TRACKING_SCHEMES:  # s3://, gs://: artifact stores, not tracking stores
        raise UserError(f"{source} '{uri}' is not an MLflow tracking store; use a database such as "
                        f"{default_tracking_uri(project)} (or postgresql://, mysql://, http(s)://).")
    is_path = "://" not in uri and not uri.startswith(("sqlite:", "databricks"))
    if is_path and uri.endswith(".db"):  # a bare database file: make it a sqlite URI
        return "sqlite:///" + str(Path(uri).expanduser().resolve())
    if (is_path or uri.startswith("file:")) and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() != "true":
        raise UserError(
            f"{source} '{uri}' is an MLflow file store, which MLflow 3 refuses; "
            f"use a database such as {default_tracking_uri(project)}"
        )
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite URI (None for other stores or in-memory databases)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def artifact_root(uri: str) -> Path | None:
    """Artifacts of a sqlite store live beside the database: <db dir>/artifacts."""
    db = sqlite_path(uri)
    return None if db is None else db.resolve().parent / "artifacts"
