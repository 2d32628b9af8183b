"""One training run, as a plain function of a config dict. Knows nothing of Ray or MLflow.

    final = train(config, out_dir="runs/t1", reporter=lambda metrics, ckpt: print(metrics))
    final = train(config, out_dir="runs/t1", resume=True)      # continue from runs/t1/checkpoints

Each epoch ends with a dev evaluation, a checkpoint under <out_dir>/checkpoints/step_<N>/ and one
call `reporter(metrics, checkpoint_folder)`; the sweep layer turns that call into a Ray report.
The last epoch also saves the model in Hugging Face format to <out_dir>/final/ and scores BLiMP, so
its report carries the final metrics. Metrics per epoch go to <out_dir>/metrics.jsonl.

Objectives per epoch follow the AntLM schedule: CLM epochs train next-token prediction (with
ensemble distillation when teachers are given and alpha < 1); MLM epochs train masked-token
prediction with bidirectional attention, without distillation (the teachers are causal).
eval/loss is always the causal next-token loss on the dev set, whatever the phase, so runs compare.

Exact resume: the checkpoint holds model, optimiser, scheduler, torch/numpy/python RNG states, the
epoch, the batch position within it, the step and the running sums of the epoch; batch order and
MLM masks are functions of (seed, epoch, batch), so a resumed run repeats the same computation.
"""

from __future__ import annotations

import json
import math
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from babysweep import __version__, metrics as M
from babysweep.atomic import write_text_atomic
from babysweep.checkpoint import load_checkpoint, load_latest, save_checkpoint
from babysweep.config import resolve
from babysweep.data import blimp_source, prepare
from babysweep.data.batches import batches_per_epoch, dev_batches, train_batches
from babysweep.data.tokenizer import MASK_ID, fingerprint
from babysweep.errors import UserError
from babysweep.models import build_model, count_params, load_model, save_model

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


def pick_device(train_cfg: dict) -> Device:
    wanted = train_cfg["device"]
    if wanted == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device is cuda but no CUDA device is available.")
    use_cuda = wanted == "cuda" or (wanted == "auto" and torch.cuda.is_available())
    if not use_cuda:
        if train_cfg["threads"]:
            torch.set_num_threads(train_cfg["threads"])
        if train_cfg["precision"] == "bf16":
            return Device(torch.device("cpu"), torch.bfloat16)
        return Device(torch.device("cpu"), None)
    torch.backends.cuda.matmul.allow_tf32 = True
    return Device(torch.device("cuda"), None if train_cfg["precision"] == "fp32" else torch.bfloat16)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_optimizer(model: torch.nn.Module, cfg: dict) -> torch.optim.AdamW:
    # Weight decay on matrices only; biases and norm gains are not decayed (the usual GPT recipe).
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg["weight_decay"]},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"])


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
    write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in rows))


def train(
    config: dict[str, Any],
    out_dir: str | Path,
    reporter: Reporter | None = None,
    resume: bool | str | Path = False,
    progress: Progress | None = None,
) -> dict:
    """Train one model; returns the last epoch's metrics. `resume`: True = newest checkpoint in
    out_dir (if any), a path = that checkpoint folder, False = start fresh."""
    from babysweep import blimp, objectives  # heavy-ish; imported where used

    cfg = resolve(config)
    dcfg, mcfg, tcfg, kcfg, ecfg = (cfg[k] for k in ("data", "model", "train", "distill", "eval"))
    reporter, progress = reporter or _null_reporter, progress or _null_progress
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_root = out_dir / "checkpoints"

    dev = pick_device(tcfg)
    seed_everything(tcfg["seed"])
    data = prepare(dcfg)
    seq_len, batch_size, accum = dcfg["seq_len"], tcfg["batch_size"], tcfg["grad_accum"]
    model = build_model(mcfg, vocab_size=len(data.tokenizer), seq_len=seq_len).to(dev.device)
    n_params = count_params(model)
    phases = objectives.phases(cfg["antlm"], tcfg["epochs"])
    teachers = load_teachers(kcfg["teachers"], data.tokenizer, dev.device) if kcfg["teachers"] and kcfg["alpha"] < 1 else []
    pairs = None
    if (source := blimp_source(ecfg, dcfg)) is not None:
        pairs = blimp.load_pairs(source)

    n_batches = batches_per_epoch(len(data.train), seq_len, batch_size)
    if n_batches == 0:
        raise UserError(f"data.train: the corpus has fewer than {2 * seq_len} tokens, too few for one seq_len chunk.")
    steps_per_epoch = math.ceil(n_batches / accum)
    total_steps = steps_per_epoch * tcfg["epochs"]
    if tcfg["max_steps"]:
        total_steps = min(total_steps, tcfg["max_steps"])
    optimizer = make_optimizer(model, tcfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(tcfg["scheduler"], tcfg["warmup_steps"], total_steps))

    # Loop state: everything a checkpoint must carry besides model/optimiser/scheduler/RNG.
    loop = {"epoch": 0, "batch": 0, "step": 0, "loss_sum": 0.0, "loss_count": 0, "tokens": 0, "train_time": 0.0,
            "elapsed": 0.0, "history": []}
    found = None
    if resume is True:
        found = load_latest(ckpt_root)
    elif resume:
        found = (Path(resume), *load_checkpoint(resume))
    if found:
        _, state, meta = found
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        loop = meta["loop"]

    run_info = {"config": cfg, "seed": tcfg["seed"], "params": n_params, "phases": phases, "device": str(dev.device),
                "tokenizer_fingerprint": fingerprint(data.tokenizer), "train_tokens": int(len(data.train)),
                "babysweep": __version__, "torch": torch.__version__, "python": platform.python_version()}
    write_text_atomic(out_dir / "run.json", json.dumps(run_info, indent=1))
    _write_jsonl(out_dir / "metrics.jsonl", loop["history"])

    def checkpoint() -> Path:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "rng": rng_state()}
        return save_checkpoint(ckpt_root, loop["step"], state, {"loop": loop, "phase": phases[loop["epoch"]] if loop["epoch"] < len(phases) else None, "config": cfg})

    started = time.perf_counter() - loop["elapsed"]
    model.train()
    last: dict = loop["history"][-1] if loop["history"] else {}
    while loop["epoch"] < tcfg["epochs"] and not (tcfg["max_steps"] and loop["step"] >= tcfg["max_steps"] and loop["batch"] == 0):
        epoch, phase = loop["epoch"], phases[loop["epoch"]]
        distilling = phase == "clm" and bool(teachers)
        epoch_start = time.perf_counter()
        micro = 0  # micro-batches accumulated since the last optimiser step
        stop_early = False
        for index, batch in train_batches(data.train, seq_len, batch_size, tcfg["seed"], epoch, loop["batch"]):
            group = min(accum, n_batches - (index - index % accum))  # size of this accumulation group
            batch = dev.put(batch)
            with dev.autocast():
                if phase == "mlm":
                    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([tcfg["seed"], epoch, index]).generate_state(1)[0]))
                    masked, labels = objectives.mask_tokens(batch.cpu(), gen, MASK_ID, len(data.tokenizer),
                                                            probability=cfg["antlm"]["mlm_probability"])
                    masked, labels = masked.to(dev.device), labels.to(dev.device)
                    full = objectives.bidirectional_mask(torch.ones_like(masked), dev.autocast_dtype or model.dtype)
                    loss = objectives.mlm_loss(model(input_ids=masked, attention_mask=full).logits, labels)
                else:
                    logits = model(input_ids=batch).logits
                    if distilling:
                        with torch.inference_mode():  # frozen teachers: no autograd bookkeeping at all
                            teacher_logits = [t(input_ids=batch).logits for t in teachers]
                        loss = objectives.distillation_loss(logits, batch, teacher_logits, alpha=kcfg["alpha"],
                                                            temperature=kcfg["temperature"], ensemble=kcfg["ensemble"],
                                                            kd_reduction=kcfg["kd_reduction"]).total
                    else:
                        loss = objectives.causal_lm_loss(logits, batch)
            (loss / group).backward()
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise TrainingDiverged(f"the training loss became {loss_value} at epoch {epoch}, step {loop['step']}")
            loop["loss_sum"] += loss_value
            loop["loss_count"] += 1
            loop["tokens"] += batch.numel()
            micro += 1
            if micro < group:
                continue
            micro = 0
            if tcfg["grad_clip"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg["grad_clip"])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loop["step"] += 1
            loop["batch"] = index + 1
            if loop["step"] % PROGRESS_EVERY == 0:
                spent = loop["train_time"] + time.perf_counter() - epoch_start
                progress({"epoch": epoch, "step": loop["step"], "total_steps": total_steps, "loss": loss_value,
                          "tokens_per_s": loop["tokens"] / max(spent, 1e-9), "phase": phase})
            if tcfg["max_steps"] and loop["step"] >= tcfg["max_steps"]:
                stop_early = True
                break
            if tcfg["checkpoint_every"] and loop["step"] % tcfg["checkpoint_every"] == 0 and loop["batch"] < n_batches:
                loop["train_time"] += time.perf_counter() - epoch_start
                epoch_start = time.perf_counter()
                loop["elapsed"] = time.perf_counter() - started
                checkpoint()
        loop["train_time"] += time.perf_counter() - epoch_start

        metrics = {
            M.EPOCH: epoch + 1,
            M.STEP: loop["step"],
            M.TRAIN_LOSS: loop["loss_sum"] / max(loop["loss_count"], 1),
            M.TOKENS_PER_S: loop["tokens"] / max(loop["train_time"], 1e-9),
            M.PHASE: float(phase == "mlm"),
            M.PARAMS: n_params,
        }
        loss = dev_loss(model, data.dev, seq_len, ecfg["batch_size"], dev, ecfg["dev_batches"])
        if not math.isfinite(loss):
            raise TrainingDiverged(f"the dev loss became {loss} after epoch {epoch}")
        metrics[M.EVAL_LOSS] = loss
        metrics[M.EVAL_PPL] = math.exp(min(loss, 50.0))
        final = epoch + 1 == tcfg["epochs"] or stop_early
        scorer = ecfg["blimp_scorer"] if ecfg["blimp_scorer"] != "auto" else ("pll" if phase == "mlm" else "causal")
        if pairs and not final and ecfg["blimp_pairs_per_paradigm"]:
            sample = blimp.subset(pairs, ecfg["blimp_pairs_per_paradigm"], seed=tcfg["seed"])
            metrics[M.BLIMP_SUBSET_OVERALL] = blimp.evaluate(model, data.tokenizer, sample, ecfg["batch_size"], scorer, rule=ecfg["rule"])["overall"]
        if final:
            save_model(model, data.tokenizer, out_dir / "final")
            if pairs:
                results = blimp.evaluate(model, data.tokenizer, pairs, ecfg["batch_size"], scorer, rule=ecfg["rule"])
                blimp.save_results(results, out_dir / "blimp.json")
                metrics.update(blimp.to_metrics(results))
        loop["elapsed"] = time.perf_counter() - started
        metrics[M.ELAPSED_S] = loop["elapsed"]
        loop.update(epoch=epoch + 1, batch=0, loss_sum=0.0, loss_count=0, tokens=0, train_time=0.0)
        loop["history"].append(metrics)
        _write_jsonl(out_dir / "metrics.jsonl", loop["history"])
        folder = checkpoint()
        model.train()
        reporter(metrics, folder)
        last = metrics
        if stop_early:
            break
    return last
