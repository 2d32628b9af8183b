"""MLflow tracking: runs and nesting, kill + resume without duplicates, best_runs, the UI server.

One sqlite store serves the whole module (its first use costs seconds of migrations); each test
uses its own sweep name and sweep folder. No Ray here: the tests call the tracker as the sweep
layer's driver callbacks would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

import babysweep
from babysweep.core.errors import UserError
from babysweep.core.paths import default_tracking_uri, tracking_uri as resolve_tracking_uri
from babysweep.core.records import lineage_tags
from babysweep.tracking.store import MAP_FILE
from helpers import free_port, make_tracker
from babysweep.tracking.runs import best_runs, sweep_parent, sweep_runs
from babysweep.tracking.ui import serve_ui, stop_ui, wait_until_up


BLIMP_RESULTS = {"overall": 0.6, "paradigms": {"anaphor_gender_agreement": 0.7, "npi_present_1": 0.5},
                 "decisions": {"anaphor_gender_agreement": "1111111000", "npi_present_1": "10"}}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tracking_project")


@pytest.fixture(scope="module")
def uri(project) -> str:
    return default_tracking_uri(project)


@pytest.fixture(scope="module")
def client(uri) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(uri)


def config_for(lr: float, seed: int = 0) -> dict:
    return {"model": {"arch": "llama", "hidden": 32}, "train": {"lr": lr, "seed": seed, "epochs": 3},
            "distill": {"teachers": []}}


def model_folder(root: Path, name: str) -> Path:
    folder = root / "models" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return folder


def children(client, tracker) -> list:
    exp = client.get_experiment_by_name(tracker.sweep_name)
    return client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{tracker.parent_run_id}'")


def steps(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def count_batches(tracker) -> list:
    """Record every log_batch call the tracker makes."""
    calls, real = [], tracker._client.log_batch

    def wrapper(run_id, **kw):
        calls.append(kw)
        return real(run_id, **kw)

    tracker._client.log_batch = wrapper
    return calls


# ------------------------------------------------------------------------------------ store URIs


def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = default_tracking_uri(tmp_path)
    assert default == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"
    assert resolve_tracking_uri(None, tmp_path) == default
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/env.db")
    assert resolve_tracking_uri(None, tmp_path) == "sqlite:////elsewhere/env.db"
    assert resolve_tracking_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"
    assert resolve_tracking_uri(str(tmp_path / "x.db"), tmp_path) == f"sqlite:///{tmp_path.resolve()}/x.db"
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(UserError, match="file store"):
        resolve_tracking_uri("./mlruns", tmp_path)


# ------------------------------------------------------------------------------ a simulated sweep


def test_simulated_sweep_logs_parent_children_params_metrics_tags(uri, project, client, tmp_path):
    tracker = make_tracker(uri, project, "sim")
    calls = count_batches(tracker)
    long_value = "x" * 7000
    model = model_folder(tmp_path, "t0")
    run_ids = {}
    for i, lr in enumerate([1e-3, 2e-3, 3e-3]):
        trial = f"t{i}"
        run_ids[trial] = tracker.trial_started(trial, {"train.lr": lr, "model.note": long_value}, config_for(lr, seed=i))
        for epoch in (1, 2):
            before = len(calls)
            tracker.trial_result(trial, {"eval/loss": 4.0 - epoch - i / 10, "train/loss": 5.0 - epoch,
                                         "hostname": "box", "done": False, "bad": float("nan")}, step=epoch)
            assert len(calls) == before + 1  # one log_batch per report, not one call per key
    tracker.trial_finished("t0", "FINISHED", final_metrics={"blimp/overall": 0.61, "eval/loss": 99.0},
                           blimp=BLIMP_RESULTS, model_dir=str(model))
    tracker.trial_finished("t1", "FAILED", error="CUDA out of memory")
    tracker.trial_finished("t2", "STOPPED")
    tracker.sweep_finished(best_trial_id="t0")

    parent = client.get_run(tracker.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["kind"] == "sweep" and parent.data.tags["metric"] == "eval/loss"
    assert parent.data.tags["babysweep.version"] == babysweep.__version__
    assert parent.data.params["search.samples"] == "3" and parent.data.params["search.mode"] == "min"
    assert "spec.yaml" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    assert parent.data.tags["best_trial_id"] == "t0"

    kids = {r.data.tags["trial_id"]: r for r in children(client, tracker)}
    assert sorted(kids) == ["t0", "t1", "t2"] and {r.info.run_id for r in kids.values()} == set(run_ids.values())
    t0 = kids["t0"]
    assert t0.data.params["train.lr"] == "0.001" and t0.data.params["model.arch"] == "llama"
    assert t0.data.params["distill.teachers"] == "[]"
    assert len(t0.data.params["model.note"]) <= 6000 and t0.data.params["model.note"].endswith("[truncated]")
    assert t0.data.tags["sweep"] == "sim" and t0.data.tags["role"] == "teacher" and t0.data.tags["seed"] == "0"
    assert t0.data.tags["model_dir"] == str(model) and t0.data.tags["sampled"] == "model.note,train.lr"
    assert kids["t2"].data.tags["seed"] == "2"
    assert steps(client, t0.info.run_id, "eval/loss") == [(1, 3.0), (2, 2.0)]  # final 99.0 not a second step 2
    assert steps(client, t0.info.run_id, "blimp/overall") == [(2, 0.61)]
    assert "hostname" not in t0.data.metrics and "done" not in t0.data.metrics and "bad" not in t0.data.metrics
    assert t0.data.tags["nonfinite.bad"].startswith("nan")
    artifacts = {a.path for a in client.list_artifacts(t0.info.run_id)}
    assert {"config.json", "blimp.json", "model"} <= artifacts
    assert [a.path for a in client.list_artifacts(t0.info.run_id, "model")] == ["model/config.json"]
    config = json.loads(Path(client.download_artifacts(t0.info.run_id, "config.json", str(tmp_path))).read_text())
    assert config["train"]["lr"] == 1e-3
    blimp = json.loads(Path(client.download_artifacts(t0.info.run_id, "blimp.json", str(tmp_path))).read_text())
    assert blimp == BLIMP_RESULTS  # whole, per-pair decisions included: reports rebuild intervals from it
    table = json.loads(Path(client.download_artifacts(t0.info.run_id, "blimp_table.json", str(tmp_path))).read_text())
    assert table == {"paradigm": ["anaphor_gender_agreement", "npi_present_1"], "accuracy": [0.7, 0.5]}

    assert kids["t1"].info.status == "FAILED" and kids["t1"].data.tags["error"] == "CUDA out of memory"
    assert kids["t2"].info.status == "FINISHED" and kids["t2"].data.tags["stopped_early"] == "true"
    assert "model" not in {a.path for a in client.list_artifacts(kids["t1"].info.run_id)}

    rows = {r["trial_id"]: r for r in sweep_runs(uri, "sim", histories=["eval/loss"])}
    assert rows["t0"]["histories"] == {"eval/loss": [(1, 3.0), (2, 2.0)]}
    assert rows["t1"]["status"] == "FAILED" and rows["t0"]["params"]["train.lr"] == "0.001"
    assert sweep_parent(uri, "sim")["tags"]["mode"] == "min"


# --------------------------------------------------------------------------------- kill + resume


def test_kill_and_resume_reuses_runs_and_never_repeats_a_step(uri, project, client):
    first = make_tracker(uri, project, "resume")
    parent_id = first.parent_run_id
    t1 = first.trial_started("t1", {"train.lr": 1e-3}, config_for(1e-3))
    first.trial_started("t2", {"train.lr": 2e-3}, config_for(2e-3))
    for epoch in (1, 2, 3):
        first.trial_result("t1", {"eval/loss": 10.0 + epoch}, step=epoch)
    first.trial_result("t2", {"eval/loss": 20.0}, step=1)
    del first  # SIGKILL: nothing is closed

    # The kill also hit between a log_batch and the map update: the map is one step behind MLflow.
    map_path = project / "sweeps" / "resume" / MAP_FILE
    state = json.loads(map_path.read_text())
    state["trials"]["t1"]["last_step"] = 2
    map_path.write_text(json.dumps(state))

    second = make_tracker(uri, project, "resume")
    assert second.parent_run_id == parent_id and second.warnings == []
    assert client.get_run(parent_id).info.status == "RUNNING"
    calls = count_batches(second)
    assert second.trial_started("t1", {"train.lr": 1e-3}, config_for(1e-3)) == t1
    assert calls == []  # a known trial: params and config are not logged again
    for epoch in (2, 3, 4, 5):  # Ray replays from the last checkpoint (epoch 2)
        second.trial_result("t1", {"eval/loss": 100.0 + epoch}, step=epoch)
    second.trial_result("t2", {"eval/loss": 200.0}, step=1)
    second.trial_result("t2", {"eval/loss": 21.0}, step=2)
    second.trial_started("t3", {"train.lr": 3e-3}, config_for(3e-3))
    second.trial_result("t3", {"eval/loss": 30.0}, step=1)
    second.trial_finished("t1", "FINISHED")
    second.trial_finished("t3", "FINISHED")
    second.sweep_finished(best_trial_id="t1")  # t2 never reported an end (the scheduler stopped it)

    kids = {r.data.tags["trial_id"]: r for r in children(client, second)}
    assert sorted(kids) == ["t1", "t2", "t3"]  # no duplicate run
    exp = client.get_experiment_by_name("resume")
    assert len(client.search_runs([exp.experiment_id], "tags.kind = 'sweep'")) == 1
    assert steps(client, t1, "eval/loss") == [(1, 11.0), (2, 12.0), (3, 13.0), (4, 104.0), (5, 105.0)]
    assert steps(client, kids["t2"].info.run_id, "eval/loss") == [(1, 20.0), (2, 21.0)]
    assert kids["t2"].data.tags["stopped_early"] == "true"
    statuses = {r.info.status for r in client.search_runs([exp.experiment_id], "")}
    assert statuses == {"FINISHED"}  # no run left RUNNING
    assert json.loads(map_path.read_text())["trials"]["t1"]["run_id"] == t1


def test_run_created_just_before_a_kill_is_adopted(uri, project, client):
    first = make_tracker(uri, project, "orphan")
    # The kill came between create_run and the map write: MLflow has the run, the map does not.
    exp = client.get_experiment_by_name("orphan")
    orphan = client.create_run(exp.experiment_id, tags={"trial_id": "t1", "mlflow.parentRunId": first.parent_run_id}).info.run_id
    del first
    second = make_tracker(uri, project, "orphan")
    assert second.trial_started("t1", {"train.lr": 1e-3}, config_for(1e-3)) == orphan
    assert client.get_run(orphan).data.params["train.lr"] == "0.001"
    second.sweep_finished(None)
    assert len(children(client, second)) == 1


def test_interrupted_marks_killed_and_resume_reopens(uri, project, client):
    first = make_tracker(uri, project, "interrupt")
    run_id = first.trial_started("t1", {}, config_for(1e-3))
    first.trial_result("t1", {"eval/loss": 3.0}, step=1)
    first.interrupted()
    assert client.get_run(first.parent_run_id).info.status == "KILLED"
    assert client.get_run(run_id).info.status == "KILLED"

    second = make_tracker(uri, project, "interrupt")
    assert client.get_run(second.parent_run_id).info.status == "RUNNING"
    assert second.trial_started("t1", {}, config_for(1e-3)) == run_id
    assert client.get_run(run_id).info.status == "RUNNING"
    second.trial_result("t1", {"eval/loss": 2.5}, step=2)
    second.trial_finished("t1", "FINISHED")
    second.sweep_finished(None)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert "stopped_early" not in client.get_run(run_id).data.tags
    assert client.get_run(second.parent_run_id).info.status == "FINISHED"


def test_failed_trial_restarted_clears_error(uri, project, client):
    tracker = make_tracker(uri, project, "restart")
    run_id = tracker.trial_started("t1", {}, config_for(1e-3))
    tracker.trial_finished("t1", "FAILED", error="boom")
    assert client.get_run(run_id).data.tags["error"] == "boom"
    assert tracker.trial_started("t1", {}, config_for(1e-3)) == run_id  # restart_errored
    assert "error" not in client.get_run(run_id).data.tags
    tracker.trial_finished("t1", "FINISHED")
    tracker.sweep_finished(None)
    assert client.get_run(run_id).info.status == "FINISHED"


def test_deleted_parent_is_recreated_with_a_warning(uri, project, client):
    first = make_tracker(uri, project, "lostparent")
    run_id = first.trial_started("t1", {}, config_for(1e-3))
    first.trial_result("t1", {"eval/loss": 3.0}, step=1)
    client.delete_run(first.parent_run_id)

    second = make_tracker(uri, project, "lostparent")
    assert second.parent_run_id != first.parent_run_id
    assert any("parent" in w for w in second.warnings)
    assert client.get_run(run_id).data.tags["mlflow.parentRunId"] == second.parent_run_id
    assert second.trial_started("t1", {}, config_for(1e-3)) == run_id
    second.sweep_finished(None)
    assert [r["run_id"] for r in sweep_runs(uri, "lostparent")] == [run_id]


def test_corrupt_run_map_is_a_user_error(uri, project):
    sweep_dir = project / "sweeps" / "corrupt"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / MAP_FILE).write_text("{not json")
    with pytest.raises(UserError, match=MAP_FILE):
        make_tracker(uri, project, "corrupt")


# ----------------------------------------------------------------------------- teacher lineage


def test_best_runs_order_filters_and_errors(uri, project, client, tmp_path):
    tracker = make_tracker(uri, project, "teachers", models="all")
    # trial: (final eval/loss, status, has a model)
    plan = {"a": (0.5, "FINISHED", True), "b": (0.3, "FINISHED", True), "c": (0.9, "FINISHED", True),
            "d": (0.1, "FINISHED", False), "e": (0.05, "STOPPED", True), "f": (0.01, "FAILED", True)}
    for trial, (loss, status, has_model) in plan.items():
        tracker.trial_started(trial, {"train.lr": loss}, config_for(loss))
        tracker.trial_result(trial, {"eval/loss": loss}, step=1)
        model = str(model_folder(tmp_path, trial)) if has_model else None
        tracker.trial_finished(trial, status, model_dir=model, error="x" if status == "FAILED" else None)
    tracker.sweep_finished(None)

    refs = best_runs(uri, "teachers", top=2)
    assert [(r.trial_id, r.value) for r in refs] == [("b", 0.3), ("a", 0.5)]
    assert refs[0].model_dir == str(tmp_path / "models" / "b") and refs[0].params["train.lr"] == "0.3"
    assert refs[0].metric == "eval/loss" and refs[0].run_id == tracker._state["trials"]["b"]["run_id"]
    assert [r.trial_id for r in best_runs(uri, "teachers", top=3, mode="max")] == ["c", "a", "b"]
    # models: all -> every trial that finished with a model has it as an artifact, the failed one not
    kids = {r.data.tags["trial_id"]: r for r in children(client, tracker)}
    assert "model" in {a.path for a in client.list_artifacts(kids["a"].info.run_id)}
    assert "model" not in {a.path for a in client.list_artifacts(kids["f"].info.run_id)}

    with pytest.raises(UserError, match="sweep 'teachers' has 3 finished trials with a saved model.*top 4"):
        best_runs(uri, "teachers", top=4)
    shutil.rmtree(tmp_path / "models" / "a")  # a model folder that no longer exists does not count
    shutil.rmtree(tmp_path / "models" / "c")
    with pytest.raises(UserError, match="has 1 finished trial with a saved model"):
        best_runs(uri, "teachers", top=2)
    with pytest.raises(UserError, match="no MLflow experiment for sweep 'nosuch'"):
        best_runs(uri, "nosuch", top=1)

    # per_arch: the best of each architecture the sweep tried, the architectures in the order of their best
    config = config_for(0.7)
    config["model"]["arch"] = "gpt2"
    (tmp_path / "models").mkdir(exist_ok=True)
    for trial, loss, status in (("g1", 0.7, "FINISHED"), ("g2", 0.2, "FAILED")):
        tracker = make_tracker(uri, project, "teachers", models="none")
        tracker.trial_started(trial, {"model.arch": "gpt2"}, config)
        tracker.trial_result(trial, {"eval/loss": loss}, step=1)
        tracker.trial_finished(trial, status, model_dir=str(model_folder(tmp_path, trial)))
        tracker.sweep_finished(None)
    assert [r.trial_id for r in best_runs(uri, "teachers", top=1, per_arch=True)] == ["b", "g1"]
    assert [r.trial_id for r in best_runs(uri, "teachers", top=2)] == ["b", "g1"]  # across architectures
    with pytest.raises(UserError, match="has 1 finished trial of model.arch llama with a saved model.*top 2"):
        best_runs(uri, "teachers", top=2, per_arch=True)
    shutil.rmtree(tmp_path / "models" / "g1")  # gpt2 is left with a failed trial only: it still counts
    with pytest.raises(UserError, match="has 0 finished trials of model.arch gpt2 with a saved model.*top 1"):
        best_runs(uri, "teachers", top=1, per_arch=True)

    # A student records its teachers: run ids as a tag, their paths as the distill.teachers param.
    student = make_tracker(uri, project, "students", role="student")
    teachers = best_runs(uri, "teachers", top=1)
    config = config_for(1e-3)
    config["distill"]["teachers"] = [r.model_dir for r in teachers]
    run_id = student.trial_started("s1", {}, config, tags=lineage_tags([r.run_id for r in teachers], [r.sweep for r in teachers]))
    run = client.get_run(run_id)
    assert run.data.tags["teachers.run_ids"] == teachers[0].run_id
    assert json.loads(run.data.params["distill.teachers"]) == [teachers[0].model_dir]
    assert run.data.tags["role"] == "student"
    student.sweep_finished(None)


def test_models_best_logs_only_the_best_trial_chosen_by_metric(uri, project, client, tmp_path):
    tracker = make_tracker(uri, project, "bestmodel")
    for trial, loss in (("a", 2.0), ("b", 1.0)):
        tracker.trial_started(trial, {}, config_for(1e-3))
        tracker.trial_result(trial, {"eval/loss": loss}, step=1)
        tracker.trial_finished(trial, "FINISHED", model_dir=str(model_folder(tmp_path, trial)))
    tracker.sweep_finished(None)  # no best given: ranked by eval/loss, min
    kids = {r.data.tags["trial_id"]: r for r in children(client, tracker)}
    assert "model" in {a.path for a in client.list_artifacts(kids["b"].info.run_id)}
    assert "model" not in {a.path for a in client.list_artifacts(kids["a"].info.run_id)}
    assert client.get_run(tracker.parent_run_id).data.tags["best_run_id"] == kids["b"].info.run_id


def test_git_commit_tag_when_in_a_repository(uri, project, client, tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    tracker = make_tracker(uri, project, "gitsweep", project_dir=repo)
    run_id = tracker.trial_started("t1", {}, config_for(1e-3))
    assert client.get_run(run_id).data.tags["mlflow.source.git.commit"] == head
    tracker.sweep_finished(None)
    # Outside a repository the tag is simply absent.
    plain = make_tracker(uri, project, "nogit", project_dir=tmp_path / "plain")
    assert "mlflow.source.git.commit" not in client.get_run(plain.parent_run_id).data.tags
    plain.sweep_finished(None)


# ---------------------------------------------------------------------------------------- the UI


@pytest.mark.slow
def test_serve_ui_answers_on_localhost(uri, project, tmp_path):
    tracker = make_tracker(uri, project, "uisweep")
    tracker.sweep_finished(None)
    log_path = tmp_path / "ui.log"
    proc, address = serve_ui(uri, port=free_port(), log_path=log_path)
    try:
        assert address.startswith("http://127.0.0.1:")
        up = wait_until_up(address, timeout=120, process=proc)
        assert up, log_path.read_text()[-3000:]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{address}/api/2.0/mlflow/experiments/search?max_results=1000", timeout=10) as response:
            names = {e["name"] for e in json.load(response)["experiments"]}
        assert "uisweep" in names
    finally:
        stop_ui(proc)


def test_trial_params_from_the_trainer_are_logged_once(uri, project, client):
    tracker = make_tracker(uri, project, "cacheparams")
    run_id = tracker.trial_started("t1", {"train.lr": 0.01}, config_for(0.01))
    own = {"distill.cache_mode": "exact", "distill.cache_estimate_gb": 4.8, "distill.cache_reason": "auto: fits"}
    tracker.trial_params("t1", own)
    tracker.trial_params("t1", own)  # every epoch reports them again: nothing new to log
    tracker.trial_params("t1", {**own, "distill.cache_mode": "none"})  # a resumed trial that chose otherwise
    run = client.get_run(run_id)
    assert run.data.params["distill.cache_mode"] == "exact" and run.data.params["distill.cache_estimate_gb"] == "4.8"
    assert run.data.tags["distill.cache_mode"] == "none"


_OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
from babysweep.tracking import store as tracking
ready, go = Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.01)
tracking._client(sys.argv[1]).search_experiments()
"""


@pytest.mark.slow
def test_processes_opening_a_new_sqlite_store_at_once_all_succeed(tmp_path):
    # MLflow creates and migrates a new sqlite store without a lock; unguarded, one of two fails here.
    import sys

    uri = default_tracking_uri(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AT_ONCE, uri, str(tmp_path / f"ready{i}"), str(tmp_path / "go")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)) and all(p.poll() is None for p in procs):
        time.sleep(0.05)
    (tmp_path / "go").touch()
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outputs)


def test_a_store_creation_killed_mid_migration_does_not_break_the_next_open(tmp_path):
    """MLflow creates a sqlite store in steps (tables, then about 50 migrations); a driver killed between two
    left a database that every later open failed to migrate ("table _alembic_tmp_latest_metrics already
    exists"), so a killed study could never continue. Here the creator dies at its 400th SQL statement
    (of about 1,700), inside the migrations."""
    import sys

    db = tmp_path / "mlruns" / "mlflow.db"
    uri = f"sqlite:///{db}"
    creator = ("import os, sys\n"
               "from sqlalchemy import event\n"
               "from sqlalchemy.engine import Engine\n"
               "count = [0]\n"
               "def step(*args):\n"
               "    count[0] += 1\n"
               "    if count[0] == 400:\n"
               "        os._exit(9)\n"
               "event.listen(Engine, 'after_cursor_execute', step)\n"
               "from babysweep.tracking.store import _client\n"
               "_client(sys.argv[1])\n")
    assert subprocess.run([sys.executable, "-c", creator, uri], capture_output=True).returncode == 9
    from babysweep.tracking.store import _client

    assert [e.name for e in _client(uri).search_experiments()] == ["Default"]
    assert sorted(p.name for p in db.parent.iterdir()) == ["mlflow.db", "mlflow.db.lock"]  # no temporary file left


def test_a_report_whose_write_fails_leaves_no_half_run_and_keeps_the_previous(uri, client, tmp_path, monkeypatch):
    from babysweep.tracking import runs as runs_module
    from babysweep.tracking.runs import REPORTS_EXPERIMENT, log_report
    from babysweep.tracking.store import DamagedStore

    (tmp_path / "report.md").write_text("# r\n")
    first = log_report(uri, "half", {"a": 1}, {"m": 1.0}, tmp_path)

    def damaged(*args, **kwargs):
        raise DamagedStore("mlruns/mlflow.db: the MLflow store is damaged (test).")

    monkeypatch.setattr(runs_module, "_log_batch", damaged)
    with pytest.raises(DamagedStore):
        log_report(uri, "half", {"a": 2}, {"m": 2.0}, tmp_path)
    exp = client.get_experiment_by_name(REPORTS_EXPERIMENT)
    active = client.search_runs([exp.experiment_id], "tags.report = 'half'")
    assert [r.info.run_id for r in active] == [first] and active[0].data.metrics["m"] == 1.0
