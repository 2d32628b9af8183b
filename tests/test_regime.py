"""The regime table (report/regime.py): each role's size for its data, epochs, KD weight, the teachers' best
epochs, beside the papers' values; and the training words the trainer logs for it."""

from __future__ import annotations

import pytest

from babysweep.report.build import render_markdown
from babysweep.report.entries import entries_from_runs
from babysweep.report.regime import PAPERS, regime_markdown, regime_table

_ids = iter(range(10**6))


def run(role: str, params: float, *, seed: int = 0, arch: str = "llama", words: float | None = 1000.0,
        history=(3.0, 2.5, 2.6), config: dict | None = None) -> dict:
    rid = f"g{next(_ids)}"
    metrics = {"eval/loss": history[-1], "model/params": params, "train/tokens_seen": 3 * 1500.0,
               **({"data/train_words": words} if words is not None else {})}
    return {"run_id": rid, "trial_id": rid, "status": "FINISHED",
            "params": {"model.arch": arch, "train.seed": str(seed), **(config or {})}, "metrics": metrics,
            "tags": {"role": role, "seed": str(seed)},
            "histories": {"eval/loss": [(e + 1, v) for e, v in enumerate(history)]}}


def study_runs(words: float | None = 1000.0) -> dict:
    kd = {"distill.teachers": "['/m/a/final']", "distill.alpha": "0.5", "distill.temperature": "2.0",
          "distill.kd_reduction": "babyllama", "data.seq_len": "128", "train.epochs": "3"}
    return {"teachers": [run("teacher", 60000.0, words=words, history=(3.0, 2.5, 2.6)),
                         run("teacher", 120000.0, arch="gpt2", words=words, history=(3.0, 2.7, 2.6))],
            "students": [run("student", 10000.0, words=words, config=kd)],
            "baselines": [run("baseline", 10000.0, words=words, config={"distill.teachers": "[]"})]}


def test_regime_rows_give_each_role_its_size_for_its_data():
    entries, _ = entries_from_runs(study_runs(), load_blimp=lambda r: None)
    rows = {r["entry"]: r for r in regime_table(entries)["rows"]}
    llama, gpt2, student, base = rows["teachers/llama"], rows["teachers/gpt2"], rows["students"], rows["baselines"]
    assert llama["params_per_word"] == pytest.approx(60.0) and gpt2["params_per_word"] == pytest.approx(120.0)
    assert llama["epochs"] == 3 and llama["tokens_seen_per_param"] == pytest.approx(4500 / 60000)
    assert llama["words_seen_per_param"] == pytest.approx(3 * 1000 / 60000)
    assert llama["best_epochs"] == [2] and gpt2["best_epochs"] == [3]  # llama overfit after epoch 2
    assert student["size_vs_teachers"] == {"teachers/llama": pytest.approx(1 / 6), "teachers/gpt2": pytest.approx(1 / 12)}
    assert student["kd_per_ce"] == pytest.approx(508.0) and base["kd_per_ce"] is None and llama["kd_per_ce"] is None
    assert student["best_epochs"] is None


def test_papers_rows_hold_their_published_ratios():
    by = {(p["paper"], p["model"]): p for p in PAPERS}
    assert by[("Baby Llama", "LLaMA 360M")]["params_per_word"] == pytest.approx(36.0)
    assert by[("Baby Llama", "GPT-2 705M")]["params_per_word"] == pytest.approx(70.5)
    assert by[("Baby Llama", "LLaMA 58M")]["kd_per_ce"] == pytest.approx(508.0)
    assert by[("BabyLlama-2", "LLaMA 345M")]["kd_per_ce"] == pytest.approx(127.0)
    assert by[("BabyLlama-2", "LLaMA 345M")]["params_per_word"] == pytest.approx(34.5)


def test_runs_without_logged_words_show_a_dash():
    entries, _ = entries_from_runs(study_runs(words=None), load_blimp=lambda r: None)
    regime = regime_table(entries)
    row = regime["rows"][0]
    assert row["words"] is None and row["params_per_word"] is None and row["words_seen_per_param"] is None
    md = "\n".join(regime_markdown(regime))
    assert "| teachers/llama | teacher | 0.06M | – | – | 3 |" in md
    assert "| Baby Llama: LLaMA 58M | student | 58M | 10,000,000 | 5.8 | 6 | – | 1.03 | 1/6.2 (LLaMA), 1/12.2 (GPT-2) | 508x | – |" in md


def test_the_report_shows_the_regime_section():
    entries, _ = entries_from_runs(study_runs(), load_blimp=lambda r: None)
    regime = regime_table(entries)
    report = {"name": "r", "sweeps": ["teachers"], "verdict": "v", "warnings": [], "rows": [], "fields": {},
              "importances": {}, "figures": [], "regime": regime}
    md = render_markdown(report)
    assert "## Regime" in md and "| students | student | 0.01M | 1,000 | 10 | 3 |" in md and "1/6.0 (teachers/llama)" in md
    assert "| 2 of 3 |" in md  # the llama teacher's best epoch


def test_the_trainer_logs_its_training_words(tmp_path):
    from babysweep.core.config import RunConfig
    from babysweep.data import prepare
    from babysweep.data.corpus import read_corpus

    (tmp_path / "train").mkdir()
    (tmp_path / "dev").mkdir()
    (tmp_path / "train" / "a.train").write_text("".join(f"the cat {i} sat on the mat\n" for i in range(30)))
    (tmp_path / "dev" / "a.dev").write_text("the cat ran\n" * 5)
    cfg = RunConfig.of({"data": {"train": str(tmp_path / "train"), "dev": str(tmp_path / "dev"), "seq_len": 8,
                                 "tokenizer": {"vocab_size": 300}, "cache_dir": str(tmp_path / "cache")}})
    data = prepare(cfg.data)
    assert data.train_words == sum(d.words for d in read_corpus(data.train_files)) == 30 * 7
    split = prepare(RunConfig.of({**cfg.model_dump(), "data": {**cfg.data.model_dump(), "tune_split": 0.3}}).data)
    assert 0 < split.train_words < data.train_words  # the tuning slice's words are left out


def test_learning_curves_mark_the_teachers_best_epoch(tmp_path):
    from babysweep.report.plots import learning_curves

    entries, _ = entries_from_runs(study_runs(), load_blimp=lambda r: None)
    path = learning_curves(entries, tmp_path / "curves.png")
    assert path.stat().st_size > 1000
