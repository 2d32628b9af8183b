"""A warm-cache student step against a non-distilled one, in CPU seconds of this process on one thread.

    python bench/kd_step.py [--steps 40] [--rounds 3] [--kd-reduction token]

The student of search_spaces/students.yaml (LLaMA 2 x 64, batch 32 x 64, vocabulary ~1.5k, 50k words), one
thread. Two untrained teachers (their logits scaled to trained models' range) fill an exact cache for epoch 0
first; then each variant trains (cycling through epoch 0's batches) its own copy of the student for --steps steps per round (the trainer's
batch_loss, backward, clipping, AdamW, scheduler), the variants interleaved over --rounds rounds so that a
change of the machine's load falls on all of them alike. Prints CPU seconds per step and the ratios to the
non-distilled step:
- base: no distillation (alpha 1), train.fused true (the fused head + cross-entropy);
- warm, unfused: the exact warm cache with train.fused false (logits stored, then the chunked KD loss);
- warm, fused: the exact warm cache with train.fused true (objectives.head_distillation_loss when it applies).
The whole trial's ratio (bench/teacher_cache.py) is lower: dev evaluation and BLiMP cost the same in both.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from babysweep.core.config import RunConfig
from babysweep.data import prepare
from babysweep.data.batches import train_batches
from babysweep.lm.models import build_model, save_model
from babysweep.train.trainer import batch_loss, setup

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=40, help="timed steps per variant per round")
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--warmup", type=int, default=5, help="untimed steps per variant first")
parser.add_argument("--kd-reduction", default="token", choices=["token", "babyllama"])
parser.add_argument("--ensemble", default="logits", choices=["logits", "probs"])
parser.add_argument("--words", type=int, default=50_000)
args = parser.parse_args()
torch.set_num_threads(1)

tmp = Path(tempfile.mkdtemp(prefix="bench-kdstep-"))
student = {
    "data": {"train": "builtin", "dev": "builtin", "builtin_words": args.words, "seq_len": 64,
             "tokenizer": {"vocab_size": 2000}, "tune_split": 0.1, "cache_dir": str(tmp / "cache")},
    "model": {"arch": "llama", "layers": 2, "hidden": 64, "heads": 4},
    "train": {"epochs": 1, "batch_size": 32, "lr": 2e-3, "warmup_steps": 100, "threads": 1},
    "eval": {"blimp": "none"},
}
cfg = RunConfig.of(student)
data = prepare(cfg.data)
teachers = []
for i, arch in enumerate(("llama", "gpt2")):
    torch.manual_seed(i)
    model = build_model(cfg.model.model_copy(update={"arch": arch}), vocab_size=len(data.tokenizer), seq_len=64)
    norm = model.model.norm if arch == "llama" else model.transformer.ln_f
    with torch.no_grad():
        norm.weight.mul_(40.0)  # logits up to |z| ~ 10, as trained teachers' reach
    teachers.append(str(save_model(model, data.tokenizer, tmp / f"teacher{i}")))


def variant(name: str, fused: bool, alpha: float):
    config = {**student, "train": {**student["train"], "fused": fused},
              "distill": {"teachers": teachers if alpha < 1 else [], "alpha": alpha, "temperature": 2.0,
                          "cache": "exact" if alpha < 1 else "none", "kd_reduction": args.kd_reduction,
                          "ensemble": args.ensemble}}
    run = setup(config, tmp / name)
    if run.teacher_cache is not None:
        run.teacher_cache.open(0)  # build epoch 0's entry now: the timed steps read a warm cache
    batches = itertools.cycle(list(train_batches(run.data.train, 64, 32, 0, 0, bos=run.data.chunk_bos)))  # epoch 0's batches, again and again
    run.model.train()
    return run, batches


def steps(run, batches, n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        index, batch = next(batches)
        loss = batch_loss(run, batch, "clm", 0, index)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    return time.process_time() - started


variants = {"base": (True, 1.0), "warm, unfused": (False, 0.5), "warm, fused": (True, 0.5)}
state = {name: variant(name.replace(", ", "-"), *spec) for name, spec in variants.items()}
n_batches = sum(1 for _ in train_batches(data.train, 64, 32, 0, 0, bos=data.chunk_bos))
print(f"load average {os.getloadavg()[0]:.1f}; vocabulary {len(data.tokenizer)}, {n_batches} batches of 32 x 64; "
      f"kd_reduction {args.kd_reduction}, ensemble {args.ensemble}", flush=True)
for run, batches in state.values():
    steps(run, batches, args.warmup)
cpu = {name: [] for name in variants}
for r in range(args.rounds):
    for name, (run, batches) in state.items():
        cpu[name].append(steps(run, batches, args.steps) / args.steps)
    print(f"round {r + 1}: " + ", ".join(f"{name} {1000 * cpu[name][-1]:.1f} ms" for name in variants), flush=True)
best = {name: min(values) for name, values in cpu.items()}
mean = {name: sum(values) / len(values) for name, values in cpu.items()}
print(f"\nCPU seconds per step (one thread; best round / mean of {args.rounds} rounds of {args.steps} steps), "
      f"load average {os.getloadavg()[0]:.1f}:")
for name in variants:
    print(f"   {name:14s} {1000 * best[name]:6.1f} ms {best[name] / best['base']:5.2f}x   "
          f"mean {1000 * mean[name]:6.1f} ms {mean[name] / mean['base']:5.2f}x")
