"""A tiny study killed (SIGKILL of the driver's whole process group) at a seeded moment and rerun
until it completes ends as an uninterrupted run of the same study does: same trials and finalists, once
each, one MLflow parent per sweep and run per trial, nothing RUNNING, no metric step twice, same report.
bench/study_kills.py is the same harness with 5 kills, a bigger study (baselines, two teacher trials) and timings."""

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import study_kills  # noqa: E402

pytestmark = pytest.mark.slow


# Teachers and students (who distil from them), one trial each: with their finalists and the report, every
# kind of stage, in as little time as a study takes.
SWEEPS = {"teachers": ("teacher", 1), "students": ("student", 1)}


def test_a_killed_study_equals_an_uninterrupted_one(tmp_path, cache_dir):
    reference = study_kills.write_study(tmp_path / "reference", cache_dir, SWEEPS)
    killed = study_kills.write_study(tmp_path / "killed", cache_dir, SWEEPS)
    outcome = {}
    # The reference runs beside the killed study (one token cache for both): half the wall time on 2 cores.
    thread = threading.Thread(target=lambda: outcome.update(ref=study_kills.run_once(reference, tmp_path / "reference.log")))
    thread.start()
    try:
        # Past start-up (imports, Ray) on a loaded machine, and before the end on a quiet one.
        result = study_kills.run_with_kills(killed, kills=1, window=(12.0, 30.0), seed=1)
    finally:
        thread.join()
    assert outcome["ref"][0] == 0, (tmp_path / "reference.log").read_text()[-3000:]
    assert len(result.kills) == 1, result
    assert study_kills.check_project(killed.parent, SWEEPS) == []
    assert study_kills.differences(study_kills.report_of(reference.parent), study_kills.report_of(killed.parent)) == []
