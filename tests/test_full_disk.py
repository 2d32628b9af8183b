"""A sweep whose storage fills up mid-trial ends with one sentence naming the path and what was being
written (exit 2, no traceback), keeps its finished trial, and a rerun once space is back continues it.

The full disk is simulated (tests/full_disk/sitecustomize.py): babysweep's durable writes flush with
os.fsync, which fails with ENOSPC under the sweep folder while a trigger file exists."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import study_kills  # noqa: E402

pytestmark = pytest.mark.slow

SPEC = """
name: full
role: teacher
data: {{seq_len: 16, builtin_words: 6000, tokenizer: {{vocab_size: 300}}, cache_dir: {cache}}}
model: {{arch: llama, layers: 1, hidden: 16, heads: 2}}
train: {{epochs: 6, batch_size: 16, lr: {{loguniform: [1.0e-3, 1.0e-2]}}, warmup_steps: 2, threads: 1}}
eval: {{dev_batches: 2, blimp: builtin, blimp_pairs_per_paradigm: 0}}
search: {{algorithm: random, samples: 2, scheduler: none, concurrent: 1, max_failures: 0}}
resources: {{cpu: 1}}
"""


def _driver(project: Path, trigger: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    # Only the trials' folders fill up: the driver's own writes (run map, model card) then still succeed, so
    # the sentence is the trial's. (A full sweep folder was checked by hand: the driver's run map write
    # failed first, with the same kind of sentence and exit 2.)
    env.update(BABYSWEEP_PROJECT=str(project), BABYSWEEP_TEST_FULL_UNDER=str(project / "sweeps" / "full" / "models"),
               BABYSWEEP_TEST_FULL_TRIGGER=str(trigger),
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parent / "full_disk"), str(Path(__file__).parents[1]),
                                           os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-m", "babysweep.cli", "run", str(project / "full.yaml")], cwd=project,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def test_a_sweep_on_a_full_disk_stops_with_one_sentence_and_continues_on_rerun(tmp_path, cache_dir):
    (tmp_path / "full.yaml").write_text(SPEC.format(cache=cache_dir))
    trigger, models = tmp_path / "disk-full", tmp_path / "sweeps" / "full" / "models"
    driver = _driver(tmp_path, trigger)
    # The disk fills up once the first trial has its model and the second its first checkpoint.
    while driver.poll() is None and not trigger.exists():
        finished = list(models.glob("*/final"))
        started = [c for c in models.glob("*/checkpoints/step_*") if c.parent.parent != finished[0].parent] if finished else []
        if started:
            trigger.touch()
        time.sleep(0.05)
    output = driver.communicate(timeout=300)[0]
    assert driver.returncode == 2, output[-4000:]
    last = output.strip().splitlines()[-1]
    assert last.startswith("error: could not write ") and "the disk is full" in last, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert f" to {models}/" in last, last  # a trial's write: its metrics, a checkpoint or its model
    kept = {p.parent.name: p.stat().st_mtime_ns for p in models.glob("*/final")}
    assert len(kept) == 1

    trigger.unlink()  # space is back
    rerun = _driver(tmp_path, trigger)
    output = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, output[-4000:]
    assert study_kills.check_sweeps(tmp_path, {"full": 2}) == []
    finals = {p.parent.name: p.stat().st_mtime_ns for p in models.glob("*/final")}
    first = next(iter(kept))
    assert finals[first] == kept[first]  # the finished trial was kept, not trained again
    (second,) = set(finals) - {first}
    assert "resumed from" in (models / second / "resumes.log").read_text()  # continued from its checkpoint
