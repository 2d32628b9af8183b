"""A sweep on a head started the way Ray's docs start one (`ray start --head`), joined with --address.

The head runs with a token in its HOME (as on any machine where Ray ran before), so `ray start` turns
token authentication on; `babysweep run --address` must pick the token up as `ray start` did, and fail
in one sentence without it, with another token, or at a wrong address.
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from babysweep.core.paths import default_tracking_uri

from helpers import free_port, write_spec

pytestmark = pytest.mark.slow
AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


def _env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARS}
    return {**env, "HOME": str(home), **extra}


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """(address, home with the head's token): a `ray start --head --block` in its own process group."""
    home = tmp_path_factory.mktemp("home")
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    temp_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's socket paths live under it
    port = free_port()
    log = home / "head.log"
    ray_cli = Path(sys.executable).with_name("ray")
    with open(log, "w") as out:
        process = subprocess.Popen([str(ray_cli), "start", "--head", "--block", "--port", str(port), "--temp-dir", temp_dir,
                                    "--num-cpus", "2", "--include-dashboard=false", "--disable-usage-stats"],
                                   stdout=out, stderr=subprocess.STDOUT, env=_env(home), start_new_session=True)
    try:
        deadline = time.time() + 90
        while "Ray runtime started" not in log.read_text():
            assert process.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.5)
        assert "Token authentication is enabled" in log.read_text()  # the case of the issue
        yield f"127.0.0.1:{port}", home
    finally:
        _stop_group(process)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM lets the head drain (up to 30 s); after a few seconds the whole group is killed instead."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _babysweep(args: list, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "babysweep.cli", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_a_sweep_joins_a_ray_start_head(head, tmp_path, cache_dir):
    from babysweep.sweep.state import sweep_status
    from babysweep.tracking.runs import sweep_runs

    address, home = head
    spec = write_spec(tmp_path, cache_dir, name="headed", samples=2, epochs=1)
    spec.write_text(spec.read_text().replace("seq_len: 32", "seq_len: 16"))
    env = _env(home, BABYSWEEP_PROJECT=str(tmp_path))
    done = _babysweep(["run", str(spec), "--address", address], env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = sweep_status("headed", tmp_path / "sweeps")
    assert len(rows) == 2 and {r["state"] for r in rows} == {"FINISHED"}
    runs = sweep_runs(default_tracking_uri(tmp_path), "headed")
    assert len(runs) == 2 and {r["status"] for r in runs} == {"FINISHED"}


def _one_sentence(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and done.stderr.count("error:") == 1, done.stderr
    return done.stderr


@pytest.mark.parametrize("case", ["no token", "another token"])
def test_a_head_refuses_a_driver_without_its_token(head, tmp_path, cache_dir, case):
    address, _ = head
    stranger = tmp_path / "home"
    stranger.mkdir()
    extra = {"RAY_AUTH_TOKEN": secrets.token_hex(32)} if case == "another token" else {}
    spec = write_spec(tmp_path, cache_dir, name="refused", samples=1, epochs=1)
    done = _babysweep(["run", str(spec), "--address", address], _env(stranger, BABYSWEEP_PROJECT=str(tmp_path), **extra), tmp_path)
    message = _one_sentence(done)
    assert address in message
    assert ("none was found" if case == "no token" else "refused this machine's authentication token") in message


def test_a_wrong_address_fails_at_once(tmp_path):
    from babysweep.core.errors import UserError
    from babysweep.sweep.ray_cluster import join_cluster

    with pytest.raises(UserError, match="Could not reach the Ray cluster at 127.0.0.1:1 .*refused"):
        join_cluster("127.0.0.1:1")
