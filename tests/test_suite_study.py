"""A tiny study with eval.suite end to end (Ray, MLflow): tuning trials skip the suite, finalists score it and
log suite/<column> and suite/macro, the report shows the suite's columns and BabyLM's budget, and a verdict on
suite/macro (report.metrics) is reached. The suite's items are tests/fixtures/suite (written for the tests)."""

import json
from pathlib import Path

import pytest

from babysweep.core import metrics as M
from babysweep.report.verdict_offline import verdict_from_report
from babysweep.studies.study import load_study, run_study

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures" / "suite"
SPEC = """
name: {name}
role: {role}
data: {{seq_len: 32, builtin_words: 20000, tokenizer: {{vocab_size: 500}}, cache_dir: {cache}}}
model: {{arch: llama, layers: 1, hidden: 32, heads: 2}}
train: {{epochs: 1, batch_size: 32, lr: 0.005, warmup_steps: 5}}
eval: {{dev_batches: 2, blimp: builtin, suite: $SUITE_DATA}}
search: {{algorithm: grid, samples: 1, scheduler: none, concurrent: 2, max_failures: 0}}
resources: {{cpu: 1}}
"""


def test_finalists_score_the_suite_and_the_verdict_compares_it(tmp_path, cache_dir, ray_session, monkeypatch):
    from babysweep.core.paths import default_tracking_uri
    from babysweep.tracking.runs import sweep_runs

    monkeypatch.setenv("BABYSWEEP_PROJECT", str(tmp_path))
    monkeypatch.setenv("SUITE_DATA", str(FIXTURES))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tutors.yaml").write_text(SPEC.format(name="tutors", role="teacher", cache=cache_dir))
    (tmp_path / "pupils.yaml").write_text(SPEC.format(name="pupils", role="student", cache=cache_dir)
                                          + "distill: {teachers: {from_sweep: tutors, top: 1}, alpha: 0.5, temperature: 2.0}\n")
    (tmp_path / "study.yaml").write_text("name: suite-study\nsweeps: [tutors.yaml, pupils.yaml]\nfinalists: {seeds: 2}\n")
    # report.metrics as `babysweep study study.yaml --set report.metrics=[suite/macro,eval/loss]` gives it
    study = load_study(tmp_path / "study.yaml", overrides={"report.metrics": [M.SUITE_MACRO, M.EVAL_LOSS]})
    result = run_study(study, live=False, say=lambda line: None)
    assert not result.interrupted and result.report.is_file()

    uri = default_tracking_uri(tmp_path)
    columns = {M.suite_metric(c) for c in M.SUITE_COLUMNS} | {M.SUITE_MACRO}
    for sweep in ("tutors", "pupils"):
        assert not any(k.startswith(M.SUITE_PREFIX) for r in sweep_runs(uri, sweep) for k in r["metrics"])  # tuning: no suite
        finals = sweep_runs(uri, sweep + ".final")
        assert len(finals) == 2 and all(columns <= set(r["metrics"]) for r in finals)
    report = json.loads((result.report.parent / "report.json").read_text())
    assert report["verdict_metrics"] == [M.SUITE_MACRO, M.EVAL_LOSS]
    assert report["suite_columns"][-1] == M.SUITE_MACRO and len(report["suite_columns"]) == len(columns)
    family = [c for c in report["decisions"]["comparisons"] if c["in_family"]]
    assert {c["metric"] for c in family} == {M.SUITE_MACRO, "dev_loss"}
    assert all(c["outcome"] in ("better", "worse", "cannot tell") and c["method"] == "paired" for c in family)
    assert "suite macro vs the reference teacher tutors/llama" in report["verdict"]
    # The offline rebuild (report.json alone) compares the same metrics and reaches the same decisions.
    text, decided = verdict_from_report(result.report.parent / "report.json")
    assert report["verdict"].startswith(text) and decided == report["decisions"]
    rows = {r["entry"]: r for r in report["rows"]}
    assert rows["pupils"]["suite/macro_diff"] is not None and rows["pupils"]["suite/macro_low"] is not None
    assert rows["pupils"]["teacher_words"] == pytest.approx(rows["tutors/llama"]["words_seen"])  # one teacher, same corpus
    md = result.report.read_text()
    assert "## BabyLM zero-shot suite" in md and "| entry | n | blimp | supplement |" in md and "## BabyLM's budget" in md
