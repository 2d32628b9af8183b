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

from fuzz_cases import SURFACES, Fixtures
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
