"""Reports: bootstrap intervals, the comparison table and verdict on runs with known values,
importances, ablation variants, and a report written from a real (temporary) MLflow store.

Most tests build run dicts by hand, shaped as babysweep.tracking.sweep_runs returns them; the last
one logs runs with SweepTracker, writes the report, and rebuilds its table from MLflow alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from babysweep.ablation import ablation_table, ablation_variants
from babysweep.errors import UserError
from babysweep.report import (ReportData, entries_from_runs, importances, pair_weights, table_from_runs, verdict,
                              write_report)
from babysweep.stats import bootstrap_diff, excludes_zero, mean_std

# ------------------------------------------------------------------------------------ helpers

_ids = iter(range(10**6))


def run(role: str, dev: float | None, blimp: float | None, *, seed: int = 0, arch: str = "llama", status: str = "FINISHED",
        stopped: bool = False, params: dict | None = None, sampled: str = "", fields: dict | None = None, tags: dict | None = None) -> dict:
    """A run dict as sweep_runs gives it."""
    rid = f"r{next(_ids)}"
    metrics = {"eval/loss": dev, "blimp/overall": blimp, "model/params": 1.5e6,
               **{f"blimp/field/{k}": v for k, v in (fields or {}).items()}}
    return {"run_id": rid, "trial_id": rid, "status": status,
            "params": {"model.arch": arch, "train.seed": str(seed), **(params or {})},
            "metrics": {k: v for k, v in metrics.items() if v is not None},
            "tags": {"role": role, "seed": str(seed), "sampled": sampled, **({"stopped_early": "true"} if stopped else {}),
                     **(tags or {})},
            "histories": {"eval/loss": [(1, (dev or 4.0) + 0.5), (2, dev or 4.0)]}}


def tuning(role: str, n: int, arch: str = "llama") -> list[dict]:
    return [run(role, 3.5 + 0.1 * i, 0.6, arch=arch, params={"train.lr": str(1e-3 * (i + 1))}, sampled="train.lr")
            for i in range(n)]


def scenario(student_dev: list[float], student_blimp: list[float], trials: int = 4) -> dict[str, list[dict]]:
    """Teachers (llama, gpt2), students and baselines, each with a .final sweep of two seeds."""
    def final(role, devs, blimps, arch="llama"):
        return [run(role, d, b, seed=i, arch=arch) for i, (d, b) in enumerate(zip(devs, blimps))]

    return {
        "teachers": tuning("teacher", trials // 2, "llama") + tuning("teacher", trials // 2, "gpt2"),
        "teachers.final": final("teacher", [3.0, 3.2], [0.70, 0.72]) + final("teacher", [3.1, 3.3], [0.68, 0.70], "gpt2"),
        "students": tuning("student", trials),
        "students.final": final("student", student_dev, student_blimp),
        "baselines": tuning("baseline", trials),
        "baselines.final": final("baseline", [3.05, 3.15], [0.69, 0.71]),
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


def test_bootstrap_identical_groups_contains_zero():
    a = [0.70, 0.72, 0.71, 0.69]
    diff, low, high = bootstrap_diff(a, list(a))
    assert diff == 0.0 and low < 0 < high


def test_bootstrap_separated_groups_excludes_zero():
    diff, low, high = bootstrap_diff([0.80, 0.81, 0.82], [0.70, 0.71, 0.72])
    assert diff == pytest.approx(0.10)
    assert 0 < low <= diff <= high
    assert excludes_zero(low, high)


def test_bootstrap_is_deterministic_per_seed():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 5), rng.normal(0.3, 1, 5)
    assert bootstrap_diff(a, b, seed=3) == bootstrap_diff(a, b, seed=3)
    assert bootstrap_diff(a, b, seed=3) != bootstrap_diff(a, b, seed=4)


def test_one_seed_each_without_pairs_has_no_interval():
    assert bootstrap_diff([0.7], [0.6]) == pytest.approx((0.1, 0.1, 0.1))


def test_paired_pairs_are_narrower_for_correlated_decisions():
    rng = np.random.default_rng(0)
    base = (rng.random(2000) < 0.7).astype(float)
    flips = rng.random(2000) < 0.05  # b decides like a on 95% of the pairs
    a_pairs = [base, base]
    b_pairs = [np.where(flips, 1 - base, base)] * 2
    a, b = [float(p.mean()) for p in a_pairs], [float(p.mean()) for p in b_pairs]
    d1, lo1, hi1 = bootstrap_diff(a, b, a_pairs, b_pairs, paired=True)
    d2, lo2, hi2 = bootstrap_diff(a, b, a_pairs, b_pairs, paired=False)
    assert d1 == d2
    assert hi1 - lo1 < 0.5 * (hi2 - lo2)
    assert lo1 <= d1 <= hi1


def test_pairs_give_an_interval_with_one_seed_and_weights_match_macro_average():
    sig = (("p1", 2), ("p2", 4))  # overall = mean of paradigm accuracies
    w = pair_weights(sig)
    a = np.array([1, 1, 1, 0, 0, 0], dtype=float)  # p1 100%, p2 25% -> 62.5%
    assert float((a * w).sum() / w.sum()) == pytest.approx(0.625)
    b = np.array([1, 0, 1, 0, 0, 0], dtype=float)  # p1 50%, p2 25% -> 37.5%
    diff, low, high = bootstrap_diff([0.625], [0.375], [a], [b], weights=w)
    assert diff == pytest.approx(0.25)
    assert low < high  # the pairs are resampled even with one seed each


# -------------------------------------------------------------------------------------- table


def test_table_has_expected_values():
    runs = scenario([2.90, 2.95], [0.75, 0.76])
    rows = rows_by_entry(table_from_runs(runs, load_blimp=no_blimp))
    assert list(rows) == ["teachers/gpt2", "teachers/llama", "students", "baselines"]
    llama, student = rows["teachers/llama"], rows["students"]
    assert llama["dev_loss_mean"] == pytest.approx(3.1) and llama["blimp_mean"] == pytest.approx(71.0)
    assert llama["dev_loss_basis"] == "ref" and llama["blimp_basis"] == "ref"  # the best teacher on both
    assert student["dev_loss_mean"] == pytest.approx(2.925)
    assert student["dev_loss_std"] == pytest.approx(np.std([2.90, 2.95], ddof=1))
    assert student["blimp_mean"] == pytest.approx(75.5)
    assert student["dev_loss_diff"] == pytest.approx(-0.175) and student["blimp_diff"] == pytest.approx(4.5)
    assert student["dev_loss_high"] < 0 < student["blimp_low"]
    assert rows["teachers/gpt2"]["blimp_diff"] == pytest.approx(-2.0)
    assert (student["n"], student["source"], student["trials"], student["arch_trials"]) == (2, "final", 4, None)
    assert (rows["teachers/gpt2"]["trials"], rows["teachers/gpt2"]["arch_trials"]) == (4, 2)


def test_verdict_when_the_student_wins():
    line = verdict(data_of(scenario([2.90, 2.95], [0.75, 0.76])))
    assert line.startswith("Supported: on BLiMP the distilled student (students) beats both tuned teachers and the baseline")
    assert "+4.50 points vs the best teacher teachers/llama" in line
    assert "on dev loss it beats both tuned teachers and the baseline (-0.175 vs the best teacher teachers/llama" in line
    assert "includes zero" not in line and "\n" not in line


def test_verdict_when_the_student_loses():
    line = verdict(data_of(scenario([3.30, 3.40], [0.60, 0.62])))
    assert line.startswith("Not supported: on BLiMP the distilled student (students) does not beat the tuned teachers or the baseline")
    assert "-10.00 points vs the best teacher teachers/llama" in line
    assert "on dev loss it does not beat" in line and "+0.250 vs the best teacher" in line


def test_verdict_mixed_and_inconclusive():
    mixed = verdict(data_of(scenario([3.30, 3.40], [0.75, 0.76])))
    assert mixed.startswith("Mixed: on BLiMP the distilled student (students) beats both tuned teachers and the baseline")
    # Better means whose intervals straddle zero: not called a win.
    close = verdict(data_of(scenario([2.50, 3.65], [0.60, 0.85])))
    assert close.startswith("Suggestive but not conclusive") and "includes zero" in close


def test_budget_warning_only_when_trials_differ():
    equal = data_of(scenario([2.9, 2.95], [0.75, 0.76], trials=4))
    runs = scenario([2.9, 2.95], [0.75, 0.76], trials=4)
    runs["students"] += tuning("student", 4)
    unequal = data_of(runs)
    assert not [w for w in equal.warnings if "budgets" in w]
    (warning,) = [w for w in unequal.warnings if "budgets" in w]
    assert "students 8" in warning and "teachers 4" in warning and "baselines 4" in warning
    assert any("architectures shared their sweep's trials (teachers/gpt2 2, teachers/llama 2)" in w for w in equal.warnings)


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


def test_blimp_intervals_use_pairs_when_every_run_has_decisions():
    runs = scenario([2.9, 2.95], [0.75, 0.76])
    rows = rows_by_entry(table_from_runs(runs, load_blimp=consistent_decisions))
    assert rows["students"]["blimp_basis"] == "seeds+pairs"
    assert rows["students"]["dev_loss_basis"] == "seeds"
    seeds_only = rows_by_entry(table_from_runs(runs, load_blimp=no_blimp))["students"]
    assert seeds_only["blimp_diff"] == rows["students"]["blimp_diff"]  # the point estimate comes from the seeds
    # Pair resampling adds the evaluation set's variation: a wider interval than seeds alone.
    assert rows["students"]["blimp_high"] - rows["students"]["blimp_low"] > seeds_only["blimp_high"] - seeds_only["blimp_low"]


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
    assert any(w.startswith("baselines: 1 of 2 runs have no usable per-pair decisions") for w in warns)
    assert any(f"decisions in run {wrong}'s blimp.json do not give its blimp/overall (0.7500)" in w for w in warns)
    rows = rows_by_entry(table_from_runs(runs, load_blimp=load))
    assert rows["baselines"]["blimp_basis"] == "seeds" and rows["students"]["blimp_basis"] == "seeds"
    assert rows["teachers/gpt2"]["blimp_basis"] == "seeds+pairs"


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
    assert line.startswith("Suggestive but not conclusive")
    assert "(a side with one run: its seed variation is missing), excludes zero" in line


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
    assert "PED-ANOVA on 40 trials" in note


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
               "no-antlm": [{"metrics": {"eval/loss": 3.3, "blimp/overall": 0.65}}, {"metrics": {"eval/loss": 3.4, "blimp/overall": 0.66}}]}
    rows = {r["variant"]: r for r in ablation_table(results)}
    assert rows["base"]["dev_loss_diff"] is None and rows["base"]["blimp_mean"] == pytest.approx(71.0)
    assert rows["no-antlm"]["dev_loss_diff"] == pytest.approx(0.3)
    assert rows["no-antlm"]["blimp_diff"] == pytest.approx(-5.5)
    assert rows["no-antlm"]["blimp_excludes_zero"] is True
    with pytest.raises(UserError):
        ablation_table({"no-antlm": results["no-antlm"]})


# --------------------------------------------------------------------------- end to end via MLflow


def _log_sweep(uri: str, root: Path, name: str, role: str, trials: list[dict], finalist_of: str | None = None) -> None:
    from babysweep.tracking import SweepTracker

    tracker = SweepTracker(uri, name, root / "sweeps" / name, metric="eval/loss", mode="min", role=role,
                           spec_text=f"name: {name}\n", search_settings={"algorithm": "optuna"})
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
        params = {"train": {"lr": t["lr"]}, **({"distill": {"temperature": t["T"]}} if "T" in t else {})}
        tracker.trial_started(tid, params=params, config=config, tags={"finalist_of": finalist_of} if finalist_of else None)
        for epoch in (1, 2):
            tracker.trial_result(tid, {"eval/loss": t["dev"] + (0.4 if epoch == 1 else 0.0), "epoch": epoch}, step=epoch)
        tracker.trial_finished(tid, "FINISHED", model_dir=str(out / "final"),
                               final_metrics={"blimp/overall": overall, "blimp/field/syntax": paradigms["a"],
                                              "blimp/field/semantics": paradigms["b"], "model/params": 2.0e6})
    tracker.sweep_finished(best_trial_id=None)


def test_report_from_mlflow_matches_a_table_rebuilt_from_runs(tmp_path):
    from babysweep.tracking import default_tracking_uri, sweep_parent, sweep_runs

    uri = default_tracking_uri(tmp_path)
    def trials(n, arch="llama", dev=3.0, acc=0.7, **extra):
        return [{"arch": arch, "seed": 0, "lr": 1e-3 * (i + 1), "dev": dev + 0.1 * i,
                 "paradigms": {"a": acc, "b": acc - 0.1}, **{k: v[i] if isinstance(v, list) else v for k, v in extra.items()}}
                for i in range(n)]

    _log_sweep(uri, tmp_path, "teachers", "teacher", trials(2, "llama") + trials(2, "gpt2", dev=3.2))
    final = [dict(t, seed=s) for s, t in enumerate(trials(2, "llama", dev=3.0, acc=0.7))] + \
            [dict(t, seed=s) for s, t in enumerate(trials(2, "gpt2", dev=3.2, acc=0.6))]
    _log_sweep(uri, tmp_path, "teachers.final", "teacher", final, finalist_of="teachers")
    _log_sweep(uri, tmp_path, "students", "student", trials(3, dev=2.9, acc=0.8, T=[1.0, 2.0, 3.0]))
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
        runs[sweep] = sweep_runs(uri, sweep)
    objectives = {s: (sweep_parent(uri, s)["tags"]["metric"], sweep_parent(uri, s)["tags"]["mode"])
                  for s in ("teachers", "students", "baselines")}
    assert table_from_runs(runs, objectives) == report["rows"]

    rows = rows_by_entry(report["rows"])
    assert rows["teachers/llama"]["source"] == "final" and rows["teachers/llama"]["n"] == 2
    assert rows["students"]["source"] == "best-trial" and rows["students"]["blimp_basis"] == "one side's seeds+pairs"
    # Student and baseline have one run each (no .final sweeps): dev loss has no interval, so no firm claim.
    assert report["verdict"] in md.read_text() and report["verdict"].startswith("Suggestive but not conclusive")
    assert "vs the baseline baselines, no interval (one run each)" in report["verdict"]
    assert "students: no finished students.final runs" in " ".join(report["warnings"])
    ((name, params, metrics, folder),) = logged
    assert (name, folder) == ("r1", out) and params["report.sweeps"] == "teachers,students,baselines"
    assert metrics["students.blimp_mean"] == rows["students"]["blimp_mean"]
