"""Utilisation of the training step: achieved GFLOP/s of the default models against this core's matmul peak.

    python bench/utilisation.py                  # every kind and variant, 3 rounds: longer still
    python bench/utilisation.py --kinds baseline,teacher,student --variants fused,compiled   # 8 min on a 2-core CPU

In one run, each measurement in a fresh subprocess with one torch thread (as a sweep trial with cpu: 1):
1. peak: the best of a few repeats of an fp32 (and a bf16) square matmul with torch, in GFLOP/s;
2. one training step of each default model of search_spaces/study.yaml's sweeps, built and run by the
   trainer itself (`trainer.train` with train.max_steps; its progress callback every 10 steps is the
   clock, the first 10 steps are warm-up and not counted): the teacher (teachers.yaml: LLaMA, batch 16),
   the student (students.yaml, alpha 0.5, T 2, reading a warm teacher cache built before it is timed from
   two untrained teachers of teachers.yaml's sizes) and the baseline (baselines.yaml: the student
   without distillation);
3. each alone (one process), then with every core busy (one process per core, all the same kind, started
   together), the best 10-step window of each process; a round with every core busy counts its slowest process;
   each measurement is made in --rounds rounds of fresh processes, one after the other, and the best round
   counts, as the peak is the best of its repeats: on a shared host one 10-step window moves by 3-5% between
   neighbouring runs while the matmul peak does not, so a single round says as much about the neighbours as
   about the step. Every round's utilisation is printed beside the best;
4. achieved GFLOP/s from babysweep's FLOPs model (babysweep/flops.py: 3 F per trained token; the student's
   warm-cache teachers are not run, so their forward passes are not counted here) and
   utilisation = achieved / the one-thread fp32 peak measured alone in this run.
Each kind runs with train.fused false, true, and true with train.compile (--variants), so one run shows the step
before and after the fused kernels and the compiled base model under the same load; "setup and first 10 steps" shows
what compiling costs a process (Inductor's on-disk cache is the bench project's, empty at the start of a run: the
first compiled process of a kind compiles from scratch, the others read the cache). Rates per CPU second of the process are printed beside the wall-clock
ones: on a machine that others share, they say what one core gives, where wall time says what the load left.
The load average is printed with each line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
KINDS = ("teacher", "student", "baseline")
WINDOW = 10  # the trainer's PROGRESS_EVERY


def peak(dtype_name: str, repeats: int) -> tuple[float, float]:
    """Best GFLOP/s of an n x n matmul over a few sizes and repeats: per wall second, per CPU second."""
    import torch

    dtype = getattr(torch, dtype_name)
    best, best_cpu = 0.0, 0.0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        a @ b
        for _ in range(repeats):
            start, cpu = time.perf_counter(), time.process_time()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
            best_cpu = max(best_cpu, 2 * n**3 / max(time.process_time() - cpu, 1e-6) / 1e9)
    return best, best_cpu


def configs(project: Path, words: int, steps: int, precision: str) -> dict[str, dict]:
    from babysweep.spec.load import load_spec

    common = {"train.lr": 2e-3, "train.weight_decay": 0.1, "train.warmup_steps": 100, "train.scheduler": "cosine",
              "train.max_steps": steps, "train.threads": 1, "train.precision": precision, "train.epochs": 1,
              "data.builtin_words": words, "data.cache_dir": str(project / "cache"),
              "eval.blimp": "none", "eval.dev_batches": 1}
    student_fixed = {"distill.temperature": 2.0, "distill.alpha": 0.5, "antlm.schedule": "1clm"}
    teachers = [str(project / f"teacher-{arch}") for arch in ("llama", "gpt2")]
    space = REPO / "search_spaces"
    return {
        "teacher": load_spec(space / "teachers.yaml").materialize(
            {**common, "model.arch": "llama", "model.attention_dropout": 0.0, "train.batch_size": 16}),
        "student": load_spec(space / "students.yaml").materialize({**common, **student_fixed}, teachers=teachers),
        "baseline": load_spec(space / "baselines.yaml").materialize({**common, "antlm.schedule": "1clm"}),
        "teacher-gpt2": load_spec(space / "teachers.yaml").materialize(
            {**common, "model.arch": "gpt2", "model.dropout": 0.0, "model.attention_dropout": 0.0, "train.batch_size": 16}),
    }


def worker(args) -> None:
    """One measurement in this process; prints one JSON line."""
    import torch

    torch.set_num_threads(1)
    if args.worker == "peak":
        (fp32, fp32_cpu), (bf16, bf16_cpu) = peak("float32", args.repeats), peak("bfloat16", args.repeats)
        print(json.dumps({"fp32": fp32, "bf16": bf16, "fp32_cpu": fp32_cpu, "bf16_cpu": bf16_cpu}))
        return
    from babysweep.core import metrics as M
    from babysweep.lm.flops import forward_flops_per_token
    from babysweep.core.config import RunConfig
    from babysweep.lm.models import build_model
    from babysweep.train.trainer import train

    cfg = configs(Path(args.project), args.words, args.steps, args.precision)[args.worker]
    cfg["train"]["fused"] = args.variant in ("fused", "compiled")
    cfg["train"]["compile"] = args.variant == "compiled"
    stamps: list[tuple[float, float]] = []
    started = time.perf_counter()
    out = Path(args.project) / "runs" / f"{args.worker}-{os.getpid()}-{time.monotonic_ns()}"
    final = train(cfg, out, progress=lambda info: stamps.append((time.perf_counter(), time.process_time())))
    tokens = WINDOW * cfg["train"]["batch_size"] * cfg["data"]["seq_len"]
    rates = [tokens / (b[0] - a[0]) for a, b in itertools.pairwise(stamps)]  # the first 10 steps (warm-up) are not a window
    cpu_rates = [tokens / max(b[1] - a[1], 1e-6) for a, b in itertools.pairwise(stamps)]
    vocab = int(cfg["data"]["tokenizer"]["vocab_size"])
    with torch.device("meta"):
        model = build_model(RunConfig.of(cfg).model, vocab_size=vocab, seq_len=cfg["data"]["seq_len"])
    print(json.dumps({"first_window_s": stamps[0][0] - started, "best": max(rates), "median": sorted(rates)[len(rates) // 2], "best_cpu": max(cpu_rates),
                      "per_token": 3 * forward_flops_per_token(
        model, cfg["data"]["seq_len"]), "loss": final[M.TRAIN_LOSS]}))


def launch(args, kind: str, copies: int) -> list[dict]:
    argv = [sys.executable, __file__, "--worker", kind, "--project", str(args.project), "--words", str(args.words),
            "--steps", str(args.steps), "--repeats", str(args.repeats), "--precision", args.precision, "--variant", args.variant]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True) for _ in range(copies)]
    results = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"bench worker {kind} failed (exit {proc.returncode}); run it alone to see why: {' '.join(argv)}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def prepare(args) -> None:
    """Token cache, two untrained teachers of teachers.yaml's sizes, and the student's warm teacher cache (epoch 0)."""
    import contextlib
    import io

    from babysweep.core.config import RunConfig
    from babysweep.data import prepare as prepare_data
    from babysweep.lm.models import build_model, save_model
    from babysweep.train.trainer import seed_everything, train

    cfgs = configs(args.project, args.words, args.steps, args.precision)
    data = prepare_data(RunConfig.of(cfgs["teacher"]).data)
    for index, kind in enumerate(("teacher", "teacher-gpt2")):
        seed_everything(index)
        model = build_model(RunConfig.of(cfgs[kind]).model, len(data.tokenizer), cfgs[kind]["data"]["seq_len"])
        save_model(model, data.tokenizer, args.project / f"teacher-{cfgs[kind]['model']['arch']}")
    warm = json.loads(json.dumps(cfgs["student"]))
    warm["train"]["max_steps"] = 1
    with contextlib.redirect_stdout(io.StringIO()):
        train(warm, args.project / "runs" / "cache-build")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60, help="training steps per measurement (the first 10 are warm-up)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each matmul size for the peak")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of each step measurement, fresh processes one round after the other; the best counts")
    parser.add_argument("--words", type=int, default=150_000, help="built-in corpus size (enough batches for --steps)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="train.precision of the steps")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="processes when every core is busy")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--variants", default="unfused,fused,compiled",
                        help="train.fused false (unfused), true (fused), true with train.compile (compiled)")
    parser.add_argument("--variant", default="fused", help=argparse.SUPPRESS)  # one of --variants, in a worker
    parser.add_argument("--project", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    args.project = Path(args.project or tempfile.mkdtemp(prefix="bench-util-")).resolve()
    os.environ["BABYSWEEP_PROJECT"] = str(args.project)
    import torch

    print(f"torch {torch.__version__}, {args.cores} cores, precision {args.precision}, {args.steps} steps per measurement; "
          f"load average {os.getloadavg()[0]:.2f} at start", flush=True)
    prepare(args)
    alone_peak = launch(args, "peak", 1)[0]
    busy_peak = launch(args, "peak", args.cores)
    print(f"matmul peak, 1 thread alone: fp32 {alone_peak['fp32']:.1f} GFLOP/s (per CPU second {alone_peak['fp32_cpu']:.1f}), "
          f"bf16 {alone_peak['bf16']:.1f} ({alone_peak['bf16_cpu']:.1f}); every core busy, the slowest process: "
          f"fp32 {min(p['fp32'] for p in busy_peak):.1f} ({min(p['fp32_cpu'] for p in busy_peak):.1f}), "
          f"bf16 {min(p['bf16'] for p in busy_peak):.1f} ({min(p['bf16_cpu'] for p in busy_peak):.1f})", flush=True)
    print("utilisation = achieved / the 1-thread fp32 peak alone, per wall second (what the machine gave) and per CPU "
          "second of the process (what one core gives it; robust to other users' load)")
    reference, reference_cpu = alone_peak["fp32"], alone_peak["fp32_cpu"]
    for kind in args.kinds.split(","):
        for variant in args.variants.split(","):
            args.variant = variant
            for label, copies in (("alone", 1), (f"{args.cores} busy", args.cores)):
                # Each round: `copies` processes at once, judged by the slowest. The best round counts, as the peak's
                # best repeat does; every round's figure is printed beside it.
                rounds = [launch(args, kind, copies) for _ in range(args.rounds)]
                slowest = [min(results, key=lambda r: r["best"]) for results in rounds]
                chosen = max(slowest, key=lambda r: r["best"])  # the best round's slowest process
                per_token = chosen["per_token"]
                achieved = chosen["best"] * per_token / 1e9
                achieved_cpu = max(min(r["best_cpu"] for r in results) for results in rounds) * per_token / 1e9
                each = ", ".join(f"{100 * r['best'] * per_token / 1e9 / reference:.1f}" for r in slowest)
                print(f"{kind:8s} {variant:8s} {label:7s} {chosen['best']:6.0f} tok/s (median window {chosen['median']:6.0f}), "
                      f"{achieved:5.1f} GFLOP/s, {100 * achieved / reference:4.1f}% (rounds: {each}); per CPU second "
                      f"{achieved_cpu:5.1f} GFLOP/s, {100 * achieved_cpu / reference_cpu:4.1f}% (train loss {chosen['loss']:.4f}; "
                      f"setup and first 10 steps {slowest[0]['first_window_s']:.1f} s in the first round; "
                      f"load average {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
