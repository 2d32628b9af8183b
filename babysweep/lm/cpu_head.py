"""The row-wise part of the fused head's cross-entropy (objectives._HeadCrossEntropy) in C++, a row at a time in L1.

    use_cpu_head(folder)    # builds cpu_head.cpp into `folder` once; False (and torch's operations) if it cannot

With torch's operations, each [256, vocab] block of logits takes four passes over its 1.6 MB (row maximum, subtract,
exp2, sum), a gather, a scatter and two scalings of [rows, d] arrays, eight calls in all. cpu_head.cpp brings each
row into L1 once and makes its three sweeps there: the same softmax and gradient to float rounding
(tests/test_cpu_head.py checks it against float64 cross-entropy value by value). It serves float32 blocks on the CPU
with one torch thread (where it was measured; torch's operations use every thread); anything else keeps torch's
operations.
"""

from __future__ import annotations

import ctypes
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
