"""Causal attention for small heads on the CPU, for compiled training steps (train.compile).

    use_cpu_attention(model, folder)    # builds cpu_attention.cpp into `folder` once; False if it cannot

At the default models' head size (16) torch's CPU flash-attention kernel spends most of its time in hundreds of tiny
matrix-product calls per layer (3 ms of a 50 ms baseline step per layer, forward and backward, where the FLOPs model
credits 1 ms). cpu_attention.cpp computes the same attention one (batch, head) at a time in registers and L1: the
same softmax, the same flash-attention backward, float32, to float rounding (tests/test_cpu_attention.py compares it
with torch's kernel in float64, value by value).

It is a torch custom op (`babysweep::causal_attention`, with its backward), so torch.compile keeps it as one opaque
call. The model's attention goes through it only inside compiled code, and only where it applies (CPU, float32, causal,
no mask, no dropout, head size 16, 32 or 64, no grouped keys); anything else, and every eager call (evaluation
included), goes to Hugging Face's SDPA attention exactly as before.
"""

from __future__ import annotations

import ctypes
import hashlib
import warnings
from pathlib import Path

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from babysweep.lm import cpu_kernels

NAME = "babysweep_cpu"  # the attention implementation's name in transformers' registry
HEAD_SIZES = (16, 32, 64)
SOURCE = Path(__file__).with_name("cpu_attention.cpp")
_library: ctypes.CDLL | None = None


def version() -> str:
    """A digest of this module and the kernel's source with its header. Inductor's on-disk cache does not key its
    compiled graphs by a custom op's output layouts, so the trainer keeps one cache folder per version of them."""
    return hashlib.sha256(Path(__file__).read_bytes() + cpu_kernels.sources_text(SOURCE).encode()).hexdigest()[:12]


def build(folder: Path) -> ctypes.CDLL:
    """The compiled kernel (lm/cpu_kernels.py builds it into `folder` once per source, compiler and CPU)."""
    global _library
    if _library is not None:
        return _library
    lib = cpu_kernels.build(SOURCE, folder)
    pointer, i64p, i32, f32 = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64), ctypes.c_int, ctypes.c_float
    lib.causal_attention_forward.argtypes = [pointer, i64p] * 4 + [pointer, i32, i32, i32, i32, f32]
    lib.causal_attention_backward.argtypes = [pointer, i64p] * 4 + [pointer, pointer, i64p] + [pointer] * 3 + [i64p] + [i32] * 4 + [f32]
    lib.causal_attention_forward.restype = lib.causal_attention_backward.restype = i32
    _library = lib
    return lib


def _args(t: torch.Tensor) -> tuple[int, ctypes.Array]:
    """A [B, H, S, D] tensor's pointer and its batch, head and row strides."""
    return t.data_ptr(), (ctypes.c_int64 * 3)(*t.stride()[:3])


def _rows_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


@torch.library.custom_op("babysweep::causal_attention", mutates_args=())
def causal_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal softmax(scale q k^T) v for [B, H, S, D] inputs: the output as [B, S, H, D] (what Hugging Face's
    attention functions return) and the rows' log-sum-exp [B, H, S] (for the backward)."""
    q, k, v = (_rows_contiguous(t) for t in (query, key, value))
    batch, heads, length, size = q.shape
    out = q.new_empty(batch, length, heads, size)
    lse = q.new_empty(batch, heads, length)
    code = _library.causal_attention_forward(*_args(q), *_args(k), *_args(v), *_args(out.transpose(1, 2)),
                                             lse.data_ptr(), batch, heads, length, size, scale)
    if code:
        raise ValueError(f"babysweep::causal_attention: head size {size} is not one of {HEAD_SIZES}")
    return out, lse


@causal_attention.register_fake
def _(query, key, value, scale):
    batch, heads, length, size = query.shape
    return query.new_empty(batch, length, heads, size), query.new_empty(batch, heads, length)


@torch.library.custom_op("babysweep::causal_attention_backward", mutates_args=())
def causal_attention_backward(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, out: torch.Tensor,
                              lse: torch.Tensor, grad: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients for query, key and value ([B, H, S, D] views of [B, S, H, D] memory, the layout of the projections
    they flow back into) from the output's gradient ([B, S, H, D])."""
    q, k, v = (_rows_contiguous(t) for t in (query, key, value))
    o, g = (_rows_contiguous(t).transpose(1, 2) for t in (out, grad))
    batch, heads, length, size = q.shape
    dq, dk, dv = (q.new_empty(batch, length, heads, size).transpose(1, 2) for _ in range(3))
    code = _library.causal_attention_backward(*_args(q), *_args(k), *_args(v), *_args(o), lse.contiguous().data_ptr(),
                                              *_args(g), dq.data_ptr(), dk.data_ptr(), dv.data_ptr(), _args(dq)[1],
                                              batch, heads, length, size, scale)
    if code:
        raise ValueError(f"babysweep::causal_attention: head size {size} is not one of {HEAD_SIZES}")
    return dq, dk, dv


@causal_attention_backward.register_fake
def _(query, key, value, out, lse, grad, scale):
    batch, heads, length, size = query.shape
    return tuple(query.new_empty(batch, length, heads, size).transpose(1, 2) for _ in range(3))


def _keep(ctx, inputs, output):
    query, key, value, scale = inputs
    ctx.save_for_backward(query, key, value, *output)
    ctx.scale = scale


def _backward(ctx, grad_out, grad_lse):  # the log-sum-exp is not differentiated
    query, key, value, out, lse = ctx.saved_tensors
    return (*causal_attention_backward(query, key, value, out, lse, grad_out, ctx.scale), None)


causal_attention.register_autograd(_backward, setup_context=_keep)


def applies(module, query, key, attention_mask, dropout: float, is_causal, kwargs: dict) -> bool:
    """Whether this call is one the kernel computes exactly as SDPA would: compiled code (eager calls, evaluation
    among them, keep SDPA), CPU float32 self-attention with the causal mask only, no dropout, a supported head size,
    as many key heads as query heads, and nothing else asked of the attention."""
    return (torch.compiler.is_compiling() and _library is not None and query.device.type == "cpu"
            and query.dtype == key.dtype == torch.float32 and attention_mask is None and not dropout
            and is_causal is not False and getattr(module, "is_causal", True) and query.shape[-1] in HEAD_SIZES
            and query.shape[1] == key.shape[1] and query.shape[2] == key.shape[2] > 1
            and not any(kwargs.get(k) is not None for k in ("softcap", "position_bias", "sliding_window", "s_aux"))
            and not kwargs.get("output_attentions", False))


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
              is_causal: bool | None = None, **kwargs):
    """A Hugging Face attention function: the kernel where it applies, else Hugging Face's SDPA attention."""
    if applies(module, query, key, attention_mask, dropout, is_causal, kwargs):
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        return causal_attention(query, key, value, float(scale))[0], None
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                  is_causal=is_causal, **kwargs)


def use_cpu_attention(model, folder: Path) -> bool:
    """Route `model`'s SDPA attention through `attention` above (its masks stay SDPA's). Builds the kernel into
    `folder` first; if that fails (no compiler, an unsupported one) the model is left on SDPA with a warning."""
    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    try:
        build(folder)
    except OSError as error:
        warnings.warn(f"train.compile: the CPU attention kernel was not built ({error}); attention stays torch's SDPA.")
        return False
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
    AttentionInterface.register(NAME, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    model.config._attn_implementation = NAME
    return True
