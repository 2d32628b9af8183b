"""Sweeps end to end on a real (small) Ray instance: one per test session where possible."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from babysweep.core.paths import default_tracking_uri
from babysweep.spec.load import load_spec
from helpers import write_spec  # noqa: F401  (other test modules import it from here too)
from babysweep.tracking.runs import run_json

pytestmark = pytest.mark.slow



def _runs(project: Path, name: str) -> list[dict]:
    from babysweep.tracking.runs import sweep_runs

    return sweep_runs(default_tracking_uri(project), name)


def test_tiny_sweep_end_to_end(ray_session, project, cache_dir):
    from babysweep.sweep.driver import run_sweep
    from babysweep.sweep.state import sweep_status

    result = run_sweep(load_spec(write_spec(project, cache_dir)), live=False)
    assert not result.interrupted and result.counts["finished"] == 3
    rows = sweep_status("tiny")
    assert (result.folder / "data_layout.json").is_file()
    assert len(rows) == 3 and {r["state"] for r in rows} == {"FINISHED"}
    assert all(r["epoch"] == r["planned"] == 2 for r in rows)
    assert Path(result.best["model_dir"], "config.json").is_file()
    runs = _runs(project, "tiny")
    assert len(runs) == 3 and {r["status"] for r in runs} == {"FINISHED"}
    for run in runs:
        assert "train.lr" in run["params"] and "blimp/overall" in run["metrics"]
        assert run["tags"]["sweep"] == "tiny" and run["tags"]["role"] == "teacher"
        # MLflow's config.json is the config the trainer ran with (seed, cache and threads included).
        logged = run_json(default_tracking_uri(project), run["run_id"], "config.json")
        trained = json.loads((Path(run["tags"]["model_dir"]).parent / "run.json").read_text())["config"]
        assert logged == trained and logged["train"]["threads"] == 1
        assert trained["data"]["chunk_bos"] is True  # a new sweep: <s>-first chunks (data/batches.py)
        assert run["metrics"]["train/lr"] > 0  # the learning rate actually used, logged each epoch


def test_a_trial_that_reaches_max_steps_finished_its_budget(ray_session, project, cache_dir):
    """Only the scheduler's decision is "stopped early": max_steps is the trial's planned budget."""
    from babysweep.sweep.driver import run_sweep
    from babysweep.sweep.state import sweep_status

    spec = write_spec(project, cache_dir, name="capped", samples=1, epochs=3, lr=0.003)
    spec.write_text(spec.read_text().replace("warmup_steps: 5", "warmup_steps: 5, max_steps: 4"))
    result = run_sweep(load_spec(spec), live=False)
    assert result.best is not None  # a fully trained trial: it can be a teacher and a finalist
    (row,) = sweep_status("capped")
    assert row["state"] == "FINISHED" and row["epoch"] == 1 and row["metrics"]["train/lr"] > 0
    (run,) = _runs(project, "capped")
    assert run["status"] == "FINISHED" and "stopped_early" not in run["tags"]


MIXED = """
name: {name}
data: {{seq_len: 32, builtin_words: 20000, tokenizer: {{vocab_size: 500}}, cache_dir: {cache}}}
model: {{layers: 1, hidden: 32, heads: 2}}
train: {{epochs: 3, batch_size: 32, lr: {{loguniform: [1.0e-3, 1.0e-2]}}, warmup_steps: 5}}
antlm: {{schedule: {schedule}}}
eval: {{dev_batches: 2, blimp: builtin}}
search: {{algorithm: optuna, samples: 3, metric: {metric}, mode: {mode}, scheduler: {scheduler}, concurrent: 2, max_failures: 0}}
resources: {{cpu: 1}}
"""


@pytest.mark.parametrize("schedule, metric, mode, scheduler", [
    ("1clm+1mlm+1clm", "eval/loss", "min", "asha"),  # ASHA's metric is absent from the MLM epoch's result
    ("3clm", "blimp/overall", "max", "none"),  # Optuna's metric exists after the last epoch only
])
def test_results_without_the_metric_do_not_break_asha_or_optuna(ray_session, project, cache_dir, schedule, metric,
                                                                  mode, scheduler):
    from babysweep.sweep.driver import run_sweep

    name = f"mixed-{scheduler}"
    path = project / f"{name}.yaml"
    path.write_text(MIXED.format(name=name, cache=cache_dir, schedule=schedule, metric=metric, mode=mode,
                                 scheduler=scheduler))
    result = run_sweep(load_spec(path), live=False)
    assert not result.interrupted and result.counts["errored"] == 0 and result.counts["trials"] == 3
    assert metric in result.best["metrics"]
    runs = _runs(project, name)
    assert len(runs) == 3 and all(metric in r["metrics"] for r in runs if r["tags"].get("stopped_early") != "true")
    from babysweep.spec.sampler import describe_sampler
    from babysweep.tracking.runs import sweep_parent

    params = sweep_parent(default_tracking_uri(project), name)["params"]  # the sampler's settings, in MLflow
    assert describe_sampler(params) == "independent TPE, first 2 trials random, seed 0"


def test_failing_trial_is_errored_and_the_sweep_goes_on(ray_session, project, cache_dir):
    from babysweep.sweep.driver import run_sweep
    from babysweep.sweep.state import sweep_status

    # hidden 30 is not divisible by 2 heads... but 31 is not: that config fails inside its trial.
    spec = write_spec(project, cache_dir, name="faulty", hidden="{grid: [32, 31]}", lr=0.003, algorithm="grid", epochs=1)
    result = run_sweep(load_spec(spec), live=False)
    assert result.counts == {"trials": 2, "finished": 1, "errored": 1, "unfinished": 0}
    errored = [r for r in sweep_status("faulty") if r["state"] == "ERROR"]
    assert len(errored) == 1 and "divisible" in errored[0]["error"]
    runs = _runs(project, "faulty")
    failed = [r for r in runs if r["status"] == "FAILED"]
    assert len(runs) == 2 and len(failed) == 1 and "divisible" in failed[0]["tags"]["error"]


def test_changed_spec_is_refused(ray_session, project, cache_dir):
    from babysweep.core.errors import UserError
    from babysweep.sweep.driver import run_sweep

    run_sweep(load_spec(write_spec(project, cache_dir, name="fixed", samples=1, epochs=1)), live=False)
    changed = write_spec(project, cache_dir, name="fixed", samples=1, epochs=1, lr="{loguniform: [1.0e-4, 1.0e-2]}")
    with pytest.raises(UserError, match=r"train\.lr.*--name.*--fresh"):
        run_sweep(load_spec(changed), live=False)


def test_sigkill_and_resume(project, cache_dir):
    """A real driver in a subprocess, killed (with its Ray) mid-trial, then run again."""
    spec = write_spec(project, cache_dir, name="killed", epochs=8, samples=2)
    spec_text = spec.read_text().replace("concurrent: 2", "concurrent: 1")
    spec.write_text(spec_text)
    command = [sys.executable, "-m", "babysweep.cli", "run", str(spec)]
    env = {**os.environ, "BABYSWEEP_PROJECT": str(project)}
    driver = subprocess.Popen(command, cwd=project, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    models = project / "sweeps" / "killed" / "models"
    deadline = time.time() + 180
    try:
        while time.time() < deadline:  # wait until a trial has reported at least one epoch, mid-run
            histories = [p.read_text().splitlines() for p in models.glob("*/metrics.jsonl")] if models.exists() else []
            if any(3 <= len(h) <= 5 for h in histories):  # a few epochs reported: Ray's state has a checkpoint
                break
            time.sleep(0.2)
        else:
            pytest.fail("the sweep never reached its third epoch")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started: a lost machine
        driver.wait()
    again = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-6000:]
    # The rerun says what it continues before it runs anything.
    assert "continuing: 0 of 2 trials done" in again.stdout and "continues from step_" in again.stdout, again.stdout[:2000]
    from babysweep.sweep.state import sweep_status

    rows = sweep_status("killed")
    assert len(rows) == 2 and {r["state"] for r in rows} == {"FINISHED"}
    resumed = list(models.glob("*/resumes.log"))
    assert resumed, "no trial continued from a checkpoint"
    for log in resumed:
        epochs = [json.loads(line)["epoch"] for line in (log.parent / "metrics.jsonl").read_text().splitlines()]
        assert epochs == list(range(1, 9))
    runs = _runs(project, "killed")
    assert len(runs) == 2 and {r["status"] for r in runs} == {"FINISHED"}


def test_student_sweep_distils_from_the_best_teachers(ray_session, project, cache_dir):
    from babysweep.core.errors import UserError
    from babysweep.sweep.driver import run_sweep

    student = write_spec(project, cache_dir, name="pupils", samples=1, epochs=1, lr=0.003)
    student.write_text(student.read_text().replace("name: pupils", "name: pupils\ndistill: {teachers: {from_sweep: tutors, top: 2}, alpha: 0.5}"))
    with pytest.raises(UserError, match="tutors"):  # no such sweep yet
        run_sweep(load_spec(student), live=False)
    run_sweep(load_spec(write_spec(project, cache_dir, name="tutors", samples=2, epochs=1)), live=False)
    result = run_sweep(load_spec(student), live=False, fresh=True)
    assert result.counts["finished"] == 1
    teachers = {r["run_id"]: r for r in _runs(project, "tutors")}
    (run,) = _runs(project, "pupils")
    assert set(run["tags"]["teachers.run_ids"].split(",")) == set(teachers)
    assert run["tags"]["role"] == "student"
    chosen = json.loads((project / "sweeps" / "pupils" / "teachers.json").read_text())
    assert sorted(t["model_dir"] for t in chosen) == sorted(t["tags"]["model_dir"] for t in teachers.values())


def test_two_runs_of_an_optuna_asha_sweep_keep_the_same_trials(ray_session, project, cache_dir):
    """Reproducible: the same spec twice gives the same configs, the same early stops and the same best
    config, whichever trial of a wave reports first (trials run in waves; WaveHalving judges against
    earlier waves only)."""
    from babysweep.sweep.driver import run_sweep
    from babysweep.sweep.state import sweep_status

    outcomes = []
    for name in ("again_a", "again_b"):
        path = write_spec(project, cache_dir, name=name, samples=6, epochs=3, algorithm="optuna")
        path.write_text(path.read_text().replace("scheduler: none", "scheduler: asha, grace_period: 1"))
        result = run_sweep(load_spec(path), live=False)
        rows = sweep_status(name)
        outcomes.append((sorted((round(r["params"]["train.lr"], 12), r["state"], r["epoch"]) for r in rows),
                         round(result.best["params"]["train.lr"], 12)))
    assert outcomes[0] == outcomes[1]
