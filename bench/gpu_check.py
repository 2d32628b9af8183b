"""GPU check: does babysweep's CUDA path run, and how fast? (about 3 min on one recent GPU)

    bench/gpu_check.sh                      # the whole check; fails with one sentence without a GPU
    python bench/gpu_check.py --smoke       # the same code paths on the CPU with tiny models (tests)

Prints, on the first CUDA device, with bf16 autocast as the trainer uses it there (trainer.pick_device):
1. the GPU's bf16 matmul peak measured here (8192^3), and its nominal dense bf16 peak when the name is known;
2. a training step of Baby Llama's 58M student (search_spaces/babylm/babyllama_student.yaml: 16 layers,
   hidden 512, FFN 1024, vocab 16000, seq 128, batch 32) on random tokens: tokens/s and MFU
   (babysweep/flops.py: 3 F per token) against both peaks;
3. distillation from Baby Llama's two teachers (babyllama_teacher_llama.yaml and _gpt2.yaml sizes,
   untrained): on the fly (teachers' forward passes every step) and from the exact teacher cache
   (babysweep/teacher_cache.py, built first, then read warm), tokens/s and the ratio to step 2;
4. packing: the default baselines sweep (search_spaces/baselines.yaml, 4 trials, train.max_steps
   --pack-steps) with resources.gpu 0.25 (4 at once on the GPU) against resources.gpu 1 (one at a
   time): wall times and the throughput ratio (target: at least 1.8x).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Nominal dense bf16 peaks (TFLOP/s, no sparsity) of common data-centre GPUs, from their data sheets.
NOMINAL_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0,
                       "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10G": 70.0}


def nominal_peak(name: str) -> float | None:
    for key, value in NOMINAL_BF16_TFLOPS.items():
        if key.lower() in name.lower():
            return value * 1e12
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny models on the CPU: checks the code paths, not speed")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement (after 5 warm-up steps)")
    parser.add_argument("--pack-steps", type=int, default=300, help="train.max_steps of each packing trial")
    parser.add_argument("--skip-packing", action="store_true")
    args = parser.parse_args()
    import shutil

    import torch

    if not args.smoke and not torch.cuda.is_available():
        print("bench/gpu_check: no CUDA GPU is visible to torch (torch.cuda.is_available() is False; "
              f"torch {torch.__version__}, CUDA build {torch.version.cuda}), so there is nothing to check.", file=sys.stderr)
        return 2
    from transformers.utils import logging as hf_logging

    from babysweep.core.config import RunConfig
    from babysweep.train.trainer import pick_device

    dev = pick_device(RunConfig.of({"train": {"device": "cpu" if args.smoke else "cuda", "precision": "auto"}}).train)
    hf_logging.disable_progress_bar()
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        return check(args, dev, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check(args, dev, work: Path) -> int:
    import numpy as np
    import torch
    import yaml

    from babysweep.lm import objectives
    from babysweep.core.config import RunConfig
    from babysweep.data.batches import chunks_per_epoch, train_batches
    from babysweep.data.tokenizer import BOS_ID  # chunks begin with <s>, as training's default (data.chunk_bos)
    from babysweep.lm.flops import forward_flops_per_token
    from babysweep.lm.models import build_model, count_params
    from babysweep.train.teacher_cache import TeacherCache, plan
    from babysweep.train.trainer import make_optimizer, seed_everything

    cuda = dev.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    name = torch.cuda.get_device_name(0) if cuda else "CPU (smoke)"
    print(f"device {name}; torch {torch.__version__}; autocast {dev.autocast_dtype}; work folder {work}", flush=True)

    # 1. Peak.
    n = 8192 if cuda else 256
    a = torch.randn(n, n, device=dev.device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev.device, dtype=torch.bfloat16)
    best = float("inf")
    for _ in range(10):
        sync()
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    measured = 2 * n**3 / best
    nominal = nominal_peak(name)
    del a, b
    print(f"1. bf16 matmul peak measured {measured / 1e12:.1f} TFLOP/s"
          + (f"; nominal dense bf16 {nominal / 1e12:.0f} TFLOP/s" if nominal else "; nominal peak unknown for this name"),
          flush=True)

    # Models: Baby Llama's sizes (tiny ones for --smoke).
    babylm = REPO / "search_spaces" / "babylm"

    def model_cfg(file: str):
        section = yaml.safe_load((babylm / file).read_text())["model"]
        if args.smoke:
            section = {**section, "layers": 2, "hidden": 32, "heads": 2, "ffn": 64}
            section.pop("kv_heads", None)
        return RunConfig.of({"model": section}).model

    vocab, seq_len, batch = (500, 32, 8) if args.smoke else (16000, 128, 32)
    n_batches = 5 + args.steps
    rng = np.random.default_rng(0)
    tokens = rng.integers(4, vocab, size=(n_batches * batch + 2) * seq_len, dtype=np.uint16)
    batches = [b for _, b in zip(range(n_batches), (b for _, b in train_batches(tokens, seq_len, batch, 0, 0, bos=BOS_ID)))]
    student_cfg = model_cfg("babyllama_student.yaml")
    train_cfg = RunConfig.of({"train": {"lr": 2.5e-4}}).train

    def student():
        seed_everything(0)
        model = build_model(student_cfg, vocab, seq_len).to(dev.device)
        return model, make_optimizer(model, train_cfg)

    def timed(step) -> float:
        """Tokens/s of `step(index, batch)` over the timed batches, after 5 warm-up steps."""
        for i in range(5):
            step(i, dev.put(batches[i]))
        sync()
        start = time.perf_counter()
        for i in range(5, n_batches):
            step(i, dev.put(batches[i]))
        sync()
        return args.steps * batch * seq_len / (time.perf_counter() - start)

    def optimise(model, optimizer, loss):
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # 2. The student's step alone.
    model, optimizer = student()
    per_token = 3 * forward_flops_per_token(model, seq_len)

    def plain(i, x):
        with dev.autocast():
            loss = objectives.causal_lm_loss(model(input_ids=x).logits, x)
        optimise(model, optimizer, loss)

    alone = timed(plain)
    mfu = lambda rate: f"MFU {100 * rate * per_token / measured:.1f}% of the measured peak" + (
        f", {100 * rate * per_token / nominal:.1f}% of the nominal" if nominal else "")
    print(f"2. student {count_params(model) / 1e6:.1f}M parameters, batch {batch}x{seq_len}: {alone:,.0f} tokens/s, "
          f"{alone * per_token / 1e12:.1f} TFLOP/s; {mfu(alone)} (target >= 40%)", flush=True)

    # 3. Distillation from two teachers: on the fly, then from the exact cache.
    teacher_dirs, teachers = [], []
    for index, file in enumerate(("babyllama_teacher_llama.yaml", "babyllama_teacher_gpt2.yaml")):
        seed_everything(index + 1)
        teacher = build_model(model_cfg(file), vocab, seq_len)
        folder = work / f"teacher{index}"
        teacher.save_pretrained(folder)
        teacher_dirs.append(str(folder))
        teachers.append(teacher.to(dev.device).eval().requires_grad_(False))
    sizes = ", ".join(f"{count_params(t) / 1e6:.0f}M" for t in teachers)
    model, optimizer = student()
    kd = {"alpha": 0.5, "temperature": 2.0, "ensemble": "logits", "kd_reduction": "babyllama"}

    def on_the_fly(i, x):
        with dev.autocast():
            logits = model(input_ids=x).logits
            with torch.inference_mode():
                teacher_logits = [t(input_ids=x).logits for t in teachers]
            loss = objectives.distillation_loss(logits, x, teacher_logits, **kd).total
        optimise(model, optimizer, loss)

    fly = timed(on_the_fly)
    print(f"3. distillation from two teachers ({sizes}), on the fly: {fly:,.0f} tokens/s ({alone / fly:.2f}x the step alone)",
          flush=True)

    kcfg = RunConfig.of({"distill": {"teachers": teacher_dirs, "cache": "exact", "cache_budget_gb": 1000}}).distill

    chosen = plan(kcfg, chunks_per_epoch(len(tokens), seq_len, BOS_ID), seq_len, vocab, len(teachers), 1)
    cache = TeacherCache(chosen, work / "cache", teachers, teacher_dirs, tokens, "gpu-check-random", seq_len, 0, "logits",
                         dev, vocab, kcfg.cache_budget_gb * 1e9, [0], bos=BOS_ID)
    sync()
    start = time.perf_counter()
    cache.open(0)
    sync()
    build = time.perf_counter() - start
    model, optimizer = student()

    def cached(i, x):
        stored = cache.read(0, i, batch, x.size(0))
        with dev.autocast():
            loss = objectives.distillation_loss(model(input_ids=x).logits, x, stored, **kd).total
        optimise(model, optimizer, loss)

    warm = timed(cached)
    print(f"   from the exact cache ({chosen.estimate_bytes / 1e9:.2f} GB built in {build:.1f} s), warm: {warm:,.0f} tokens/s "
          f"({alone / warm:.2f}x the step alone)", flush=True)

    # 4. Packing: 4 baseline trials at a quarter GPU each against one GPU per trial.
    if args.skip_packing or args.smoke:
        print("4. packing: skipped")
        return 0
    from babysweep.data import prepare
    from babysweep.spec.load import load_spec

    tokens_dir = work / "token-cache"  # shared by both sweeps and prepared before either is timed
    base = {"search.samples": 4, "search.concurrent": 4, "search.algorithm": "random", "search.scheduler": "none",
            "train.max_steps": args.pack_steps, "resources.cpu": 1, "data.cache_dir": str(tokens_dir)}
    prepare(RunConfig.of({"data": load_spec(REPO / "search_spaces" / "baselines.yaml", overrides=base).materialize(
        {"train.lr": 1e-3, "train.weight_decay": 0.1, "train.warmup_steps": 0, "train.scheduler": "cosine",
         "antlm.schedule": "4clm"})["data"]}).data)
    walls = {}
    for gpu in (1.0, 0.25):
        project = work / f"pack-{gpu}"
        env = {**os.environ, "BABYSWEEP_PROJECT": str(project), "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "0"}
        sets = {**base, "resources.gpu": gpu}
        argv = [sys.executable, "-m", "babysweep.cli", "run", "search_spaces/baselines.yaml", "--name", f"pack{int(gpu * 100)}"]
        for key, value in sets.items():
            argv += ["--set", f"{key}={value}"]
        start = time.perf_counter()
        subprocess.run(argv, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
        walls[gpu] = time.perf_counter() - start
    print(f"4. packing, 4 baseline trials of {args.pack_steps} steps: 1 GPU per trial {walls[1.0]:.0f} s, 0.25 GPU per trial "
          f"{walls[0.25]:.0f} s: throughput {walls[1.0] / walls[0.25]:.2f}x (target >= 1.8x)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
