"""The fused head's C++ row pass (babysweep/lm/cpu_head.py) against the same head with torch's operations, in one run.

    python bench/cpu_head.py            # about 20 s on one core

For the default models' heads (baseline and student: 2,048 tokens a step, hidden 64; teacher: 1,024 tokens, hidden
128; a vocabulary of 1,542 as the bench corpus's tokenizer has), one thread: objectives.head_causal_lm_loss forward
and backward with the kernel and with torch's operations (best of several rounds, CPU seconds), their ratio, one
[256, 1,542] block's row pass alone, and each path's largest difference from the same loss in float64 (the loss
and both gradients, relative to the largest value).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from babysweep.lm import cpu_head, objectives  # noqa: E402
from cpu_attention import best_ms  # noqa: E402

VOCAB = 1542


def loss_and_grads(hidden, weight, ids):
    hidden, weight = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    loss = objectives.head_causal_lm_loss(hidden, weight, ids)
    return [loss.detach(), *torch.autograd.grad(loss, (hidden, weight))]


def main() -> None:
    torch.set_num_threads(1)
    library = cpu_head.build(Path(tempfile.mkdtemp(prefix="bench-head-")))
    for label, (batch, length, size) in (("baseline/student", (32, 64, 64)), ("teacher", (16, 64, 128))):
        torch.manual_seed(0)
        hidden, weight = torch.randn(batch, length, size), torch.randn(VOCAB, size) * size ** -0.5
        ids = torch.randint(0, VOCAB, (batch, length))
        reference = loss_and_grads(hidden.double(), weight.double(), ids)  # float64: torch's operations
        timings, errors = {}, {}
        for name, lib in (("torch", None), ("kernel", library)):
            cpu_head._library = lib
            got = loss_and_grads(hidden, weight, ids)
            errors[name] = max(float((a.double() - b).abs().max() / b.abs().max()) for a, b in zip(got, reference))
            timings[name] = best_ms(lambda: loss_and_grads(hidden, weight, ids), calls=10)
        print(f"{label:16s} [{batch * length}, {size}] x [{VOCAB}, {size}]: head + loss, forward and backward: torch's "
              f"operations {timings['torch']:.3f} ms, kernel {timings['kernel']:.3f} ms, "
              f"{timings['torch'] / timings['kernel']:.3f}x; largest difference from float64: torch "
              f"{errors['torch']:.1e}, kernel {errors['kernel']:.1e}", flush=True)
    block, target = torch.randn(256, VOCAB) * 3, torch.randint(0, VOCAB, (256,))
    weight, row_loss, work = torch.full((256,), 1 / 2048), torch.empty(256), torch.empty(256, VOCAB)
    copy = best_ms(lambda: work.copy_(block), calls=20)
    both = best_ms(lambda: cpu_head.softmax_gradient(work.copy_(block), target, weight, row_loss), calls=20)
    print(f"one [256, {VOCAB}] block's row pass: {(both - copy) * 1e3:.0f} us "
          f"({(both - copy) * 1e6 / block.numel():.2f} ns per logit)")


if __name__ == "__main__":
    main()
