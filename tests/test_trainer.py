import json
import math

import pytest
import torch

from babysweep.core import metrics as M
from babysweep.train.checkpoint import checkpoints, load_latest
from babysweep.core.config import RunConfig
from babysweep.data import prepare
from babysweep.data.batches import chunks_per_epoch
from babysweep.train.trainer import TrainingDiverged, train

from conftest import tiny_config


class Stop(Exception):
    pass


def _weights(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def _assert_same_run(a, b):
    rows_a = [json.loads(line) for line in (a / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(line) for line in (b / "metrics.jsonl").read_text().splitlines()]
    assert [r[M.EPOCH] for r in rows_a] == [r[M.EPOCH] for r in rows_b]
    for ra, rb in zip(rows_a, rows_b):
        for key in (M.TRAIN_LOSS, M.EVAL_LOSS, M.STEP, M.TOKENS_SEEN, M.FLOPS):
            assert ra[key] == pytest.approx(rb[key], rel=1e-5, abs=1e-6), key
    wa, wb = _weights(a / "final"), _weights(b / "final")
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-5, atol=1e-6)


# GPT-2 with dropout exercises the saved RNG state; an MLM epoch exercises the per-batch masks.
RESUME_CASES = {
    "gpt2-dropout": dict(model={"arch": "gpt2", "dropout": 0.1}, eval={"blimp": "none", "dev_batches": 2}),
    "llama-antlm": dict(antlm={"schedule": "1clm+1mlm+1clm"}, train={"epochs": 3}, eval={"blimp": "none", "dev_batches": 2}),
}


@pytest.mark.parametrize("case", RESUME_CASES)
def test_resume_mid_epoch_equals_uninterrupted(tmp_path, cache_dir, case):
    config = tiny_config(cache_dir, **RESUME_CASES[case])
    config["train"]["checkpoint_every"] = 10
    train(config, tmp_path / "whole")

    def crash(info):
        if info["step"] == 30:  # after the checkpoint at step 20 (and one per epoch before it)
            raise Stop

    with pytest.raises(Stop):
        train(config, tmp_path / "cut", progress=crash)
    assert load_latest(tmp_path / "cut" / "checkpoints")[2]["loop"]["step"] == 20
    train(config, tmp_path / "cut", resume=True)
    _assert_same_run(tmp_path / "whole", tmp_path / "cut")


def test_resume_after_epoch_report(tmp_path, cache_dir):
    config = tiny_config(cache_dir, eval={"blimp": "none"})
    train(config, tmp_path / "whole")
    seen = []

    def reporter(metrics, folder):
        seen.append(folder)
        raise Stop  # the process dies right after reporting epoch 1

    with pytest.raises(Stop):
        train(config, tmp_path / "cut", reporter=reporter)
    train(config, tmp_path / "cut", resume=seen[0])  # an explicit checkpoint folder, as Ray hands it back
    _assert_same_run(tmp_path / "whole", tmp_path / "cut")


def test_corrupt_checkpoint_falls_back_with_warning(tmp_path, cache_dir):
    config = tiny_config(cache_dir, eval={"blimp": "none"})
    train(config, tmp_path / "run")
    folders = checkpoints(tmp_path / "run" / "checkpoints")
    assert len(folders) == 2
    (folders[-1] / "state.pt").write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="cannot be loaded"):
        folder, _, meta = load_latest(tmp_path / "run" / "checkpoints")
    assert folder == folders[0] and meta["loop"]["epoch"] == 1


def test_metrics_blimp_and_saved_model(tmp_path, cache_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reports = []
    final = train(tiny_config(cache_dir), tmp_path / "run", reporter=lambda m, f: reports.append((m, f)))
    assert [m[M.EPOCH] for m, _ in reports] == [1, 2] and all(f.is_dir() for _, f in reports)
    for key in (M.TRAIN_LOSS, M.EVAL_LOSS, M.EVAL_PPL, M.TOKENS_PER_S, M.ELAPSED_S, M.PARAMS):
        assert math.isfinite(final[key])
    assert final[M.EVAL_PPL] == pytest.approx(math.exp(final[M.EVAL_LOSS]))
    # Running totals: every epoch trains on all its chunks (the last batch is short, not dropped).
    first = reports[0][0]
    data = prepare(RunConfig.of(tiny_config(cache_dir)).data)
    assert first[M.TOKENS_SEEN] == chunks_per_epoch(len(data.train), 32, data.chunk_bos) * 32
    assert final[M.TOKENS_SEEN] == 2 * first[M.TOKENS_SEEN] and final[M.FLOPS] == pytest.approx(2 * first[M.FLOPS])
    assert reports[1][0][M.EVAL_LOSS] < 7.0  # it learnt something (uniform over 500 tokens is 6.2+)
    assert 0.0 <= final[M.BLIMP_OVERALL] <= 1.0 and M.BLIMP_OVERALL not in reports[0][0]
    assert M.TUNE_LOSS not in final  # no data.tune_split: nothing held out
    assert [m[M.LR] for m, _ in reports][0] > 0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["seed"] == 0 and run["config"]["model"]["hidden"] == 32
    # The corpus size the report's regime table divides by: words and tokens of the training lines.
    data = prepare(RunConfig.of(tiny_config(cache_dir)).data)
    assert final[M.TRAIN_WORDS] == run["train_words"] == data.train_words > 0
    assert final[M.TRAIN_TOKENS] == run["train_tokens"] == len(data.train)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "run" / "final")
    ids = tok("the dog sees a cat", return_tensors="pt").input_ids
    from babysweep.lm.models import load_model

    ours, _ = load_model(tmp_path / "run" / "final")
    torch.testing.assert_close(model(ids).logits, ours(ids).logits)


def test_nan_loss_raises(tmp_path, cache_dir, monkeypatch):
    from babysweep.lm import objectives

    real, real_head = objectives.causal_lm_loss, objectives.head_causal_lm_loss
    monkeypatch.setattr(objectives, "causal_lm_loss", lambda *a, **k: real(*a, **k) * float("nan"))
    monkeypatch.setattr(objectives, "head_causal_lm_loss", lambda *a, **k: real_head(*a, **k) * float("nan"))  # train.fused
    with pytest.raises(TrainingDiverged, match="became nan"):
        train(tiny_config(cache_dir, eval={"blimp": "none"}), tmp_path / "run")


def test_distillation_from_saved_teachers(tmp_path, cache_dir):
    base = tiny_config(cache_dir, eval={"blimp": "none"}, train={"epochs": 1})
    train(base, tmp_path / "t1")
    train(tiny_config(cache_dir, eval={"blimp": "none"}, train={"epochs": 1}, model={"arch": "gpt2"}), tmp_path / "t2")
    teachers = [str(tmp_path / "t1" / "final"), str(tmp_path / "t2" / "final")]
    student = tiny_config(cache_dir, eval={"blimp": "none"}, train={"epochs": 2}, distill={"teachers": teachers, "alpha": 0.5},
                          antlm={"schedule": "1clm+1mlm"})
    reports = []
    final = train(student, tmp_path / "s", reporter=lambda m, f: reports.append(m))
    assert math.isfinite(final[M.EVAL_LOSS])
    # FLOPs: 3 forward passes of the student per token, plus one of each teacher in the CLM epoch only.
    from babysweep.lm.flops import forward_flops_per_token
    from babysweep.lm.models import load_model

    per_token = [forward_flops_per_token(load_model(p)[0], 32) for p in [tmp_path / "s" / "final", *teachers]]
    tokens = reports[0][M.TOKENS_SEEN]
    assert reports[0][M.FLOPS] == tokens * (3 * per_token[0] + per_token[1] + per_token[2])
    assert final[M.TOKENS_SEEN] == 2 * tokens and final[M.FLOPS] == reports[0][M.FLOPS] + tokens * 3 * per_token[0]
    other = tiny_config(cache_dir, data={"tokenizer": {"vocab_size": 400}}, distill={"teachers": teachers, "alpha": 0.5})
    from babysweep.core.errors import UserError

    with pytest.raises(UserError, match="another tokenizer"):
        train(other, tmp_path / "bad")


def test_tune_loss_is_measured_on_the_held_out_lines(tmp_path, cache_dir):
    config = tiny_config(cache_dir, data={"tune_split": 0.1}, train={"epochs": 1, "max_steps": 3}, eval={"blimp": "none"})
    final = train(config, tmp_path / "run")
    assert math.isfinite(final[M.TUNE_LOSS]) and final[M.TUNE_LOSS] != final[M.EVAL_LOSS]
