"""A sweep folder made before the package move (flat modules, babysweep 0809ae7) continues after it.

tests/fixtures/legacy_sweep/legacy_sweep.tar.gz was made by make.py beside it: an Optuna + wave-halving
sweep killed with one trial finished and one at epoch 2 of 4. Its Ray state pickles the old module names
(babysweep.sweep_view.SweepCallback, babysweep.spec.Spec, ...), and it, the MLflow store and the trials'
files hold absolute paths, so it is unpacked where it was made.
"""

import json
import os
import pickletools
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_sweep" / "legacy_sweep.tar.gz"
MADE_AT = Path("/tmp/babysweep-legacy-sweep")


def _pickled_globals(path: Path) -> set[str]:
    names, strings = set(), []
    for op, arg, _ in pickletools.genops(path.read_bytes()):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            names.add(".".join(strings[-2:]))
    return names


def test_a_sweep_made_before_the_move_resumes():
    shutil.rmtree(MADE_AT, ignore_errors=True)
    MADE_AT.mkdir(parents=True)
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(MADE_AT, filter="data")
    sweep = MADE_AT / "sweeps" / "legacy"
    old_names = _pickled_globals(sweep / "tuner.pkl")
    assert {"babysweep.sweep_view.SweepCallback", "babysweep.sweep_scheduler.WaveHalving",
            "babysweep.spec.Spec", "babysweep.space.OptunaSpace"} <= old_names  # the fixture names the old modules
    env = {**os.environ, "BABYSWEEP_PROJECT": str(MADE_AT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-m", "babysweep.cli", "run", "legacy.yaml"], cwd=MADE_AT, env=env,
                          capture_output=True, text=True, timeout=600)
    try:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "continuing: 1 of 2 trials done" in done.stdout and "continues from step_" in done.stdout, done.stdout[:2000]
        from babysweep.core.paths import default_tracking_uri
        from babysweep.sweep.state import sweep_status
        from babysweep.tracking.runs import sweep_runs

        rows = sweep_status("legacy", storage=MADE_AT / "sweeps")
        assert len(rows) == 2 and {r["state"] for r in rows} == {"FINISHED"} and {r["epoch"] for r in rows} == {4}
        runs = sweep_runs(default_tracking_uri(MADE_AT), "legacy")
        assert len(runs) == 2 and {r["status"] for r in runs} == {"FINISHED"}  # the killed trial's run continued
        # Made before data.chunk_bos: its trials keep the chunks they started with (no <s> added).
        records = [json.loads(p.read_text()) for p in sweep.rglob("run.json")]
        layouts = [r["config"]["data"].get("chunk_bos") for r in records]  # None: written by the old code
        assert False in layouts and True not in layouts
        assert not (sweep / "data_layout.json").exists()
    finally:
        shutil.rmtree(MADE_AT, ignore_errors=True)
