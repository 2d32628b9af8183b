"""Two drivers of one sweep (or one study) at once on one project: the first runs, the second is refused
in one sentence (babysweep/run_lock.py), and the sweep ends with exactly its planned trials."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fuzz_cli import Project, check
from babysweep.core import run_lock
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import study_kills  # noqa: E402


@pytest.mark.parametrize("command", ["run", "study"])
def test_a_second_driver_is_refused_while_the_lock_is_held(command, tmp_path):
    with Project(tmp_path) as project:
        project.write("tiny.yaml", study_kills.SPEC.format(name="tiny", role="teacher", cache=tmp_path / "cache", samples=1,
                                                           lr="1.0e-3"))
        project.write("study.yaml", "name: pair\nsweeps: [tiny.yaml]\n")
        name = "tiny" if command == "run" else "pair.study"
        lock = run_lock.lock_path(project.root / "sweeps", name)
        with run_lock.held(lock, "a driver started first"):  # what the first `babysweep run/study` holds
            outcome = project.invoke(command, "tiny.yaml" if command == "run" else "study.yaml",
                                     *(["--fresh"] if command == "run" else []))
        assert check(outcome, [str(lock)], must_fail=True) == [], outcome.traceback or outcome.err
        assert f"pid {os.getpid()}" in outcome.err and "already being run" in outcome.err
        outcome = project.invoke("status")  # nothing was started or deleted by the refused driver
        assert outcome.code == 2 and "holds no sweep yet" in outcome.err


def _start(root: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    env.update(BABYSWEEP_PROJECT=str(root), COLUMNS="200")
    return subprocess.Popen([sys.executable, "-m", "babysweep.cli", *args], cwd=root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            return proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.communicate()


@pytest.mark.slow
def test_two_runs_of_one_sweep_at_once(tmp_path):
    study_kills.write_study(tmp_path, tmp_path / "cache", {"teachers": ("teacher", 2)})
    drivers = [_start(tmp_path, "run", "teachers.yaml") for _ in range(2)]
    results = []
    for driver in drivers:
        try:
            results.append((driver.wait(timeout=600), *driver.communicate()))
        finally:
            _stop(driver)
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, _, err in results if code == 2)
    assert refused.startswith("error: ") and refused.count("\n") == 1 and "already being run" in refused, refused
    assert study_kills.check_sweeps(tmp_path, {"teachers": 2}) == []  # exactly its 2 trials, one MLflow run each


@pytest.mark.slow
def test_two_studies_at_once(tmp_path):
    study = study_kills.write_study(tmp_path, tmp_path / "cache", {"teachers": ("teacher", 1)})
    drivers = [_start(tmp_path, "study", str(study)) for _ in range(2)]
    try:
        deadline = time.monotonic() + 120
        while all(d.poll() is None for d in drivers) and time.monotonic() < deadline:
            time.sleep(0.2)
        refused = [d for d in drivers if d.poll() is not None]
        assert len(refused) == 1, [_stop(d) for d in drivers]
        out, err = refused[0].communicate()
        assert refused[0].returncode == 2 and err.startswith("error: ") and err.count("\n") == 1, (out, err)
        assert "study 'kills' is already being run" in err
        running = drivers[1 - drivers.index(refused[0])]
        assert running.poll() is None  # the first one works on (stopped here: the test is about the refusal)
    finally:
        for driver in drivers:
            _stop(driver)


@pytest.mark.slow
def test_a_damaged_ray_state_is_refused_in_one_sentence(tmp_path):
    # Issue 26: Ray's tuner.pkl is read only by Tuner.restore (after Ray starts), which the in-process
    # cases of test_fuzz_inputs.py stop before.
    from fuzz_cases import state_files

    for name, content in state_files().items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (tmp_path / "sweeps" / "fake" / "tuner.pkl").write_bytes(b"\x80\x04\x95garbage")
    (tmp_path / "sweeps" / "fake" / "driver.json").unlink()
    driver = _start(tmp_path, "run", "fake.yaml")
    try:
        out, err = driver.communicate(timeout=300)
    finally:
        _stop(driver)
    assert driver.returncode == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "tuner.pkl: Ray cannot restore the sweep" in lines[-1], err
    assert "Traceback" not in err and len(lines) <= 3, err
