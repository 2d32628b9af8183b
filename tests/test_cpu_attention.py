"""lm/cpu_attention.py: the CPU attention kernel of train.compile, against torch's own attention value by value, and
where it is (and is not) used."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch
import torch.nn.functional as F

from babysweep.lm import cpu_attention

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the kernel is built with a C++ compiler")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    return cpu_attention.build(tmp_path_factory.mktemp("kernels"))


@pytest.mark.parametrize("shape", [(4, 4, 64, 16), (3, 2, 37, 16), (2, 2, 70, 32), (1, 3, 20, 64), (2, 1, 2, 16)])
def test_the_kernel_gives_torchs_attention_and_gradients(kernel, shape):
    """Output and the three gradients against torch's causal SDPA in float64 (the reference), for inputs laid out as
    Hugging Face's models pass them ([B, S, H, D] memory seen as [B, H, S, D]): within float32 rounding, and no
    further from it than torch's own float32 kernel is (times 4)."""
    batch, heads, length, size = shape
    torch.manual_seed(sum(shape))
    q, k, v = (torch.randn(batch, length, heads, size).transpose(1, 2) for _ in range(3))
    grad = torch.randn(batch, length, heads, size)  # the output's layout
    mine = [t.clone().requires_grad_() for t in (q, k, v)]
    out = torch.ops.babysweep.causal_attention(*mine, size ** -0.5)[0]
    assert out.shape == (batch, length, heads, size)
    out.backward(grad)
    torchs = [t.clone().requires_grad_() for t in (q, k, v)]
    ref32 = F.scaled_dot_product_attention(*torchs, is_causal=True)
    ref32.backward(grad.transpose(1, 2))
    exact = [t.double().requires_grad_() for t in (q, k, v)]
    ref = F.scaled_dot_product_attention(*exact, is_causal=True)
    ref.backward(grad.transpose(1, 2).double())
    pairs = [(out.transpose(1, 2), ref32, ref)] + [(a.grad, b.grad, c.grad) for a, b, c in zip(mine, torchs, exact)]
    for name, (got, torch32, want) in zip(("output", "dq", "dk", "dv"), pairs):
        scale = want.abs().max()
        error = float((got.double() - want).abs().max() / scale)
        assert error < 2e-6 and error <= 4 * max(float((torch32.double() - want).abs().max() / scale), 1e-7), name
    assert mine[0].grad.shape == q.shape


def test_compiled_attention_uses_the_kernel_and_eager_calls_keep_sdpa(kernel, monkeypatch, tmp_path):
    """use_cpu_attention: compiled forward and backward call the kernel; eager calls (evaluation) and calls the
    kernel does not cover (a padding mask) go to SDPA, with the untouched model's numbers."""
    from babysweep.core.config import RunConfig
    from babysweep.lm.models import build_model

    calls = []

    class Counted:
        def __getattr__(self, name):
            function = getattr(kernel, name)
            return lambda *args: calls.append(name) or function(*args)

    def model():
        torch.manual_seed(0)
        return build_model(RunConfig.of({"model": {"arch": "llama", "layers": 2, "hidden": 32, "heads": 2}}).model, 300, 24)

    plain, routed = model(), model()
    assert cpu_attention.use_cpu_attention(routed, tmp_path)
    assert routed.config._attn_implementation == cpu_attention.NAME
    monkeypatch.setattr(cpu_attention, "_library", Counted())
    ids = torch.randint(0, 300, (3, 24))
    assert torch.equal(routed(input_ids=ids).logits, plain(input_ids=ids).logits) and not calls  # eager: SDPA
    padded = torch.ones_like(ids)
    padded[0, -5:] = 0
    compiled = torch.compile(routed.base_model, backend="eager", fullgraph=True)
    compiled(input_ids=ids, attention_mask=padded)
    assert not calls  # a padding mask: SDPA, compiled too
    hidden = compiled(input_ids=ids).last_hidden_state
    hidden.square().sum().backward()
    assert calls == ["causal_attention_forward"] * 2 + ["causal_attention_backward"] * 2  # two layers
    want = plain.base_model(input_ids=ids).last_hidden_state
    want.square().sum().backward()
    assert hidden.detach() == pytest.approx(want.detach(), rel=1e-5, abs=1e-5)
    for (name, got), want_param in zip(routed.named_parameters(), plain.parameters()):
        if got.grad is not None:
            assert float((got.grad - want_param.grad).abs().max()) <= 1e-4 * float(want_param.grad.abs().max()), name


def test_without_a_compiler_the_model_stays_on_sdpa_with_a_warning(monkeypatch, tmp_path):
    from babysweep.core.config import RunConfig
    from babysweep.lm.models import build_model

    monkeypatch.setattr(cpu_attention, "_library", None)
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    model = build_model(RunConfig.of({"model": {"arch": "llama", "layers": 1, "hidden": 32, "heads": 2}}).model, 300, 24)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not cpu_attention.use_cpu_attention(model, tmp_path)
    assert model.config._attn_implementation == "sdpa"
    assert any("no-such-compiler-here is not installed" in str(w.message) for w in caught)
    assert not list(tmp_path.iterdir())
