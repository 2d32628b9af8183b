"""Student finalist k distils from teachers retrained with seed k (finalist_teachers.py): the plan reuses a
teacher finalist only where it is exactly the teacher's config and the student's seed, and each trial of
the student finalists' sweep gets its own repeat's teachers. No training here; test_study.py runs it."""

import json

from babysweep.studies.finalist_teachers import plan, rows_for
from babysweep.spec.load import spec_from_text
from babysweep.sweep.trial import TrialContext, trial_config


def _final(run_id: str, point: str, seed: int, status: str = "FINISHED") -> dict:
    return {"run_id": run_id, "status": status, "tags": {"point": point, "seed": str(seed), "model_dir": f"/m/{run_id}"}}


TEACHERS = [{"run_id": "T-llama", "arch": "llama", "point": {"model.arch": "llama", "train.lr": 0.002}},
            {"run_id": "T-gpt2", "arch": "gpt2", "point": {"model.arch": "gpt2", "train.lr": 0.001}}]
POINTS = {"llama": {"model.arch": "llama", "train.lr": 0.002}, "gpt2": {"model.arch": "gpt2", "train.lr": 0.003}}


def test_teacher_finalists_are_reused_only_for_the_same_config_and_seed():
    runs = [_final(f"F-{p}-{s}", p, s) for p in ("llama", "gpt2") for s in (1000, 1001)]
    found, retrain = plan(TEACHERS, POINTS, runs, [1000, 1001])
    # llama: the finalists retrained exactly its config with both seeds; gpt2's finalist is another config
    assert {k: r["run_id"] for k, r in found.items()} == {(0, 1000): "F-llama-1000", (0, 1001): "F-llama-1001"}
    assert retrain == {"t1-gpt2": {"model.arch": "gpt2", "train.lr": 0.001}}
    # other seeds than the finalists': retrained, not reused
    found, retrain = plan(TEACHERS[:1], POINTS, runs, [5, 6])
    assert not found and list(retrain) == ["t0-llama"]
    # a finalist seed that did not finish: the teacher is retrained with every seed
    broken = [r if r["run_id"] != "F-llama-1001" else {**r, "status": "FAILED"} for r in runs]
    found, retrain = plan(TEACHERS[:1], POINTS, broken, [1000, 1001])
    assert not found and list(retrain) == ["t0-llama"]


def test_student_finalists_teachers_carry_the_students_seed(tmp_path):
    seeds = [1000, 1001, 1002]
    runs = [_final(f"F-{p}-{s}", p, s) for p in ("llama", "gpt2") for s in seeds]
    points = {**POINTS, "gpt2": TEACHERS[1]["point"]}
    found, retrain = plan(TEACHERS, points, runs, seeds)
    assert not retrain
    rows = rows_for(TEACHERS, seeds, found)
    (tmp_path / "teachers.json").write_text(json.dumps(rows))
    spec = spec_from_text("name: pupils\nrole: student\nmodel: {layers: 1, hidden: 32, heads: 2}\n"
                          "train: {seed: 1000}\ndistill: {teachers: {from_sweep: tutors, top: 2}, alpha: 0.5}\n"
                          "search: {algorithm: points, points: {best: {}}, repeats: 3, scheduler: none}\n", "pupils.yaml")
    context = TrialContext.of(spec, tmp_path)
    for k, seed in enumerate(seeds):
        trial = trial_config(spec, {"point": "best", "__trial_index__": k}, context)
        assert trial.config.train.seed == seed
        assert trial.config.distill.teachers == [f"/m/F-llama-{seed}", f"/m/F-gpt2-{seed}"]
        assert context.teacher_runs_of(k) == (f"F-llama-{seed}", f"F-gpt2-{seed}")
    # a sweep whose teachers.json has no repeats: every trial has the same teachers, as before
    (tmp_path / "teachers.json").write_text(json.dumps([{"run_id": "T", "model_dir": "/m/T"}]))
    shared = TrialContext.of(spec, tmp_path)
    assert shared.teachers_of(2) == ("/m/T",) and shared.teacher_runs_of(2) is None


def test_teachers_that_are_not_teacher_finalists_are_retrained_with_the_students_seeds(tmp_path, monkeypatch):
    """The wiring of seeded_teachers without training: no teacher finalists exist, so both teachers of the
    tuning trials are retrained in `<student>.final.teachers` with the student finalists' seeds."""
    from pathlib import Path

    import babysweep.sweep.driver as sweep_module
    import babysweep.tracking.runs as tracking
    from babysweep.core.errors import UserError
    from babysweep.studies.finalist_teachers import seeded_teachers
    from babysweep.sweep.driver import SweepResult, fixed_value

    monkeypatch.setenv("BABYSWEEP_PROJECT", str(tmp_path))
    teacher_spec = "name: tutors\nrole: teacher\nmodel: {layers: 1, hidden: 32, heads: 2}\ntrain: {lr: {loguniform: [1.0e-3, 1.0e-2]}}\n"
    (tmp_path / "sweeps" / "tutors").mkdir(parents=True)
    (tmp_path / "sweeps" / "tutors" / "spec.yaml").write_text(teacher_spec)
    (tmp_path / "sweeps" / "pupils").mkdir()
    (tmp_path / "sweeps" / "pupils" / "teachers.json").write_text(json.dumps([{"run_id": "T0", "model_dir": "/t0"},
                                                                              {"run_id": "T1", "model_dir": "/t1"}]))
    lrs = {"T0": 0.002, "T1": 0.005}
    ran = []

    def runs(uri, sweep, **kw):
        if sweep == "tutors":
            return [{"run_id": r, "params": {"model.arch": "llama"}, "tags": {"sampled": "train.lr"}} for r in lrs]
        if sweep == "pupils.final.teachers":
            return [_final(f"R-{label}-{s}", label, s) for label in ("t0-llama", "t1-llama") for s in (1000, 1001)]
        raise UserError(f"no sweep {sweep}")

    monkeypatch.setattr(tracking, "sweep_runs", runs)
    monkeypatch.setattr(tracking, "run_json", lambda uri, run_id, path: {"train": {"lr": lrs[run_id]}, "model": {"arch": "llama"}})
    monkeypatch.setattr(sweep_module, "run_sweep", lambda spec, **kw: ran.append(spec) or SweepResult(spec.name, Path(), False, None, {}))
    final = spec_from_text("name: pupils.final\nrole: student\nmodel: {layers: 1, hidden: 32, heads: 2}\ntrain: {seed: 1000}\n"
                           "distill: {teachers: {from_sweep: tutors, top: 2}, alpha: 0.5}\n"
                           "search: {algorithm: points, points: {best: {}}, repeats: 2, scheduler: none}\n", "pupils.yaml")
    assert seeded_teachers("pupils", final, address=None, storage=None, tracking_uri="sqlite:///unused.db", live=False) is None
    (spec,) = ran
    assert spec.name == "pupils.final.teachers" and spec.role == "teacher" and spec.search.repeats == 2
    assert spec.search.points == {"t0-llama": {"train.lr": 0.002}, "t1-llama": {"train.lr": 0.005}}
    assert fixed_value(spec, "train.seed", None) == 1000 and spec.tracking.tags["teachers_for"] == "pupils.final"
    rows = json.loads((tmp_path / "sweeps" / "pupils.final" / "teachers.json").read_text())
    assert [(r["repeat"], r["seed"], r["run_id"], r["of"]) for r in rows] == [
        (0, 1000, "R-t0-llama-1000", "T0"), (0, 1000, "R-t1-llama-1000", "T1"),
        (1, 1001, "R-t0-llama-1001", "T0"), (1, 1001, "R-t1-llama-1001", "T1")]
