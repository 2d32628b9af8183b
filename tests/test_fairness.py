"""Fair tuning (issue 24, finding 5) without training: the report's stopped-by-region table, the warning for a
config chosen among few fully trained trials, the FLOPs sentence, and the opt-in equal-FLOPs baseline arm."""

import pytest

from babysweep.core import metrics as M
from babysweep.report.entries import Entry
from babysweep.report.fairness import few_trials_warnings, flops_ratios, flops_sentence, stopped_by_region


def _run(alpha: str, schedule: str, stopped: bool) -> dict:
    return {"status": "FINISHED", "params": {"distill.alpha": alpha, "antlm.schedule": schedule},
            "tags": {"sampled": "antlm.schedule,distill.alpha", "stopped_early": "true" if stopped else "false"}}


def test_stopped_by_region_of_each_searched_key():
    runs = [_run("0.05", "8clm", True), _run("0.08", "8clm", True), _run("0.5", "2clm+4mlm+2clm", False),
            _run("0.9", "2clm+4mlm+2clm", True), _run("0.95", "8clm", False), {"status": "FAILED", "params": {}, "tags": {}}]
    regions = stopped_by_region(runs)
    assert regions["antlm.schedule"] == [{"region": "2clm+4mlm+2clm", "trials": 2, "stopped": 1},
                                         {"region": "8clm", "trials": 3, "stopped": 2}]
    alpha = regions["distill.alpha"]  # thirds of [0.05, 0.95]
    assert [(r["trials"], r["stopped"]) for r in alpha] == [(2, 2), (1, 0), (2, 1)]
    assert alpha[0]["region"] == "[0.05, 0.35)" and alpha[-1]["region"] == "[0.65, 0.95]"


def _entry(name: str, role: str, trials: int, completed: int, flops: float = 0.0, tokens: float = 0.0) -> Entry:
    from babysweep.report.entries import Seed

    seed = Seed("r", "1000", 3.0, 0.6, {}, [], None, None, 3.0, 4.0, tokens or None, flops or None, None)
    return Entry(name, name, role, "llama", 1e6, trials, None, "final", [seed], completed, trials - completed)


def test_a_finalist_chosen_among_few_fully_trained_trials_is_warned_about():
    lines = few_trials_warnings([_entry("students", "student", 8, 2), _entry("baselines", "baseline", 8, 3),
                                 _entry("baselines.equal-flops", "baseline", 0, 0)])
    assert len(lines) == 1 and lines[0].startswith("students: its config was chosen among only 2 fully trained trials")


def test_the_flops_ratio_is_stated():
    entries = [_entry("students", "student", 8, 4, flops=6.3e12, tokens=1e6), _entry("baselines", "baseline", 8, 4, flops=3e12, tokens=1e6)]
    (ratio,) = flops_ratios(entries)
    assert ratio["ratio"] == pytest.approx(2.1)
    assert flops_sentence([ratio]) == ("Compute: students used 2.10x the training FLOPs of the baseline baselines "
                                       "on 1.00x its tokens.")


def test_the_equal_flops_arm_is_an_opt_in_study_key_that_trains_the_baseline_longer(tmp_path, monkeypatch):
    import babysweep.studies.finalists as finalists
    import babysweep.tracking.runs as tracking
    from babysweep.studies.equal_flops import arm_spec, scaled
    from babysweep.studies.study import load_study

    spec = "name: {n}\nrole: {r}\nmodel: {{layers: 1, hidden: 32, heads: 2}}\ntrain: {{epochs: 4, lr: {{loguniform: [1.0e-3, 1.0e-2]}}}}\n"
    (tmp_path / "s.yaml").write_text(spec.format(n="pupils", r="student"))
    (tmp_path / "b.yaml").write_text(spec.format(n="plain", r="baseline"))
    (tmp_path / "study.yaml").write_text("name: st\nsweeps: [s.yaml, b.yaml]\n")
    assert load_study(tmp_path / "study.yaml").equal_flops is False
    (tmp_path / "study.yaml").write_text("name: st\nsweeps: [s.yaml, b.yaml]\nfinalists: {seeds: 2, equal_flops_baseline: true}\n")
    assert load_study(tmp_path / "study.yaml").equal_flops is True

    monkeypatch.setenv("BABYSWEEP_PROJECT", str(tmp_path))
    (tmp_path / "sweeps" / "plain").mkdir(parents=True)
    (tmp_path / "sweeps" / "plain" / "spec.yaml").write_text(spec.format(n="plain", r="baseline"))
    flops = {"pupils.final": 6.3e12, "plain.final": 3e12}
    monkeypatch.setattr(tracking, "sweep_runs", lambda uri, sweep, **kw: [
        {"status": "FINISHED", "tags": {}, "metrics": {M.FLOPS: flops[sweep]}}] * 2)
    monkeypatch.setattr(finalists, "best_points", lambda uri, sweep, role: {"best": {"train.lr": 0.002}})
    arm, ratio = arm_spec("plain", "pupils", 2, tracking_uri="sqlite:///unused.db")
    assert ratio == pytest.approx(2.1) and scaled(4, ratio) == 8 and scaled(4, 0.5) == 4
    assert arm.name == "plain.equal-flops.final" and arm.search.repeats == 2
    assert arm.search.points == {"best": {"train.lr": 0.002, "train.epochs": 8}}
    assert arm.tracking.tags["finalist_of"] == "plain.equal-flops" and arm.tracking.tags["equal_flops_of"] == "pupils"
