"""The word-statistics floor as a study stage (studies/floor.py) and a report row (report/floor.py)."""

from __future__ import annotations

import json

import pytest

from conftest import tiny_config
from test_report import _log_sweep


def test_the_floor_is_fitted_once_and_stored(tmp_path, cache_dir, monkeypatch):
    from babysweep.eval import ngram_floor as module
    from babysweep.studies import floor

    config = tiny_config(cache_dir)
    monkeypatch.setattr(floor, "floor_config", lambda uri, sweep: ("run1", config))
    calls = []
    real = module.ngram_floor
    monkeypatch.setattr(module, "ngram_floor", lambda cfg: calls.append(cfg) or real(cfg))
    path = floor.write_floor("sqlite://unused", "students", tmp_path / "report", say=lambda s: None)
    stored = json.loads(path.read_text())
    assert stored["config_of"] == "students" and stored["run_id"] == "run1"
    assert 0 < stored["metrics"]["eval/loss"] < 10 and 0 <= stored["metrics"]["blimp/overall"] <= 1
    said = []
    floor.write_floor("sqlite://unused", "students", tmp_path / "report", say=said.append)
    assert len(calls) == 1 and "skipped" in said[0]  # the same data and rule: nothing recomputed


def test_the_report_shows_the_floor_outside_the_verdict(tmp_path, monkeypatch):
    from babysweep.report.build import write_report
    from babysweep.report.floor import FLOOR_FILE
    from babysweep.studies import floor

    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    (tmp_path / "mlruns").mkdir()
    trials = [{"arch": "llama", "seed": 0, "lr": 1e-3 * (i + 1), "dev": 3.0 + 0.1 * i, "paradigms": {"a": 0.7, "b": 0.6},
               "config": {"data": {"seq_len": 16 + i}}} for i in range(2)]
    _log_sweep(uri, tmp_path, "teachers", "teacher", trials)
    _log_sweep(uri, tmp_path, "students", "student", trials)
    run_id, config = floor.floor_config(uri, "students")  # no finalists: the best tuning trial's config.json
    assert config["data"]["seq_len"] == 16
    out = tmp_path / "report"
    monkeypatch.setattr("babysweep.eval.ngram_floor.ngram_floor", lambda cfg: {"eval/loss": 4.25, "blimp/overall": 0.6125})
    floor.write_floor(uri, "students", out, say=lambda s: None)
    assert (out / FLOOR_FILE).is_file()
    md = write_report(uri, ["teachers", "students"], out, "r").read_text()
    report = json.loads((out / "report.json").read_text())
    assert report["ngram_floor"]["dev_loss"] == 4.25 and report["ngram_floor"]["blimp"] == pytest.approx(61.25)
    assert "| n-gram floor | floor | trigram | – | – | data of students | 1 | 4.250 | – | 61.25 | – |" in md
    assert "no more than word statistics" in md
    assert all(c["vs"] != "n-gram floor" for c in report["decisions"]["comparisons"])
    assert all(r["entry"] != "n-gram floor" for r in report["rows"])
