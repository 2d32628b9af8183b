"""Training objectives: causal LM, ensemble distillation, masked LM on a decoder.

    loss = causal_lm_loss(logits, input_ids)
    parts = distillation_loss(logits, input_ids, [t1_logits, t2_logits], alpha=0.5, temperature=2.0)
    masked, labels = mask_tokens(input_ids, generator, MASK_ID, vocab_size)
    loss = mlm_loss(model(masked, attention_mask=bidirectional_mask(ones, dtype)).logits, labels)

Positions: logits at position t predict token t+1 (CE and distillation alike, so both terms are
over the same tokens); MLM predicts the token at the same position. Distillation is applied in
CLM phases only: the teachers are causal models and have never seen a masked input. Which epoch is
which phase is babysweep.core.schedule's business.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from babysweep.lm import cpu_head

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


# Rows per chunk of the fused head + cross-entropy: a [rows, vocab] float32 block near a core's cache (1.6 MB at
# vocab 1,542). 256 measured 1.01x-1.05x faster than 128 for the compiled baseline step (fewer Python-level
# calls per step), 512 between the two; the teacher's step is the same with 128 and 256.
HEAD_CE_ROWS = 256
_LOG2E, _LN2 = 1 / math.log(2), math.log(2)


class _HeadCrossEntropy(torch.autograd.Function):
    """Mean CE of softmax(hidden @ weight^T) over targets != -100, with its gradients computed in the forward
    pass, chunk by chunk: the [tokens, vocab] logits are never stored, only one [HEAD_CE_ROWS, vocab] block at a time
    (F.cross_entropy writes the logits, their log-softmax and two more [tokens, vocab] arrays in the backward)."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != -100
        count = valid.sum().clamp_min(1).to(hidden.dtype)
        safe = target.clamp_min(0)
        scale = (valid.to(hidden.dtype) / count).unsqueeze(1)  # d loss / d (a row's CE); 0 on ignored rows
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros_like(weight)
        total = hidden.new_zeros(())
        logits = hidden.new_empty(min(HEAD_CE_ROWS, hidden.size(0)), weight.size(0))  # one block's buffer, reused
        # The blocks hold logits in base 2 (times log2 e, folded into the matrix once) so that exp2 can replace exp:
        # the same softmax, but aten's float exp calls MKL's vector exp, 2.4x slower on this project's AMD CPUs.
        weight2 = weight * _LOG2E
        kernel = cpu_head.applies(logits)  # lm/cpu_head.py: each row swept in L1 instead of the operations below
        row_loss = hidden.new_empty(hidden.size(0)) if kernel else None
        for start in range(0, hidden.size(0), HEAD_CE_ROWS):
            rows = slice(start, start + HEAD_CE_ROWS)
            h, t, s = hidden[rows], safe[rows], scale[rows]
            block = torch.mm(h, weight2.t(), out=logits[: h.size(0)])  # [rows, vocab] logits, base 2
            grad_rows = grad_hidden[rows]
            if kernel:  # the block becomes d loss / d logits, with each row's weight s in it
                cpu_head.softmax_gradient(block, t, s.squeeze(1), row_loss[rows])
                torch.mm(block, weight, out=grad_rows)
                grad_weight.addmm_(block.t(), h)
                continue
            top = block.amax(dim=1, keepdim=True)
            picked = block.gather(1, t.unsqueeze(1))
            block.sub_(top).exp2_()  # one exp pass; the block is never normalised
            sums = block.sum(dim=1, keepdim=True)
            total += ((top + sums.log2() - picked) * s).sum()  # CE = log-sum-exp - target logit, in bits
            # d loss / d logits = s * (exp / sums - onehot) = (s / sums) * (exp - sums * onehot): the one-hot goes into
            # the block (one element per row), the row factor onto the [rows, d] arrays around the two products (d is
            # 64-128 here, vocab ~1,500).
            block.scatter_add_(1, t.unsqueeze(1), -sums)
            factor = s / sums
            torch.mm(block, weight, out=grad_rows)
            grad_rows.mul_(factor)
            grad_weight.addmm_(block.t(), h * factor)
        if kernel:
            total = (row_loss * scale.squeeze(1)).sum()
        ctx.save_for_backward(grad_hidden, grad_weight)
        return total * _LN2

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        return grad_hidden * grad, grad_weight * grad, None


def head_causal_lm_loss(hidden: torch.Tensor, weight: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """causal_lm_loss(hidden @ weight^T, input_ids) from the last hidden states [batch, length, d] and the output
    head's weight [vocab, d] (float32, no bias), without storing the logits: the same loss to float rounding."""
    return _HeadCrossEntropy.apply(hidden.reshape(-1, hidden.size(-1)), weight, _targets(input_ids, None))


@dataclass
class DistillLoss:
    total: torch.Tensor
    ce: torch.Tensor
    kd: torch.Tensor | None  # the KL term before weighting; None when alpha = 1


# Elements per [rows, vocab] work buffer of the fused distillation loss. CPU: small (2 MiB), so a
# chunk's passes stay in cache (measured on 2 cores, [4096, 8000] logits: 2^19 beat 2^17..2^21).
# Accelerators: large chunks, few launches.
KD_CHUNK_ELEMENTS = {"cpu": 1 << 19, "other": 1 << 25}


def _scaled_into(dst: torch.Tensor, src: torch.Tensor, scale: float) -> torch.Tensor:
    """dst = src * scale, the product taken in dst's (work) dtype."""
    return torch.mul(src, scale, out=dst) if src.dtype == dst.dtype else dst.copy_(src).mul_(scale)


def _mean_logits_into(dst: torch.Tensor, teachers, rows: slice, scale: float) -> torch.Tensor:
    """dst = the teachers' logits on `rows`, averaged and times `scale` (1/T), in dst's (work) dtype."""
    k = len(teachers)
    if k == 1:
        return _scaled_into(dst, teachers[0][rows], scale)
    if teachers[0].dtype == dst.dtype and teachers[1].dtype == dst.dtype:
        torch.add(teachers[0][rows], teachers[1][rows], out=dst)
    else:
        dst.copy_(teachers[0][rows]).add_(teachers[1][rows])
    for t in teachers[2:]:
        dst.add_(t[rows])
    return dst.mul_(scale / k)


def _row_weights(target, kd_rows, alpha: float, temperature: float, kd_denominator, dtype):
    """What both fused distillation losses weigh rows by: (valid, n_tokens, kd_den, a_rows, b_rows): the CE rows
    (targets != -100), the two means' denominators, and the per-row gradient weights [N, 1], 0 on ignored rows."""
    valid = target != -100
    n_tokens = valid.sum().clamp(min=1).to(dtype)
    kd_den = n_tokens if kd_denominator is None else torch.tensor(float(kd_denominator), dtype=dtype, device=target.device)
    a_rows = (valid.to(dtype) * (alpha / n_tokens)).unsqueeze(1)
    b_rows = (kd_rows.to(dtype) * ((1 - alpha) * temperature / kd_den)).unsqueeze(1)
    return valid, n_tokens, kd_den, a_rows, b_rows


def _totals(valid, ce_rows, kd_rows, kl_rows, n_tokens, kd_den, alpha: float, temperature: float):
    """(total, ce, kd) from the per-row CE and KL of both fused distillation losses."""
    zero = torch.zeros((), dtype=ce_rows.dtype, device=ce_rows.device)
    ce = torch.where(valid, ce_rows, zero).sum() / n_tokens
    kd = torch.where(kd_rows, kl_rows, zero).sum() / kd_den
    return alpha * ce + (1 - alpha) * temperature**2 * kd, ce, kd


def _copy_or_view(buffer: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
    """Rows in the work dtype: as they are (a view) when no conversion buffer is given."""
    return rows if buffer is None else buffer.copy_(rows)


class _FusedDistill(torch.autograd.Function):
    """CE, KL and d(total)/d(logits) in one pass over row chunks (float32 math at least, float64 kept).

    Per chunk: student log-softmax at 1 and at T, the teachers' ensemble distribution, the two
    per-row losses, and the gradient
        alpha * (softmax(z) - onehot) / n_tokens + (1 - alpha) * T * (softmax(z / T) - p_teacher) / kd_denominator
    where the first term counts on real target rows and the second on `kd_rows` (real target rows
    for "token"; every real input position for "babyllama", the last one too), written into one
    [N, V] tensor that backward returns (scaled by the incoming gradient). Saves nothing else: no [N, V] intermediates outlive a chunk.
    ce and kd are reported values (not differentiable); total carries the gradient.
    """

    @staticmethod
    def forward(ctx, z, target, kd_rows, teachers, ensemble, alpha, temperature, kd_denominator):
        # All intra-op threads: forcing one thread (tried on a loaded machine) took 316 ms against
        # 172 ms for fwd+bwd of [4096, 8000] on a quiet 2-core machine.
        with torch.autocast(z.device.type, enabled=False):
            return _FusedDistill._forward(ctx, z, target, kd_rows, teachers, ensemble, alpha, temperature, kd_denominator)

    @staticmethod
    def _forward(ctx, z, target, kd_rows, teachers, ensemble, alpha, temperature, kd_denominator):
        n, vocab = z.shape
        device = z.device
        work = torch.float64 if z.dtype == torch.float64 else torch.float32  # the work dtype: float32 at least
        rows = max(1, min(n, KD_CHUNK_ELEMENTS["cpu" if device.type == "cpu" else "other"] // vocab))
        valid, n_tokens, kd_den, a_rows, b_rows = _row_weights(target, kd_rows, alpha, temperature, kd_denominator, work)
        safe_target = target.clamp(min=0)
        inv_t = 1.0 / temperature
        k = len(teachers)

        grad = torch.empty_like(z, memory_format=torch.contiguous_format)
        buf = lambda: torch.empty(rows, vocab, dtype=work, device=device)  # noqa: E731
        student_lp, scaled, student_lpt, t_sum, t_logp, t_p = buf(), buf(), buf(), buf(), buf(), buf()
        raw = buf() if z.dtype != work else None
        out_work = buf() if z.dtype != work else None
        ce_rows = torch.empty(n, dtype=work, device=device)
        kl_rows = torch.empty(n, dtype=work, device=device)

        for start in range(0, n, rows):
            stop = min(start + rows, n)
            c = stop - start
            sl = slice(start, stop)
            lp, sc, lpt, ts, tlp, tp = (b[:c] for b in (student_lp, scaled, student_lpt, t_sum, t_logp, t_p))
            s = _copy_or_view(raw[:c] if raw is not None else None, z[sl])
            tgt = safe_target[sl].unsqueeze(1)

            torch.log_softmax(s, -1, out=lp)
            ce_rows[sl] = -lp.gather(1, tgt).squeeze(1)
            if temperature == 1.0:
                lpt = lp
            else:
                torch.mul(s, inv_t, out=sc)
                torch.log_softmax(sc, -1, out=lpt)

            # The teachers' distribution at temperature T: tp (probabilities) and tlp (their logs).
            if ensemble == "logits":
                _mean_logits_into(ts, teachers, sl, inv_t)
                torch.log_softmax(ts, -1, out=tlp)
                torch.exp(tlp, out=tp)
            else:
                for i, t in enumerate(teachers):
                    _scaled_into(ts, t[sl], inv_t)
                    torch.log_softmax(ts, -1, out=tlp)
                    if i == 0:
                        torch.exp(tlp, out=tp)
                    else:
                        tp.add_(tlp.exp_())
                if k > 1:
                    tp.mul_(1.0 / k)
                torch.clamp(tp, min=torch.finfo(work).tiny, out=tlp).log_()
            tlp.sub_(lpt)  # log p_teacher - log p_student
            # Row dots through sc, free here: 5x faster than bmm's batch of 1 x V by V x 1 products on CPU
            # (measured [340, 1542], one thread: 106 us against 538 us, 2 s of a 60 s trial).
            torch.sum(torch.mul(tp, tlp, out=sc), dim=-1, out=kl_rows[sl])

            # Gradient rows: b * (softmax(z/T) - tp) + a * (softmax(z) - onehot).
            dest = grad[sl] if out_work is None else out_work[:c]
            if temperature == 1.0:
                torch.exp(lp, out=sc)
                p_t, p_1 = sc, sc
            else:
                p_t = lpt.exp_()
                p_1 = lp.exp_() if alpha > 0 else None
            a, b = a_rows[sl], b_rows[sl]
            if alpha > 0:
                torch.sub(p_t, tp, out=ts)  # ts is free again
                ts.mul_(b)
                torch.addcmul(ts, p_1, a, out=dest)
                dest.scatter_add_(1, tgt, -a)
            else:
                torch.sub(p_t, tp, out=ts)
                torch.mul(ts, b, out=dest)
            if out_work is not None:
                grad[sl].copy_(dest)

        total, ce, kd = _totals(valid, ce_rows, kd_rows, kl_rows, n_tokens, kd_den, alpha, temperature)
        ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(ce, kd)
        return total, ce, kd

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_total, _grad_ce, _grad_kd):
        (grad,) = ctx.saved_tensors
        if grad_total.device.type == "cpu" and grad_total.item() == 1.0:
            return grad, None, None, None, None, None, None, None  # the common case: no extra [N, V] pass
        # In place: saving an [N, V] allocation. A second backward (retain_graph) would see the
        # saved tensor's version change and raise rather than return a wrong gradient.
        return grad.mul_(grad_total.to(grad.dtype)), None, None, None, None, None, None, None


def distillation_loss(logits, input_ids, teacher_logits, alpha: float, temperature: float, ensemble: str = "logits",
                      kd_reduction: str = "token", mask: torch.Tensor | None = None) -> DistillLoss:
    """alpha * CE + (1 - alpha) * T^2 * KL(p_teacher_T || p_student_T).

    ensemble "logits": teachers' raw logits averaged before the softmax (BabyLlama); "probs":
    their tempered probabilities averaged. kd_reduction "token": KL averaged per real target token;
    "babyllama": summed over every real input position, the last one too (it has no CE target, but
    BabyLlama's KLDivLoss(reduction="batchmean") on [batch, length, vocab] sums it), and divided by
    the batch size: about seq_len times the per-token value (see report/kd_weight.py).

    With teachers (alpha < 1) the loss and its gradient come from one fused pass over row chunks
    (`_FusedDistill`): float32 math, no [N, V] intermediates besides the gradient itself. `total`
    is differentiable; `ce` and `kd` are the reported values, detached.
    """
    target = _targets(input_ids, mask)
    if alpha >= 1.0:
        ce = F.cross_entropy(_flat(logits), target, ignore_index=-100)
        return DistillLoss(ce, ce, None)
    if ensemble not in ("logits", "probs"):
        raise ValueError(f"distillation ensemble {ensemble!r} is not 'logits' or 'probs'")
    if kd_reduction not in ("token", "babyllama"):
        raise ValueError(f"kd_reduction {kd_reduction!r} is not 'token' or 'babyllama'")
    vocab = logits.size(-1)
    teachers = [t.reshape(-1, vocab) for t in teacher_logits]
    kd_rows = _kd_rows(target, mask, kd_reduction)
    total, ce, kd = _FusedDistill.apply(logits.reshape(-1, vocab), target, kd_rows, teachers, ensemble, float(alpha),
                                        float(temperature), logits.size(0) if kd_reduction == "babyllama" else None)
    return DistillLoss(total, ce, kd)


# Rows per block of the fused head + distillation loss: five [rows, vocab] float32 work arrays.
HEAD_KD_ROWS = 256


def _lse_from_softmax(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """logsumexp(x, 1) from p = softmax(x, 1), [rows, 1]: p's largest entry is exp(0) / sum exp(x - max x), never below
    1 / vocab, so this is exact to float rounding, and two cheap passes (max of each) replace a pass of exp."""
    return x.amax(1, keepdim=True) - p.amax(1, keepdim=True).log()


class _HeadDistill(torch.autograd.Function):
    """distillation_loss(hidden @ weight^T, ...) from the last hidden states and a bias-free head, with d(total)/d(hidden)
    and d(total)/d(weight) computed in the forward pass block by block: the [tokens, vocab] logits and their
    gradient are never stored (`_FusedDistill` needs both), only HEAD_KD_ROWS rows at a time.

    The same loss and gradient as `_FusedDistill` (its docstring has the formulas) to float rounding, computed with
    fewer passes of exp: the student's softmaxes at 1 and at T and the teachers' at T, their log-sum-exps from the
    softmaxes (`_lse_from_softmax`), and every log-probability as a logit minus its row's log-sum-exp."""

    @staticmethod
    def forward(ctx, hidden, weight, target, kd_rows, teachers, ensemble, alpha, temperature, kd_denominator):
        n, vocab = hidden.size(0), weight.size(0)
        dtype = hidden.dtype
        device = hidden.device
        valid, n_tokens, kd_den, a_rows, b_rows = _row_weights(target, kd_rows, alpha, temperature, kd_denominator, dtype)
        safe_target = target.clamp(min=0).unsqueeze(1)
        inv_t, k = 1.0 / temperature, len(teachers)
        rows = min(n, HEAD_KD_ROWS)
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros_like(weight)
        buf = lambda: torch.empty(rows, vocab, dtype=dtype, device=device)
        logits, t_scaled = buf(), buf()
        # lm/cpu_head.py: the rows' passes in one kernel, which needs no softmax buffers (T > 0: RunConfig's rule)
        kernel = ensemble == "logits" and cpu_head.applies(logits)
        p_1, p_t, t_p = (None, None, None) if kernel else (buf(), buf(), buf())
        spare = buf() if ensemble == "probs" and k > 1 else None
        ce_rows = torch.empty(n, dtype=dtype, device=device)
        kl_rows = torch.empty(n, dtype=dtype, device=device)

        for start in range(0, n, rows):
            sl = slice(start, min(start + rows, n))
            c = sl.stop - start
            s, p1, pt, ts, tp = (None if b is None else b[:c] for b in (logits, p_1, p_t, t_scaled, t_p))
            h, tgt, a, b = hidden[sl], safe_target[sl], a_rows[sl], b_rows[sl]
            torch.mm(h, weight.t(), out=s)
            if kernel:  # s becomes the gradient rows below
                _mean_logits_into(ts, teachers, sl, inv_t)
                cpu_head.distill_gradient(s, ts, tgt.squeeze(1), a.squeeze(1), b.squeeze(1), inv_t, ce_rows[sl], kl_rows[sl])
                torch.mm(s, weight, out=grad_hidden[sl])
                grad_weight.addmm_(s.t(), h)
                continue
            torch.softmax(s, 1, out=p1)
            lse_1 = _lse_from_softmax(s, p1)
            ce_rows[sl] = (lse_1 - s.gather(1, tgt)).squeeze(1)
            if temperature == 1.0:
                pt, lse_t = p1, lse_1  # s is also the tempered logits
            else:
                s.mul_(inv_t)  # the student's logits at T, in place: the plain ones are no longer needed
                torch.softmax(s, 1, out=pt)
                lse_t = _lse_from_softmax(s, pt)

            # The teachers' distribution at T: tp, and in ts log tp - log p_student_T (the student's log-probability
            # at T being s - lse_t).
            if ensemble == "logits":
                _mean_logits_into(ts, teachers, sl, inv_t)
                torch.softmax(ts, 1, out=tp)
                shift = lse_t - _lse_from_softmax(ts, tp)
                ts.sub_(s).add_(shift)  # (ts - lse_teacher) - (s - lse_t)
            else:
                for i, t in enumerate(teachers):
                    _scaled_into(ts, t[sl], inv_t)
                    if i == 0:
                        torch.softmax(ts, 1, out=tp)
                    else:
                        tp.add_(torch.softmax(ts, 1, out=spare[:c]))
                if k > 1:
                    tp.mul_(1.0 / k)
                torch.clamp(tp, min=torch.finfo(dtype).tiny, out=ts).log_()
                ts.sub_(s).add_(lse_t)
            # The KL per row through the logits' buffer, free now; then the gradient rows into it:
            # b * (softmax(z / T) - tp) + a * (softmax(z) - onehot).
            g = logits[:c]
            torch.sum(torch.mul(tp, ts, out=g), dim=1, out=kl_rows[sl])
            torch.sub(pt, tp, out=g).mul_(b)
            if alpha > 0:
                g.addcmul_(p1, a)
                g.scatter_add_(1, tgt, -a)
            torch.mm(g, weight, out=grad_hidden[sl])
            grad_weight.addmm_(g.t(), h)

        total, ce, kd = _totals(valid, ce_rows, kd_rows, kl_rows, n_tokens, kd_den, alpha, temperature)
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.mark_non_differentiable(ce, kd)
        return total, ce, kd

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_total, _grad_ce, _grad_kd):
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_total.device.type != "cpu" or grad_total.item() != 1.0:  # the common case on the CPU: no extra pass
            grad_hidden, grad_weight = grad_hidden * grad_total, grad_weight * grad_total
        return grad_hidden, grad_weight, None, None, None, None, None, None, None


def head_distillation_loss(hidden: torch.Tensor, weight: torch.Tensor, input_ids: torch.Tensor, teacher_logits,
                           alpha: float, temperature: float, ensemble: str = "logits",
                           kd_reduction: str = "token") -> DistillLoss:
    """distillation_loss(hidden @ weight^T, input_ids, teacher_logits, ...) from the last hidden states [batch, length, d]
    and the output head's weight [vocab, d] (float32 or float64 on the CPU, no bias), without storing the logits or
    their gradient: the same losses and gradients to float rounding. The teachers' logits may be float16 (the cache's)."""
    if alpha >= 1.0:
        ce = head_causal_lm_loss(hidden, weight, input_ids)
        return DistillLoss(ce, ce, None)
    if ensemble not in ("logits", "probs"):
        raise ValueError(f"distillation ensemble {ensemble!r} is not 'logits' or 'probs'")
    if kd_reduction not in ("token", "babyllama"):
        raise ValueError(f"kd_reduction {kd_reduction!r} is not 'token' or 'babyllama'")
    target = _targets(input_ids, None)
    vocab = weight.size(0)
    teachers = [t.reshape(-1, vocab) for t in teacher_logits]
    total, ce, kd = _HeadDistill.apply(hidden.reshape(-1, hidden.size(-1)), weight, target,
                                       _kd_rows(target, None, kd_reduction), teachers, ensemble, float(alpha),
                                       float(temperature), hidden.size(0) if kd_reduction == "babyllama" else None)
    return DistillLoss(total, ce, kd)


def _kd_rows(target: torch.Tensor, mask: torch.Tensor | None, kd_reduction: str) -> torch.Tensor:
    if kd_reduction == "babyllama":  # every real input position: no target needed for a KL
        return torch.ones_like(target, dtype=torch.bool) if mask is None else (mask.reshape(-1) != 0)
    return target != -100


def topk_distillation_loss(logits, input_ids, values, indices, tail_lse, alpha: float, temperature: float,
                           kd_reduction: str = "token", mask: torch.Tensor | None = None) -> DistillLoss:
    """distillation_loss from a top-K teacher cache (ensemble "logits"): the KL between the teacher's and
    the student's distributions over K + 1 buckets, the K stored tokens and one bucket for the rest.

    values/indices: the K largest averaged teacher logits per position and their token ids; tail_lse:
    log-sum-exp of the other V - K logits (at T = 1). At temperature T the teacher's tail mass is
    taken as that of V - K equal logits with the same mass at T = 1 (exact at T = 1). The bucket KL is
    a lower bound of the full KL and equals it when K = V (no tail). Plain autograd ops.
    """
    target = _targets(input_ids, mask)
    z = _flat(logits)
    vocab, k = z.size(1), values.size(-1)
    ce = F.cross_entropy(z, target, ignore_index=-100)
    inv_t = 1.0 / temperature
    t_logits = values.reshape(-1, k).float() * inv_t
    idx = indices.reshape(-1, k).long()
    s_logp = torch.log_softmax(z * inv_t, -1)
    s_top = s_logp.gather(1, idx)
    rest = vocab - k
    if rest > 0:
        log_rest = math.log(rest)
        t_tail = (tail_lse.reshape(-1, 1).float() - log_rest) * inv_t + log_rest
        t_logits = torch.cat([t_logits, t_tail], 1)
        s_tail = s_logp.scatter(1, idx, float("-inf")).logsumexp(1, keepdim=True)
        s_top = torch.cat([s_top, s_tail], 1)
    t_logp = torch.log_softmax(t_logits, -1)
    kl_rows = (t_logp.exp() * (t_logp - s_top)).sum(1)
    kd_rows = _kd_rows(target, mask, kd_reduction)
    den = logits.size(0) if kd_reduction == "babyllama" else (target != -100).sum().clamp(min=1)
    kd = kl_rows.masked_fill(~kd_rows, 0.0).sum() / den
    total = alpha * ce + (1 - alpha) * temperature**2 * kd
    return DistillLoss(total, ce.detach(), kd.detach())


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
