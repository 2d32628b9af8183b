"""The training step's speed-ups (train.fused: AdamW's fused step, the output head and cross-entropy in row
blocks) give the same losses as the plain step to float rounding; train.precision bf16 runs on the CPU."""

import json

import pytest
import torch

from babysweep.lm import objectives
from babysweep.train.trainer import train
from conftest import tiny_config


def test_head_loss_equals_logits_then_cross_entropy():
    torch.manual_seed(0)
    hidden = torch.randn(3, 70, 16, dtype=torch.float64, requires_grad=True)  # 210 rows: two blocks and a remainder
    weight = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, 50, (3, 70))
    plain = torch.nn.functional.cross_entropy((hidden @ weight.t())[:, :-1].reshape(-1, 50), ids[:, 1:].reshape(-1))
    grads = torch.autograd.grad(plain, (hidden, weight))
    fused = objectives.head_causal_lm_loss(hidden, weight, ids)
    fused_grads = torch.autograd.grad(2.0 * fused, (hidden, weight))  # the incoming gradient scales both
    assert torch.allclose(fused, plain, rtol=1e-12)
    for g, f in zip(grads, fused_grads):
        assert torch.allclose(2.0 * g, f, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_fused_steps_give_the_same_losses(tmp_path, cache_dir, arch):
    runs = {}
    for fused in (False, True):
        config = tiny_config(cache_dir, model={"arch": arch}, train={"fused": fused, "epochs": 2, "max_steps": 12},
                             eval={"blimp": "none", "dev_batches": 2})
        steps = []
        final = train(config, tmp_path / f"{arch}-{fused}", progress=lambda info: steps.append(info["loss"]))
        runs[fused] = (final, [json.loads(line) for line in (tmp_path / f"{arch}-{fused}" / "metrics.jsonl").open()], steps)
    (plain, plain_rows, plain_steps), (fast, fast_rows, fast_steps) = runs[False], runs[True]
    assert plain_steps == pytest.approx(fast_steps, rel=1e-5)  # the loss every 10 steps
    for a, b in zip(plain_rows, fast_rows):
        for key in ("train/loss", "eval/loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key


def test_bf16_precision_runs_on_the_cpu(tmp_path, cache_dir):
    config = tiny_config(cache_dir, train={"precision": "bf16", "epochs": 1, "max_steps": 4}, eval={"blimp": "none", "dev_batches": 2})
    final = train(config, tmp_path / "bf16")
    assert final["eval/loss"] == pytest.approx(final["eval/loss"]) and 0 < final["eval/loss"] < 20
    assert json.loads((tmp_path / "bf16" / "run.json").read_text())["device"] == "cpu"
