"""Several student arms in one verdict: the tuned recipe and the papers' recipe (students_babyllama.yaml), each
compared with the reference teacher and the baseline, Holm over all of them, each arm saying which claim it tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from babysweep.report.decide import holm
from babysweep.report.verdict import decisions, verdict
from test_report import data_of, run, scenario

PAPERS = {"distill.kd_reduction": "babyllama", "distill.alpha": "0.5", "distill.temperature": "2.0",
          "distill.teachers": "['/m/a/final']"}


def with_papers_arm(devs: list[float], blimps: list[float]) -> dict:
    runs = scenario([2.95, 2.97], [0.74, 0.745])  # the tuned student: better than the teachers and the baseline
    runs["students_babyllama"] = [run("student", 3.4, 0.6, params={**PAPERS, "train.lr": "0.001"}, sampled="train.lr")]
    runs["students_babyllama.final"] = [run("student", d, b, seed=i, params=PAPERS, tokens=1e6, flops=6e12, epochs=4)
                                        for i, (d, b) in enumerate(zip(devs * 2, blimps * 2))]
    return runs


def test_each_student_arm_is_compared_and_holm_runs_over_all():
    data = data_of(with_papers_arm([3.3, 3.32], [0.60, 0.605]))  # the papers' arm: worse than everything
    d = decisions(data)
    family = [c for c in d["comparisons"] if c["in_family"]]
    assert {(c["student"], c["vs"], c["metric"]) for c in family} == {
        (s, o, m) for s in ("students", "students_babyllama") for o in ("teachers/llama", "baselines")
        for m in ("blimp", "dev_loss")}
    assert [c["p_holm"] for c in family] == pytest.approx(holm([c["p"] for c in family]))
    claims = {a["student"]: a["claim"] for a in d["arms"]}
    assert claims["students_babyllama"].startswith("Baby Llama's claim") and claims["students"].startswith("BabyLlama-2's")
    text = verdict(data)
    assert "students_babyllama (Baby Llama's claim" in text and "students (BabyLlama-2's question" in text
    assert d["family"].startswith("each student arm")
    worse = {(c["student"], c["vs"], c["metric"]) for c in family if c["outcome"] == "worse"}
    assert ("students_babyllama", "baselines", "dev_loss") in worse


def test_one_student_arm_keeps_the_single_verdict():
    data = data_of(scenario([2.95, 2.97], [0.74, 0.745]))
    text = verdict(data)
    assert text.startswith(("Supported", "Inconclusive", "Contradicted")) and "BabyLlama-2's question" not in text
    assert decisions(data)["family"].startswith("the best student")


def test_the_papers_arm_spec_tunes_only_the_learning_rate():
    from babysweep.report.kd_weight import kd_per_ce
    from babysweep.spec.load import load_spec

    root = Path(__file__).resolve().parents[1] / "search_spaces"
    spec, tuned = load_spec(root / "students_babyllama.yaml"), load_spec(root / "students.yaml")
    assert spec.role == "student" and set(spec.distributions()) == {"train.lr"}
    distill = spec.space["distill"]
    assert (distill["kd_reduction"], distill["alpha"], distill["temperature"]) == ("babyllama", 0.5, 2.0)
    assert spec.space["data"] == tuned.space["data"] and spec.space["model"] == tuned.space["model"]
    assert spec.teachers_from_sweep == tuned.teachers_from_sweep
    assert kd_per_ce(0.5, 2.0, "babyllama", spec.space["data"]["seq_len"]) == pytest.approx(252.0)
