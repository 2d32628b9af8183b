"""The verdict's decisions (issue 24): paired tests against scipy, Holm, three outcomes naming the teacher,
power figures, BLiMP against chance, and the sequential rule's false-positive rate by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from babysweep.report.decide import (above_chance, holm, outcome, paired_test, run_sequential, seed_test, spending_schedule,
                              welch_test)
from babysweep.report.entries import entries_from_runs
from babysweep.report.verdict import verdict, verdict_family

_ids = iter(range(10**6))

# ------------------------------------------------------------------------------------------- tests


def test_paired_test_equals_scipy_ttest_rel():
    rng = np.random.default_rng(1)
    for n in (2, 3, 5, 9):
        shared = rng.normal(0, 1, n)  # the seed's luck, shared by both sides
        a, b = shared + rng.normal(0.3, 0.2, n), shared + rng.normal(0, 0.2, n)
        t = paired_test(a, b)
        ref = stats.ttest_rel(a, b)
        ci = ref.confidence_interval(0.95)
        assert (t.low, t.high, t.p) == pytest.approx((ci.low, ci.high, ref.pvalue), rel=1e-9, abs=1e-12)
        assert t.method == "paired" and t.df == n - 1


def test_seed_test_matches_by_seed_label_and_falls_back_to_welch():
    a = {"1000": 0.80, "1001": 0.70, "1002": 0.75}
    b = {"1002": 0.74, "1000": 0.78, "1001": 0.695}  # another order: matched by label, not position
    t = seed_test(a, b)
    ref = stats.ttest_rel([0.80, 0.70, 0.75], [0.78, 0.695, 0.74])
    assert t.method == "paired" and t.p == pytest.approx(ref.pvalue) and t.diff == pytest.approx(0.035 / 3)
    other = seed_test(a, {"2000": 0.79, "2001": 0.69, "2002": 0.74})  # different seeds: independent
    ref = stats.ttest_ind([0.80, 0.70, 0.75], [0.79, 0.69, 0.74], equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert other.method == "welch" and (other.low, other.high, other.p) == pytest.approx((ci.low, ci.high, ref.pvalue))
    assert welch_test([1.0], [2.0]).method == "none" and welch_test([1.0], [2.0]).p is None


def test_holm_matches_the_step_down_rule():
    # sorted: 0.01 x 4 = 0.04; 0.03 x 3 = 0.09; 0.04 x 2 = 0.08 -> 0.09 (monotone); 0.5 x 1
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.02, None, 0.02]) == [0.04, None, 0.04]
    assert outcome(+0.5, 0.04, higher_is_better=True) == "better"
    assert outcome(+0.5, 0.04, higher_is_better=False) == "worse"
    assert outcome(+0.5, 0.06, higher_is_better=True) == "cannot tell"


def test_power_figures_of_the_example_study():
    """The issue's figures: 5 seeds a side with the example's spreads (student 1.60, baseline 2.86 BLiMP
    points): 4.9 points detectable at 80% power, and 372 seeds per arm for the observed -0.48."""
    z = np.array([-1.2649, -0.6325, 0.0, 0.6325, 1.2649])  # mean 0, std 1 (ddof=1)
    z = z / z.std(ddof=1)
    t = welch_test(83.33846153846153 + 1.6049111 * z, 83.8153846153846 + 2.8578761 * z)  # report.json's means and stds
    assert t.detectable() == pytest.approx(4.87, abs=0.01)
    assert t.seeds_needed() == 372
    assert t.seeds_needed(diff=5.0) <= 5 < t.seeds_needed(diff=4.0)


def test_above_chance_is_a_one_sided_binomial():
    assert above_chance(35_240, 67_000) < 1e-30  # 52.6% of 67,000 pairs
    assert above_chance(510, 1000) == pytest.approx(stats.binomtest(510, 1000, 0.5, alternative="greater").pvalue)
    assert above_chance(480, 1000) > 0.5


# -------------------------------------------------------------------------------- crafted verdicts


def _run(role: str, seed: int, dev: float, blimp: float, arch: str = "llama", sel: float | None = None) -> dict:
    rid = f"d{next(_ids)}"
    return {"run_id": rid, "trial_id": rid, "status": "FINISHED",
            "params": {"model.arch": arch, "train.seed": str(seed)},
            "metrics": {"eval/loss": dev, "blimp/overall": blimp, "model/params": 1e6,
                        **({"tune/loss": sel} if sel is not None else {})},
            "tags": {"role": role, "seed": str(seed), "sampled": ""},
            "histories": {"eval/loss": [(1, dev + 0.5), (2, dev)]}}


def _study(student: tuple, llama: tuple, gpt2: tuple, baseline: tuple, seeds: int = 5) -> list:
    """Entries from per-seed (dev loss, BLiMP fraction) lists; llama is the reference teacher: its dev loss
    is the lower, and teachers are chosen on dev loss (the default tuning metric here)."""
    def final(role, values, arch="llama"):
        return [_run(role, 1000 + i, d, b, arch) for i, (d, b) in enumerate(zip(*values))][:seeds]

    runs = {"teachers": [_run("teacher", 0, 3.0, 0.5), _run("teacher", 0, 3.0, 0.5, "gpt2")],
            "teachers.final": final("teacher", llama) + final("teacher", gpt2, "gpt2"),
            "students": [_run("student", 0, 3.0, 0.5)], "students.final": final("student", student),
            "baselines": [_run("baseline", 0, 3.0, 0.5)], "baselines.final": final("baseline", baseline)}
    return entries_from_runs(runs, load_blimp=lambda r: None)[0]


NOISE = np.array([0.0, 0.3, -0.3, 0.15, -0.15])  # per-seed luck, shared by every role (same seeds)


def _side(dev: float, blimp: float, dev_spread=0.01, blimp_spread=0.003, own=None) -> tuple:
    own = np.zeros(5) if own is None else np.asarray(own)
    return (list(dev + dev_spread * (NOISE + own)), list(blimp + blimp_spread * (NOISE + own)))


def _outcomes(entries) -> dict:
    v = verdict_family(entries)
    return {(f["col"], f["other"].name): f["outcome"] for f in v["family"]} | \
        {(o["col"], o["other"].name): o["outcome"] for o in v["outside"]}


def test_a_student_far_ahead_of_the_reference_teacher_is_better_than_it_whatever_the_other_teacher_does():
    """Issue probe: +10.05 BLiMP [9.76, 10.33] over the reference teacher but behind the other teacher was
    told 'beats 1 of 2 tuned teachers ... but not the reference one'."""
    own = [0.1, -0.2, 0.3, -0.1, -0.1]
    entries = _study(_side(2.9, 0.8005, own=own), _side(3.0, 0.70), _side(3.1, 0.90), _side(2.8, 0.80, own=[0.4, 0.1, -0.3, -0.1, -0.1]))
    out = _outcomes(entries)
    assert out[("blimp", "teachers/llama")] == "better"  # the reference teacher, named
    assert out[("blimp", "teachers/gpt2")] == "worse"  # the other one, outside the family, named
    line = verdict(data_of(entries))
    assert "BLiMP vs the reference teacher teachers/llama (chosen on eval/loss): better, +10.05 points" in line
    assert "BLiMP vs the teacher teachers/gpt2: worse" in line
    assert "beats" not in line and "but not the reference one" not in line


def test_behind_by_a_hair_is_inconclusive_and_behind_by_a_margin_is_contradicted():
    """Issue probe: a student behind by 0.0005 and one behind by 0.05 both got 'Not supported'."""
    rng = np.random.default_rng(3)
    own = rng.normal(0, 1, 5)
    base = _side(3.0, 0.80, own=rng.normal(0, 1, 5))
    llama, gpt2 = _side(3.0, 0.80, own=rng.normal(0, 1, 5)), _side(3.2, 0.60)
    hair = verdict(data_of(_study(_side(3.0, 0.7995, own=own), llama, gpt2, base)))
    margin = verdict(data_of(_study(_side(3.0, 0.75, own=own), llama, gpt2, base)))
    assert hair.startswith("Inconclusive: the seeds cannot tell the distilled student (students) from")
    assert margin.startswith("Contradicted: the distilled student (students) is worse than the reference teacher "
                             "teachers/llama (on BLiMP) and the baseline baselines (on BLiMP)")
    assert "Holm's correction over the verdict's family of 4 comparisons" in margin


def test_an_interval_across_zero_never_beats_a_teacher():
    """Issue probe (storybooks): 'beats 1 of 2 tuned teachers' rested on +0.20 [-0.48, +0.87]."""
    entries = _study(_side(3.0, 0.5265, blimp_spread=0.004, own=[1, -1, 0.5, -0.5, 0]),
                     _side(2.9, 0.5285, blimp_spread=0.004, own=[-1, 1, 0, 0.5, -0.5]),
                     _side(3.0, 0.5245, blimp_spread=0.004, own=[0.5, 0, -1, 1, -0.5]),
                     _side(3.0, 0.531, blimp_spread=0.004))
    out = _outcomes(entries)
    assert out[("blimp", "teachers/gpt2")] == "cannot tell"
    line = verdict(data_of(entries))
    assert "BLiMP vs the teacher teachers/gpt2: cannot tell, +0.20 points" in line
    assert "beats" not in line


def test_holm_can_leave_undecided_what_one_test_alone_would_decide():
    """Four comparisons with raw p-values near 0.03: alone each would be decided, over the family none is."""
    entries = _study(_side(3.0, 0.80, own=[0.0, 0.0, 0.0, 0.0, 0.0]), _side(3.0, 0.80), _side(3.5, 0.5), _side(3.0, 0.80))
    v = verdict_family(entries)
    assert [f["outcome"] for f in v["family"]] == ["cannot tell"] * 4  # identical: nothing to decide
    # student vs baseline: a difference with raw p between 0.0125 and 0.05
    d = np.array([0.010, 0.002, 0.008, 0.001, 0.004])
    student = (list(3.0 - d), list(0.80 + d))
    entries = _study(student, _side(3.5, 0.5), _side(3.6, 0.4), (list(np.full(5, 3.0) + 0 * d), list(np.full(5, 0.80))))
    v = verdict_family(entries)
    base = [f for f in v["family"] if f["other"].name == "baselines"]
    assert all(0.0125 < f["cmp"]["p"] < 0.05 for f in base)
    assert [f["outcome"] for f in base] == ["cannot tell", "cannot tell"]
    assert all(f["p_adj"] > 0.05 for f in base)
    assert [f["outcome"] for f in v["family"] if f["other"].name == "teachers/llama"] == ["better", "better"]


def test_blimp_at_chance_leaves_the_verdict_to_dev_loss():
    """BLiMP at 50% for every entry (per-pair decisions give the pairs scored): the BLiMP comparisons leave
    the family, the verdict says BLiMP cannot separate them and rests on dev loss."""
    def decisions(run):
        k = round(run["metrics"]["blimp/overall"] * 200)
        bits = "1" * k + "0" * (200 - k)
        return {"decisions": {"p1": bits}, "field_of": {"p1": "syntax"}}

    def study(blimp):
        def final(role, dev, arch="llama"):
            return [_run(role, 1000 + i, dev + 0.01 * n, blimp, arch) for i, n in enumerate(NOISE)]
        runs = {"teachers": [_run("teacher", 0, 3.0, 0.5), _run("teacher", 0, 3.0, 0.5, "gpt2")],
                "teachers.final": final("teacher", 3.0) + final("teacher", 3.2, "gpt2"),
                "students": [_run("student", 0, 3.0, 0.5)], "students.final": final("student", 2.9),
                "baselines": [_run("baseline", 0, 3.0, 0.5)], "baselines.final": final("baseline", 3.1)}
        for r in [r for v in runs.values() for r in v]:
            r["metrics"]["blimp/field/syntax"] = r["metrics"]["blimp/overall"]
        return entries_from_runs(runs, load_blimp=decisions)[0]

    line = verdict(data_of(study(0.5)))
    assert line.startswith("Supported: the distilled student (students) is better than the reference teacher "
                           "teachers/llama (on dev loss) and the baseline baselines (on dev loss).")
    assert "BLiMP cannot separate the distilled student (students) and the reference teacher teachers/llama" in line
    assert "students 50.00% of 200 pairs" in line and "rests on dev loss" in line
    assert "family of 2 comparisons" in line
    above = verdict(data_of(study(0.7)))
    assert "cannot separate" not in above and "family of 4 comparisons" in above


def data_of(entries):
    from babysweep.report.entries import ReportData

    return ReportData([], {}, {}, entries, [])


# -------------------------------------------------------------------------------- sequential seeds


def test_spending_schedule_spends_exactly_alpha():
    looks = spending_schedule(first=3, batch=2, cap=11)
    assert [n for n, _ in looks] == [3, 5, 7, 9, 11]
    assert sum(level for _, level in looks) == pytest.approx(0.05)
    assert all(level > 0 for _, level in looks)
    assert [n for n, _ in spending_schedule(3, 4, 9)] == [3, 7, 9]
    with pytest.raises(ValueError):
        spending_schedule(1, 2, 5)


def _simulated_studies(rng, studies: int, effect: float = 0.0, cap: int = 11, first: int = 3, batch: int = 2):
    """Per-seed values of student, teacher and baseline on two metrics, sharing each seed's luck; under the
    null all three have the same mean. Returns one draw(n) per study: the verdict family's paired t tests
    on its first n seeds. The p-values of all studies are computed at once (the paired t p-value, as
    paired_test computes it: test_paired_test_equals_scipy_ttest_rel), so thousands of studies take seconds."""
    from babysweep.report.decide import SeedTest

    luck = rng.normal(0, 1, (studies, cap, 2))
    values = {role: luck + rng.normal(0, 1, (studies, cap, 2)) + (effect if role == "student" else 0.0)
              for role in ("student", "teacher", "baseline")}
    tests = {}
    for n, _ in spending_schedule(first, batch, cap):
        for other in ("teacher", "baseline"):
            d = values["student"][:, :n] - values[other][:, :n]  # [studies, n, metric]
            mean, se = d.mean(1), d.std(1, ddof=1) / np.sqrt(n)
            tests[n, other] = (mean, 2 * stats.t.sf(np.abs(mean / se), n - 1))

    def draw_for(i):
        def draw(n):
            return {(o, m): SeedTest(float(tests[n, o][0][i, m]), None, None, float(tests[n, o][1][i, m]), None, None,
                                     "paired", n, n) for o in ("teacher", "baseline") for m in (0, 1)}
        return draw
    return [draw_for(i) for i in range(studies)]


def test_simulated_p_values_are_paired_tests():
    rng = np.random.default_rng(0)
    draw = _simulated_studies(np.random.default_rng(0), 1)[0]
    luck = rng.normal(0, 1, (1, 11, 2))
    values = {role: luck + rng.normal(0, 1, (1, 11, 2)) for role in ("student", "teacher", "baseline")}
    assert draw(5)["baseline", 1].p == pytest.approx(stats.ttest_rel(values["student"][0, :5, 1], values["baseline"][0, :5, 1]).pvalue)


def test_sequential_rule_keeps_the_false_positive_rate_at_5_percent():
    """Thousands of simulated studies under the null (no training): any comparison decided is a false
    positive; the rate stays at most 5% within its Monte-Carlo margin (3 standard errors)."""
    studies = 4000
    keys = [(o, m) for o in ("teacher", "baseline") for m in (0, 1)]
    false = 0
    for draw in _simulated_studies(np.random.default_rng(24), studies):
        outcomes, _n = run_sequential(draw, first=3, batch=2, cap=11, higher_is_better={k: True for k in keys})
        false += any(v != "cannot tell" for v in outcomes.values())
    rate = false / studies
    margin = 3 * math.sqrt(0.05 * 0.95 / studies)
    assert rate <= 0.05 + margin, (rate, margin)


def test_sequential_rule_stops_early_on_a_large_effect():
    keys = [(o, m) for o in ("teacher", "baseline") for m in (0, 1)]
    used = [run_sequential(draw, first=3, batch=2, cap=11, higher_is_better={k: True for k in keys})
            for draw in _simulated_studies(np.random.default_rng(5), 20, effect=4.0)]
    assert all(all(v == "better" for v in o.values()) for o, _ in used)
    assert np.mean([n for _, n in used]) < 11


def test_report_shows_decisions_power_configs_and_chance():
    from babysweep.report.build import render_markdown
    from babysweep.report.verdict import build_table, decisions

    rng = np.random.default_rng(3)
    entries = _study(_side(3.0, 0.75, own=rng.normal(0, 1, 5)), _side(3.0, 0.80, own=rng.normal(0, 1, 5)), _side(3.2, 0.60),
                     _side(3.0, 0.80, own=rng.normal(0, 1, 5)))
    entries[2].config = {"distill.alpha": "0.5", "train.lr": "0.001"}
    data = data_of(entries)
    rows = build_table(data)
    report = {"name": "r", "sweeps": [], "verdict": verdict(data), "decisions": decisions(data), "warnings": [],
              "rows": rows, "fields": {"students": {"syntax": [52.0, 1.0]}}, "importances": {}, "figures": []}
    rows[2]["chance"] = {"overall": {"accuracy": 50.2, "pairs": 1000, "p": 0.45}, "syntax": {"accuracy": 52.0, "pairs": 100, "p": 0.38}}
    text = render_markdown(report)
    assert "## Decisions" in text and "Correction: Holm's step-down over the verdict's family" in text
    assert "| students − teachers/llama (BLiMP) | -5.07 [" in text and "| paired | " in text and "| worse |" in text
    assert "students − teachers/gpt2 (BLiMP) (outside the family)" in text
    assert "- **students** (final): `distill.alpha=0.5`, `train.lr=0.001`" in text
    assert "| students | 50.20 ° | 52.0 ± 1.0 ° |" in text
    assert "; mdd " in text  # beside each interval in the comparison table
    assert [c["outcome"] for c in report["decisions"]["comparisons"]] == ["worse", "worse", "cannot tell", "cannot tell", "better", "better"]


# -------------------------------------------------------------------------------- offline rebuild


@pytest.mark.parametrize("folder", ["example-study", "example-storybooks"])
def test_the_published_verdicts_rebuild_from_report_json(folder):
    """Old report.json files keep mean, std and n: the rebuilt Welch intervals equal the published ones. The files:
    the examples as published before their republication in the papers' regime (docs/ at 8d90b1c)."""
    import json
    from pathlib import Path

    from babysweep.report.verdict_offline import verdict_from_report

    path = Path(__file__).parent / "fixtures" / "old_reports" / f"{folder}.json"
    report = json.loads(path.read_text())
    text, decided = verdict_from_report(path)
    rows = {r["entry"]: r for r in report["rows"]}
    ref = next(r["entry"] for r in report["rows"] if r["blimp_basis"] == "ref")
    for c in decided["comparisons"]:
        if c["vs"] == ref:  # the published table's differences are to the reference teacher
            row = rows[decided["student"]]
            assert (c["diff"], c["low"], c["high"]) == pytest.approx(
                (row[f"{c['metric']}_diff"], row[f"{c['metric']}_low"], row[f"{c['metric']}_high"]), rel=1e-9)
    assert text.startswith("Contradicted: the distilled student") and "Rebuilt from an older report.json" in text
    assert "beats" not in text


def test_the_report_replays_the_looks_of_a_sequential_design():
    """Finalists whose runs carry the design tag (finalists.seeds: auto): the verdict decides look by look on
    the seeds each look had, at that look's spent alpha, not at 5% on all seeds at once."""
    def tagged(entries, design="3,2,5"):
        for e in entries:
            for s in e.seeds:
                s.tags["sequential"] = design
        return entries

    looks = spending_schedule(3, 2, 5)
    far = tagged(_study(_side(2.0, 0.95, own=[0.2, -0.1, 0.0, 0.1, -0.2]), _side(3.0, 0.70), _side(3.2, 0.6),
                        _side(3.0, 0.70, own=[-0.2, 0.1, 0.3, -0.1, 0.0])))
    v = verdict_family(far)
    assert [f["outcome"] for f in v["family"]] == ["better"] * 4
    assert v["level"] == pytest.approx(looks[0][1]) and "replays them up to 3 seeds" in v["why_level"]
    # Noise only: nothing decided; the last look (5 seeds) applied its own level.
    rng = np.random.default_rng(11)
    null = tagged(_study(*[_side(3.0, 0.70, own=rng.normal(0, 1, 5)) for _ in range(4)]))
    v = verdict_family(null)
    assert {f["outcome"] for f in v["family"]} == {"cannot tell"}
    assert v["level"] == pytest.approx(looks[1][1]) and "replays them up to 5 seeds" in v["why_level"]
    # Raw p-values between 0.0125 and 0.05 against the baseline: undecided at 5% with Holm, and at the looks' levels.
    d = np.array([0.010, 0.002, 0.008, 0.001, 0.004])
    near = _study((list(3.0 - d), list(0.80 + d)), _side(3.5, 0.5), _side(3.6, 0.4),
                  (list(np.full(5, 3.0)), list(np.full(5, 0.80))))
    line = verdict(data_of(tagged(near)))
    v = verdict_family(near)
    assert {f["outcome"] for f in v["family"] if f["other"].name == "teachers/llama"} == {"better"}
    assert {f["outcome"] for f in v["family"] if f["other"].name == "baselines"} == {"cannot tell"}
    assert "at each look's spent alpha, 5% family-wise over all looks (sequential:" in line
