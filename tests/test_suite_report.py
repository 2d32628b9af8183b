"""BabyLM's suite in reports: a column per task and the macro average, verdicts on suite metrics (report.metrics)
with the same tests, intervals and Holm correction as BLiMP and dev loss, BabyLM's budget table, and the
checks on report.metrics and eval.suite. Run dicts are built by hand (as test_report.py does); the study end
to end, with Ray, is in test_suite_study.py."""

from __future__ import annotations

import dataclasses

import pytest

from test_report import data_of, scenario
from babysweep.core import metrics as M
from babysweep.core.errors import UserError
from babysweep.report.build import render_markdown
from babysweep.report.verdict import build_table, decisions, verdict

SUITE = {"teacher": [40.0, 41.0], "baseline": [40.5, 41.5]}  # per seed pair; students: given per test


def with_suite(runs: dict, student: list[float]) -> dict:
    """scenario's runs with suite/macro and suite/ewok on every finalist (values per seed, repeated as scenario does),
    words seen and, for the students, their teachers' words."""
    for sweep, rows in runs.items():
        if not sweep.endswith(".final"):
            continue
        for i, r in enumerate(rows):
            role = r["tags"]["role"]
            macro = (student if role == "student" else SUITE[role])[i % 2]
            r["metrics"].update({M.SUITE_MACRO: macro, M.suite_metric("ewok"): macro + 5, M.TRAIN_WORDS: 100_000.0,
                                 M.WORDS_SEEN: 400_000.0, **({M.TEACHER_WORDS: 800_000.0} if role == "student" else {})})
    return runs


def test_a_verdict_on_the_suite_macro_alone():
    data = dataclasses.replace(data_of(with_suite(scenario([3.30, 3.40], [0.60, 0.62]), [45.0, 46.0])),
                               metrics=(M.SUITE_MACRO,))
    line = verdict(data)  # worse on BLiMP and dev loss, but the verdict compares only the suite's macro average
    assert line.startswith("Supported: the distilled student (students) is better than the reference teacher "
                           "teachers/llama (on suite macro) and the baseline baselines (on suite macro).")
    assert "suite macro vs the reference teacher teachers/llama (chosen on eval/loss): better, +5.00 points" in line
    assert "paired t over 4 shared seeds" in line and "family of 2 comparisons" in line
    d = decisions(data)
    assert d["metrics"] == [M.SUITE_MACRO] and d["family"].endswith("on suite macro")
    assert {c["metric"] for c in d["comparisons"]} == {M.SUITE_MACRO}


def test_suite_metrics_join_blimp_and_dev_loss_under_one_holm_correction():
    runs = with_suite(scenario([2.90, 2.95], [0.75, 0.76]), [41.5, 40.0])  # paired differences of both signs
    data = dataclasses.replace(data_of(runs), metrics=(*M.DEFAULT_VERDICT_METRICS, M.SUITE_MACRO))
    line = verdict(data)
    assert "family of 6 comparisons" in line and "on BLiMP, dev loss and suite macro" in line
    assert line.startswith("Inconclusive: the seeds cannot tell the distilled student (students) from the reference "
                           "teacher teachers/llama (on suite macro) and the baseline baselines (on suite macro)")
    holm = [c["p_holm"] for c in decisions(data)["comparisons"] if c["in_family"]]
    assert len(holm) == 6 and all(p is not None for p in holm)


def test_the_report_has_a_column_per_task_and_the_macro():
    data = data_of(with_suite(scenario([2.90, 2.95], [0.75, 0.76]), [45.0, 46.5]))
    rows = {r["entry"]: r for r in build_table(data)}
    assert rows["students"]["suite/macro_mean"] == pytest.approx(45.75)
    assert rows["students"]["suite/macro_diff"] == pytest.approx(5.25)  # vs the reference teacher, paired over seeds
    assert rows["students"]["suite/macro_low"] < 5.25 < rows["students"]["suite/macro_high"]
    assert rows["students"]["suite/ewok_mean"] == pytest.approx(50.75)
    assert rows["teachers/llama"]["suite/macro_basis"] == "ref"
    report = {"name": "r", "sweeps": data.sweeps, "verdict": verdict(data), "warnings": [], "rows": list(rows.values()),
              "fields": {}, "importances": {}, "figures": [], "decisions": decisions(data),
              "suite_columns": ["suite/ewok", "suite/macro"]}
    md = render_markdown(report)
    assert "## BabyLM zero-shot suite" in md
    assert "| entry | n | ewok | macro | Δ macro vs reference teacher [95% CI] |" in md
    assert "| students | 4 | 50.75 ± 0.87 | 45.75 ± 0.87 | +5.25 [" in md
    # BabyLM's budget: words seen, the teachers' words counted for the student, against 10 epochs
    assert "## BabyLM's budget" in md
    assert "| students | 400k | 800k | 1.2M | 4 | 1M | 1.20 (over) |" in md
    assert "| teachers/llama | 400k | – | 400k | 4 | 1M | 0.40 |" in md


def test_unknown_metrics_and_missing_suite_folders_are_refused(tmp_path, monkeypatch, capsys):
    import sys

    from babysweep.cli import main
    from babysweep.studies.study import load_study

    (tmp_path / "a.yaml").write_text("name: a\n")
    (tmp_path / "s.yaml").write_text("name: s\nsweeps: [a.yaml]\nreport: {metrics: [suite/macro, suite/glue]}\n")
    with pytest.raises(UserError, match=r"s.yaml: report.metrics: unknown metric 'suite/glue'"):
        load_study(tmp_path / "s.yaml")
    (tmp_path / "s.yaml").write_text("name: s\nsweeps: [a.yaml]\nreport: {metrics: [suite/macro, eval/loss]}\n")
    assert load_study(tmp_path / "s.yaml").metrics == (M.SUITE_MACRO, M.EVAL_LOSS)
    assert load_study(tmp_path / "s.yaml", overrides={"report.metrics": "suite/macro"}).metrics == (M.SUITE_MACRO,)  # --set
    with pytest.raises(UserError, match=r"s.yaml: report.metrics: unknown metric 'suite/glue'"):
        load_study(tmp_path / "s.yaml", overrides={"report.metrics": ["suite/glue"]})
    spec = tmp_path / "b.yaml"
    spec.write_text("name: b\neval: {suite: $SUITE_DATA/nope}\n")
    monkeypatch.setenv("SUITE_DATA", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["babysweep", "run", str(spec)])
    with pytest.raises(SystemExit) as done:
        main()
    err = capsys.readouterr().err
    assert done.value.code == 2 and "b.yaml" in err and "eval.suite" in err and "nope does not exist" in err
    assert "Traceback" not in err
    monkeypatch.setattr(sys, "argv", ["babysweep", "report", "x", "--metric", "suite/glue"])
    with pytest.raises(SystemExit) as done:
        main()
    err = capsys.readouterr().err
    assert done.value.code == 2 and "report.metrics: unknown metric 'suite/glue'" in err
