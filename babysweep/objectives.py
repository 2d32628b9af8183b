"""Training objectives: causal LM, ensemble distillation, masked LM on a decoder, AntLM schedules.

    loss = causal_lm_loss(logits, input_ids)
    parts = distillation_loss(logits, input_ids, [t1_logits, t2_logits], alpha=0.5, temperature=2.0)
    masked, labels = mask_tokens(input_ids, generator, MASK_ID, vocab_size)
    loss = mlm_loss(model(masked, attention_mask=bidirectional_mask(ones, dtype)).logits, labels)
    phases({"schedule": "4clm+16mlm+4clm", "mlm_ratio": 0}, epochs=24)   # -> ["clm"] * 4 + ...

Positions: logits at position t predict token t+1 (CE and distillation alike, so both terms are
over the same tokens); MLM predicts the token at the same position. Distillation is applied in
CLM phases only: the teachers are causal models and have never seen a masked input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

N_SPECIAL = 4  # <pad>, <s>, </s>, <mask>: never chosen for masking, never a random replacement


def _targets(input_ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Flat next-token targets: position t's target is token t+1; the last position and padded
    targets are -100. Shifting the targets, not the logits, keeps the logits a view (no copy)."""
    target = F.pad(input_ids[:, 1:], (0, 1), value=-100)
    if mask is not None:
        target = target.masked_fill(F.pad(mask[:, 1:], (0, 1), value=0) == 0, -100)
    return target.reshape(-1)


def _flat(logits: torch.Tensor) -> torch.Tensor:
    return logits.reshape(-1, logits.size(-1)).float()  # float32 math; a view when already float32


def causal_lm_loss(logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean next-token cross-entropy over real target tokens (float32 whatever the logits' dtype)."""
    return F.cross_entropy(_flat(logits), _targets(input_ids, mask), ignore_index=-100)


@dataclass
class DistillLoss:
    total: torch.Tensor
    ce: torch.Tensor
    kd: torch.Tensor | None  # the KL term before weighting; None when alpha = 1


def distillation_loss(logits, input_ids, teacher_logits, alpha: float, temperature: float, ensemble: str = "logits",
                      kd_reduction: str = "token", mask: torch.Tensor | None = None) -> DistillLoss:
    """alpha * CE + (1 - alpha) * T^2 * KL(p_teacher_T || p_student_T).

    ensemble "logits": teachers' raw logits averaged before the softmax (BabyLlama); "probs":
    their tempered probabilities averaged. kd_reduction "token": KL averaged per real target token;
    "babyllama": summed over positions and divided by the batch size, as the original code's
    KLDivLoss(reduction="batchmean") on [batch, length, vocab] does (seq_len times the per-token value).
    """
    flat, target = _flat(logits), _targets(input_ids, mask)
    ce = F.cross_entropy(flat, target, ignore_index=-100)
    if alpha >= 1.0:
        return DistillLoss(ce, ce, None)
    weight = (target != -100).float()
    with torch.no_grad():  # the teachers' side: KL = sum p_t log p_t - sum p_t log p_s
        if ensemble == "logits":
            summed = sum(_flat(t) for t in teacher_logits)
            teacher_logp = F.log_softmax(summed.mul_(1.0 / (len(teacher_logits) * temperature)), dim=-1)
            teacher_p = teacher_logp.exp()
        else:
            teacher_p = sum(F.softmax(_flat(t) / temperature, dim=-1) for t in teacher_logits) / len(teacher_logits)
            teacher_logp = teacher_p.clamp_min(torch.finfo(teacher_p.dtype).tiny).log()
        neg_entropy = torch.linalg.vecdot(teacher_p, teacher_logp)  # fused dot: no [N, V] temporary
    cross = -torch.linalg.vecdot(teacher_p, F.log_softmax(flat / temperature, dim=-1))
    kl = (neg_entropy + cross) * weight  # per position
    kd = kl.sum() / (logits.size(0) if kd_reduction == "babyllama" else weight.sum().clamp(min=1))
    return DistillLoss(alpha * ce + (1 - alpha) * temperature**2 * kd, ce, kd)


def mask_tokens(input_ids: torch.Tensor, generator: torch.Generator, mask_id: int, vocab_size: int,
                probability: float = 0.15, n_special: int = N_SPECIAL) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's rule: choose `probability` of the non-special tokens; of those 80% -> <mask>,
    10% -> a random non-special token, 10% unchanged. Labels are -100 where not chosen."""
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & (input_ids >= n_special)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    roll = torch.rand(input_ids.shape, generator=generator)
    random_ids = torch.randint(n_special, vocab_size, input_ids.shape, generator=generator)
    masked = torch.where(chosen & (roll < 0.8), torch.full_like(input_ids, mask_id), input_ids)
    masked = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), random_ids, masked)
    return masked, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on chosen positions only, predicting the token at the same position."""
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100)


def bidirectional_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A 4D additive mask [B, 1, L, L]: 0 where the key is a real token, dtype's min where it is
    padding. Given to a HF decoder instead of the 2D mask, it makes attention bidirectional."""
    keys = attention_mask[:, None, None, :].to(torch.bool)
    full = torch.zeros(attention_mask.size(0), 1, attention_mask.size(1), attention_mask.size(1), dtype=dtype,
                       device=attention_mask.device)
    return full.masked_fill(~keys, torch.finfo(dtype).min)


_PART = re.compile(r"^(\d+)(clm|mlm)$")


def parse_schedule(text: str) -> list[str]:
    """"4clm+16mlm+4clm" -> a phase per epoch."""
    parts = [p.strip().lower() for p in str(text).split("+")]
    phases: list[str] = []
    for part in parts:
        match = _PART.match(part)
        if not match or int(match.group(1)) == 0:
            raise ValueError(f"AntLM schedule {text!r} is not of the form '4clm+16mlm+4clm' (positive epoch counts of clm or mlm)")
        phases += [match.group(2)] * int(match.group(1))
    return phases


def schedule_from_ratio(epochs: int, mlm_ratio: float) -> list[str]:
    """MLM epochs = round(epochs * ratio) in one block; CLM epochs split before and after it
    (the extra one before)."""
    mlm = round(epochs * mlm_ratio)
    clm = epochs - mlm
    before = clm - clm // 2
    return ["clm"] * before + ["mlm"] * mlm + ["clm"] * (clm // 2)


def phases(antlm: dict, epochs: int) -> list[str]:
    if antlm.get("schedule"):
        out = parse_schedule(antlm["schedule"])
        if len(out) != epochs:
            raise ValueError(f"AntLM schedule {antlm['schedule']!r} has {len(out)} epochs but train.epochs is {epochs}")
        return out
    return schedule_from_ratio(epochs, antlm.get("mlm_ratio") or 0.0)
