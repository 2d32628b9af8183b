"""Teacher-output cache: student trials and a student sweep with the cache against distilling on the fly.

    python bench/teacher_cache.py                       # about 20 min on a 2-core CPU
    python bench/teacher_cache.py --samples 4 --ks 64 --words 50000    # smaller: 4 trials, a fifth of the corpus

In a fresh temporary project, from the shipped specs:
1. a reduced teacher sweep (search_spaces/teachers.yaml, --teacher-samples trials) gives teachers;
2. the default student sweep (search_spaces/students.yaml, --samples trials) runs twice: on the fly
   (distill.cache none) and with the cache (auto: exact here), its cache build included.
   Target: cached sweep / on-the-fly sweep <= 0.8.
3. one student config (students.yaml's sizes, all-CLM, alpha 0.5, T 2, one thread as a sweep trial
   has) is trained without distillation, on the fly, with a cold exact cache, with the warm one.
   Target: warm exact / no distillation <= 1.10 (CPU seconds); today's on-the-fly ratio is printed beside it, and the
   warm trial with train.fused false (the step before objectives.head_distillation_loss).
4. the same student with topk:K for each K of --ks (dev loss and BLiMP minus on the fly's; the exact
   cache's own difference is printed too, as the float16 floor).
5. the FLOPs model (babysweep/flops.py) per token for these models and for Baby Llama's sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from babysweep.core import metrics as M  # noqa: E402
from babysweep.train import teacher_cache_files as files  # noqa: E402
from babysweep.core.config import RunConfig  # noqa: E402
from babysweep.lm.flops import forward_flops_per_token  # noqa: E402
from babysweep.lm.models import build_model, load_model  # noqa: E402
from babysweep.spec.load import load_spec  # noqa: E402
from babysweep.train.trainer import train  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--samples", type=int, default=8, help="trials of each student sweep")
parser.add_argument("--teacher-samples", type=int, default=2, help="trials of the teacher sweep")
parser.add_argument("--words", type=int, default=250_000, help="data.builtin_words of every run (the specs' 250,000)")
parser.add_argument("--ks", default="16,64,256", help="top-k sizes to compare with on the fly ('' for none)")
parser.add_argument("--skip-sweeps", action="store_true", help="only the single-trial figures (still trains teachers)")
parser.add_argument("--project", default=None, help="project folder (default: a fresh temporary one)")
args = parser.parse_args()

project = Path(args.project or tempfile.mkdtemp(prefix="bench-tcache-")).resolve()
env = {**os.environ, "BABYSWEEP_PROJECT": str(project), "PYTHONPATH": str(REPO)}
os.environ["BABYSWEEP_PROJECT"] = str(project)
print(f"project {project}; load average {os.getloadavg()[0]:.1f} at start", flush=True)


def cli(*argv: str) -> float:
    """Run `babysweep ARGV` in the project; returns its wall time."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "babysweep.cli", *argv], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


words = f"data.builtin_words={args.words}"
t_teachers = cli("run", "search_spaces/teachers.yaml", "--set", f"search.samples={args.teacher_samples}", "--set", words)
print(f"teacher sweep ({args.teacher_samples} trials): {t_teachers:.0f} s", flush=True)

sweeps = {}
if not args.skip_sweeps:
    for name, cache in (("students_fly", "none"), ("students", "auto")):
        sweeps[name] = cli("run", "search_spaces/students.yaml", "--name", name, "--set", f"search.samples={args.samples}",
                           "--set", words, "--set", f"distill.cache={cache}")
        print(f"student sweep {name} (distill.cache {cache}, {args.samples} trials): {sweeps[name]:.0f} s", flush=True)
    cache_size = files.usage(files.cache_root(project / "sweeps" / ".cache"))

# Teachers: the two best of the teacher sweep, as the student sweeps chose them (or any two finished).
saved = project / "sweeps" / "students" / "teachers.json"
if saved.is_file():
    teachers = [r["model_dir"] for r in json.loads(saved.read_text())]
else:
    teachers = [str(p) for p in sorted((project / "sweeps" / "teachers" / "models").glob("*/final"))][:2]

spec = load_spec(REPO / "search_spaces" / "students.yaml")
fixed = {"train.lr": 2e-3, "train.weight_decay": 0.1, "train.warmup_steps": 100, "train.scheduler": "cosine",
         "distill.temperature": 2.0, "distill.alpha": 0.5, "antlm.schedule": f"{spec.space['train']['epochs']}clm"}  # all CLM
base = spec.materialize(fixed, teachers=teachers)
base["train"]["threads"] = 1  # one thread, as a sweep trial with cpu: 1 has
base["data"]["builtin_words"] = args.words
base["data"]["cache_dir"] = str(project / "sweeps" / ".cache")


stamp = time.strftime("%H%M%S")  # a rerun on the same --project trains afresh, with a cold cache of its own


cpu_seconds: dict[str, float] = {}  # the process's CPU time of each train(): what a trial costs on a machine others share


def student(name: str, train_cfg: dict | None = None, **distill) -> tuple[dict, float]:
    config = json.loads(json.dumps(base))
    config["distill"].update(distill)
    config["train"].update(train_cfg or {})
    started, cpu = time.perf_counter(), time.process_time()
    final = train(config, project / f"runs-{stamp}" / name)
    seconds = time.perf_counter() - started
    cpu_seconds[name] = time.process_time() - cpu
    print(f"   ({name}: {seconds:.1f} s, CPU {cpu_seconds[name]:.1f} s, dev loss {final[M.EVAL_LOSS]:.4f}, "
          f"BLiMP {100 * final.get(M.BLIMP_OVERALL, 0):.2f}; load average {os.getloadavg()[0]:.1f})", flush=True)
    return final, seconds


runs = {}
runs["no distillation"] = student("base", alpha=1.0, cache="none")
runs["no distillation, unfused"] = student("base-unfused", {"fused": False}, alpha=1.0, cache="none")
runs["on the fly"] = student("fly", cache="none")
cold_dir = str(project / f"cold-cache-{stamp}")  # a cache no sweep filled
base["data"]["cache_dir"] = cold_dir
runs["exact, cold"] = student("cold", cache="exact")
runs["exact, warm"] = student("warm", cache="exact")
runs["exact, warm, unfused"] = student("warm-unfused", {"fused": False}, cache="exact")  # the logits, then the KD loss
ks = [int(k) for k in args.ks.split(",") if k.strip()]
for k in ks:
    runs[f"topk:{k}"] = student(f"topk{k}", cache=f"topk:{k}")

print(f"\nload average {os.getloadavg()[0]:.1f} at the end")
print("\n1. one student trial (students.yaml sizes, all CLM, alpha 0.5, T 2, 1 thread), wall time of train():")
t_base = runs["no distillation"][1]
names = {"no distillation": "base", "no distillation, unfused": "base-unfused", "on the fly": "fly", "exact, cold": "cold",
         "exact, warm": "warm", "exact, warm, unfused": "warm-unfused"}
for name, short in names.items():
    final, seconds = runs[name]
    print(f"   {name:24s} {seconds:7.1f} s  {seconds / t_base:5.2f}x   CPU {cpu_seconds[short]:7.1f} s "
          f"{cpu_seconds[short] / cpu_seconds['base']:5.2f}x   train/tokens_per_s {final[M.TOKENS_PER_S]:8.0f}")
print(f"   warm exact / no distillation: {runs['exact, warm'][1] / t_base:.2f}x wall, "
      f"{cpu_seconds['warm'] / cpu_seconds['base']:.2f}x CPU (target <= 1.10); on the fly / no distillation: "
      f"{runs['on the fly'][1] / t_base:.2f}x wall; against the unfused no-distillation trial (train.fused false): "
      f"{cpu_seconds['warm'] / cpu_seconds['base-unfused']:.2f}x CPU; warm with train.fused false (the logits stored, then "
      f"the KD loss): {cpu_seconds['warm-unfused'] / cpu_seconds['base']:.2f}x CPU")

if sweeps:
    ratio = sweeps["students"] / sweeps["students_fly"]
    print(f"\n2. student sweep, {args.samples} trials: on the fly {sweeps['students_fly']:.0f} s, with the cache (build "
          f"included) {sweeps['students']:.0f} s: {ratio:.2f}x (target <= 0.8); cache on disk "
          f"{files.human(cache_size[0])} in {cache_size[1]} epoch entries")

if ks:
    fly = runs["on the fly"][0]
    print("\n3. objective: differences to on the fly (same seed, same chunks; dev loss, BLiMP overall points)")
    for name in ("exact, warm", *(f"topk:{k}" for k in ks)):
        final = runs[name][0]
        print(f"   {name:12s} dev loss {final[M.EVAL_LOSS] - fly[M.EVAL_LOSS]:+.4f}   "
              f"BLiMP {100 * (final[M.BLIMP_OVERALL] - fly[M.BLIMP_OVERALL]):+.2f}")
    print(f"   (on the fly: dev loss {fly[M.EVAL_LOSS]:.4f}, BLiMP {100 * fly[M.BLIMP_OVERALL]:.2f}; "
          f"no distillation: {runs['no distillation'][0][M.EVAL_LOSS]:.4f}, "
          f"{100 * runs['no distillation'][0][M.BLIMP_OVERALL]:.2f})")


def model_flops(path: str, seq_len: int) -> tuple[int, int]:
    """(forward FLOPs per token, vocab) of a spec's model, built on the meta device (no memory)."""
    data = yaml.safe_load(Path(path).read_text())
    cfg = RunConfig.of({"model": data["model"], "data": {"seq_len": data["data"]["seq_len"]}})
    vocab = data["data"]["tokenizer"]["vocab_size"]
    with torch.device("meta"):
        model = build_model(cfg.model, vocab_size=vocab, seq_len=seq_len)
    return forward_flops_per_token(model, seq_len), vocab


def flops_lines(label: str, f_student: int, f_teachers: list[int], vocab: int, sharing: int) -> None:
    train_s = 3 * f_student
    fly = (train_s + sum(f_teachers)) / train_s
    # The warm path adds the KD loss: about 10 operations per vocabulary entry per token (softmaxes, KL, gradient).
    warm = (train_s + 10 * vocab) / train_s
    amortised = (train_s + 10 * vocab + sum(f_teachers) / sharing) / train_s
    print(f"   {label}: student F {f_student / 1e6:.1f} MFLOP/token, teachers {', '.join(f'{f / 1e6:.1f}' for f in f_teachers)}: "
          f"on the fly {fly:.2f}x the student alone; warm cache {warm:.3f}x; with the build shared by {sharing} trials {amortised:.3f}x")


print("\n4. FLOPs model (lm/flops.py: 3 F per trained token, one F per teacher per distilled token), per student token:")
seq = base["data"]["seq_len"]
f_s = forward_flops_per_token(load_model(project / f"runs-{stamp}" / "base" / "final")[0], seq)
f_t = [forward_flops_per_token(load_model(t)[0], seq) for t in teachers]
flops_lines("this bench's models", f_s, f_t, base["data"]["tokenizer"]["vocab_size"], args.samples)
babylm = REPO / "search_spaces" / "babylm"
f_58m, vocab = model_flops(babylm / "babyllama_student.yaml", 128)
f_gpt2 = model_flops(babylm / "babyllama_teacher_gpt2.yaml", 128)[0]
f_llama = model_flops(babylm / "babyllama_teacher_llama.yaml", 128)[0]
flops_lines("Baby Llama (58M student; 705M GPT-2 + 360M LLaMA teachers, seq 128)", f_58m, [f_gpt2, f_llama], vocab, 8)
tokens = 13_000_000  # about 10M words of BabyLM at ~1.3 tokens per word with a 16k BPE
print(f"   Baby Llama's cache per epoch (~{tokens / 1e6:.0f}M tokens): exact {files.human(tokens * vocab * 2)}, "
      + ", ".join(f"topk:{k} {files.human(tokens * (k * 4 + 4))}" for k in (16, 64, 256)))
