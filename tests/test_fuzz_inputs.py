"""Generated bad inputs on every surface a user controls: exit 2, a few lines naming the file, no
traceback, no hang, nothing changed on disk (tests/fuzz_cli.py checks each case).

A bounded, derandomised number of cases per surface (BABYSWEEP_FUZZ_EXAMPLES, default 50) so that a
failure reproduces; `BABYSWEEP_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz_inputs.py` or
bench/fuzz_inputs.py (counts instead of assertions) for a long run.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz_cases import SURFACES, Fixtures, fixed_spec, state_files
from fuzz_cli import Project, check

settings.register_profile("babysweep-ci", derandomize=True, database=None, deadline=None, print_blob=True,
                          max_examples=int(os.environ.get("BABYSWEEP_FUZZ_EXAMPLES", "50")),
                          suppress_health_check=list(HealthCheck))
FUZZ = settings.get_profile("babysweep-ci")


@pytest.fixture(scope="module", autouse=True)
def _fixtures(tmp_path_factory):
    Fixtures.setup(tmp_path_factory.mktemp("fuzz-fixtures"))


def _run(case, base) -> None:
    with Project(base) as project:
        outcome = project.invoke(*case.build(project))
        problems = check(outcome, [*case.names, str(project.root)], case.must_fail)  # or a path in the project
        assert problems == [], f"{case!r}\n{problems}\nstdout: {outcome.out[-500:]}\nstderr: {outcome.err[-2000:]}\n{outcome.traceback or ''}"


@pytest.mark.parametrize("surface", sorted(SURFACES))
def test_generated_bad_inputs(surface, tmp_path):
    @FUZZ
    @given(case=SURFACES[surface]())
    def one(case):
        _run(case, tmp_path)

    one()


@pytest.mark.parametrize("command", ["validate", "run", "study"])
@pytest.mark.parametrize("content", [b"name: x\n# caf\xe9\n", "name: x\n# café\n".encode("utf-16"),
                                     b"name: x\nsweeps: [a.yaml]\n# \xff\n"], ids=["latin-1", "utf-16", "study"])
def test_a_spec_that_is_not_utf8_is_refused_in_one_sentence(command, content, tmp_path):
    # The regression of issue 26: study.is_study_file read the file before the spec loader could refuse it.
    with Project(tmp_path) as project:
        project.write("spec.yaml", content)
        outcome = project.invoke(command, "spec.yaml")
        assert check(outcome, ["spec.yaml"], must_fail=True) == [], outcome.traceback or outcome.err
        assert "UTF-8" in outcome.err or "utf-8" in outcome.err


@pytest.mark.parametrize("args", [["report", "a", "--name", "../escape"], ["study", "study.yaml", "--set", "report.name=../x"],
                                  ["validate", "study.yaml", "--set", "report.name=/tmp/x"]])
def test_a_report_name_that_leaves_the_project_is_refused(args, tmp_path):
    with Project(tmp_path) as project:
        project.write("study.yaml", "name: s\nsweeps: [a.yaml]\n")
        project.write("a.yaml", "name: a\n")
        outcome = project.invoke(*args)
        assert check(outcome, ["name"], must_fail=True) == [], outcome.traceback or outcome.err
        assert not (project.root.parent / "escape").exists()


def _damaged_store(root, how: str) -> None:
    import contextlib
    import shutil
    import sqlite3

    db = root / "mlruns" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(Fixtures.store, db)
    if how == "text":  # a run's name no longer UTF-8, in an intact page: sqlite's quick_check still says ok
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.execute("UPDATE runs SET name = CAST(x'ff66616b65ff' AS TEXT)")
            conn.commit()
            assert conn.execute("PRAGMA quick_check(1)").fetchone()[0] == "ok"
    else:  # the 2,000-case run's page of 0xff bytes: quick_check's own report quotes them (not UTF-8 either)
        with open(db, "r+b") as handle:
            handle.seek(100 + 51 * (db.stat().st_size - 700) // 100)
            handle.write(b"\xff" * 512)


@pytest.mark.parametrize("how", ["text", "page"])
@pytest.mark.parametrize("command", ["finalists", "report", "ablate"])
def test_a_store_with_undecodable_text_is_refused_in_one_sentence(command, how, tmp_path):
    # The regression of issue 26 at 2,000 state cases: a UnicodeDecodeError from inside MLflow (or from sqlite's
    # quick_check report) reached the user as a traceback.
    with Project(tmp_path) as project:
        for name, content in state_files().items():
            project.write(name, content)
        _damaged_store(project.root, how)
        outcome = project.invoke(command, "fake")
        assert check(outcome, ["mlflow.db"], must_fail=True) == [], outcome.traceback or outcome.err
        assert "damaged" in outcome.err


def _sweep_without_ray_state(project, files: dict) -> None:
    for name, content in files.items():
        project.write(name, content)
    (project.root / "sweeps" / "fake" / "experiment_state-2026.json").unlink()
    (project.root / "sweeps" / "fake" / "driver.json").unlink()


def test_a_lost_ray_state_with_finished_trials_is_refused_not_restarted(tmp_path):
    # The regression of issue 26 at 2,000 state cases: tuner.pkl without experiment_state-*.json took the
    # "killed before any trial was saved" path, which deleted models/ and emptied mlflow_runs.json.
    with Project(tmp_path) as project:
        _sweep_without_ray_state(project, state_files())
        outcome = project.invoke("run", "fake.yaml")
        assert check(outcome, ["experiment_state"], must_fail=True) == [], outcome.traceback or outcome.err
        assert "done" in outcome.err and "--fresh" in outcome.err
        assert (project.root / "sweeps" / "fake" / "models" / "done" / "metrics.jsonl").is_file()


def test_a_driver_killed_before_any_trial_saved_restarts_rays_part(tmp_path):
    # The legitimate path (bench/study_kills.py meets it): trials had only started; their folders and runs go.
    import json

    files = {k: v for k, v in state_files().items() if "/models/" not in k}
    files["sweeps/fake/models/t1/run.json"] = b"{}"
    files["sweeps/fake/models/t1/metrics.jsonl"] = b""
    files["sweeps/fake/mlflow_runs.json"] = json.dumps(
        {"trials": {"t1": {"run_id": "0" * 32, "status": "RUNNING", "last_step": None}}}).encode()
    with Project(tmp_path) as project:
        _sweep_without_ray_state(project, files)
        outcome = project.invoke("run", "fake.yaml")
        assert outcome.accepted, outcome.traceback or outcome.err
        folder = project.root / "sweeps" / "fake"
        assert not (folder / "models").exists() and not (folder / "tuner.pkl").exists()
        assert json.loads((folder / "mlflow_runs.json").read_text())["trials"] == {}


@pytest.mark.parametrize("command", ["eval", "train"])
def test_a_config_with_far_more_layers_than_the_weights_is_refused_before_it_is_built(command, tmp_path):
    # Found by the 2,000-case model run of issue 26: config.json's num_hidden_layers 10**5 made transformers
    # build 100,000 layers (gigabytes, minutes) before it found their weights missing.
    import json
    import shutil

    with Project(tmp_path) as project:
        shutil.copytree(Fixtures.model, project.root / "model")
        config = json.loads((project.root / "model" / "config.json").read_text())
        (project.root / "model" / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 100000}))
        project.write("spec.yaml", fixed_spec(cache=Fixtures.cache))
        args = (["eval", "model", "--blimp", str(Fixtures.pairs)] if command == "eval" else
                ["train", "spec.yaml", "--out", "out", "--teacher", "model", "--set", "distill.alpha=0.5",
                 "--set", "distill.cache=none", "--set", "eval.blimp=none"])
        outcome = project.invoke(*args)
        assert check(outcome, ["model"], must_fail=True) == [], outcome.traceback or outcome.err
        assert "names 100000 layers" in outcome.err and outcome.seconds < 10


@pytest.mark.parametrize("args", [["status", "--storage", "~nosuchuser0x/sweeps"], ["cache", "show", "--cache-dir", "~nosuchuser0x"]])
def test_a_tilde_that_names_no_user_is_refused_in_one_sentence(args, tmp_path):
    # Found by the long option run of issue 26: Path.expanduser raised RuntimeError("Could not determine home directory").
    with Project(tmp_path) as project:
        outcome = project.invoke(*args)
        assert check(outcome, [args[-1]], must_fail=True) == [], outcome.traceback or outcome.err


def test_a_study_whose_sweep_holds_a_nul_is_refused(tmp_path):
    # Found by the long study run of issue 26: resolve() raised "ValueError: embedded null byte".
    with Project(tmp_path) as project:
        project.write("study.yaml", 'name: s\nsweeps:\n- "nul\\0"\n')
        outcome = project.invoke("validate", "study.yaml")
        assert check(outcome, ["study.yaml"], must_fail=True) == [], outcome.traceback or outcome.err


def test_a_study_whose_sweep_name_is_too_long_for_the_file_system_is_refused(tmp_path):
    # Found by the long study run after issue 25's changes: Path.is_file raised "OSError: File name too long".
    with Project(tmp_path) as project:
        project.write("study.yaml", "name: s\nsweeps: [" + "x" * 300 + "]\n")
        for command in ("validate", "study"):
            outcome = project.invoke(command, "study.yaml")
            assert check(outcome, ["study.yaml"], must_fail=True) == [], outcome.traceback or outcome.err
