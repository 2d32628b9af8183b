"""Sweeps sharing storage: two sweeps at once on one MLflow store and one token cache."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import study_kills  # noqa: E402

pytestmark = pytest.mark.slow


def test_two_sweeps_at_once_on_one_store_and_one_cache(tmp_path):
    cache = tmp_path / "cache"  # empty: both drivers' trials race to build the same cache entries
    study_kills.write_study(tmp_path, cache)  # its teachers.yaml (2 trials) and baselines.yaml (1 trial)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    env["BABYSWEEP_PROJECT"] = str(tmp_path)  # one sqlite store, created by whichever driver comes first
    drivers = [subprocess.Popen([sys.executable, "-m", "babysweep.cli", "run", str(tmp_path / f"{name}.yaml")], cwd=tmp_path,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
               for name in ("teachers", "baselines")]
    outputs = [d.communicate(timeout=600)[0] for d in drivers]
    assert [d.returncode for d in drivers] == [0, 0], "\n\n".join(o[:6000] for o in outputs)
    assert study_kills.check_sweeps(tmp_path, {"teachers": 2, "baselines": 1}) == []
