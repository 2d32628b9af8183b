"""The shipped real-text study (search_spaces/storybooks/) end to end on a tiny corpus in BabyLM's layout,
written here: data paths from $BABYSWEEP_DATA and $BABYSWEEP_BLIMP, sizes shrunk with `study --set`.
Tuning trials score a BLiMP subset, finalists all of it; a rerun with other --set values is refused."""

import json
import random
from pathlib import Path

import pytest

from babysweep.core.errors import UserError
from babysweep.studies.study import load_study, run_study

pytestmark = pytest.mark.slow

STUDY = Path(__file__).resolve().parents[1] / "search_spaces" / "storybooks" / "study.yaml"
SHRINK = {"data.seq_len": 16, "data.tokenizer.vocab_size": 300, "data.tune_split": 0.1, "model.layers": 1,
          "model.hidden": 16, "model.heads": 2, "model.ffn": 32, "train.epochs": 1, "train.max_steps": 2,
          "train.threads": 1, "eval.dev_batches": 1, "eval.blimp_pairs_per_paradigm": 2, "search.samples": 2,
          "finalists.seeds": 1}
WORDS = "the a cat dog bird girl boy saw liked found ran sat slept near under big small red old".split()


def _lines(rng: random.Random, n: int) -> str:
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10))).capitalize() + "." for _ in range(n)) + "\n"


def _pair(good: str, bad: str, uid: str, field: str, number: int) -> str:
    return json.dumps({"sentence_good": good, "sentence_bad": bad, "field": field, "linguistics_term": uid.split("_")[0],
                       "UID": uid, "pairID": str(number)})


@pytest.fixture(scope="module")
def babylm_layout(tmp_path_factory) -> Path:
    """BabyLM's layout in miniature: train_10M/*.train (potter.train the one the specs read), dev/*.dev, blimp/*.jsonl."""
    root, rng = tmp_path_factory.mktemp("babylm"), random.Random(0)
    for folder, names in (("train_10M", ("carroll.train", "potter.train", "baum.train")), ("dev", ("carroll.dev", "potter.dev"))):
        (root / folder).mkdir()
        for name in names:
            (root / folder / name).write_text(_lines(rng, 300))
    (root / "blimp").mkdir()
    (root / "blimp" / "agreement.jsonl").write_text("\n".join(
        _pair(f"The {n} sat.", f"The {n} sit.", "agreement_sat", "morphology", i) for i, n in enumerate(WORDS[2:8])) + "\n")
    (root / "blimp" / "order.jsonl").write_text("\n".join(
        _pair(f"A {n} ran.", f"Ran {n} a.", "order_ran", "syntax", i) for i, n in enumerate(WORDS[2:8])) + "\n")
    return root


@pytest.fixture(scope="module")
def finished(tmp_path_factory, babylm_layout, cache_dir):
    import ray

    from babysweep.core import paths
    project = tmp_path_factory.mktemp("project")
    mp = pytest.MonkeyPatch()
    mp.setenv("BABYSWEEP_PROJECT", str(project))
    mp.setenv("BABYSWEEP_DATA", str(babylm_layout))
    mp.setenv("BABYSWEEP_BLIMP", str(babylm_layout / "blimp"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.chdir(project)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2, log_to_driver=False)
    try:
        settings = {**SHRINK, "data.cache_dir": str(cache_dir)}
        result = run_study(load_study(STUDY, overrides=settings), live=False, say=lambda line: None)
        yield {"project": project, "result": result, "settings": settings, "uri": paths.tracking_uri(None),
               "data": babylm_layout}
    finally:
        ray.shutdown()
        mp.undo()


def test_the_storybooks_study_runs_on_babylm_layout(finished):
    from babysweep.tracking.runs import sweep_runs

    result, project, uri = finished["result"], finished["project"], finished["uri"]
    assert not result.interrupted and result.report.is_file()
    for sweep in ("story-teachers", "story-students", "story-students-babyllama", "story-baselines"):
        tuning, final = sweep_runs(uri, sweep), sweep_runs(uri, sweep + ".final")
        assert tuning and final
        # The data came from $BABYSWEEP_DATA: only potter.train of train_10M, the tiny sizes from --set.
        assert {r["params"]["data.train"] for r in tuning + final} == {f"{finished['data']}/train*/potter.train"}
        assert all(r["params"]["model.hidden"] == "16" and r["params"]["train.max_steps"] == "2" for r in tuning + final)
        # Tuning trials scored the BLiMP subset only; finalists every pair (6 per paradigm here).
        assert all("blimp/overall" not in r["metrics"] and "blimp_subset/overall" in r["metrics"] for r in tuning)
        assert all("blimp/overall" in r["metrics"] for r in final)
    report = json.loads((result.report.parent / "report.json").read_text())
    assert any("subset of 2 pairs per paradigm" in line for line in report["blimp_use"])
    assert any("full BLiMP (12 pairs) of its finalists" in line for line in report["blimp_use"])
    assert "BLiMP pairs scored:" in result.report.read_text()
    state = json.loads((project / "sweeps" / "storybooks.study.json").read_text())
    assert state["settings"] == finished["settings"]


def test_a_rerun_with_other_settings_is_refused(finished, monkeypatch):
    monkeypatch.setenv("BABYSWEEP_PROJECT", str(finished["project"]))
    changed = {**finished["settings"], "train.max_steps": 3, "finalists.seeds": 2}
    with pytest.raises(UserError, match=r"finalists.seeds, train.max_steps differ") as caught:
        run_study(load_study(STUDY, overrides=changed), live=False, say=lambda line: None)
    assert "storybooks.study.json" in str(caught.value)
    fewer = {k: v for k, v in finished["settings"].items() if k != "model.ffn"}
    with pytest.raises(UserError, match=r"model.ffn differ"):
        run_study(load_study(STUDY, overrides=fewer), live=False, say=lambda line: None)
