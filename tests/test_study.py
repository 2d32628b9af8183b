"""The study end to end on tiny sweeps: stages in order, resume across stages, finalists with seeds,
a report whose numbers come back from MLflow alone, and ablations of the best student."""

import json
from pathlib import Path

import pytest

from babysweep.core.errors import UserError
from babysweep.studies.study import load_study, run_study

pytestmark = pytest.mark.slow

SPEC = """
name: {name}
role: {role}
data: {{seq_len: 32, builtin_words: 20000, tokenizer: {{vocab_size: 500}}, cache_dir: {cache}}}
model: {{arch: {arch}, layers: 1, hidden: 32, heads: 2}}
train: {{epochs: 1, batch_size: 32, lr: {lr}, warmup_steps: 5}}
eval: {{dev_batches: 2, blimp: builtin}}
search: {{algorithm: {algorithm}, samples: 1, scheduler: none, concurrent: 2, max_failures: 0}}
resources: {{cpu: 1}}
"""


@pytest.fixture(scope="module")
def study_project(tmp_path_factory, cache_dir, ray_session):
    """A finished tiny study, interrupted once at its second stage and resumed."""
    import babysweep.sweep.driver as sweep_module
    from babysweep.sweep.driver import SweepResult

    root = tmp_path_factory.mktemp("study")
    mp = pytest.MonkeyPatch()
    mp.setenv("BABYSWEEP_PROJECT", str(root))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.chdir(root)
    (root / "tutors.yaml").write_text(SPEC.format(name="tutors", role="teacher", arch="{choice: [llama, gpt2]}",
                                                   lr=0.005, algorithm="grid", cache=cache_dir))
    (root / "pupils.yaml").write_text(SPEC.format(name="pupils", role="student", arch="llama", lr="{loguniform: [1.0e-3, 1.0e-2]}",
                                                  algorithm="random", cache=cache_dir)
                                      + "distill: {teachers: {from_sweep: tutors, top: 2}, alpha: {uniform: [0.3, 0.7]}, temperature: 2.0}\n")
    (root / "plain.yaml").write_text(SPEC.format(name="plain", role="baseline", arch="llama", lr="{loguniform: [1.0e-3, 1.0e-2]}",
                                                 algorithm="random", cache=cache_dir))
    (root / "study.yaml").write_text("name: tiny-study\nsweeps: [tutors.yaml, pupils.yaml, plain.yaml]\n"
                                     "finalists: {seeds: 2, equal_flops_baseline: true}\n")

    calls = []
    real = sweep_module.run_sweep

    def interrupting(spec, **kw):  # the study is stopped (as by Ctrl-C) when it reaches the students
        calls.append(spec.name)
        if spec.name == "pupils":
            return SweepResult(spec.name, Path(), True, None, {"trials": 0, "finished": 0, "errored": 0, "unfinished": 1})
        return real(spec, **kw)

    mp.setattr(sweep_module, "run_sweep", interrupting)
    said: list[str] = []
    first = run_study(load_study(root / "study.yaml"), live=False, say=said.append)
    first_calls, first_said = list(calls), said
    calls.clear()

    def counting(spec, **kw):
        calls.append(spec.name)
        return real(spec, **kw)

    mp.setattr(sweep_module, "run_sweep", counting)
    said = []
    second = run_study(load_study(root / "study.yaml"), live=False, say=said.append)
    yield {"root": root, "first": first, "first_calls": first_calls, "second": second, "second_calls": list(calls),
           "said": said, "first_said": first_said}
    mp.undo()


@pytest.fixture
def in_study(study_project, monkeypatch):
    monkeypatch.setenv("BABYSWEEP_PROJECT", str(study_project["root"]))
    monkeypatch.chdir(study_project["root"])
    return study_project


def test_an_interrupted_study_resumes_at_the_stage_it_stopped(in_study):
    study_project = in_study
    first, second = study_project["first"], study_project["second"]
    assert first.interrupted and first.report is None
    assert study_project["first_calls"] == ["tutors", "pupils"]
    # Before the first stage: how much disk the study takes at most, and what is free
    said = study_project["first_said"]  # the interrupted run's lines (7 stages, then the report)
    assert said[0].startswith("disk estimate: at most ") and "free under" in said[0]
    assert said[-2:] == ["[1/8] sweep tutors", "[2/8] sweep pupils"]
    state = json.loads((study_project["root"] / "sweeps" / "tiny-study.study.json").read_text())
    assert set(state["done"]) == {"sweep tutors", "sweep pupils", "sweep plain", "finalists tutors",
                                  "finalists pupils", "finalists plain", "equal-flops plain"}
    # The teachers' stage is not run again; everything after it runs once, in order.
    assert study_project["second_calls"] == ["pupils", "plain", "tutors.final", "pupils.final", "plain.final",
                                             "plain.equal-flops.final"]
    assert not second.interrupted and second.report.is_file()
    # The word-statistics floor: fitted once before the report, from the student's data, shown as a row.
    assert (second.report.parent / "ngram_floor.json").is_file() and "| n-gram floor |" in second.report.read_text()
    assert json.loads((second.report.parent / "ngram_floor.json").read_text())["config_of"] == "pupils"
    third = run_study(load_study(study_project["root"] / "study.yaml"), live=False, say=lambda line: None)
    assert third.stages == ["report tiny-study"]  # a finished study only rewrites its report


def test_finalists_retrain_the_best_config_with_fresh_seeds(study_project):
    from babysweep.core.records import best_config
    from babysweep.core.paths import default_tracking_uri
    from babysweep.tracking.runs import run_json, sweep_runs

    uri = default_tracking_uri(study_project["root"])
    finals = sweep_runs(uri, "tutors.final")
    assert len(finals) == 4 and {r["status"] for r in finals} == {"FINISHED"}  # 2 architectures x 2 seeds
    assert {r["tags"]["finalist_of"] for r in finals} == {"tutors"}
    assert sorted(r["tags"]["seed"] for r in finals) == ["1000", "1000", "1001", "1001"]
    tuning = sweep_runs(uri, "tutors")
    for arch in ("llama", "gpt2"):
        (best, *_) = best_config([r for r in tuning if r["params"]["model.arch"] == arch], "eval/loss", "min")
        mine = [r for r in finals if r["params"]["model.arch"] == arch]
        assert len(mine) == 2 and {r["tags"]["point"] for r in mine} == {arch}
        assert {r["params"]["train.lr"] for r in mine} == {best["params"]["train.lr"]}
    students = sweep_runs(uri, "pupils.final")
    tuned = sweep_runs(uri, "pupils")
    assert len(students) == 2 and {r["params"]["distill.alpha"] for r in students} == {tuned[0]["params"]["distill.alpha"]}
    # Each student finalist distils from the tuning trials' teacher configs retrained with its own seed: here
    # those are the teacher finalists' configs, so it reuses the teacher finalists of its seed.
    by_id = {r["run_id"]: r for r in finals}
    assert len({r["tags"]["seed"] for r in students}) == 2
    for student in students:
        ids = student["tags"]["teachers.run_ids"].split(",")
        assert {by_id[i]["tags"]["seed"] for i in ids} == {student["tags"]["seed"]}
        assert sorted(by_id[i]["params"]["model.arch"] for i in ids) == ["gpt2", "llama"]
        config = run_json(uri, student["run_id"], "config.json")
        assert config["distill"]["teachers"] == [by_id[i]["tags"]["model_dir"] for i in ids]
    assert run_json(uri, students[0]["run_id"], "blimp.json")["decisions"]  # per-pair decisions in MLflow


def test_the_report_is_rebuilt_from_mlflow_alone(study_project):
    from babysweep.report.verdict import table_from_runs
    from babysweep.core.paths import default_tracking_uri
    from babysweep.tracking.runs import run_json, sweep_parent, sweep_runs

    uri = default_tracking_uri(study_project["root"])
    report = json.loads((study_project["second"].report.parent / "report.json").read_text())
    assert [r["entry"] for r in report["rows"]] == ["tutors/gpt2", "tutors/llama", "pupils", "plain", "plain.equal-flops"]
    assert {r["source"] for r in report["rows"]} == {"final"} and {r["n"] for r in report["rows"]} == {2}
    runs, objectives = {}, {}
    for sweep in ("tutors", "pupils", "plain"):
        tags = sweep_parent(uri, sweep)["tags"]
        objectives[sweep] = (tags["metric"], tags["mode"])
        runs[sweep] = sweep_runs(uri, sweep, histories=["eval/loss"])
        runs[sweep + ".final"] = sweep_runs(uri, sweep + ".final", histories=["eval/loss"])
    rebuilt = table_from_runs(runs, objectives, lambda run: run_json(uri, run["run_id"], "blimp.json"))
    assert rebuilt == report["rows"][:-1]  # the equal-FLOPs arm is the study's extra, not a sweep named to the report
    assert (study_project["second"].report.parent / "learning_curves.png").is_file()
    assert report["verdict"]
    assert report["samplers"]["pupils"] == "random search, seed 0" and report["samplers"]["tutors"].startswith("grid")
    # Budgets: the same epoch of the same corpus for all; the pupils' FLOPs add one forward pass of each tutor.
    rows = {r["entry"]: r for r in report["rows"]}
    arm = rows.pop("plain.equal-flops")
    assert {(r["epochs"], r["tokens_seen"]) for r in rows.values()} == {(1, rows["plain"]["tokens_seen"])}
    # The equal-FLOPs arm: the baseline's config and seeds, trained for round(1 x the FLOPs ratio) = 2 epochs.
    ratio = rows["pupils"]["flops"] / rows["plain"]["flops"]
    assert 1.5 <= ratio < 2.5 and arm["epochs"] == 2 and arm["flops"] == pytest.approx(2 * rows["plain"]["flops"])
    assert arm["source"] == "final" and arm["n"] == 2 and arm["role"] == "baseline"
    assert f"pupils used {ratio:.2f}x the training FLOPs of the baseline plain" in report["verdict"]
    compared = {(c["baseline"], c["metric"]): c for c in report["fairness"]["student_vs_baselines"]}
    assert compared[("plain.equal-flops", "dev_loss")]["equal"] == "FLOPs" and compared[("plain", "dev_loss")]["equal"] == "tokens"
    assert "## Fair tuning" in (study_project["second"].report.parent / "report.md").read_text()
    # One trial per config: every finalist was chosen among fewer than 3 fully trained trials, and both the
    # study's output and the report say so.
    few = [w for w in report["warnings"] if "its config was chosen among only 1 fully trained trial" in w]
    assert sorted(w.split(":")[0] for w in few) == ["plain", "pupils", "tutors/gpt2", "tutors/llama"]
    assert "  warning: pupils: its finalist config was chosen among only 1 fully trained trial (fewer than 3)" in study_project["said"]
    assert set(report["fairness"]["stopped_by_region"]["pupils"]) == {"distill.alpha", "train.lr"}
    assert rows["plain"]["tokens_seen"] > 0 and rows["plain"]["flops"] == rows["tutors/llama"]["flops"]  # one model shape
    assert rows["pupils"]["flops"] - rows["plain"]["flops"] == pytest.approx(
        (rows["tutors/llama"]["flops"] + rows["tutors/gpt2"]["flops"]) / 3)
    assert "Budgets differ" not in report["verdict"]
    assert "## Budgets" in (study_project["second"].report.parent / "report.md").read_text()
    kd = report["distillation"]["pupils"]  # the student distilled in every (causal) epoch
    assert kd["kd_epochs"] == kd["epochs"] > 0 and kd["kd_per_ce"] == pytest.approx((1 - kd["alpha"]) * 4 / kd["alpha"])


def test_ablations_of_the_best_student(in_study):
    study_project = in_study
    from babysweep.studies.ablation_sweep import run_ablation
    from babysweep.core.paths import default_tracking_uri
    from babysweep.tracking.runs import sweep_runs

    result, path = run_ablation("pupils", seeds=1, live=False)
    assert not result.interrupted and result.counts["finished"] == 5
    rows = {r["variant"]: r for r in json.loads((path.parent / "ablation.json").read_text())["rows"]}
    assert set(rows) == {"base", "no-distillation", "teacher-0", "teacher-1", "temperature-1"}  # no AntLM to remove
    runs = {r["tags"]["point"]: r for r in sweep_runs(default_tracking_uri(study_project["root"]), "pupils.ablation")}
    assert runs["no-distillation"]["params"]["distill.alpha"] == "1.0"
    assert runs["base"]["params"]["distill.temperature"] == "2.0" and runs["temperature-1"]["params"]["distill.temperature"] == "1.0"
    assert rows["no-distillation"]["dev_loss_diff"] == pytest.approx(
        runs["no-distillation"]["metrics"]["eval/loss"] - runs["base"]["metrics"]["eval/loss"])
    assert "no-distillation" in path.read_text()
    # One seed: differences, but no interval and no star.
    assert rows["no-distillation"]["dev_loss_low"] is None and rows["no-distillation"]["dev_loss_excludes_zero"] is False
    table = [line for line in path.read_text().splitlines() if line.startswith("| ") and "base" not in line.split("|")[1]]
    assert table[1:] and all("*" not in line and "(one seed: no interval)" in line for line in table[1:])


def test_bad_study_files_are_refused(tmp_path):
    (tmp_path / "s.yaml").write_text("name: s\nsweeps: [missing.yaml]\n")
    with pytest.raises(UserError, match="missing.yaml does not exist"):
        load_study(tmp_path / "s.yaml")
    (tmp_path / "s.yaml").write_text("name: s\nsweeps: [s.yaml]\nfinalists: {seeds: 0}\n")
    with pytest.raises(UserError, match="finalists.seeds"):
        load_study(tmp_path / "s.yaml")


def test_auto_seeds_add_finalists_in_looks_until_decided_or_capped(tmp_path, cache_dir, ray_session, monkeypatch):
    """finalists.seeds: auto end to end on tiny sweeps: looks at 2 then 3 seeds (cap 3), each look a batch sweep
    of every stage's finalists with the next seeds, tagged with the design; the report replays the looks."""
    from babysweep.core.paths import default_tracking_uri
    from babysweep.tracking.runs import run_json, sweep_runs

    monkeypatch.setenv("BABYSWEEP_PROJECT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    for name, role, extra in (("t1", "teacher", ""), ("s1", "student", "distill: {teachers: {from_sweep: t1, top: 1}, alpha: 0.5, temperature: 2.0}\n"),
                              ("b1", "baseline", "")):
        (tmp_path / f"{name}.yaml").write_text(SPEC.format(name=name, role=role, arch="llama", lr=0.005, algorithm="random",
                                                           cache=cache_dir) + extra)
    (tmp_path / "study.yaml").write_text("name: auto-study\nsweeps: [t1.yaml, s1.yaml, b1.yaml]\n"
                                         "finalists: {seeds: auto, first_seeds: 2, batch: 1, max_seeds: 3}\n")
    said = []
    result = run_study(load_study(tmp_path / "study.yaml"), live=False, say=said.append)
    assert not result.interrupted and result.report.is_file()
    uri = default_tracking_uri(tmp_path)
    first = sweep_runs(uri, "s1.final")
    assert sorted(r["tags"]["seed"] for r in first) == ["1000", "1001"]
    assert {r["tags"]["sequential"] for r in first} == {"2,1,3"}
    assert run_json(uri, first[0]["run_id"], "config.json")["eval"]["dev_batches"] is None  # every dev chunk (the spec: 2)
    assert run_json(uri, sweep_runs(uri, "s1")[0]["run_id"], "config.json")["eval"]["dev_batches"] == 2
    report = json.loads((result.report.parent / "report.json").read_text())
    decided = "finalists: every comparison of the verdict is decided after 2 seeds" in said
    looks = 1 if decided else 2
    assert "finalists s1 look 1" in result.stages and ("finalists s1 look 2" in result.stages) == (not decided)
    if not decided:
        assert [r["tags"]["seed"] for r in sweep_runs(uri, "s1.final.b2")] == ["1002"]
        assert any("after 3 seeds, not decided yet" in line and "the cap of 3 seeds is reached" in line for line in said) or \
            any("decided after 3 seeds" in line for line in said)
    assert {r["n"] for r in report["rows"]} == {looks + 1}
    assert "sequential: finalists.seeds auto added seeds in batches of 1 from 2 up to 3" in report["verdict"]
    assert report["decisions"]["level_note"].startswith("sequential")
