"""Trainer overhead: babysweep's training step vs a bare PyTorch loop on the same model, batches and steps.

    python bench/train_overhead.py [--steps 40] [--source PATH]

1. Teacher step: `trainer.train` (its own train-loop clock: data, forward, backward, clipping off,
   AdamW, scheduler, bookkeeping) vs a bare loop (forward, backward, AdamW step, nothing else).
2. Distillation step with two teachers: the trainer's student step with two teachers vs the bare
   student step plus the two teachers' forward passes timed alone.
Each side runs twice, alternating, and the faster of the two counts. Prints tokens/s and ratios
(target: at most 1.05x).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from babysweep.core import metrics as M
from babysweep.core.config import RunConfig
from babysweep.data import prepare
from babysweep.data.batches import train_batches
from babysweep.lm.models import build_model, count_params, load_model, save_model
from babysweep.train.trainer import make_optimizer, seed_everything, train

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=40)
parser.add_argument("--source", default=None)
args = parser.parse_args()
storybooks = Path(__file__).resolve().parents[2] / "shared" / "data" / "storybooks"
source = args.source or (str(storybooks) if storybooks.exists() else "builtin")
threads = os.cpu_count()
torch.set_num_threads(threads)

tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
base = {
    "data": {"train": source, "dev": source, "seq_len": 128, "cache_dir": str(Path.home() / ".cache" / "babysweep-bench")},
    "model": {"arch": "llama", "layers": 4, "hidden": 256, "heads": 4, "tie_embeddings": False},
    "train": {"epochs": 1, "batch_size": 32, "max_steps": args.steps, "grad_clip": 0.0, "threads": threads, "warmup_steps": 10},
    "eval": {"blimp": "none", "dev_batches": 1},
}
cfg = RunConfig.of(base)
data = prepare(cfg.data)
vocab, seq_len, batch_size = len(data.tokenizer), cfg.data.seq_len, cfg.train.batch_size


def bare_loop(teachers=()) -> float:
    """Tokens/s of forward + backward + AdamW (+ teachers' forward passes when given)."""
    seed_everything(0)
    model = build_model(cfg.model, vocab, seq_len)
    model.train()
    optimizer = make_optimizer(model, cfg.train)
    batches = [b for _, b in zip(range(args.steps), (b for _, b in train_batches(data.train, seq_len, batch_size, 0, 0)))]
    start = time.perf_counter()
    for batch in batches:
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    elapsed = time.perf_counter() - start
    return sum(b.numel() for b in batches) / elapsed


@torch.inference_mode()
def teachers_forward_time(folders) -> float:
    """The teachers' forward passes alone, on teachers freshly loaded from their folders (loading not
    timed), as the trainer loads and runs them: both sides pay the first, cold forward pass."""
    teacher_models = [load_model(folder)[0] for folder in folders]
    batches = [b for _, b in zip(range(args.steps), (b for _, b in train_batches(data.train, seq_len, batch_size, 0, 0)))]
    start = time.perf_counter()
    for batch in batches:
        for teacher in teacher_models:
            teacher(input_ids=batch)
    return time.perf_counter() - start


def trainer_rate(config: dict, name: str) -> float:
    final = train(config, tmp / f"{name}-{time.monotonic_ns()}")
    return final[M.TOKENS_PER_S]


model_params = count_params(build_model(cfg.model, vocab, seq_len))
print(f"model: LLaMA {model_params / 1e6:.1f}M parameters, vocab {vocab}, batch {batch_size}x{seq_len}, {args.steps} steps, "
      f"{threads} threads, source {source}")

bare = max(bare_loop(), bare_loop())
ours = max(trainer_rate(base, "t"), trainer_rate(base, "t"))
print(f"teacher step: bare loop {bare:,.0f} tok/s, babysweep trainer {ours:,.0f} tok/s, "
      f"time ratio trainer/bare = {bare / ours:.3f} (target <= 1.05)")

# Two teachers, saved as a student run would find them.
teacher_dirs = []
for index, arch in enumerate(("llama", "gpt2")):
    seed_everything(index)
    teacher = build_model(cfg.model.model_copy(update={"arch": arch}), vocab, seq_len)
    teacher_dirs.append(str(save_model(teacher, data.tokenizer, tmp / f"teacher{index}")))
student_cfg = {**base, "distill": {"teachers": teacher_dirs, "alpha": 0.5, "temperature": 2.0}}
tokens = args.steps * batch_size * seq_len
reference = tokens / (tokens / bare + min(teachers_forward_time(teacher_dirs), teachers_forward_time(teacher_dirs)))
distil = max(trainer_rate(student_cfg, "s"), trainer_rate(student_cfg, "s"))
print(f"distillation step (2 teachers): bare student step + teachers' forward {reference:,.0f} tok/s, "
      f"babysweep trainer {distil:,.0f} tok/s, time ratio = {reference / distil:.3f} (target <= 1.05)")
