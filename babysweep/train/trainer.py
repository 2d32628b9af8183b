"""One training run, as a plain function of a config (a RunConfig, or its dict). Knows nothing of Ray or MLflow.

    final = train(config, out_dir="runs/t1", reporter=lambda metrics, ckpt: print(metrics))
    final = train(config, out_dir="runs/t1", resume=True)      # continue from runs/t1/checkpoints

Each epoch ends with a dev evaluation, a checkpoint under <out_dir>/checkpoints/step_<N>/ and one
call `reporter(metrics, checkpoint_folder)`; the sweep layer turns that call into a Ray report.
The last epoch also saves the model in Hugging Face format to <out_dir>/final/ and scores BLiMP (and, with
eval.suite and eval.suite_on: all, BabyLM's zero-shot suite: suite.json, suite/<column>, suite/macro), so
its report carries the final metrics. Metrics per epoch go to <out_dir>/metrics.jsonl. With
train.babylm_checkpoints the model is also saved as <out_dir>/chck_<n>M when the words seen reach BabyLM's
checkpoint counts (babylm_checkpoint_names; Run.words_seen says how words are counted).

Objectives per epoch follow the AntLM schedule: CLM epochs train next-token prediction (with
ensemble distillation when teachers are given and alpha < 1); MLM epochs train masked-token
prediction with bidirectional attention, without distillation (the teachers are causal).
eval/loss is always the causal next-token loss on the dev set, whatever the phase, so runs compare.

The parts, in the order a run meets them: setup() builds a Run (data, model, teachers, optimiser),
restore() returns the LoopState to start from, batch_loss() is one micro-batch's loss,
epoch_metrics() ends an epoch, save() writes a checkpoint; train() is the loop that ties them.
Each epoch's metrics include the learning rate of its last optimiser step (train/lr), and running
totals of the tokens trained on and the training FLOPs (train/tokens_seen, train/flops; babysweep/flops.py).

Exact resume: the checkpoint holds model, optimiser, scheduler, torch/numpy/python RNG states, the
epoch, the batch position within it, the step and the running sums of the epoch; batch order and
MLM masks are functions of (seed, epoch, batch), so a resumed run repeats the same computation.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from babysweep import __version__
from babysweep.lm import flops

from babysweep.core import metrics as M, schedule
from babysweep.core import paths
from babysweep.core.atomic import write_text_atomic
from babysweep.train.checkpoint import META, checkpoints, load_checkpoint, load_latest, save_checkpoint
from babysweep.core.config import RunConfig, TrainingConfig, budget_spent
from babysweep.data import blimp_source, prepare
from babysweep.data.batches import batches_per_epoch, chunks_per_epoch, dev_batches, train_batches
from babysweep.data.tokenizer import MASK_ID, fingerprint
from babysweep.core.errors import UserError
from babysweep.lm.models import build_model, count_params, load_model, save_model, tabulate_rotary
from babysweep.lm import cpu_attention, cpu_head, cpu_kernels

Reporter = Callable[[dict, Path | None], None]
Progress = Callable[[dict], None]
PROGRESS_EVERY = 10  # steps between progress callbacks


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def _null_reporter(metrics: dict, checkpoint: Path | None) -> None:
    pass


def _null_progress(info: dict) -> None:
    pass


@dataclass
class Device:
    device: torch.device
    autocast_dtype: torch.dtype | None  # bf16 on CUDA unless fp32 was asked

    def autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def put(self, batch: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch


def pick_device(training: TrainingConfig) -> Device:
    wanted = training.device
    if wanted == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device is cuda but no CUDA device is available.")
    use_cuda = wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available())
    if not use_cuda:
        if training.threads:
            torch.set_num_threads(training.threads)
        if training.precision == "bf16":
            return Device(torch.device("cpu"), torch.bfloat16)
        return Device(torch.device("cpu"), None)
    torch.backends.cuda.matmul.allow_tf32 = True
    return Device(torch.device("cuda"), None if training.precision == "fp32" else torch.bfloat16)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The RNG states in forms torch.load(weights_only=True) accepts: tensors, tuples, ints, floats, strings."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else keys  # an array in checkpoints written before weights_only
    np.random.set_state((kind, keys.astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_optimizer(model: torch.nn.Module, training: TrainingConfig) -> torch.optim.AdamW:
    # Weight decay on matrices only; biases and norm gains are not decayed (the usual GPT recipe).
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": training.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = training.fused and all(p.device.type in ("cpu", "cuda") for p in params)  # one kernel for all parameters
    return torch.optim.AdamW(groups, lr=training.lr, betas=(training.beta1, training.beta2), eps=training.eps, fused=fused or None)


def lr_lambda(kind: str, warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if kind == "constant":
            return 1.0
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return 0.5 * (1 + math.cos(math.pi * progress)) if kind == "cosine" else 1.0 - progress

    return factor


def load_teachers(paths: list[str], student_tokenizer, device: torch.device) -> list[torch.nn.Module]:
    """Frozen teachers in eval mode on the student's device; a different tokenizer is refused."""
    student_fp = fingerprint(student_tokenizer)
    teachers = []
    for path in paths:
        model, tok = load_model(path, device)
        if fingerprint(tok) != student_fp:
            raise UserError(
                f"distill.teachers: {path} was trained with another tokenizer than this run's "
                "(teachers and student must share data.train and data.tokenizer)."
            )
        model.requires_grad_(False)
        teachers.append(model)
    return teachers


@torch.inference_mode()
def dev_loss(model, tokens: np.ndarray, seq_len: int, batch_size: int, dev: Device, limit: int | None) -> float:
    """Mean next-token cross-entropy per dev token (fixed chunks)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in dev_batches(tokens, seq_len, batch_size, limit):
        batch = dev.put(batch)
        with dev.autocast():
            logits = model(input_ids=batch).logits
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="sum"
        )
        total += float(losses)
        count += batch[:, 1:].numel()
    model.train(was_training)
    return total / max(count, 1)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in rows), "the trial's metrics")


# Checkpoint keys: state.pt holds the tensors, meta.json the loop state (and, for a reader, the phase and config).
MODEL, OPTIMIZER, SCHEDULER, RNG = "model", "optimizer", "scheduler", "rng"
META_LOOP, META_PHASE, META_CONFIG = "loop", "phase", "config"


@dataclass
class LoopState:
    """Where the loop is: everything a checkpoint carries besides model, optimiser, scheduler and RNG."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches of the current epoch consumed
    step: int = 0  # optimiser steps taken
    loss_sum: float = 0.0  # running training loss of the current epoch
    loss_count: int = 0
    tokens: int = 0  # tokens trained on in the current epoch
    train_time: float = 0.0  # seconds spent in the current epoch's training steps
    elapsed: float = 0.0  # seconds since the run started, across resumes
    lr: float = 0.0  # learning rate of the last optimiser step
    history: list = field(default_factory=list)  # one metrics dict per completed epoch

    def start_next_epoch(self) -> None:
        self.epoch += 1
        self.batch, self.loss_sum, self.loss_count, self.tokens, self.train_time = 0, 0.0, 0, 0, 0.0


@dataclass
class Run:
    """What setup() builds for one run; the loop reads it and never changes it (but for the model's weights)."""

    cfg: RunConfig
    out_dir: Path
    dev: Device
    data: Any  # babysweep.data.PreparedData
    model: torch.nn.Module
    n_params: int
    phases: list[str]
    teachers: list[torch.nn.Module]
    pairs: list | None  # BLiMP pairs, or None when eval.blimp is "none"
    n_batches: int  # batches per epoch
    total_steps: int
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    cache_plan: Any = None  # teacher_cache.Plan: which way the teachers' outputs come (None without teachers)
    teacher_cache: Any = None  # teacher_cache.TeacherCache, or None to run the teachers on the fly
    teacher_words: float | None = None  # the teachers' own training words, summed (None: a teacher's are unknown)
    body: Any = None  # train.compile: torch.compile of model.base_model, for full training batches only

    def words_seen(self, loop: "LoopState") -> float | None:
        """Words trained on so far, as BabyLM counts them ("total count not unique"): each completed epoch is the
        corpus's words (data/train_words), and the current one its share of them in proportion to the epoch's
        training tokens consumed so far. None when the corpus's words are unknown."""
        words = self.data.train_words
        if words is None:
            return None
        per_epoch = chunks_per_epoch(len(self.data.train), self.cfg.data.seq_len, self.data.chunk_bos) * self.cfg.data.seq_len
        return (loop.epoch + min(loop.tokens / max(per_epoch, 1), 1.0)) * words


def setup(config: RunConfig | dict[str, Any], out_dir: Path) -> Run:
    """Resolve the config, seed, load data, model, teachers and BLiMP pairs, and build the optimiser."""
    from babysweep.eval import blimp
    cfg = RunConfig.of(config)
    training, distill = cfg.train, cfg.distill
    dev = pick_device(training)
    seed_everything(training.seed)
    data = prepare(cfg.data)
    seq_len = cfg.data.seq_len
    model = build_model(cfg.model, vocab_size=len(data.tokenizer), seq_len=seq_len).to(dev.device)
    phases = schedule.phases(cfg.antlm.schedule, cfg.antlm.mlm_ratio, training.epochs)
    teachers = load_teachers(distill.teachers, data.tokenizer, dev.device) if distill.teachers and distill.alpha < 1 else []
    source = blimp_source(cfg.eval, cfg.data)
    pairs = blimp.load_pairs(source) if source is not None else None

    n_batches = batches_per_epoch(len(data.train), seq_len, training.batch_size, data.chunk_bos)
    if n_batches == 0:
        need = 2 * seq_len - (data.chunk_bos is not None)  # chunks_per_epoch's smallest corpus with one chunk
        raise UserError(f"data.train: the corpus has fewer than {need} tokens, too few for one seq_len chunk.")
    total_steps = math.ceil(n_batches / training.grad_accum) * training.epochs
    if training.max_steps:
        total_steps = min(total_steps, training.max_steps)
    optimizer = make_optimizer(model, training)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(training.scheduler, training.warmup_steps, total_steps))
    from babysweep.train.teacher_cache import for_run

    cache_plan, cache = for_run(cfg, data, teachers, dev, phases)
    if training.babylm_checkpoints and data.train_words is None:
        raise UserError("train.babylm_checkpoints: this corpus's training words are unknown, so words seen cannot be counted.")
    if cfg.eval.suite is not None and cfg.eval.suite_on == "all" and not Path(cfg.eval.suite).expanduser().is_dir():
        raise UserError(f"eval.suite: the suite's data folder {cfg.eval.suite} does not exist.")
    words = teachers_words(distill.teachers) if teachers else None
    if training.fused and dev.device.type == "cpu" and dev.autocast_dtype is None:  # the fused head's row pass in C++
        cpu_head.use_cpu_head(paths.cache_dir(cfg.data.cache_dir) / "kernels")
    return Run(cfg, Path(out_dir), dev, data, model, count_params(model), phases, teachers, pairs, n_batches,
               total_steps, optimizer, scheduler, cache_plan, cache, words, compiled_body(cfg, model))


def compiled_body(cfg: RunConfig, model: torch.nn.Module):
    """train.compile: the base model compiled for one shape (dynamic=False: the full batch), else None. Inductor's
    on-disk cache goes to <data.cache_dir>/inductor/<cpu_attention version> unless TORCHINDUCTOR_CACHE_DIR is set.
    A LLaMA model's rotary module is swapped in place for a RotaryTable (compiled code reads its table; eager calls
    are unchanged), and on the CPU the model's attention goes through lm/cpu_attention.py's kernel in compiled code
    (eager calls keep SDPA)."""
    if not cfg.train.compile:
        return None
    on_cpu = next(model.parameters()).device.type == "cpu"
    compiler = cpu_kernels.cpp_compiler()
    if on_cpu and shutil.which(compiler) is None:
        raise UserError(f"train.compile: torch.compile on the CPU builds C++ kernels with {compiler}, which is not "
                        "installed (install it, set CXX to a C++ compiler, or set train.compile to false).")
    cache = paths.cache_dir(cfg.data.cache_dir)
    inductor_cache_here(cache / "inductor" / cpu_attention.version())
    tabulate_rotary(model)
    if on_cpu:
        cpu_attention.use_cpu_attention(model, cache / "kernels")
    return torch.compile(model.base_model, dynamic=False)


def inductor_cache_here(folder: Path) -> None:
    """Point Inductor's on-disk cache at `folder` unless the user chose one. Importing transformers already fills
    TORCHINDUCTOR_CACHE_DIR with torch's default (a folder in /tmp), so that value counts as not chosen."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current is None or os.path.abspath(current) == os.path.abspath(default_cache_dir()):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)


def hidden_states(run: Run, batch: torch.Tensor) -> torch.Tensor:
    """The base model's last hidden states; a full batch goes through the compiled body when there is one, any other
    shape stays eager (one compiled shape, no recompiles)."""
    full = batch.shape == (run.cfg.train.batch_size, run.cfg.data.seq_len)
    body = run.body if run.body is not None and full else run.model.base_model
    return body(input_ids=batch).last_hidden_state


def causal_logits(run: Run, batch: torch.Tensor) -> torch.Tensor:
    """model(batch).logits, through the compiled body when there is one (the head is the model's own)."""
    if run.body is None:
        return run.model(input_ids=batch).logits
    return run.model.get_output_embeddings()(hidden_states(run, batch))


def _words_seen(row: dict) -> float | None:
    """A metrics row's words seen: train/words_seen, or (rows written before it was logged) tokens seen x words
    per token."""
    if isinstance(row.get(M.WORDS_SEEN), (int, float)):
        return float(row[M.WORDS_SEEN])
    tokens, words, per = row.get(M.TOKENS_SEEN), row.get(M.TRAIN_WORDS), row.get(M.TRAIN_TOKENS)
    if all(isinstance(v, (int, float)) for v in (tokens, words, per)) and per:
        return tokens * words / per
    return None


def teachers_words(folders: list[str]) -> float | None:
    """The words the teachers were trained on, summed (their own teachers' included, as BabyLM counts them),
    from each teacher run's metrics.jsonl beside its model folder (<run>/final); None when one is unknown."""
    total = 0.0
    for folder in folders:
        path = Path(folder).expanduser().parent / "metrics.jsonl"
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (OSError, ValueError):
            return None
        seen = _words_seen(rows[-1]) if rows else None
        if seen is None:
            return None
        total += seen + float(rows[-1].get(M.TEACHER_WORDS, 0.0) or 0.0)
    return total


def babylm_checkpoint_names(unit: int = 1_000_000) -> list[tuple[int, str]]:
    """(words, folder name) of BabyLM's intermediate checkpoints: every 1M words up to 10M, every 10M up to 100M,
    every 100M up to 1,000M, named chck_<n>M as the 2025 pipeline's scripts name them; `unit` words per M."""
    counts = [*range(1, 10), *range(10, 100, 10), *range(100, 1001, 100)]
    return [(n * unit, f"chck_{n}M") for n in counts]


def save_babylm_checkpoints(run: Run, words_seen: float) -> list[str]:
    """Save the model as each BabyLM checkpoint whose word count words_seen has reached and that is not saved yet
    (a resumed run does not save one again); the names saved."""
    saved = []
    for words, name in babylm_checkpoint_names(run.cfg.train.babylm_checkpoint_unit):
        if words > words_seen:
            break
        folder = run.out_dir / name
        if not folder.is_dir():
            save_model(run.model, run.data.tokenizer, folder)
            saved.append(name)
    return saved


def keep_saved_chunking(cfg: RunConfig, out_dir: Path, resume: bool | str | Path) -> RunConfig:
    """A resumed run keeps the chunk layout its checkpoint was trained with (data.chunk_bos as saved; false for a
    checkpoint written before the key existed), so its remaining batches are the ones it would have trained on."""
    if not resume:
        return cfg
    folders = checkpoints(out_dir / "checkpoints") if resume is True else [Path(resume)]
    for folder in reversed(folders):
        try:
            saved = json.loads((folder / META).read_text())[META_CONFIG]["data"]
        except Exception:  # unreadable: restore() falls back past it too
            continue
        kept = saved.get("chunk_bos", False) is True
        if kept != cfg.data.chunk_bos:
            if "chunk_bos" not in saved:
                print(f"{out_dir}: resuming a run started before data.chunk_bos; its training chunks keep their old "
                      "layout (no <s> added).", file=sys.stderr, flush=True)
            cfg = cfg.model_copy(deep=True)
            cfg.data.chunk_bos = kept
        break
    return cfg


def restore(run: Run, resume: bool | str | Path) -> LoopState:
    """The loop state to start from: a checkpoint's (its weights and RNG states loaded too), or a fresh one."""
    found = None
    if resume is True:
        found = load_latest(run.out_dir / "checkpoints")
    elif resume:
        found = (Path(resume), *load_checkpoint(resume))
    if not found:
        return LoopState()
    _, state, meta = found
    run.model.load_state_dict(state[MODEL])
    run.optimizer.load_state_dict(state[OPTIMIZER])
    run.scheduler.load_state_dict(state[SCHEDULER])
    set_rng_state(state[RNG])
    return LoopState(**meta[META_LOOP])


def save(run: Run, loop: LoopState) -> Path:
    state = {MODEL: run.model.state_dict(), OPTIMIZER: run.optimizer.state_dict(),
             SCHEDULER: run.scheduler.state_dict(), RNG: rng_state()}
    phase = run.phases[loop.epoch] if loop.epoch < len(run.phases) else None
    return save_checkpoint(run.out_dir / "checkpoints", loop.step, state,
                           {META_LOOP: asdict(loop), META_PHASE: phase, META_CONFIG: run.cfg.model_dump()})


def batch_loss(run: Run, batch: torch.Tensor, phase: str, epoch: int, index: int) -> torch.Tensor:
    """The loss of one micro-batch: masked LM in MLM epochs, else causal LM, distilled when there are teachers."""
    from babysweep.lm import objectives
    cfg, model, dev = run.cfg, run.model, run.dev
    with dev.autocast():
        if phase == "mlm":
            # The mask is a function of (seed, epoch, batch), so a resumed run draws the same one.
            seed = int(np.random.SeedSequence([cfg.train.seed, epoch, index]).generate_state(1)[0])
            masked, labels = objectives.mask_tokens(batch.cpu(), torch.Generator().manual_seed(seed), MASK_ID,
                                                    len(run.data.tokenizer), probability=cfg.antlm.mlm_probability)
            masked, labels = masked.to(dev.device), labels.to(dev.device)
            full = objectives.bidirectional_mask(torch.ones_like(masked), dev.autocast_dtype or model.dtype)
            return objectives.mlm_loss(model(input_ids=masked, attention_mask=full).logits, labels)
        # train.fused in fp32 with a plain head: the head and the loss in row blocks, their gradients computed in the
        # forward pass; the [tokens, vocab] logits are never stored.
        fused_head = cfg.train.fused and dev.autocast_dtype is None and _plain_head(model)
        if not run.teachers:
            if fused_head:
                return objectives.head_causal_lm_loss(hidden_states(run, batch), model.get_output_embeddings().weight, batch)
            return objectives.causal_lm_loss(causal_logits(run, batch), batch)
        distill = cfg.distill
        if run.teacher_cache is None:
            with torch.inference_mode():  # frozen teachers: no autograd bookkeeping at all
                teacher_logits = [t(input_ids=batch).logits for t in run.teachers]
        else:  # the same chunks' stored outputs: batch `index` is rows [index * B, index * B + len(batch)) of the epoch
            stored = run.teacher_cache.read(epoch, index, cfg.train.batch_size, batch.size(0))
            if run.cache_plan.mode == "topk":
                return objectives.topk_distillation_loss(causal_logits(run, batch), batch, *stored, alpha=distill.alpha,
                                                         temperature=distill.temperature, kd_reduction=distill.kd_reduction).total
            teacher_logits = stored
        kd = {"alpha": distill.alpha, "temperature": distill.temperature, "ensemble": distill.ensemble,
              "kd_reduction": distill.kd_reduction}
        if fused_head and dev.device.type == "cpu":  # measured on the CPU only; CUDA keeps the logits and _FusedDistill
            return objectives.head_distillation_loss(hidden_states(run, batch), model.get_output_embeddings().weight, batch,
                                                     teacher_logits, **kd).total
        return objectives.distillation_loss(causal_logits(run, batch), batch, teacher_logits, **kd).total


def _plain_head(model) -> bool:
    """The model's logits are its base model's last hidden states times a float32 head matrix (no bias)."""
    head = model.get_output_embeddings()
    return isinstance(head, torch.nn.Linear) and head.bias is None and head.weight.dtype == torch.float32


def epoch_metrics(run: Run, loop: LoopState, phase: str, final: bool) -> dict:
    """The end of an epoch: training figures, dev loss, the BLiMP subset or (last epoch) the saved model and full
    BLiMP (or the subset again, with eval.blimp_final: subset)."""
    from babysweep.eval import blimp
    evaluation, seed = run.cfg.eval, run.cfg.train.seed
    seq_len, before = run.cfg.data.seq_len, loop.history[-1] if loop.history else {}  # before: the previous epoch's running totals
    teachers = [flops.forward_flops_per_token(t, seq_len) for t in run.teachers] if phase != "mlm" else []  # batch_loss's rule
    metrics = {
        M.EPOCH: loop.epoch + 1,
        M.STEP: loop.step,
        M.TRAIN_LOSS: loop.loss_sum / max(loop.loss_count, 1),
        M.TOKENS_PER_S: loop.tokens / max(loop.train_time, 1e-9),
        M.TOKENS_SEEN: before.get(M.TOKENS_SEEN, 0) + loop.tokens,
        M.FLOPS: before.get(M.FLOPS, 0.0) + flops.training_flops(loop.tokens, flops.forward_flops_per_token(run.model, seq_len), teachers),
        M.LR: loop.lr,
        M.PHASE: float(phase == "mlm"),
        M.PARAMS: run.n_params,
        M.TRAIN_TOKENS: int(len(run.data.train)),
        **({M.TRAIN_WORDS: run.data.train_words} if run.data.train_words is not None else {}),
        **({M.WORDS_SEEN: run.words_seen(loop)} if run.words_seen(loop) is not None else {}),
        **({M.TEACHER_WORDS: run.teacher_words} if run.teacher_words is not None else {}),
        **(run.cache_plan.params() if run.cache_plan is not None else {}),  # strings too: the sweep logs them as params
    }
    loss = dev_loss(run.model, run.data.dev, run.cfg.data.seq_len, evaluation.batch_size, run.dev, evaluation.dev_batches)
    if not math.isfinite(loss):
        raise TrainingDiverged(f"the dev loss became {loss} after epoch {loop.epoch}")
    metrics[M.EVAL_LOSS] = loss
    metrics[M.EVAL_PPL] = math.exp(min(loss, 50.0))
    if run.data.tune is not None:  # the held-out slice sweeps select on (data.tune_split)
        metrics[M.TUNE_LOSS] = dev_loss(run.model, run.data.tune, run.cfg.data.seq_len, evaluation.batch_size, run.dev,
                                        evaluation.dev_batches)
    scorer = evaluation.blimp_scorer if evaluation.blimp_scorer != "auto" else ("pll" if phase == "mlm" else "causal")
    full = final and evaluation.blimp_final == "full"  # else the subset only: a tuning trial's cheap end (core/config.py)
    if run.pairs and not full and evaluation.blimp_pairs_per_paradigm:
        sample = blimp.subset(run.pairs, evaluation.blimp_pairs_per_paradigm, seed=seed)
        metrics[M.BLIMP_SUBSET_OVERALL] = blimp.evaluate(run.model, run.data.tokenizer, sample, evaluation.batch_size, scorer,
                                                          rule=evaluation.rule)["overall"]
    if final:
        save_model(run.model, run.data.tokenizer, run.out_dir / "final")
        if run.pairs and full:
            results = blimp.evaluate(run.model, run.data.tokenizer, run.pairs, evaluation.batch_size, scorer, rule=evaluation.rule)
            blimp.save_results(results, run.out_dir / "blimp.json")
            metrics.update(blimp.to_metrics(results))
        if evaluation.suite is not None and evaluation.suite_on == "all":
            metrics.update(score_suite(run))
    return metrics


def score_suite(run: Run) -> dict:
    """BabyLM's zero-shot suite on the model (eval/suite.py): suite.json in the run folder, and the metrics
    suite/<column> per leaderboard column and suite/macro."""
    from babysweep.eval import suite

    was_training = run.model.training
    run.model.eval()
    try:
        results = suite.evaluate(run.model, run.data.tokenizer, run.cfg.eval.suite, batch_size=run.cfg.eval.batch_size)
    finally:
        run.model.train(was_training)
    write_text_atomic(run.out_dir / "suite.json", json.dumps(results), "the suite's results")
    out = {M.suite_metric(col): float(v) for col, v in results["columns"].items()}
    if results["macro"] is not None:
        out[M.SUITE_MACRO] = float(results["macro"])
    return out


def _write_run_info(run: Run) -> None:
    info = {"config": run.cfg.model_dump(), "seed": run.cfg.train.seed, "params": run.n_params, "phases": run.phases,
            "device": str(run.dev.device), "tokenizer_fingerprint": fingerprint(run.data.tokenizer),
            "train_tokens": int(len(run.data.train)), "train_words": run.data.train_words, "babysweep": __version__, "torch": torch.__version__,
            "python": platform.python_version()}
    write_text_atomic(run.out_dir / "run.json", json.dumps(info, indent=1), "the trial's run record")


def train(
    config: RunConfig | dict[str, Any],
    out_dir: str | Path,
    reporter: Reporter | None = None,
    resume: bool | str | Path = False,
    progress: Progress | None = None,
) -> dict:
    """Train one model; returns the last epoch's metrics. `resume`: True = newest checkpoint in
    out_dir (if any), a path = that checkpoint folder, False = start fresh."""
    reporter, progress = reporter or _null_reporter, progress or _null_progress
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = setup(keep_saved_chunking(RunConfig.of(config), out_dir, resume), out_dir)
    loop = restore(run, resume)
    training = run.cfg.train
    _write_run_info(run)
    _write_jsonl(out_dir / "metrics.jsonl", loop.history)

    started = time.perf_counter() - loop.elapsed
    run.model.train()
    last: dict = loop.history[-1] if loop.history else {}
    while not budget_spent(training, loop.epoch, loop.step):
        epoch, phase = loop.epoch, run.phases[loop.epoch]
        epoch_start = time.perf_counter()
        micro = 0  # micro-batches accumulated since the last optimiser step
        for index, batch in train_batches(run.data.train, run.cfg.data.seq_len, training.batch_size, training.seed,
                                          epoch, loop.batch, run.data.chunk_bos):
            group = min(training.grad_accum, run.n_batches - (index - index % training.grad_accum))  # this accumulation group
            batch = run.dev.put(batch)
            loss = batch_loss(run, batch, phase, epoch, index)
            (loss / group).backward()
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise TrainingDiverged(f"the training loss became {loss_value} at epoch {epoch}, step {loop.step}")
            loop.loss_sum += loss_value
            loop.loss_count += 1
            loop.tokens += batch.numel()
            micro += 1
            if micro < group:
                continue
            micro = 0
            if training.grad_clip:
                torch.nn.utils.clip_grad_norm_(run.model.parameters(), training.grad_clip)
            loop.lr = float(run.optimizer.param_groups[0]["lr"])  # the rate this step uses
            run.optimizer.step()
            run.scheduler.step()
            run.optimizer.zero_grad(set_to_none=True)
            loop.step += 1
            loop.batch = index + 1
            if training.babylm_checkpoints:
                save_babylm_checkpoints(run, run.words_seen(loop))
            if loop.step % PROGRESS_EVERY == 0:
                spent = loop.train_time + time.perf_counter() - epoch_start
                progress({"epoch": epoch, "step": loop.step, "total_steps": run.total_steps, "loss": loss_value,
                          "tokens_per_s": loop.tokens / max(spent, 1e-9), "phase": phase})
            if budget_spent(training, epoch, loop.step):  # max_steps reached inside the epoch
                break
            if training.checkpoint_every and loop.step % training.checkpoint_every == 0 and loop.batch < run.n_batches:
                loop.train_time += time.perf_counter() - epoch_start
                epoch_start = time.perf_counter()
                loop.elapsed = time.perf_counter() - started
                save(run, loop)
        loop.train_time += time.perf_counter() - epoch_start

        final = budget_spent(training, epoch + 1, loop.step)
        metrics = epoch_metrics(run, loop, phase, final)
        loop.elapsed = time.perf_counter() - started
        metrics[M.ELAPSED_S] = loop.elapsed
        loop.start_next_epoch()
        loop.history.append(metrics)
        _write_jsonl(out_dir / "metrics.jsonl", loop.history)
        folder = save(run, loop)
        run.model.train()
        reporter(metrics, folder)
        last = metrics
        if final:
            break
    return last
