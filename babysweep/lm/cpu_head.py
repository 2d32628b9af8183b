"""The row-wise part of the fused head's losses in C++, a row at a time in L1: cross-entropy
(objectives._HeadCrossEntropy) and distillation with ensemble "logits" (objectives._HeadDistill).

    use_cpu_head(folder)    # builds cpu_head.cpp into `folder` once; False (and torch's operations) if it cannot

With torch's operations, each [256, vocab] block of logits takes four passes over its 1.6 MB for the cross-entropy
(row maximum, subtract, exp2, sum), a gather, a scatter and two scalings of [rows, d] arrays, eight calls in all; the
distillation loss takes about twenty passes (three softmaxes, their log-sum-exps, the KL and the gradient's terms).
cpu_head.cpp brings each row into L1 once and makes three sweeps there: the same losses and gradients to float
rounding (tests/test_cpu_head.py checks them against float64 value by value). It serves float32 blocks on the CPU
with one torch thread (where it was measured; torch's operations use every thread); anything else keeps torch's
operations.
"""

from __future__ import annotations

import ctypes
import math
import warnings
from pathlib import Path

import torch

from babysweep.lm import cpu_kernels

SOURCE = Path(__file__).with_name("cpu_head.cpp")
_library: ctypes.CDLL | None = None


def build(folder: Path) -> ctypes.CDLL:
    """The compiled kernel (lm/cpu_kernels.py builds it into `folder` once per source, compiler and CPU)."""
    global _library
    if _library is None:
        lib = cpu_kernels.build(SOURCE, folder)
        pointer, i64 = ctypes.c_void_p, ctypes.c_int64
        lib.head_softmax_gradient.argtypes = [pointer, i64, i64, i64, pointer, pointer, pointer]
        lib.head_softmax_gradient.restype = ctypes.c_int
        lib.head_distill_gradient.argtypes = [pointer, pointer] + [i64] * 4 + [pointer] * 3 + [ctypes.c_float] + [pointer] * 2
        lib.head_distill_gradient.restype = ctypes.c_int
        _library = lib
    return _library


def use_cpu_head(folder: Path) -> bool:
    """Build the kernel into `folder` so that the fused head uses it; if that fails (no compiler, an unsupported one)
    the head keeps torch's operations, with a warning."""
    try:
        build(folder)
    except OSError as error:
        warnings.warn(f"train.fused: the CPU head kernel was not built ({error}); the head keeps torch's operations.")
        return False
    return True


def applies(block: torch.Tensor) -> bool:
    """Whether the kernel computes this block: built, on the CPU, one torch thread, float32, rows of contiguous values
    that do not overlap."""
    return (_library is not None and block.device.type == "cpu" and torch.get_num_threads() == 1
            and block.dtype == torch.float32 and block.stride(1) == 1 and block.stride(0) >= block.size(1))


def softmax_gradient(block: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, row_loss: torch.Tensor) -> None:
    """In place: block (base-2 logits, [rows, vocab], where `applies`) becomes weight * (softmax - onehot(target)), and
    row_loss (contiguous float32 [rows]) each row's cross-entropy in bits. target: int64 [rows], in [0, vocab);
    weight: float32 [rows]."""
    rows = block.size(0)
    if not (applies(block) and target.dtype == torch.int64 and weight.dtype == row_loss.dtype == torch.float32
            and target.numel() == weight.numel() == row_loss.numel() == rows and row_loss.is_contiguous()):
        raise ValueError("cpu_head.softmax_gradient: the block, targets, weights or row losses are not what the kernel reads")
    target, weight = target.contiguous(), weight.contiguous()
    if _library.head_softmax_gradient(block.data_ptr(), rows, block.size(1), block.stride(0),
                                      target.data_ptr(), weight.data_ptr(), row_loss.data_ptr()):
        raise RuntimeError(f"a target is outside the vocabulary's {block.size(1)} classes")  # what gather raises


def distill_gradient(block: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor, a: torch.Tensor,
                     b: torch.Tensor, inv_t: float, ce_rows: torch.Tensor, kl_rows: torch.Tensor) -> None:
    """The distilled head's rows (ensemble "logits"), in place. block: the student's natural logits z [rows, vocab];
    teacher: the teachers' mean logits divided by T, same shape (overwritten). With p = softmax(z), q = softmax(z / T)
    and r = softmax(teacher): ce_rows = -log p[target], kl_rows = KL(r || q), and block becomes
    b * (q - r) + a * (p - onehot(target)). target int64, a, b, ce_rows and kl_rows float32, all [rows]; inv_t > 0
    (every exponential's argument is then at most 0)."""
    rows = block.size(0)
    if not (applies(block) and applies(teacher) and teacher.shape == block.shape and 0 < inv_t < math.inf
            and target.dtype == torch.int64
            and a.dtype == b.dtype == ce_rows.dtype == kl_rows.dtype == torch.float32
            and target.numel() == a.numel() == b.numel() == ce_rows.numel() == kl_rows.numel() == rows
            and ce_rows.is_contiguous() and kl_rows.is_contiguous()):
        raise ValueError("cpu_head.distill_gradient: the blocks, targets, weights or row losses are not what the kernel reads")
    target, a, b = target.contiguous(), a.contiguous(), b.contiguous()
    if _library.head_distill_gradient(block.data_ptr(), teacher.data_ptr(), rows, block.size(1), block.stride(0),
                                      teacher.stride(0), target.data_ptr(), a.data_ptr(), b.data_ptr(), inv_t,
                                      ce_rows.data_ptr(), kl_rows.data_ptr()):
        raise RuntimeError(f"a target is outside the vocabulary's {block.size(1)} classes")  # what gather raises
