"""train.compile's CPU attention kernel (babysweep/lm/cpu_attention.py) against torch's SDPA, in one run.

    python bench/cpu_attention.py            # about 20 s on one core

For the default models' attention shapes (baseline and student: batch 32, 4 heads, 64 tokens, head size 16; teacher:
batch 16, 4 heads, 64 tokens, head size 32), one thread, inputs laid out as Hugging Face passes them: forward and
backward time of each (best of several rounds, CPU seconds), their ratio, and each one's largest difference from
SDPA in float64 (output and the three gradients, relative to the largest value).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from babysweep.lm import cpu_attention  # noqa: E402


def best_ms(step, rounds: int = 9, calls: int = 30) -> float:
    for _ in range(5):
        step()
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls):
            step()
        best = min(best, (time.process_time() - start) / calls)
    return best * 1e3


def main() -> None:
    torch.set_num_threads(1)
    cpu_attention.build(Path(tempfile.mkdtemp(prefix="bench-attention-")))
    for label, (batch, heads, length, size) in (("baseline/student", (32, 4, 64, 16)), ("teacher", (16, 4, 64, 32))):
        torch.manual_seed(0)
        q, k, v = (torch.randn(batch, length, heads, size).transpose(1, 2) for _ in range(3))
        grad = torch.randn(batch, length, heads, size)
        scale = size ** -0.5

        def kernel(inputs):
            out = torch.ops.babysweep.causal_attention(*inputs, scale)[0]
            out.backward(grad)
            return out.transpose(1, 2)

        def sdpa(inputs):
            out = F.scaled_dot_product_attention(*inputs, is_causal=True)
            out.backward(grad.transpose(1, 2).to(out.dtype))
            return out

        exact = [t.double().requires_grad_() for t in (q, k, v)]
        reference = [sdpa(exact).detach()] + [t.grad for t in exact]
        timings, errors = {}, {}
        for name, run in (("sdpa", sdpa), ("kernel", kernel)):
            inputs = [t.clone().requires_grad_() for t in (q, k, v)]
            got = [run(inputs).detach()] + [t.grad for t in inputs]
            errors[name] = max(float((a.double() - b).abs().max() / b.abs().max()) for a, b in zip(got, reference))

            def step(inputs=inputs, run=run):
                for t in inputs:
                    t.grad = None
                run(inputs)
            timings[name] = best_ms(step)
        print(f"{label:16s} [{batch}, {heads}, {length}, {size}]: forward + backward SDPA {timings['sdpa']:.3f} ms, "
              f"kernel {timings['kernel']:.3f} ms, {timings['sdpa'] / timings['kernel']:.2f}x; largest difference "
              f"from float64 SDPA: SDPA {errors['sdpa']:.1e}, kernel {errors['kernel']:.1e}", flush=True)


if __name__ == "__main__":
    main()
