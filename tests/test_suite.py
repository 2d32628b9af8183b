"""BabyLM's zero-shot suite (babysweep.eval.suite) against values the official pipeline printed.

The fixtures (tests/fixtures/suite/) are items written for these tests in each task's format: 8
BLiMP pairs in 2 UIDs, 3 supplement pairs, 4 EWoK items in 2 domains, 8 entity-tracking items
(regular and ambiref, 0 and 1 operations, 4 options each), 8 WUG adjective items, 6 WUG past-tense items
(added later: checked against a one-sentence-at-a-time computation, not the pipeline), 33 reading rows.

The expected values come from running babylm/evaluation-pipeline-2025 at bf55c11 (causal backend,
outside this repository) on the model `tiny_model` saves, one task at a time, e.g.
    python -m evaluation_pipeline.sentence_zero_shot.run --model_path_or_name DIR --backend causal \
        --task entity_tracking --data_path tests/fixtures/suite/entity_tracking --save_predictions
    python -m evaluation_pipeline.reading.run --model_path_or_name DIR --backend causal \
        --data_path tests/fixtures/suite/reading/reading_data.csv
(bench/suite.py runs them all and compares: `python bench/suite.py DIR --data tests/fixtures/suite
--pipeline CHECKOUT --pipeline-python PY`). Decisions are '1' where its predictions.json chose option
0; scores are its printed AVERAGE (2 decimals), WUG's Spearman as printed (not x100), reading's
EYE TRACKING and SELF-PACED READING SCORE, and WUG probabilities and the first surprisals as saved.
Recorded on 2026-12-04 with torch 2.13.0 and transformers 5.25.0 (the model is rebuilt from seeds).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from babysweep.eval import suite
from babysweep.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, train_tokenizer
from babysweep.core.errors import UserError
from babysweep.lm.models import load_model

FIXTURES = Path(__file__).parent / "fixtures" / "suite"
WORDS = ("the a cat dog dogs box boxes red big small pen cup hat sees saw likes run runs ran Mary John who what "
         "did is in on and contains nothing Box noun adjective create out of following").split()


def build_tiny_model(folder: Path) -> Path:
    """babysweep's tokenizer (no special tokens added) on seeded sentences, a seeded 2-layer LLaMA."""
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))).capitalize() + "." for _ in range(600)]
    tok = train_tokenizer(lines, vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=64, pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID))
    model.config._attn_implementation = "sdpa"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return load_model(build_tiny_model(tmp_path_factory.mktemp("suite_model") / "tiny"))


# What the pipeline gave on tiny_model (see the module docstring).
EXPECTED_DECISIONS: dict[str, dict[str, str]] = {"blimp": {"cat_agreement": "01011", "who_questions": "110"}, "supplement": {"turn_taking": "111"}, "ewok": {"material-properties": "01", "spatial-relations": "10"}, "entity_tracking": {"ambiref_0_ops": "01", "ambiref_1_ops": "0", "regular_0_ops": "000", "regular_1_ops": "00"}, "wug_adj": {"wug_adj": "10010010"}}
EXPECTED_PRINTED: dict[str, str] = {"blimp": "63.33", "supplement": "100.00", "ewok": "50.00", "entity_tracking": "12.50", "wug_adj": "0.24", "reading": "ET 7.11 SPR 9.18"}
EXPECTED_WUG_PROBS: list[float] = [0.580694, 0.436862, 0.489557, 0.573552, 0.434551, 0.45305, 0.502739, 0.457576]
EXPECTED_SURPRISAL_HEAD: list[float] = [11.0895, 17.11788, 11.39474, 11.11354, 16.81764, 22.71416, 11.381, 11.72971]


@pytest.fixture(scope="module")
def results(tiny_model):
    model, tok = tiny_model
    return suite.evaluate(model, tok, FIXTURES, batch_size=4)


@pytest.mark.parametrize("task", ["blimp", "supplement", "ewok", "entity_tracking", "wug_adj"])
def test_decisions_and_scores_equal_the_pipeline(results, task):
    r = results["tasks"][task]
    assert r["decisions"] == EXPECTED_DECISIONS[task]
    printed = r["spearman"] if task == "wug_adj" else r["score"]
    assert f"{printed:.2f}" == EXPECTED_PRINTED[task]


def test_wug_probabilities_and_reading_equal_the_pipeline(results):
    assert results["tasks"]["wug_adj"]["probs"] == pytest.approx(EXPECTED_WUG_PROBS, abs=1e-5)
    reading = results["tasks"]["reading"]
    assert reading["surprisal"][:len(EXPECTED_SURPRISAL_HEAD)] == pytest.approx(EXPECTED_SURPRISAL_HEAD, abs=1e-4)
    assert f"ET {reading['eye_tracking']:.2f} SPR {reading['self_paced_reading']:.2f}" == EXPECTED_PRINTED["reading"]
    assert results["skipped"] == []
    assert results["first_word_scored"] is False  # babysweep's tokenizer without with_bos: as older folders
    assert results["macro"] == pytest.approx(sum(results["columns"].values()) / 8)  # wug_past's column too


def test_wug_past_is_scored_as_wug_adj(tiny_model, results):
    """wug_past_tense (items written for this test in the pipeline's format: tab-separated sentences, a human
    ratio): option 0's softmax probability over the options' summed log-probabilities (every token after the
    first), Spearman's rho against the ratios, x100; computed here one sentence at a time."""
    from scipy.stats import spearmanr

    model, tok = tiny_model
    r = results["tasks"]["wug_past"]
    rows = [json.loads(line) for line in (FIXTURES / "wug_past_tense" / "wug_past_tense.jsonl").read_text().splitlines()]
    probs = []
    for row in rows:
        scores = []
        for sentence in row["sentences"].split("\t"):
            ids = tok(sentence)["input_ids"]
            with torch.inference_mode():
                logp = model(torch.tensor([ids])).logits[0, :-1].float().log_softmax(-1)
            scores.append(sum(float(logp[k, ids[k + 1]]) for k in range(len(ids) - 1)))
        probs.append(float(torch.softmax(torch.tensor(scores), dim=0)[0]))
    rho = spearmanr(probs, [row["ratio"] for row in rows])[0]
    assert r["items"] == len(rows) == 6 and r["probs"] == pytest.approx(probs, abs=1e-5)
    assert r["spearman"] == pytest.approx(rho) and r["score"] == pytest.approx(100 * rho)
    assert list(r["uids"]) == ["wug_past"] and len(r["decisions"]["wug_past"]) == 6
    assert results["columns"]["wug_past"] == r["score"]


def test_what_is_scored(tiny_model):
    """Option tokens: the tokens after the first whose span ends after the prefix; the token that
    straddles the boundary (' the' after 'contains ') counts, the first token never does."""
    _, tok = tiny_model
    sentence = "Box 0 contains the cat."
    (ids, scored), = suite.encode_options(tok, [sentence], ["the cat."])
    offsets = tok(sentence, return_offsets_mapping=True)["offset_mapping"]
    assert list(scored) == [end > len("Box 0 contains ") for _, end in offsets[1:]]
    straddling = [(a, b) for a, b in offsets if a < len("Box 0 contains ") < b]
    assert all(s for (a, b), s in zip(offsets[1:], scored) if (a, b) in straddling)
    assert tok.decode([t for t, s in zip(ids[1:], scored) if s]).endswith("the cat.")
    (ids, scored), = suite.encode_options(tok, ["The cat runs."], ["The cat runs."])
    assert len(scored) == len(ids) - 1 and all(scored)  # whole sentence: all but the unscored first token


def test_shared_prefixes_are_scored_as_one_at_a_time(tiny_model):
    """Entity tracking's options share a long prefix: the wide trie rows give the scores a plain
    one-option-at-a-time loop gives."""
    model, tok = tiny_model
    items = suite.read_entity_tracking(FIXTURES / "entity_tracking")
    batched = suite.score_choice(model, tok, items, batch_size=64)
    for item, scores in zip(items, batched):
        for sentence, completion, score in zip(item.sentences, item.completions, scores):
            (ids, scored), = suite.encode_options(tok, [sentence], [completion])
            with torch.inference_mode():
                logp = model(torch.tensor([ids])).logits[0, :-1].float().log_softmax(-1)
            alone = sum(float(logp[k, ids[k + 1]]) for k in range(len(ids) - 1) if scored[k])
            assert score == pytest.approx(alone, abs=1e-4)


def test_cli_json_one_task_and_errors(tiny_model, tmp_path, monkeypatch, capsys):
    from babysweep.cli import main

    folder = build_tiny_model(tmp_path / "m")
    monkeypatch.setattr(sys, "argv", ["babysweep", "eval", str(folder), "--suite", "babylm", "--data", str(FIXTURES),
                                      "--task", "ewok", "--json"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None)
    out = json.loads(capsys.readouterr().out)
    assert list(out["tasks"]) == ["ewok"] and out["tasks"]["ewok"]["decisions"] == EXPECTED_DECISIONS["ewok"]
    for argv, message in ((["--suite", "babylm"], "--data"), (["--suite", "glue", "--data", str(FIXTURES)], "--suite"),
                          (["--suite", "babylm", "--data", str(tmp_path / "nope")], "no such folder"),
                          (["--suite", "babylm", "--data", str(FIXTURES), "--task", "cola"], "unknown task")):
        monkeypatch.setattr(sys, "argv", ["babysweep", "eval", str(folder), *argv])
        with pytest.raises(SystemExit) as done:
            main()
        err = capsys.readouterr().err
        assert done.value.code == 2 and message in err and "Traceback" not in err


def test_malformed_items_name_file_and_line(tmp_path):
    (tmp_path / "ewok_filtered").mkdir()
    (tmp_path / "ewok_filtered" / "d.jsonl").write_text('{"Domain": "d", "Context1": "a"}\n')
    with pytest.raises(UserError, match=r"d.jsonl, line 1: 'Target1'"):
        suite.read_ewok(tmp_path / "ewok_filtered")
