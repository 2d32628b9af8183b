"""Sweeps kept on object storage (`--storage s3://...`), against an S3 server on 127.0.0.1 (moto's):
a driver killed mid-sweep, then the same sweep continued by a driver with empty local folders, as on
another machine; a teacher copied from the URI to a node that lacks it; a bad bucket in one sentence."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import free_port, write_spec

pytestmark = pytest.mark.slow
BUCKET = "sweeps-bucket"


@pytest.fixture(scope="module")
def s3_server():
    pytest.importorskip("moto")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, "moto's server did not start"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """The environment an S3 client reads (pyarrow's, as Ray's), and an empty bucket."""
    from pyarrow import fs

    for key, value in {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    admin = fs.S3FileSystem(endpoint_override=s3_server, allow_bucket_creation=True, allow_bucket_deletion=True)
    if admin.get_file_info(BUCKET).type != fs.FileType.NotFound:
        admin.delete_dir(BUCKET)
    admin.create_dir(BUCKET)
    return f"s3://{BUCKET}/sweeps"


def _keys(uri: str, under: str) -> list[str]:
    from pyarrow import fs

    s3fs, root = fs.FileSystem.from_uri(f"{uri}/{under}")
    if s3fs.get_file_info(root).type == fs.FileType.NotFound:
        return []
    return [i.path[len(root) + 1:] for i in s3fs.get_file_info(fs.FileSelector(root, recursive=True))]


def _read(uri: str, key: str) -> str:
    from pyarrow import fs

    s3fs, path = fs.FileSystem.from_uri(f"{uri}/{key}")
    with s3fs.open_input_stream(path) as f:
        return f.read().decode()


def test_a_sweep_on_object_storage_continues_on_another_machine(s3, tmp_path, cache_dir):
    spec = write_spec(tmp_path, cache_dir, name="cloud", epochs=3, samples=2)
    spec.write_text(spec.read_text().replace("concurrent: 2", "concurrent: 1").replace("seq_len: 32", "seq_len: 16"))
    store = "sqlite:///" + str(tmp_path / "mlflow.db")  # the shared MLflow database both drivers use

    def driver(machine: str) -> tuple[list, dict]:
        (tmp_path / machine).mkdir(exist_ok=True)
        env = {**os.environ, "BABYSWEEP_PROJECT": str(tmp_path / machine), "BABYSWEEP_SCRATCH": str(tmp_path / machine / "scratch")}
        return [sys.executable, "-m", "babysweep.cli", "run", str(spec), "--storage", s3, "--tracking-uri", store], env

    command, env = driver("first")
    first = subprocess.Popen(command, cwd=tmp_path / "first", env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:  # until a trial's first checkpoint and the driver's state are on the URI
            keys = _keys(s3, "cloud")
            histories = [_read(s3, f"cloud/{k}").splitlines() for k in keys if k.endswith("metrics.jsonl")]
            if any(1 <= len(h) <= 2 for h in histories) and "tuner.pkl" in keys:
                break
            assert first.poll() is None, "the first driver ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("the sweep never reached its first epoch")
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver and its Ray: the machine is lost
        first.wait()

    command, env = driver("second")  # nothing local: no sweeps/, no scratch, no token cache
    again = subprocess.run(command, cwd=tmp_path / "second", env=env, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-6000:]
    assert "continuing: 0 of 2 trials done" in again.stdout, again.stdout[:2000]
    keys = _keys(s3, "cloud")
    trials = sorted({k.split("/")[1] for k in keys if k.startswith("models/")})
    assert len(trials) == 2 and "spec.yaml" in keys and any(k.startswith("experiment_state") for k in keys)
    resumed = [t for t in trials if f"models/{t}/resumes.log" in keys]
    assert resumed, "no trial continued from its checkpoint on the URI"
    for trial in trials:
        assert f"models/{trial}/final/config.json" in keys and f"models/{trial}/final/README.md" in keys
        epochs = [json.loads(line)["epoch"] for line in _read(s3, f"cloud/models/{trial}/metrics.jsonl").splitlines()]
        assert epochs == [1, 2, 3]
        assert len([k for k in keys if k.startswith(f"models/{trial}/checkpoints/") and k.endswith("meta.json")]) <= 2
    from babysweep.tracking.runs import sweep_runs

    runs = sweep_runs(store, "cloud")  # the same MLflow runs, continued: no duplicates
    assert len(runs) == 2 and {r["status"] for r in runs} == {"FINISHED"}


def test_a_teacher_missing_on_a_node_comes_from_the_uri(s3, tmp_path):
    from babysweep.sweep.object_store import Mirror
    from babysweep.sweep.driver import _local_model

    made = tmp_path / "driver" / "sweeps" / "tutors" / "models" / "t1" / "final"
    made.mkdir(parents=True)
    (made / "config.json").write_text("{}")
    mirror = Mirror.of(s3)
    mirror.put(made, "tutors/models/t1/final")
    os.environ["BABYSWEEP_SCRATCH"] = str(tmp_path / "node")
    try:
        (made / "config.json").unlink()  # this node does not see the driver's folder
        local = _local_model(str(made), mirror, str(tmp_path / "driver" / "sweeps"))
    finally:
        del os.environ["BABYSWEEP_SCRATCH"]
    assert Path(local) == tmp_path / "node" / "tutors" / "models" / "t1" / "final"
    assert (Path(local) / "config.json").read_text() == "{}"


def test_a_missing_bucket_is_one_sentence(s3):
    from babysweep.core.errors import UserError
    from babysweep.sweep.object_store import Mirror

    with pytest.raises(UserError, match="--storage s3://no-such-bucket/x: cannot use it"):
        Mirror.of("s3://no-such-bucket/x")
