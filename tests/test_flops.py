"""The FLOPs model (babysweep/flops.py) against a hand count and against torch's own FLOP counter."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from babysweep.core.config import RunConfig
from babysweep.lm.flops import forward_flops_per_token, matmul_params, training_flops
from babysweep.lm.models import build_model

VOCAB, SEQ = 10, 4


def tiny(arch: str, tie: bool = True):
    cfg = RunConfig.of({"model": {"arch": arch, "layers": 2, "hidden": 8, "heads": 2, "ffn": 16, "tie_embeddings": tie}}).model
    return build_model(cfg, vocab_size=VOCAB, seq_len=SEQ)


@pytest.mark.parametrize("tie", [True, False])
def test_hand_count(tie):
    # LLaMA layer: q, k, v, o 4 * 8*8 = 256; gate, up, down 3 * 8*16 = 384 -> 640 per layer.
    # GPT-2 layer: c_attn 8*24 = 192, c_proj 64, c_fc 128, mlp c_proj 128 -> 512 per layer.
    # Both: the head 10*8 = 80 (counted whether tied or not); token and position tables are lookups.
    assert matmul_params(tiny("llama", tie)) == 2 * 640 + 80
    assert matmul_params(tiny("gpt2", tie)) == 2 * 512 + 80
    # Attention: 4 * layers * seq_len * hidden = 4 * 2 * 4 * 8 = 256 per token.
    assert forward_flops_per_token(tiny("llama", tie), SEQ) == 2 * 1360 + 256
    assert forward_flops_per_token(tiny("gpt2", tie), SEQ) == 2 * 1104 + 256


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_matches_torch_flop_counter(arch):
    model = tiny(arch)
    model.config._attn_implementation = "eager"  # torch's counter sees the attention matmuls only outside SDPA's CPU kernel
    batch = torch.randint(0, VOCAB, (3, SEQ))
    with FlopCounterMode(display=False) as forward:
        model(input_ids=batch)
    assert forward.get_total_flops() == forward_flops_per_token(model, SEQ) * batch.numel()
    with FlopCounterMode(display=False) as step:  # forward and backward: the "3 forward passes" of training
        model(input_ids=batch).logits.sum().backward()
    assert step.get_total_flops() == training_flops(batch.numel(), forward_flops_per_token(model, SEQ))


def test_teachers_add_one_forward_pass_each():
    assert training_flops(100, 7) == 2100
    assert training_flops(100, 7, [11, 13]) == 100 * (21 + 11 + 13)
