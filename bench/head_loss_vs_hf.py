"""Side by side: babysweep's fused head + cross-entropy (objectives.head_causal_lm_loss, every fp32 causal-LM
training step with train.fused) against Hugging Face's own causal-LM loss (model(input_ids, labels=input_ids).loss,
which BabyLlama's student CE is), loss and every parameter's gradient, case by case.

    python bench/head_loss_vs_hf.py            # a few seconds; --dtype float32 for the training dtype

In float32 the head's row pass is lm/cpu_head.cpp's kernel, as in training (built first; --no-kernel: torch's
operations); float64 blocks always take torch's operations.

Hugging Face computes its loss on float32 logits (it upcasts them), so even in float64 the two agree to float32
rounding, not to float64's."""

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from babysweep.lm import cpu_head  # noqa: E402
from babysweep.lm.objectives import head_causal_lm_loss  # noqa: E402

torch.set_num_threads(1)
parser = argparse.ArgumentParser()
parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
parser.add_argument("--no-kernel", action="store_true", help="float32 with torch's operations, not lm/cpu_head.cpp")
args = parser.parse_args()
dtype = getattr(torch, args.dtype)
if dtype == torch.float32 and not args.no_kernel:
    cpu_head.build(Path(tempfile.mkdtemp(prefix="bench-head-")))
cases, worst_loss, worst_grad = 0, 0.0, 0.0
for arch, d, vocab, batch, seq, seed in itertools.product(("llama", "gpt2"), (32, 64, 128), (300, 1542), (3, 16), (17, 64), (0, 1)):
    torch.manual_seed(seed)
    if arch == "llama":
        m = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=d, intermediate_size=4 * d, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128, tie_word_embeddings=False))
    else:
        m = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=d, n_layer=2, n_head=4, n_positions=128))
    m = m.to(dtype).eval()  # no dropout: both forwards must see the same network
    with torch.no_grad():
        m.get_output_embeddings().weight.mul_(20.0)  # logits up to |z| ~ 10, as trained models give
    ids = torch.randint(0, vocab, (batch, seq))
    ref = m(input_ids=ids, labels=ids).loss
    g_ref = torch.autograd.grad(ref, list(m.parameters()), allow_unused=True)
    ours = head_causal_lm_loss(m.base_model(input_ids=ids).last_hidden_state, m.get_output_embeddings().weight, ids)
    g_ours = torch.autograd.grad(ours, list(m.parameters()), allow_unused=True)
    worst_loss = max(worst_loss, abs(ours.item() - ref.item()) / abs(ref.item()))
    for a, b in zip(g_ref, g_ours):
        if a is not None:
            worst_grad = max(worst_grad, ((a - b).abs().max() / a.abs().max().clamp_min(1e-30)).item())
    cases += 1
print(f"{cases} cases (LLaMA and GPT-2, d 32/64/128, vocab 300/1542, batch 3/16, seq 17/64, 2 seeds; {dtype}, "
      f"row pass: {'lm/cpu_head.cpp' if cpu_head._library is not None else 'torch operations'}): "
      f"largest relative loss difference {worst_loss:.2e}, largest gradient difference {worst_grad:.2e} of the gradient's max")
