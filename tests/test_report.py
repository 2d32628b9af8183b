"""Reports: bootstrap intervals, the comparison table and verdict on runs with known values,
importances, ablation variants, and a report written from a real (temporary) MLflow store.

Most tests build run dicts by hand, shaped as babysweep.tracking.tracker.sweep_runs returns them; the last
one logs runs with SweepTracker, writes the report, and rebuilds its table from MLflow alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from babysweep.studies.ablation import ablation_table, ablation_variants
from babysweep.core.errors import UserError
from babysweep.report.importance import importances
from babysweep.report.build import render_ablation, render_markdown, write_report
from babysweep.report.entries import ReportData, entries_from_runs, pair_weights
from babysweep.report.verdict import si, table_from_runs, verdict
from babysweep.report.stats import excludes_zero, mean_std, pair_noise_interval, paired_interval, welch_interval

# ------------------------------------------------------------------------------------ helpers

_ids = iter(range(10**6))


def run(role: str, dev: float | None, blimp: float | None, *, seed: int = 0, arch: str = "llama", status: str = "FINISHED",
        stopped: bool = False, params: dict | None = None, sampled: str = "", fields: dict | None = None, tags: dict | None = None,
        tokens: float | None = None, flops: float | None = None, epochs: int = 2) -> dict:
    """A run dict as sweep_runs gives it."""
    rid = f"r{next(_ids)}"
    metrics = {"eval/loss": dev, "blimp/overall": blimp, "model/params": 1.5e6,
               "train/tokens_seen": tokens, "train/flops": flops,
               **{f"blimp/field/{k}": v for k, v in (fields or {}).items()}}
    return {"run_id": rid, "trial_id": rid, "status": status,
            "params": {"model.arch": arch, "train.seed": str(seed), **(params or {})},
            "metrics": {k: v for k, v in metrics.items() if v is not None},
            "tags": {"role": role, "seed": str(seed), "sampled": sampled, **({"stopped_early": "true"} if stopped else {}),
                     **(tags or {})},
            "histories": {"eval/loss": [(e, (dev or 4.0) + 0.5 * (e < epochs)) for e in range(1, epochs + 1)]}}


def tuning(role: str, n: int, arch: str = "llama") -> list[dict]:
    return [run(role, 3.5 + 0.1 * i, 0.6, arch=arch, params={"train.lr": str(1e-3 * (i + 1))}, sampled="train.lr")
            for i in range(n)]


def scenario(student_dev: list[float], student_blimp: list[float], trials: int = 4, student_tokens: float = 1e6) -> dict[str, list[dict]]:
    """Teachers (llama, gpt2), students and baselines, each with a .final sweep of four seeds: the
    listed values, twice (t intervals over two seeds, df 1, are too wide to tell anything apart).
    Every finalist trains 4 epochs on 1M tokens (students: on student_tokens); FLOPs 6e12 per 1M tokens."""
    def final(role, devs, blimps, arch="llama"):
        tokens = student_tokens if role == "student" else 1e6
        return [run(role, d, b, seed=i, arch=arch, tokens=tokens, flops=6e6 * tokens, epochs=4)
                for i, (d, b) in enumerate(zip(devs * 2, blimps * 2))]

    return {
        "teachers": tuning("teacher", trials // 2, "llama") + tuning("teacher", trials // 2, "gpt2"),
        "teachers.final": final("teacher", [3.05, 3.15], [0.705, 0.715]) + final("teacher", [3.15, 3.25], [0.685, 0.695], "gpt2"),
        "students": tuning("student", trials),
        "students.final": final("student", student_dev, student_blimp),
        "baselines": tuning("baseline", trials),
        "baselines.final": final("baseline", [3.08, 3.12], [0.695, 0.705]),
    }


def no_blimp(_run: dict) -> None:
    return None


def rows_by_entry(rows: list[dict]) -> dict[str, dict]:
    return {r["entry"]: r for r in rows}


def data_of(runs: dict, load=no_blimp) -> ReportData:
    entries, warns = entries_from_runs(runs, load_blimp=load)
    return ReportData([k for k in runs if not k.endswith(".final")], runs, {}, entries, warns)


# -------------------------------------------------------------------------------------- stats


def test_mean_std():
    assert mean_std([2.0]) == (2.0, 0.0)
    m, s = mean_std([1.0, 2.0, 3.0])
    assert m == 2.0 and s == pytest.approx(1.0)  # ddof=1


def test_pair_noise_weights_give_the_macro_average_with_one_seed_each():
    sig = (("p1", 2), ("p2", 4))  # overall = mean of paradigm accuracies
    w = pair_weights(sig)
    a = np.array([1, 1, 1, 0, 0, 0], dtype=float)  # p1 100%, p2 25% -> 62.5%
    assert float((a * w).sum() / w.sum()) == pytest.approx(0.625)
    b = np.array([1, 0, 1, 0, 0, 0], dtype=float)  # p1 50%, p2 25% -> 37.5%
    diff, low, high = pair_noise_interval([a], [b], weights=w)
    assert diff == pytest.approx(0.25)
    assert low < high  # the pairs are resampled even with one seed each


def test_welch_interval_matches_scipy():
    from scipy import stats as sps

    a, b = [85.1, 86.9, 85.6], [86.5, 85.4, 86.0, 85.9]
    diff, low, high = welch_interval(a, b)
    ci = sps.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert (low, high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    # By hand: Welch-Satterthwaite df and t.ppf.
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 3)
    assert high - diff == pytest.approx(sps.t.ppf(0.975, df) * np.sqrt(va + vb), rel=1e-10)
    assert welch_interval(a, b, level=0.9)[2] < high


def test_paired_interval_matches_scipy():
    from scipy import stats as sps

    a, b = [3.02, 3.10, 2.97, 3.05, 3.08], [3.00, 3.05, 2.96, 3.01, 3.02]
    diff, low, high = paired_interval(a, b)
    ci = sps.ttest_rel(a, b).confidence_interval(0.95)
    assert diff == pytest.approx(np.mean(np.subtract(a, b)))
    assert (low, high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    # The seeds' shared luck cancels: narrower than Welch's on the same numbers.
    w = welch_interval(a, b)
    assert high - low < w[2] - w[1]


def test_one_run_each_has_no_t_interval_and_no_star():
    assert welch_interval([0.7], [0.6]) == (pytest.approx(0.1), None, None)
    assert paired_interval([0.7], [0.6]) == (pytest.approx(0.1), None, None)
    assert not excludes_zero(None, None)
    # A single run on one side is a fixed value: the other side's one-sample t interval.
    from scipy import stats as sps
    d, low, high = welch_interval([0.80, 0.82, 0.85], [0.6])
    ci = sps.ttest_1samp([0.80, 0.82, 0.85], 0.6).confidence_interval(0.95)
    assert (low + 0.6, high + 0.6) == pytest.approx((ci.low, ci.high))


def test_t_interval_is_wider_than_a_seed_bootstrap_with_three_seeds():
    a, b = np.array([0.859, 0.871, 0.849]), np.array([0.862, 0.853, 0.864])
    _, tl, th = welch_interval(a, b)
    rng = np.random.default_rng(0)  # the percentile bootstrap over seeds the report used before
    reps = [rng.choice(a, 3).mean() - rng.choice(b, 3).mean() for _ in range(2000)]
    bl, bh = np.percentile(reps, [2.5, 97.5])
    assert th - tl > 1.5 * (bh - bl)


def test_pair_noise_interval_resamples_pairs_only():
    rng = np.random.default_rng(2)
    base = (rng.random(1000) < 0.7).astype(float)
    a_pairs = [base, base]
    b_pairs = [np.where(rng.random(1000) < 0.1, 1 - base, base)] * 2
    diff, low, high = pair_noise_interval(a_pairs, b_pairs)
    assert diff == pytest.approx(base.mean() - b_pairs[0].mean()) and low <= diff <= high
    # Identical decisions on every pair: the pairs cannot move the difference.
    assert pair_noise_interval(a_pairs, a_pairs) == (0.0, 0.0, 0.0)


# -------------------------------------------------------------------------------------- table


def test_table_has_expected_values():
    runs = scenario([2.90, 2.95], [0.75, 0.76])
    rows = rows_by_entry(table_from_runs(runs, load_blimp=no_blimp))
    assert list(rows) == ["teachers/gpt2", "teachers/llama", "students", "baselines"]
    llama, student = rows["teachers/llama"], rows["students"]
    assert llama["dev_loss_mean"] == pytest.approx(3.1) and llama["blimp_mean"] == pytest.approx(71.0)
    assert llama["dev_loss_basis"] == "ref" and llama["blimp_basis"] == "ref"  # the best teacher on both
    assert student["dev_loss_mean"] == pytest.approx(2.925)
    assert student["dev_loss_std"] == pytest.approx(np.std([2.90, 2.95] * 2, ddof=1))
    assert student["blimp_mean"] == pytest.approx(75.5)
    assert student["dev_loss_diff"] == pytest.approx(-0.175) and student["blimp_diff"] == pytest.approx(4.5)
    assert student["dev_loss_high"] < 0 < student["blimp_low"]
    assert rows["teachers/gpt2"]["blimp_diff"] == pytest.approx(-2.0)
    assert (student["n"], student["source"], student["trials"], student["arch_trials"]) == (4, "final", 4, None)
    assert (rows["teachers/gpt2"]["trials"], rows["teachers/gpt2"]["arch_trials"]) == (4, 2)


def test_verdict_when_the_student_wins():
    line = verdict(data_of(scenario([2.90, 2.95], [0.75, 0.76])))
    assert line.startswith("Supported: the distilled student (students) is better than the reference teacher "
                           "teachers/llama (on BLiMP and dev loss) and the baseline baselines (on BLiMP and dev loss).")
    assert "BLiMP vs the reference teacher teachers/llama (chosen on eval/loss): better, +4.50 points" in line
    assert "dev loss vs the reference teacher teachers/llama (chosen on eval/loss): better, -0.175" in line
    assert "paired t over 4 shared seeds" in line and "Holm's correction over the verdict's family of 4 comparisons" in line
    assert "cannot tell" not in line and "\n" not in line


def test_verdict_when_the_student_loses():
    line = verdict(data_of(scenario([3.30, 3.40], [0.60, 0.62])))
    assert line.startswith("Contradicted: the distilled student (students) is worse than the reference teacher "
                           "teachers/llama (on BLiMP and dev loss) and the baseline baselines (on BLiMP and dev loss).")
    assert "BLiMP vs the reference teacher teachers/llama (chosen on eval/loss): worse, -10.00 points" in line
    assert "dev loss vs the reference teacher teachers/llama (chosen on eval/loss): worse, +0.250" in line


def test_verdict_mixed_and_inconclusive():
    mixed = verdict(data_of(scenario([3.30, 3.40], [0.75, 0.76])))
    assert mixed.startswith("Contradicted: the distilled student (students) is worse than the reference teacher "
                            "teachers/llama (on dev loss) and the baseline baselines (on dev loss); it is better than "
                            "the reference teacher teachers/llama (on BLiMP) and the baseline baselines (on BLiMP).")
    # Better means whose intervals straddle zero: not called a win.
    close = verdict(data_of(scenario([2.50, 3.65], [0.60, 0.85])))
    assert close.startswith("Inconclusive: the seeds cannot tell the distilled student (students) from the reference "
                            "teacher teachers/llama (on BLiMP and dev loss) and the baseline baselines (on BLiMP and dev loss).")
    assert "smallest detectable difference 28.83 points at 80% power; 672 seeds per arm would detect +1.50" in close


def test_budget_warning_only_when_trials_differ():
    equal = data_of(scenario([2.9, 2.95], [0.75, 0.76], trials=4))
    runs = scenario([2.9, 2.95], [0.75, 0.76], trials=4)
    runs["students"] += tuning("student", 4)
    unequal = data_of(runs)
    assert not [w for w in equal.warnings if "budgets" in w]
    (warning,) = [w for w in unequal.warnings if "budgets" in w]
    assert "students 8" in warning and "teachers 4" in warning and "baselines 4" in warning
    assert any("architectures shared their sweep's trials (teachers/gpt2 2, teachers/llama 2)" in w for w in equal.warnings)


def test_budgets_per_finalist_in_the_table_and_the_report():
    runs = scenario([2.9, 2.95], [0.75, 0.76], student_tokens=1.04e6)
    runs["students"][0]["tags"]["stopped_early"] = "true"
    runs["teachers"][0]["status"] = "FAILED"  # a llama trial: neither completed nor stopped
    rows = rows_by_entry(table_from_runs(runs, load_blimp=no_blimp))
    student, llama = rows["students"], rows["teachers/llama"]
    assert (student["epochs"], student["tokens_seen"], student["flops"]) == (4, 1.04e6, pytest.approx(6.24e12))
    assert (student["trials_completed"], student["trials_stopped"]) == (3, 1)
    assert (llama["trials_completed"], llama["trials_stopped"], rows["teachers/gpt2"]["trials_completed"]) == (1, 0, 2)
    text = render_markdown({"name": "r", "sweeps": [], "verdict": "v", "warnings": [], "rows": list(rows.values()),
                            "fields": {}, "importances": {}, "figures": []})
    assert "## Budgets" in text
    assert "| students | 4 | 1.04M | 1.50M | 6.24T | 3 / 1 |" in text
    assert "| teachers/llama | 4 | 1M | 1.50M | 6T | 1 / 0 |" in text


def test_si_prefixes():
    assert [si(x) for x in (512, 4.1e6, 2.346e12, 999_999, 1.5e15)] == ["512", "4.1M", "2.35T", "1M", "1.5P"]


def test_verdict_says_so_when_tokens_seen_differ_by_more_than_5_percent():
    for tokens in (1.0e6, 1.05e6, 1e6 / 1.05):  # within 5% (of the smaller): nothing said
        assert "Budgets differ" not in verdict(data_of(scenario([2.90, 2.95], [0.75, 0.76], student_tokens=tokens)))
    assert "5.1% more tokens" in verdict(data_of(scenario([2.90, 2.95], [0.75, 0.76], student_tokens=1.051e6)))
    more = verdict(data_of(scenario([2.90, 2.95], [0.75, 0.76], student_tokens=4 / 3 * 1e6)))
    assert more.startswith("Supported: ") and "\n" not in more
    assert ("Budgets differ: students trained on 33.3% more tokens than teachers/gpt2 (tokens seen: teachers/gpt2 1M, "
            "teachers/llama 1M, students 1.33M, baselines 1M)") in more
    fewer = verdict(data_of(scenario([2.90, 2.95], [0.75, 0.76], student_tokens=0.9e6)))
    assert "Budgets differ: teachers/gpt2 trained on 11.1% more tokens than students" in fewer
    runs = scenario([2.90, 2.95], [0.75, 0.76], student_tokens=2e6)
    for r in runs["baselines.final"]:
        del r["metrics"]["train/tokens_seen"]  # runs from before tokens were counted
    assert "; not recorded for baselines)" in verdict(data_of(runs))


def test_without_final_sweep_the_best_complete_config_is_used():
    runs = scenario([2.9, 2.95], [0.75, 0.76])
    del runs["baselines.final"]
    runs["baselines"] = [run("baseline", 3.4, 0.66, params={"train.lr": "1"}, sampled="train.lr"),
                         run("baseline", 3.0, 0.70, stopped=True, params={"train.lr": "2"}, sampled="train.lr"),  # not complete
                         run("baseline", 2.0, 0.70, status="FAILED", params={"train.lr": "3"}, sampled="train.lr"),
                         run("baseline", 3.2, 0.69, seed=0, params={"train.lr": "4"}, sampled="train.lr,train.seed"),
                         run("baseline", 3.3, 0.67, seed=1, params={"train.lr": "4"}, sampled="train.lr,train.seed")]
    data = data_of(runs)
    row = rows_by_entry(table_from_runs(runs, load_blimp=no_blimp))["baselines"]
    # lr=4 has two repeats (mean 3.25) and beats lr=1 (3.4); the stopped and failed trials are skipped.
    assert (row["source"], row["n"], row["dev_loss_mean"], row["trials"]) == ("best-trial", 2, pytest.approx(3.25), 5)
    assert any("baselines: no finished baselines.final runs" in w and "optimistic" in w for w in data.warnings)


def consistent_decisions(r: dict) -> dict:
    """Decisions on one paradigm of 400 pairs that give the run's BLiMP overall exactly."""
    k = round(r["metrics"]["blimp/overall"] * 400)
    bits = np.zeros(400, dtype=int)
    bits[np.random.default_rng(int(r["run_id"][1:])).permutation(400)[:k]] = 1
    return {"decisions": {"p1": "".join(map(str, bits))}}


def test_blimp_gets_a_separate_eval_noise_interval_when_every_run_has_decisions():
    runs = scenario([2.9, 2.95], [0.75, 0.76])
    rows = rows_by_entry(table_from_runs(runs, load_blimp=consistent_decisions))
    student = rows["students"]
    assert student["blimp_basis"] == "seeds" and student["dev_loss_basis"] == "seeds"
    seeds_only = rows_by_entry(table_from_runs(runs, load_blimp=no_blimp))["students"]
    # The verdict's interval is the paired t over the shared seeds, whether or not decisions exist.
    assert (student["blimp_diff"], student["blimp_low"], student["blimp_high"]) == \
        (seeds_only["blimp_diff"], seeds_only["blimp_low"], seeds_only["blimp_high"])
    assert (student["blimp_low"], student["blimp_high"]) == pytest.approx(
        [100 * x for x in paired_interval([0.75, 0.76] * 2, [0.705, 0.715] * 2)[1:]])
    assert seeds_only["blimp_noise_low"] is None and student["blimp_noise_low"] < student["blimp_noise_high"]
    assert student["dev_loss_noise_low"] is None
    cell = render_markdown({"name": "r", "sweeps": [], "verdict": "v", "warnings": [], "rows": [student],
                            "fields": {}, "importances": {}, "figures": []})
    assert "eval noise [" in cell


def test_runs_without_usable_decisions_fall_back_to_seeds():
    runs = scenario([2.9, 2.95], [0.75, 0.76])
    missing = runs["baselines.final"][0]["run_id"]
    wrong = runs["students.final"][0]["run_id"]

    def load(r):
        if r["run_id"] == missing:
            return None
        if r["run_id"] == wrong:  # decisions that do not give the run's overall (another evaluation)
            return {"decisions": {"p1": "1" * 400}}
        return consistent_decisions(r)

    entries, warns = entries_from_runs(runs, load_blimp=load)
    assert any(w.startswith("baselines: 1 of 4 runs have no usable per-pair decisions") for w in warns)
    assert any(f"decisions in run {wrong}'s blimp.json do not give its blimp/overall (0.7500)" in w for w in warns)
    rows = rows_by_entry(table_from_runs(runs, load_blimp=load))
    assert rows["baselines"]["blimp_noise_low"] is None and rows["students"]["blimp_noise_low"] is None
    assert rows["teachers/gpt2"]["blimp_noise_low"] is not None


def test_blimp_of_different_rules_or_scorers_is_not_compared():
    runs = scenario([2.9, 2.95], [0.75, 0.76])
    odd = runs["students.final"][0]["run_id"]

    def load(r, odd_rule="lm-eval", odd_scorer="causal"):
        rule, scorer = (odd_rule, odd_scorer) if r["run_id"] == odd else ("babylm", "causal")
        return {**consistent_decisions(r), "scorer": scorer, "rule": rule}

    with pytest.raises(UserError, match="different scoring cannot be compared") as info:
        entries_from_runs(runs, load_blimp=load)
    assert f"students (run {odd}): causal scorer, lm-eval rule" in str(info.value)
    assert "causal scorer, babylm rule" in str(info.value)
    with pytest.raises(UserError, match="pll scorer"):
        entries_from_runs(runs, load_blimp=lambda r: load(r, "babylm", "pll"))
    entries, _ = entries_from_runs(runs, load_blimp=lambda r: load(r, "babylm"))  # one rule: compared
    assert {s.scoring for e in entries for s in e.seeds} == {"causal scorer, babylm rule"}


def test_a_one_run_side_is_never_called_conclusive():
    runs = scenario([2.0, 2.0], [0.95, 0.95])
    del runs["students.final"]
    runs["students"] = [run("student", 2.0, 0.95)]  # far better, but a single run
    line = verdict(data_of(runs))
    assert line.startswith("Inconclusive")
    assert "(a side with one run: its seed variation is missing, so it decides nothing)" in line
    assert "better" not in line.split("Outside the family")[0]


def test_no_verdict_without_students():
    runs = scenario([2.9, 2.95], [0.75, 0.76])
    del runs["students"], runs["students.final"]
    assert verdict(data_of(runs)).startswith("No verdict")


# -------------------------------------------------------------------------------- importances


def test_importance_finds_the_parameter_that_matters():
    rng = np.random.default_rng(0)
    runs = []
    for i in range(40):
        lr, wd = rng.uniform(0, 1), rng.uniform(0, 1)
        sched = ["cosine", "linear"][i % 2]
        r = run("teacher", 3.0 + 2.0 * (lr - 0.3) ** 2 + 0.01 * rng.normal(), 0.7,
                params={"train.lr": str(lr), "train.weight_decay": str(wd), "train.scheduler": sched, "model.layers": "4"},
                sampled="model.layers,train.lr,train.scheduler,train.weight_decay")
        runs.append(r)
    values, note = importances(runs, "eval/loss", "min")
    assert set(values) == {"train.lr", "train.weight_decay", "train.scheduler"}  # not the constant model.layers
    assert max(values, key=values.get) == "train.lr"
    assert "PED-ANOVA on 40 fully trained trials" in note
    assert "top 10% holds 4 trials (fewer than 5), so these values are only indicative" in note


def _lr_runs(n: int, seed: int = 0, **kwargs) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lr = rng.uniform(0, 1)
        out.append(run("teacher", 3.0 + 2.0 * (lr - 0.3) ** 2, 0.7, params={"train.lr": str(lr), "train.wd": str(rng.uniform())},
                       sampled="train.lr,train.wd", **kwargs))
    return out


def test_importance_uses_fully_trained_trials_and_names_ped_anova(monkeypatch):
    import optuna

    seen = []
    real = optuna.importance.get_param_importances

    def spy(study, *args, evaluator=None, **kwargs):
        seen.append((evaluator, len(study.trials)))
        return real(study, *args, evaluator=evaluator, **kwargs)

    monkeypatch.setattr(optuna.importance, "get_param_importances", spy)
    runs = _lr_runs(50) + _lr_runs(7, seed=1, stopped=True)  # stopped early by ASHA: left out
    values, note = importances(runs, "eval/loss", "min")
    ((evaluator, n),) = seen
    assert isinstance(evaluator, optuna.importance.PedAnovaImportanceEvaluator) and n == 50
    assert "PED-ANOVA on 50 fully trained trials" in note and "indicative" not in note  # top 10%: 5 trials
    assert max(values, key=values.get) == "train.lr"


def test_importance_with_too_few_trials_says_so():
    values, note = importances(tuning("teacher", 2), "eval/loss", "min")
    assert values is None and "too few" in note


# -------------------------------------------------------------------------------------- ablation


def test_ablation_variants_change_one_factor_each():
    base = {"distill": {"teachers": ["/m/a", "/m/b"], "temperature": 2.0, "alpha": 0.5},
            "antlm": {"schedule": "1clm+2mlm+1clm"}, "train": {"epochs": 4}}
    v = ablation_variants(base)
    assert set(v) == {"base", "no-distillation", "teacher-0", "teacher-1", "no-antlm", "temperature-1"}
    assert v["base"] == base and v["base"] is not base
    assert v["no-distillation"]["distill"] == {"teachers": [], "temperature": 2.0, "alpha": 1.0}
    assert v["teacher-1"]["distill"]["teachers"] == ["/m/b"] and v["teacher-1"]["antlm"] == base["antlm"]
    assert v["no-antlm"]["antlm"] == {"schedule": None, "mlm_ratio": 0.0} and v["no-antlm"]["distill"] == base["distill"]
    assert v["temperature-1"]["distill"]["temperature"] == 1.0
    assert base["distill"]["teachers"] == ["/m/a", "/m/b"]  # the base is not modified


def test_ablation_variants_skip_what_equals_the_base():
    assert set(ablation_variants({"train": {"epochs": 2}})) == {"base"}  # no teachers, no AntLM
    one = ablation_variants({"distill": {"teachers": ["/m/a"], "temperature": 1.0}, "antlm": {"mlm_ratio": 0.5}})
    assert set(one) == {"base", "no-distillation", "no-antlm"}  # one teacher; temperature already 1
    all_clm = ablation_variants({"train": {"epochs": 4}, "antlm": {"schedule": "4clm"}})
    assert set(all_clm) == {"base"}  # a schedule without MLM epochs is already "no AntLM"


def test_ablation_table():
    results = {"base": [{"eval/loss": 3.0, "blimp/overall": 0.70}, {"eval/loss": 3.1, "blimp/overall": 0.72}],
               "no-antlm": [{"metrics": {"eval/loss": 3.3, "blimp/overall": 0.65}}, {"metrics": {"eval/loss": 3.4, "blimp/overall": 0.67}}]}
    rows = {r["variant"]: r for r in ablation_table(results)}
    assert rows["base"]["dev_loss_diff"] is None and rows["base"]["blimp_mean"] == pytest.approx(71.0)
    assert rows["no-antlm"]["dev_loss_diff"] == pytest.approx(0.3)
    assert rows["no-antlm"]["blimp_diff"] == pytest.approx(-5.0)
    assert rows["no-antlm"]["blimp_excludes_zero"] is True
    assert (rows["no-antlm"]["dev_loss_low"], rows["no-antlm"]["dev_loss_high"]) == pytest.approx((0.3, 0.3))  # paired: same shift
    with pytest.raises(UserError):
        ablation_table({"no-antlm": results["no-antlm"]})


def test_ablation_intervals_are_paired_t_by_seed():
    from scipy import stats as sps

    def runs(values, seeds):
        return [{"tags": {"seed": str(s)}, "metrics": {"eval/loss": v, "blimp/overall": 0.7}} for v, s in zip(values, seeds)]

    base, variant = [3.00, 3.20, 2.90, 3.10], [3.05, 3.22, 2.97, 3.12]
    # The variant's runs come back in another order: they are matched by seed, not position.
    results = {"base": runs(base, [1000, 1001, 1002, 1003]), "v": runs(variant[::-1], [1003, 1002, 1001, 1000])}
    row = {r["variant"]: r for r in ablation_table(results)}["v"]
    ci = sps.ttest_rel(variant, base).confidence_interval(0.95)
    assert (row["dev_loss_low"], row["dev_loss_high"]) == pytest.approx((ci.low, ci.high))
    assert row["dev_loss_excludes_zero"] is True  # Welch's t over the same numbers would include zero
    assert welch_interval(variant, base)[1] < 0


def test_one_seed_ablation_has_no_interval_and_no_star():
    results = {"base": [{"eval/loss": 3.0, "blimp/overall": 0.70}], "no-antlm": [{"eval/loss": 3.3, "blimp/overall": 0.65}]}
    rows = {r["variant"]: r for r in ablation_table(results)}
    row = rows["no-antlm"]
    assert row["dev_loss_diff"] == pytest.approx(0.3) and row["dev_loss_low"] is None
    assert row["dev_loss_excludes_zero"] is False and row["blimp_excludes_zero"] is False
    text = render_ablation("a", "students", list(rows.values()), {"no-antlm": {"antlm.schedule": None}})
    table = [line for line in text.splitlines() if line.startswith("| no-antlm")]
    assert "(one seed: no interval)" in table[0] and "*" not in table[0]


# --------------------------------------------------------------------------- end to end via MLflow


def _log_sweep(uri: str, root: Path, name: str, role: str, trials: list[dict], finalist_of: str | None = None,
               search_settings: dict | None = None) -> None:
    from babysweep.tracking.tracker import SweepTracker

    tracker = SweepTracker(uri, name, root / "sweeps" / name, metric="eval/loss", mode="min", role=role,
                           spec_text=f"name: {name}\n", search_settings=search_settings or {"algorithm": "optuna"})
    for i, t in enumerate(trials):
        tid = f"{name}_{i}"
        out = root / "out" / tid
        (out / "final").mkdir(parents=True)
        decisions = {p: "".join("1" if (j * 7 + i) % 10 < acc * 10 else "0" for j in range(20)) for p, acc in t["paradigms"].items()}
        paradigms = {p: d.count("1") / len(d) for p, d in decisions.items()}
        overall = sum(paradigms.values()) / len(paradigms)
        (out / "blimp.json").write_text(json.dumps({"overall": overall, "paradigms": paradigms, "decisions": decisions}))
        config = {"model": {"arch": t["arch"]}, "train": {"seed": t["seed"], "lr": t["lr"]},
                  "distill": {"temperature": t.get("T", 2.0)}, "antlm": {"schedule": t.get("schedule")}}
        for section, values in t.get("config", {}).items():
            config.setdefault(section, {}).update(values)
        params = {"train": {"lr": t["lr"]}, **({"distill": {"temperature": t["T"]}} if "T" in t else {})}
        tracker.trial_started(tid, params=params, config=config, tags={"finalist_of": finalist_of} if finalist_of else None)
        for epoch in (1, 2):
            tokens = epoch * t.get("tokens", 1000)  # running totals, as the trainer reports them
            tracker.trial_result(tid, {"eval/loss": t["dev"] + (0.4 if epoch == 1 else 0.0), "epoch": epoch,
                                       "train/tokens_seen": tokens, "train/flops": 6e5 * tokens}, step=epoch)
        tracker.trial_finished(tid, "FINISHED", model_dir=str(out / "final"),
                               final_metrics={"blimp/overall": overall, "blimp/field/syntax": paradigms["a"],
                                              "blimp/field/semantics": paradigms["b"], "model/params": 2.0e6})
    tracker.sweep_finished(best_trial_id=None)


def test_report_from_mlflow_matches_a_table_rebuilt_from_runs(tmp_path):
    from babysweep.core.paths import default_tracking_uri
    from babysweep.tracking.runs import sweep_parent, sweep_runs

    uri = default_tracking_uri(tmp_path)
    def trials(n, arch="llama", dev=3.0, acc=0.7, **extra):
        return [{"arch": arch, "seed": 0, "lr": 1e-3 * (i + 1), "dev": dev + 0.1 * i,
                 "paradigms": {"a": acc, "b": acc - 0.1}, **{k: v[i] if isinstance(v, list) else v for k, v in extra.items()}}
                for i in range(n)]

    _log_sweep(uri, tmp_path, "teachers", "teacher", trials(2, "llama") + trials(2, "gpt2", dev=3.2))
    final = [dict(t, seed=s) for s, t in enumerate(trials(2, "llama", dev=3.0, acc=0.7))] + \
            [dict(t, seed=s) for s, t in enumerate(trials(2, "gpt2", dev=3.2, acc=0.6))]
    _log_sweep(uri, tmp_path, "teachers.final", "teacher", final, finalist_of="teachers")
    from babysweep.spec.sampler import mlflow_params, sampler_settings
    from babysweep.spec.load import load_spec

    shipped = load_spec(Path(__file__).resolve().parents[1] / "search_spaces" / "students.yaml")
    settings = {**{"search." + k: v for k, v in shipped.search.model_dump().items()},  # as sweep/driver.py passes them
                **mlflow_params(sampler_settings(shipped.search, shipped.space))}
    paper = {"distill": {"teachers": ["/m/a/final", "/m/b/final"], "alpha": 0.5, "kd_reduction": "babyllama"},
             "data": {"seq_len": 128}, "train": {"epochs": 6}, "antlm": {"schedule": "2clm+2mlm+2clm"}}
    _log_sweep(uri, tmp_path, "students", "student", trials(3, dev=2.9, acc=0.8, T=[1.0, 2.0, 3.0], config=paper, tokens=1500),
               search_settings=settings)
    _log_sweep(uri, tmp_path, "baselines", "baseline", trials(3, dev=3.1, acc=0.7))

    logged = []
    out = tmp_path / "report"
    md = write_report(uri, ["teachers", "students", "baselines"], out, "r1",
                      log_run=lambda *args: logged.append(args))
    report = json.loads((out / "report.json").read_text())
    assert md == out / "report.md" and md.is_file()
    for figure in ("blimp_overall.png", "learning_curves.png", "factors_students.png"):
        assert figure in report["figures"] and (out / figure).stat().st_size > 1000
        assert f"]({figure})" in md.read_text()

    runs = {}
    for sweep in ("teachers", "teachers.final", "students", "baselines"):
        runs[sweep] = sweep_runs(uri, sweep, histories=["eval/loss"])  # as collect() reads them: epochs come from it
    objectives = {s: (sweep_parent(uri, s)["tags"]["metric"], sweep_parent(uri, s)["tags"]["mode"])
                  for s in ("teachers", "students", "baselines")}
    assert table_from_runs(runs, objectives) == report["rows"]

    rows = rows_by_entry(report["rows"])
    assert rows["teachers/llama"]["source"] == "final" and rows["teachers/llama"]["n"] == 2
    # Each teacher finalist's best epoch (lowest dev loss) and the regime table, beside the papers' rows.
    assert set(report["teacher_best_epochs"]) == {r["entry"] for r in report["rows"] if r["role"] == "teacher"}
    assert all(isinstance(e, int) for seeds in report["teacher_best_epochs"].values() for e in seeds)
    assert "## Regime" in md.read_text() and "| Baby Llama: LLaMA 58M | student |" in md.read_text()
    assert rows["students"]["source"] == "best-trial" and rows["students"]["blimp_basis"] == "one side's seeds"
    assert rows["students"]["blimp_noise_low"] < rows["students"]["blimp_noise_high"]  # the pairs are in blimp.json
    assert "eval noise [" in md.read_text()
    # The student's KD weight in token units (its best trial had T 1) and its KD epochs (not the MLM ones).
    kd = report["distillation"]["students"]
    assert (kd["kd_per_ce"], kd["kd_epochs"], kd["epochs"]) == (pytest.approx(127.0), 4, 6)
    assert "| students | 0.5 | 1 | babyllama | 128 | 127 | 0.00781 | 4 of 6 |" in md.read_text()
    assert report["samplers"]["students"] == "independent TPE, first 2 trials random, seed 0"
    assert "- **students**: independent TPE, first 2 trials random, seed 0" in md.read_text()
    assert report["samplers"]["teachers"].startswith("not recorded")
    # Student and baseline have one run each (no .final sweeps): dev loss has no interval, so no firm claim.
    assert report["verdict"] in md.read_text() and report["verdict"].startswith("Inconclusive: ")
    assert "loss vs the baseline baselines: cannot tell, " in report["verdict"] and "no interval (one run each)" in report["verdict"]
    # Budgets: the last epoch's running totals, read back from MLflow; the student saw 50% more tokens.
    assert (rows["students"]["epochs"], rows["students"]["tokens_seen"], rows["teachers/llama"]["tokens_seen"]) == (2, 3000, 2000)
    assert "| students | 2 | 3k | 2.00M | 1.8G | 3 / 0 |" in md.read_text()
    assert "Budgets differ: students trained on 50.0% more tokens than teachers/gpt2" in report["verdict"]
    assert "students: no finished students.final runs" in " ".join(report["warnings"])
    ((name, params, metrics, folder),) = logged
    assert (name, folder) == ("r1", out) and params["report.sweeps"] == "teachers,students,baselines"
    assert metrics["students.blimp_mean"] == rows["students"]["blimp_mean"]


def test_the_reference_teacher_is_chosen_by_the_tuning_metric_not_by_the_compared_numbers():
    runs = scenario([2.90, 2.95], [0.75, 0.76])
    for r in runs["teachers.final"]:  # gpt2 is worse on dev loss and BLiMP but better on the held-out tuning slice
        r["metrics"]["tune/loss"] = 3.1 if r["params"]["model.arch"] == "gpt2" else 3.3
    for name in ("students.final", "baselines.final"):
        for r in runs[name]:
            r["metrics"]["tune/loss"] = 3.0
    objectives = {s: ("tune/loss", "min") for s in ("teachers", "students", "baselines")}
    entries, warns = entries_from_runs(runs, objectives, load_blimp=no_blimp)
    rows = rows_by_entry(table_from_runs(runs, objectives, load_blimp=no_blimp))
    assert rows["teachers/gpt2"]["dev_loss_basis"] == "ref" and rows["teachers/gpt2"]["blimp_basis"] == "ref"
    assert rows["students"]["dev_loss_ref"] == "teachers/gpt2"
    line = verdict(ReportData(["teachers", "students", "baselines"], runs, objectives, entries, warns))
    assert "vs the reference teacher teachers/gpt2 (chosen on tune/loss)" in line
    assert not any("optimistic" in w for w in warns)  # tuned on held-out data: nothing to warn about
    # Tuned on dev loss or on BLiMP, the report says the shown numbers were used for selection.
    _, warns = entries_from_runs(runs, {**objectives, "students": ("blimp/overall", "max")}, load_blimp=no_blimp)
    assert any("students were tuned and chosen on blimp/overall: BLiMP was used for selection" in w for w in warns)
    _, warns = entries_from_runs(runs, load_blimp=no_blimp)
    assert any("chosen on eval/loss, the dev loss this report shows" in w for w in warns)
