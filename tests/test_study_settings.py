"""`babysweep study --set`: the study's own keys change the study, the rest every sweep; a rerun with other
values is refused before anything runs (the whole study with --set runs in test_storybooks.py)."""

import json

import pytest

from babysweep.core.errors import UserError
from babysweep.studies.study import load_study, run_study

SPEC = "name: {name}\nrole: {role}\nmodel: {{layers: 2}}\ntrain: {{epochs: 2}}\n"


@pytest.fixture
def study_file(tmp_path):
    (tmp_path / "t.yaml").write_text(SPEC.format(name="t", role="teacher"))
    (tmp_path / "b.yaml").write_text(SPEC.format(name="b", role="baseline"))
    (tmp_path / "study.yaml").write_text("name: s\nsweeps: [t.yaml, b.yaml]\nfinalists: {seeds: 5}\n")
    return tmp_path / "study.yaml"


def test_set_splits_study_keys_from_sweep_keys(study_file):
    study = load_study(study_file, overrides={"train.epochs": 1, "finalists.seeds": 2, "report.name": "r"})
    assert (study.seeds, study.report, study.overrides) == (2, "r", {"train.epochs": 1})
    assert study.settings == {"train.epochs": 1, "finalists.seeds": 2, "report.name": "r"}
    with pytest.raises(UserError, match=r"--set sweeps: the study's own keys that --set can change are finalists.seeds, finalists.first_seeds, finalists.batch, finalists.max_seeds, finalists.equal_flops_baseline, report.name"):
        load_study(study_file, overrides={"sweeps": ["t.yaml"]})
    with pytest.raises(UserError, match="finalists.seeds"):
        load_study(study_file, overrides={"finalists.seeds": 0})


def test_a_rerun_with_other_settings_is_refused_before_anything_runs(study_file, tmp_path, monkeypatch):
    import babysweep.sweep.driver as sweep_module

    monkeypatch.setattr(sweep_module, "run_sweep", lambda *a, **k: pytest.fail("a refused study ran a sweep"))
    state = tmp_path / "sweeps" / "s.study.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"done": {"sweep t": "x"}, "settings": {"train.epochs": 1}}))
    for settings, changed in (({"train.epochs": 2}, "train.epochs"), ({}, "train.epochs"),
                              ({"train.epochs": 1, "model.layers": 1}, "model.layers")):
        with pytest.raises(UserError, match=rf"\({changed} differ; it ran with train.epochs=1, recorded in .*s.study.json\)"):
            run_study(load_study(study_file, overrides=settings), storage=tmp_path / "sweeps", say=lambda line: None)
    # A state from before --set was recorded ran without any: the same holds.
    state.write_text(json.dumps({"done": {"sweep t": "x"}}))
    with pytest.raises(UserError, match=r"train.epochs differ; it ran with no --set"):
        run_study(load_study(study_file, overrides={"train.epochs": 1}), storage=tmp_path / "sweeps", say=lambda line: None)


def test_the_cli_takes_set_and_refuses_in_one_line(study_file, tmp_path, monkeypatch, capsys):
    from babysweep.cli import main

    state = tmp_path / "sweeps" / "s.study.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"done": {}, "settings": {"train.epochs": 1}}))
    monkeypatch.setattr("sys.argv", ["babysweep", "study", str(study_file), "--set", "train.epochs=3",
                                     "--storage", str(tmp_path / "sweeps")])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "train.epochs differ" in err and "Traceback" not in err
