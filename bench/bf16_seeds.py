"""bf16 autocast on the CPU against fp32: speed, and its effect on dev loss and BLiMP over seeds.

    python bench/bf16_seeds.py                      # the default teacher, 3 seeds x 2 precisions, ~15 CPU min
    python bench/bf16_seeds.py --kind baseline --seeds 3 --epochs 8

Each run is a full trial of the default study's model (search_spaces/study.yaml's sweeps, the fixed values
bench/utilisation.py uses: LLaMA, lr 2e-3, batch 16, 8 epochs, built-in BLiMP), one torch thread, trained by
the trainer itself with train.precision fp32 and then bf16 for each seed (interleaved, so a change in the
machine's load falls on both). Prints per seed: dev loss, BLiMP, the last epoch's training-step tokens/s and
the whole trial's CPU seconds; then the paired bf16 - fp32 differences (mean and std over seeds) beside
fp32's own spread over seeds, which is the seed noise the issue compares against. The CPU's bf16 support is what torch reports (AVX-512 BF16 / AMX).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def one(args) -> None:
    import time

    import torch

    from utilisation import configs

    from babysweep.core import metrics as M
    from babysweep.train.trainer import train

    torch.set_num_threads(1)
    cfg = configs(Path(args.project), args.words, None, args.precision)[args.kind]  # no max_steps: whole epochs
    cfg["train"].update(epochs=args.epochs, seed=args.seed)
    cfg["eval"] = {"blimp": "builtin", "dev_batches": None}
    out = Path(args.project) / "runs" / f"{args.kind}-{args.precision}-{args.seed}"
    cpu = time.process_time()
    final = train(cfg, out)
    print(json.dumps({"dev_loss": final[M.EVAL_LOSS], "blimp": 100 * final[M.BLIMP_OVERALL],
                      "train_tok_s": final[M.TOKENS_PER_S], "cpu_s": time.process_time() - cpu}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", default="teacher", choices=["teacher", "baseline", "teacher-gpt2"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--words", type=int, default=50_000)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--project", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one(args)
    import torch

    print(f"torch {torch.__version__}, CPU bf16 support: {torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    project = Path(tempfile.mkdtemp(prefix="bf16-seeds-"))
    results: dict[str, list[dict]] = {"fp32": [], "bf16": []}
    for seed in range(args.seeds):
        for precision in ("fp32", "bf16"):
            cmd = [sys.executable, __file__, "--one", "--kind", args.kind, "--epochs", str(args.epochs), "--words", str(args.words),
                   "--precision", precision, "--seed", str(seed), "--project", str(project)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            results[precision].append(row)
            print(f"seed {seed} {precision}: dev loss {row['dev_loss']:.4f}  BLiMP {row['blimp']:.2f}  "
                  f"training steps {row['train_tok_s']:,.0f} tok/s (last epoch)  whole trial {row['cpu_s']:.0f} CPU s", flush=True)
    for key, label in (("dev_loss", "dev loss"), ("blimp", "BLiMP")):
        diffs = [b[key] - a[key] for a, b in zip(results["fp32"], results["bf16"])]
        spread = statistics.stdev(r[key] for r in results["fp32"]) if args.seeds > 1 else float("nan")
        sd = statistics.stdev(diffs) if len(diffs) > 1 else float("nan")
        print(f"{label}: bf16 - fp32 paired over {args.seeds} seeds {statistics.mean(diffs):+.4f} (std {sd:.4f}); "
              f"fp32's std over seeds {spread:.4f}")
    steps = [b["train_tok_s"] / a["train_tok_s"] for a, b in zip(results["fp32"], results["bf16"])]
    trial = [a["cpu_s"] / b["cpu_s"] for a, b in zip(results["fp32"], results["bf16"])]
    print(f"speed: bf16 / fp32 training-step tokens/s {statistics.mean(steps):.3f}x (per seed {', '.join(f'{s:.3f}' for s in steps)}); "
          f"whole trial (CPU s, fp32 / bf16) {statistics.mean(trial):.3f}x")


if __name__ == "__main__":
    main()
