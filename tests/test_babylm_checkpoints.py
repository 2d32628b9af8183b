"""BabyLM's intermediate checkpoints (train.babylm_checkpoints), the suite at a run's end (eval.suite) and
`babysweep eval RUN --suite babylm` over the checkpoints, on a tiny built-in corpus with a tiny word unit."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import tiny_config
from babysweep.core import metrics as M
from babysweep.train.trainer import babylm_checkpoint_names, train

FIXTURES = Path(__file__).parent / "fixtures" / "suite"
UNIT = 2_000  # words per "M": the built-in corpus of 20k words reaches chck_9M in its first epoch


def test_checkpoint_names_follow_babylm():
    names = [n for _, n in babylm_checkpoint_names()]
    assert names[:10] == [f"chck_{i}M" for i in range(1, 11)]
    assert names[9:19] == [f"chck_{i}M" for i in range(10, 101, 10)]
    assert names[18:] == [f"chck_{i}M" for i in range(100, 1001, 100)] and len(names) == 28
    assert babylm_checkpoint_names(10)[:2] == [(10, "chck_1M"), (20, "chck_2M")]


@pytest.fixture(scope="module")
def run(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("babylm") / "run"
    config = tiny_config(cache_dir, model={"layers": 1}, train={"epochs": 2, "babylm_checkpoints": True,
                                                                "babylm_checkpoint_unit": UNIT},
                         eval={"blimp": "none", "suite": str(FIXTURES), "suite_on": "all"})
    rows = []
    final = train(config, out, reporter=lambda m, f: rows.append(m))
    return out, final, rows


def test_checkpoints_are_saved_at_words_seen(run):
    out, final, rows = run
    words = final[M.TRAIN_WORDS]
    assert [r[M.WORDS_SEEN] for r in rows] == [words, 2 * words]  # an epoch counts the corpus's words
    expected = [name for count, name in babylm_checkpoint_names(UNIT) if count <= 2 * words]
    saved = sorted((p.name for p in out.glob("chck_*")), key=lambda n: int(n[5:-1]))
    assert saved == expected and len(saved) >= 10  # chck_1M ... chck_9M, chck_10M, chck_20M on 20k words
    assert all((out / n / "config.json").is_file() and (out / n / "tokenizer.json").is_file() for n in saved)


def test_the_suite_is_scored_at_the_end(run):
    out, final, rows = run
    results = json.loads((out / "suite.json").read_text())
    assert final[M.SUITE_MACRO] == pytest.approx(results["macro"])
    assert {k for k in final if k.startswith(M.SUITE_PREFIX)} == {M.suite_metric(c) for c in M.SUITE_COLUMNS} | {M.SUITE_MACRO}
    assert not any(k.startswith(M.SUITE_PREFIX) for k in rows[0])  # only after the last epoch


def test_eval_scores_a_folder_of_checkpoints(run, monkeypatch, capsys):
    from babysweep.cli import main

    out, _, _ = run
    monkeypatch.setattr(sys, "argv", ["babysweep", "eval", str(out), "--suite", "babylm", "--data", str(FIXTURES),
                                      "--task", "ewok", "--task", "wug_past", "--json"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None)
    got = json.loads(capsys.readouterr().out)["checkpoints"]
    assert [r["name"] for r in got] == sorted((p.name for p in out.glob("chck_*")), key=lambda n: int(n[5:-1]))
    assert [r["words_m"] for r in got] == sorted(r["words_m"] for r in got)
    assert all(set(r["columns"]) == {"ewok", "wug_past"} for r in got)
    monkeypatch.setattr(sys, "argv", ["babysweep", "eval", str(out), "--suite", "babylm", "--data", str(FIXTURES),
                                      "--task", "ewok"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None) and "chck_1M" in capsys.readouterr().out


def test_training_words_and_suite_path_are_checked(tmp_path, cache_dir):
    from babysweep.core.errors import UserError

    config = tiny_config(cache_dir, eval={"blimp": "none", "suite": str(tmp_path / "nope"), "suite_on": "all"})
    with pytest.raises(UserError, match="eval.suite"):
        train(config, tmp_path / "run")
