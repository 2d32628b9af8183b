"""Training FLOPs: a model of what one run computed, so that runs of different sizes and epochs compare.

    per_token = forward_flops_per_token(model, seq_len)        # one forward pass, per token
    flops = training_flops(tokens, per_token, [forward_flops_per_token(t, seq_len) for t in teachers])

The formula (Kaplan et al. 2020, section 2.1; Chinchilla's appendix F counts the same terms):

    forward per token   F = 2 * N + 4 * L * S * d
    training, D tokens  C = 3 * F * D  (+ F_t * D for each teacher's forward pass, distilled CLM epochs)

- N counts the weight matrices a token is multiplied by: every parameter with two or more dimensions,
  except the embedding tables that are only looked up (token and position embeddings), plus the output
  head (vocab x hidden), also when it is tied to the token embedding. Kaplan's "non-embedding" N leaves
  the head out because at their scale it is a rounding error; at ours (vocab 2000, hidden 64) it is a
  third of the model's multiplications, so leaving it out would understate every run, and students
  (fewer layers, same head) more than teachers. Biases and norm gains (1-D) are left out: an add
  or a multiply per element, not 2 * N.
- 4 * L * S * d: per layer, the attention scores (Q K^T) and their weighted sum of values, each 2 * S
  * d per token for a context of S = data.seq_len tokens and d = hidden (heads * head size). Counted
  over the full S x S square, as dense attention kernels compute it, though a causal mask needs half.
- Training = 3 forward passes' worth (the forward, and a backward of about twice its cost: gradients
  for the inputs and for the weights), as in the usual 6 * N * D. MLM epochs cost the same per token.
- Teachers run forward only, in distilled causal-LM epochs (never in MLM epochs, nor when alpha is 1):
  their F_t per token, counted with the same formula.
- Not counted: dev evaluations and BLiMP scoring (evaluation, not training), softmax, norms,
  activations and the optimiser (each O(N) or O(S) per token, a few percent at most).

tests/test_flops.py checks F against a hand count and against torch's FLOP counter on tiny LLaMA
and GPT-2 models.
"""

from __future__ import annotations

import torch


def matmul_params(model: torch.nn.Module) -> int:
    """N above: weight matrices a token is multiplied by (output head included, embedding lookups not)."""
    lookups = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    n = sum(p.numel() for p in model.parameters() if p.dim() >= 2 and id(p) not in lookups)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and id(head.weight) in lookups:  # tied: the lookup table is also the head's matrix
        n += head.weight.numel()
    return n


def forward_flops_per_token(model: torch.nn.Module, seq_len: int) -> int:
    """F above: FLOPs of one forward pass per token, for sequences of seq_len tokens."""
    config = model.config
    return 2 * matmul_params(model) + 4 * config.num_hidden_layers * seq_len * config.hidden_size


def training_flops(tokens: int, forward_per_token: int, teachers_per_token: list[int] = ()) -> float:
    """C above for `tokens` trained on: 3 forward passes' worth, plus one forward pass of each teacher
    (pass teachers only for epochs whose batches the teachers saw: distilled causal-LM epochs)."""
    return float(tokens) * (3 * forward_per_token + sum(teachers_per_token))
