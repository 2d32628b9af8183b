"""What a researcher meets in MLflow's UI: the experiment kind, the parent run's summary, trial names
and tags, deep links, and model cards that transformers loads.

The fast tests drive the tracker as the sweep driver does; the slow one runs a tiny Ray sweep, resumes
it, and reads everything back through MLflow's REST API from `mlflow server`.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
import pytest

from babysweep.core import records as R
from babysweep.train.model_card import model_card
from babysweep.core.config import RunConfig
from babysweep.core.paths import default_tracking_uri
from babysweep.tracking.links import COMPARE_VIEW_KEY, SHARED_VIEW_TAG, VIEW_KEY, sweeps_link, ui_links
from babysweep.tracking.tracker import SweepTracker
from babysweep.tracking.ui import serve_ui, stop_ui, wait_until_up

from helpers import free_port, make_tracker as tracker_for


def make_tracker(uri: str, project: Path, name: str, **kw) -> SweepTracker:
    return tracker_for(uri, project, name, **{"search_settings": {"algorithm": "random", "samples": 3}, **kw})


def config_for(lr: float, hidden: int = 32) -> dict:
    return {"model": {"arch": "gpt2", "hidden": hidden}, "train": {"lr": lr, "seed": 0, "epochs": 2},
            "distill": {"teachers": ["/p/sweeps/teachers/models/a_00001/final", "/p/sweeps/teachers/models/b_00002/final"]},
            "antlm": {"schedule": "1clm+1mlm", "mlm_ratio": 0.0}}


def finish(tracker, trial: str, loss: float, blimp: float, status: str = "FINISHED", hidden: int = 32) -> str:
    run_id = tracker.trial_started(trial, {"train.lr": loss / 1000, "model.hidden": hidden}, config_for(loss / 1000, hidden))
    tracker.trial_result(trial, {"eval/loss": loss}, step=1)
    tracker.trial_finished(trial, status, final_metrics={"blimp/overall": blimp}, error="boom" if status == "FAILED" else None)
    return run_id


# ------------------------------------------------------------------------------------------ records


def test_group_tags_names_and_varying_keys():
    assert R.group_tags(config_for(1e-3)) == {"arch": "gpt2", "schedule": "1clm+1mlm",
                                              "teachers": "teachers/a_00001,teachers/b_00002"}
    assert R.group_tags({"model": {}, "antlm": {"mlm_ratio": 0.25}}) == {"arch": "llama", "schedule": "mlm_ratio=0.25",
                                                                          "teachers": "none"}
    trials = [{"train.lr": 1e-3, "model.hidden": 32, "train.seed": 0}, {"train.lr": 2e-3, "model.hidden": 32, "train.seed": 0},
              {"train.lr": 3e-3, "model.hidden": 64, "train.seed": 0}]
    assert R.varying_keys(trials) == ["train.lr", "model.hidden"]  # the seed does not vary: not shown
    assert R.varying_keys(trials[:1]) == []  # one trial: nothing varies yet
    assert R.trial_run_name("teachers", "a_00001", trials[2], ["train.lr", "model.hidden"]) == "teachers/a_00001 lr=0.003 hidden=64"


# ------------------------------------------------------------------------------- the parent summary


def test_parent_summary_survives_resume_and_best_params_are_written_once(tmp_path):
    uri = default_tracking_uri(tmp_path)
    client = mlflow.MlflowClient(uri)
    first = make_tracker(uri, tmp_path, "summary")
    t1 = finish(first, "t1", 3.0, 0.6)
    first.trial_started("t2", {"train.lr": 1e-3, "model.hidden": 64}, config_for(1e-3, 64))
    first.interrupted()
    parent = client.get_run(first.parent_run_id)
    assert parent.data.metrics[R.TRIALS_FINISHED] == 1 and parent.data.metrics["best/eval/loss"] == 3.0
    assert not any(k.startswith("best.") for k in parent.data.params)  # not before the sweep finishes

    second = make_tracker(uri, tmp_path, "summary")  # the resume
    assert second.parent_run_id == first.parent_run_id
    second.trial_result("t2", {"eval/loss": 2.0}, step=1)
    second.trial_finished("t2", "FINISHED", final_metrics={"blimp/overall": 0.7})
    finish(second, "t3", 9.0, 0.9, status="FAILED")
    finish(second, "t4", 1.0, 0.95, status="STOPPED")  # stopped early: not the best, whatever its loss
    second.sweep_finished(None)

    exp = client.get_experiment_by_name("summary")
    assert exp.tags[R.EXPERIMENT_KIND] == R.MODEL_TRAINING
    parents = client.search_runs([exp.experiment_id], "tags.kind = 'sweep'")
    assert len(parents) == 1
    parent = parents[0]
    metrics, params = parent.data.metrics, parent.data.params
    assert metrics["best/eval/loss"] == 2.0 and metrics["best/blimp/overall"] == 0.7
    assert (metrics[R.TRIALS_FINISHED], metrics[R.TRIALS_STOPPED], metrics[R.TRIALS_ERRORED]) == (2, 1, 1)
    history = [m.value for m in sorted(client.get_metric_history(parent.info.run_id, R.TRIALS_FINISHED), key=lambda m: m.step)]
    assert history == [1.0, 2.0]  # updated as trials ended, across the resume, at growing steps
    t2 = second.run_id("t2")
    assert params["best.trial_id"] == "t2" and params["best.run_id"] == t2
    assert params["best.train.lr"] == "0.001" and params["best.model.hidden"] == "64"

    # A later finish with another best (a rerun that retried the errored trial): params stay, tags say it.
    third = make_tracker(uri, tmp_path, "summary")
    third.trial_started("t3", {"train.lr": 9e-3, "model.hidden": 32}, config_for(9e-3))
    third.trial_result("t3", {"eval/loss": 0.5}, step=2)
    third.trial_finished("t3", "FINISHED", final_metrics={"blimp/overall": 0.8})
    third.sweep_finished(None)
    parent = client.get_run(first.parent_run_id)
    assert parent.data.metrics[R.TRIALS_ERRORED] == 0 and parent.data.metrics[R.TRIALS_FINISHED] == 3  # latest wins
    assert parent.data.params["best.trial_id"] == "t2" and parent.data.tags["best.trial_id"] == "t3"
    assert parent.data.tags[R.BEST_TRIAL_ID] == "t3" and parent.data.metrics["best/eval/loss"] == 0.5
    assert any("best.*" in w for w in third.warnings)
    assert client.get_run(t1).info.run_name.startswith("summary/t1 ")


def test_trial_runs_are_named_by_what_varies_and_carry_group_tags(tmp_path):
    uri = default_tracking_uri(tmp_path)
    client = mlflow.MlflowClient(uri)
    tracker = make_tracker(uri, tmp_path, "names", role="student")
    ids = {t: finish(tracker, t, loss, 0.5, hidden=h) for t, loss, h in (("t1", 3.0, 32), ("t2", 2.0, 32), ("t3", 1.0, 64))}
    tracker.sweep_finished(None)
    names = {t: client.get_run(r).info.run_name for t, r in ids.items()}
    # lr takes three values, hidden two: both shown, lr first; the fixed seed is not
    assert names == {"t1": "names/t1 lr=0.003 hidden=32", "t2": "names/t2 lr=0.002 hidden=32", "t3": "names/t3 lr=0.001 hidden=64"}
    tags = client.get_run(ids["t1"]).data.tags
    assert (tags["role"], tags["arch"], tags["schedule"]) == ("student", "gpt2", "1clm+1mlm")
    assert tags["teachers"] == "teachers/a_00001,teachers/b_00002"

    (links,) = ui_links(uri, "http://127.0.0.1:5999", "names")
    exp = client.get_experiment_by_name("names")
    assert links.runs == (f"http://127.0.0.1:5999/#/experiments/{exp.experiment_id}/runs?viewStateShareKey={VIEW_KEY}"
                          "&workflowType=machine_learning")
    assert links.charts == links.runs + "&compareRunsMode=CHART"
    assert links.compare == (f"http://127.0.0.1:5999/#/experiments/{exp.experiment_id}/runs?viewStateShareKey={COMPARE_VIEW_KEY}"
                             "&workflowType=machine_learning&compareRunsMode=CHART")
    assert links.compare_page.startswith("http://127.0.0.1:5999/#/compare-runs?runs=")
    assert sweeps_link("http://h:1", [links, links]) == (
        f"http://h:1/#/compare-experiments/s?experiments=%5B%22{exp.experiment_id}%22%2C%20%22{exp.experiment_id}%22%5D"
        "&searchFilter=tags.kind%20%3D%20%27sweep%27&workflowType=machine_learning&compareRunsMode=CHART")
    query = urllib.parse.parse_qs(links.compare_page.split("?", 1)[1])
    assert sorted(json.loads(query["runs"][0])) == sorted(ids.values()) and links.trials == 3
    assert json.loads(query["experiments"][0]) == [exp.experiment_id] and query["workflowType"] == ["machine_learning"]
    state = json.loads(client.get_experiment(exp.experiment_id).tags[SHARED_VIEW_TAG + VIEW_KEY])
    assert state["searchFilter"] == "tags.kind = 'trial'" and state["orderByKey"] == "metrics.`eval/loss`"
    assert state["orderByAsc"] is True and "metrics.`blimp/overall`" in state["selectedColumns"]
    assert "params.`train.lr`" in state["selectedColumns"] and "tags.`arch`" in state["selectedColumns"]
    assert state["chartsSearchFilter"].startswith("eval/loss|blimp/overall")
    # The chart view opens on the sweep's metric and the parameters that vary: parallel coordinates first.
    parallel = state["compareRunCharts"][0]
    assert parallel["type"] == "PARALLEL" and parallel["selectedMetrics"] == ["eval/loss"]
    assert parallel["selectedParams"] == ["train.lr", "model.hidden"] == links.params  # most distinct values first
    assert parallel["metricSectionId"] == state["compareRunSections"][0]["uuid"]
    assert state["compareRunCharts"][1]["xaxis"] == {"key": "train.lr", "type": "PARAM"}
    # The compare link: the same view, fully trained trials only (MLflow's search filter, run server-side).
    compare = json.loads(client.get_experiment(exp.experiment_id).tags[SHARED_VIEW_TAG + COMPARE_VIEW_KEY])
    assert len(client.search_runs([exp.experiment_id], compare["searchFilter"])) == 3
    # In order of importance where known: a ranking puts hidden first.
    (ranked,) = ui_links(uri, "http://127.0.0.1:5999", "names", rank=lambda runs, metric, mode: ["model.hidden", "train.lr"])
    assert ranked.params == ["model.hidden", "train.lr"]
    state = json.loads(client.get_experiment(exp.experiment_id).tags[SHARED_VIEW_TAG + VIEW_KEY])
    assert state["compareRunCharts"][0]["selectedParams"] == ["model.hidden", "train.lr"]


# ------------------------------------------------------------------------------------- model cards


def test_model_card_names_what_a_reader_needs():
    config = config_for(1e-3)
    config["data"] = {"train": "builtin", "seq_len": 32, "tokenizer": {"vocab_size": 500}, "cache_dir": "/x"}
    config["distill"].update(alpha=0.5, temperature=2.0)
    card = model_card(RunConfig.of(config), {"eval/loss": 2.5, "blimp/overall": 0.8, "model/params": 12345, "blimp/paradigm/x": 1.0},
                      sweep="students.final", trial_id="t1", role="student", run_id="abc123", tracking_uri="sqlite:///m.db",
                      teacher_runs=["r1", "r2"])
    assert card.startswith("---\nlibrary_name: transformers\n")
    for text in ("# students.final/t1", "12,345 parameters", "| vocab_size | 500 |", "| lr | 0.001 |", "Seed 0",
                 "| eval/loss | 2.5 |", "/p/sweeps/teachers/models/a_00001/final` (MLflow run `r1`)", "| MLflow run id | abc123 |",
                 "| alpha | 0.5 |", "synthetic"):
        assert text in card, text
    assert "blimp/paradigm/x" not in card and "cache_dir" not in card


# -------------------------------------------------------------------- a real sweep, read over REST


def _get(address: str, path: str, **query) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"{address}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}"
    with opener.open(url, timeout=30) as response:
        return json.load(response)


def _post(address: str, path: str, body: dict) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{address}/api/2.0/mlflow/{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with opener.open(request, timeout=30) as response:
        return json.load(response)


@pytest.mark.slow
def test_tiny_sweep_over_rest_names_tags_summary_and_loadable_cards(tmp_path, monkeypatch, cache_dir):
    import ray
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from babysweep.spec.load import load_spec
    from babysweep.sweep.driver import run_sweep

    monkeypatch.setenv("BABYSWEEP_PROJECT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(f"""name: tinyui
data: {{seq_len: 32, builtin_words: 20000, tokenizer: {{vocab_size: 500}}, cache_dir: {cache_dir}}}
model: {{layers: 1, hidden: 32, heads: 2}}
train: {{epochs: 1, batch_size: 32, lr: {{loguniform: [1.0e-3, 1.0e-2]}}, warmup_steps: 5}}
eval: {{dev_batches: 2, blimp: builtin}}
search: {{algorithm: random, samples: 2, scheduler: none, concurrent: 2, max_failures: 0}}
resources: {{cpu: 1}}
""")
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2, log_to_driver=False)
    try:
        first = run_sweep(load_spec(spec), live=False)
        again = run_sweep(load_spec(spec), live=False)  # a rerun of a finished sweep: the same parent, updated
    finally:
        ray.shutdown()
    assert first.counts["finished"] == 2 and not again.interrupted

    uri = default_tracking_uri(tmp_path)
    proc, address = serve_ui(uri, port=free_port(), log_path=tmp_path / "ui.log")
    try:
        assert wait_until_up(address, timeout=120, process=proc), (tmp_path / "ui.log").read_text()[-3000:]
        exp = _get(address, "experiments/get-by-name", experiment_name="tinyui")["experiment"]
        assert {t["key"]: t["value"] for t in exp["tags"]}[R.EXPERIMENT_KIND] == R.MODEL_TRAINING
        runs = _post(address, "runs/search", {"experiment_ids": [exp["experiment_id"]], "max_results": 100})["runs"]
    finally:
        stop_ui(proc)

    def data(run, part):
        return {x["key"]: x["value"] for x in run["data"].get(part, [])}

    parents = [r for r in runs if data(r, "tags").get("kind") == "sweep"]
    trials = [r for r in runs if data(r, "tags").get("kind") == "trial"]
    assert len(parents) == 1 and len(trials) == 2
    metrics, params = data(parents[0], "metrics"), data(parents[0], "params")
    losses = {r["info"]["run_id"]: data(r, "metrics")["eval/loss"] for r in trials}
    assert metrics["best/eval/loss"] == min(losses.values()) and 0 < metrics["best/blimp/overall"] <= 1
    assert (metrics[R.TRIALS_FINISHED], metrics[R.TRIALS_STOPPED], metrics[R.TRIALS_ERRORED]) == (2, 0, 0)
    assert losses[params["best.run_id"]] == min(losses.values()) and "best.train.lr" in params
    for run in trials:
        tags = data(run, "tags")
        assert run["info"]["run_name"].startswith(f"tinyui/{tags['trial_id']} lr=")
        assert (tags["role"], tags["arch"], tags["schedule"], tags["teachers"]) == ("teacher", "llama", "clm", "none")
        folder = Path(tags["model_dir"])
        card = (folder / "README.md").read_text()
        assert run["info"]["run_id"] in card and "## Training" in card
        model = AutoModelForCausalLM.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        ids = tokenizer("the dog sees a ball", return_tensors="pt").input_ids
        assert ids.shape[1] > 1 and model(ids).logits.shape[-1] == model.config.vocab_size
