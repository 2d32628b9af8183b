"""A tiny study killed (SIGKILL of the driver's whole process group) twice at seeded moments and rerun
until it completes ends as an uninterrupted run of the same study does: same trials and finalists, once
each, one MLflow parent per sweep and run per trial, nothing RUNNING, no metric step twice, same report.
bench/study_kills.py is the same harness with 5 kills and timings."""

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import study_kills  # noqa: E402

pytestmark = pytest.mark.slow


def test_a_study_killed_twice_equals_an_uninterrupted_one(tmp_path, cache_dir):
    reference = study_kills.write_study(tmp_path / "reference", cache_dir)
    killed = study_kills.write_study(tmp_path / "killed", cache_dir)
    outcome = {}
    # The reference runs beside the killed study (one token cache for both): half the wall time on 2 cores.
    thread = threading.Thread(target=lambda: outcome.update(ref=study_kills.run_once(reference, tmp_path / "reference.log")))
    thread.start()
    try:
        result = study_kills.run_with_kills(killed, kills=2, window=(15.0, 60.0), seed=1)
    finally:
        thread.join()
    assert outcome["ref"][0] == 0, (tmp_path / "reference.log").read_text()[-3000:]
    assert len(result.kills) == 2, result
    assert study_kills.check_project(killed.parent) == []
    assert study_kills.differences(study_kills.report_of(reference.parent), study_kills.report_of(killed.parent)) == []
