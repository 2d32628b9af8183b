"""Shared fixtures: small corpora, a per-session token cache, real-data locations."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _project_dir(tmp_path_factory, monkeypatch):
    # Run-time output (sweeps/, mlruns/) of every test goes to a temporary project folder.
    monkeypatch.setenv("BABYSWEEP_PROJECT", str(tmp_path_factory.getbasetemp() / "project"))
    # A sweep joins the cluster RAY_ADDRESS names; tests always start their own Ray.
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One token cache for the whole session: the built-in corpus is generated and tokenised once."""
    return tmp_path_factory.mktemp("cache")


def tiny_config(cache_dir: Path, **sections) -> dict:
    """A config small enough to train in seconds on the built-in corpus."""
    config = {
        "data": {"seq_len": 32, "builtin_words": 20_000, "tokenizer": {"vocab_size": 500}, "cache_dir": str(cache_dir)},
        "model": {"layers": 2, "hidden": 32, "heads": 2},
        "train": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "warmup_steps": 5, "threads": 1},
        "eval": {"dev_batches": 4},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return config


def needs_shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (real data lives outside the repository)")
    return path


@pytest.fixture(scope="module")
def ray_session():
    """One small local Ray per test module (2 CPUs, a 100 MB object store)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project folder of one's own: sweeps/, mlruns/ and reports/ go here; it is the working directory."""
    monkeypatch.setenv("BABYSWEEP_PROJECT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path
