"""lm/cpu_head.py: the fused head's row pass in C++, against float64 cross-entropy value by value, and where it is
(and is not) used."""

from __future__ import annotations

import math
import shutil
import warnings

import pytest
import torch
import torch.nn.functional as F

from babysweep.lm import cpu_head, objectives
from babysweep.train import trainer
from conftest import tiny_config

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the kernel is built with a C++ compiler")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    before = cpu_head._library
    yield cpu_head.build(tmp_path_factory.mktemp("kernels"))
    cpu_head._library = before  # other modules' tests see the path they would have seen without this one


@pytest.fixture(autouse=True)
def one_thread():
    """The kernel serves one-thread processes (a sweep trial's); pytest's may have more."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def head_loss_and_grads(hidden, weight, ids):
    hidden, weight = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    loss = objectives.head_causal_lm_loss(hidden, weight, ids)
    return (loss.detach(), *torch.autograd.grad(loss, (hidden, weight)))


@pytest.mark.parametrize("vocab,logit_scale", [(300, 1.0), (1542, 1.0), (50, 60.0)])
def test_the_kernel_gives_cross_entropy_and_its_gradients(kernel, monkeypatch, vocab, logit_scale):
    """Two full blocks and a remainder, ignored targets, a vocabulary that is no multiple of the vector width, and
    logits wide enough that most of a row's exponentials underflow: loss and both gradients against float64
    cross-entropy within float32 rounding, and no further from it than torch's operations in float32 (times 2)."""
    torch.manual_seed(vocab)
    hidden = torch.randn(8, 70, 16) * logit_scale
    weight = torch.randn(vocab, 16) * 0.5
    ids = torch.randint(0, vocab, (8, 70))
    ids[1, 5:9] = -100  # the loss ignores these targets (as padding would)
    assert 2 * objectives.HEAD_CE_ROWS < ids.numel() < 3 * objectives.HEAD_CE_ROWS
    calls = []
    real = cpu_head.softmax_gradient
    monkeypatch.setattr(cpu_head, "softmax_gradient", lambda *a: calls.append(1) or real(*a))
    mine = head_loss_and_grads(hidden, weight, ids)
    assert len(calls) == 3  # the kernel did every block
    with monkeypatch.context() as m:
        m.setattr(cpu_head, "_library", None)
        torchs = head_loss_and_grads(hidden, weight, ids)
    assert len(calls) == 3
    exact = head_loss_and_grads(hidden.double(), weight.double(), ids)  # float64: torch's operations
    plain = F.cross_entropy((hidden.double() @ weight.double().t())[:, :-1].reshape(-1, vocab), ids[:, 1:].reshape(-1))
    assert float(exact[0]) == pytest.approx(float(plain), rel=1e-12)
    for name, got, torch32, want in zip(("loss", "hidden", "weight"), mine, torchs, exact):
        scale = want.abs().max()
        error = float((got.double() - want).abs().max() / scale)
        assert error < 1e-5 and error <= 2 * max(float((torch32.double() - want).abs().max() / scale), 1e-7), name


def test_a_target_outside_the_vocabulary_is_an_error(kernel):
    hidden, weight = torch.randn(2, 10, 8), torch.randn(40, 8)
    with pytest.raises(RuntimeError, match="outside the vocabulary's 40 classes"):
        objectives.head_causal_lm_loss(hidden, weight, torch.full((2, 10), 40))


def test_rows_apart_wider_than_the_vocabulary_and_non_finite_logits(kernel):
    """A block whose rows lie 7 floats further apart than its 37 columns: the gradient rows equal a contiguous
    block's, the columns in between are untouched. A row holding inf or nan gets a nan loss, as torch's path gives."""
    torch.manual_seed(0)
    logits = torch.randn(5, 37) * 4
    logits[3, 11] = float("inf")
    logits[4, 2] = float("nan")
    target, weight = torch.tensor([0, 36, 5, 7, 9]), torch.full((5,), 0.25)
    wide = torch.full((5, 44), -7.0)
    wide[:, :37] = logits
    block, dense = wide[:, :37], logits.clone()
    losses = [torch.empty(5), torch.empty(5)]
    cpu_head.softmax_gradient(block, target, weight, losses[0])
    cpu_head.softmax_gradient(dense, target, weight, losses[1])
    assert torch.equal(block[:3], dense[:3]) and torch.equal(losses[0][:3], losses[1][:3])
    assert torch.equal(wide[:, 37:], torch.full((5, 7), -7.0))
    ln2 = math.log(2)  # the block holds base-2 logits x: natural ones are x ln 2, and the loss is in bits
    want = F.cross_entropy(logits[:3].double() * ln2, target[:3], reduction="none") / ln2
    assert torch.allclose(losses[0][:3].double(), want, rtol=1e-6)
    assert losses[0][3:].isnan().all()


def test_only_what_it_computes_goes_to_the_kernel(kernel, monkeypatch):
    """More than one torch thread, float64 or a wrongly typed argument: torch's operations, or an error, never a read
    the kernel was not written for."""
    block = torch.randn(4, 20)
    assert cpu_head.applies(block) and not cpu_head.applies(block.double()) and not cpu_head.applies(block.t())
    assert not cpu_head.applies(torch.randn(1, 20).expand(4, 20))  # rows that overlap
    with pytest.raises(ValueError, match="not what the kernel reads"):
        cpu_head.softmax_gradient(block, torch.zeros(4, dtype=torch.int32), torch.ones(4), torch.empty(4))
    with pytest.raises(ValueError, match="not what the kernel reads"):
        cpu_head.softmax_gradient(block, torch.zeros(4, dtype=torch.int64), torch.ones(3), torch.empty(4))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert not cpu_head.applies(block)


def test_fused_cpu_training_builds_it_and_a_missing_compiler_leaves_torchs_operations(kernel, monkeypatch, tmp_path,
                                                                                       cache_dir):
    config = tiny_config(cache_dir, train={"fused": True, "max_steps": 2}, eval={"blimp": "none"})
    monkeypatch.setattr(cpu_head, "_library", None)
    trainer.setup(config, tmp_path / "fused")
    assert cpu_head._library is not None
    monkeypatch.setattr(cpu_head, "_library", None)
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.setup(tiny_config(cache_dir, train={"fused": True}, data={"cache_dir": str(tmp_path / "fresh")}),
                      tmp_path / "no-compiler")
    assert cpu_head._library is None
    assert [str(w.message) for w in caught if "head kernel" in str(w.message)] == [
        "train.fused: the CPU head kernel was not built (no-such-compiler-here is not installed); the head keeps "
        "torch's operations."]


@pytest.mark.parametrize("alpha,temperature,reduction,half,spread", [
    (0.5, 2.0, "token", True, 1.0), (0.3, 1.0, "babyllama", False, 1.0), (0.0, 1.7, "token", False, 1.0),
    (0.5, 0.5, "token", True, 6.0)])  # logits spread past exp's underflow, sharpened further by T < 1
def test_the_distillation_kernel_gives_the_distillation_loss(kernel, monkeypatch, alpha, temperature, reduction, half,
                                                             spread):
    """head_distillation_loss (ensemble "logits", two teachers, float16 like the cache's or float32): total, CE, KL
    and both gradients with the kernel against the same loss in float64, within float32 rounding and no further off
    than torch's operations in float32 (times 2); two full blocks, a remainder, ignored targets."""
    torch.manual_seed(7)
    hidden, weight = torch.randn(8, 70, 16) * 2 * spread, torch.randn(300, 16) * 0.5
    ids = torch.randint(0, 300, (8, 70))
    ids[2, 10:14] = -100
    teachers = [torch.randn(8, 70, 300) * 4 * spread for _ in range(2)]
    teachers = [t.half() for t in teachers] if half else teachers
    calls = []
    real = cpu_head.distill_gradient
    monkeypatch.setattr(cpu_head, "distill_gradient", lambda *a: calls.append(1) or real(*a))

    def run(h, w, t):
        h, w = h.clone().requires_grad_(), w.clone().requires_grad_()
        out = objectives.head_distillation_loss(h, w, ids, t, alpha, temperature, "logits", reduction)
        return [out.total.detach(), out.ce.detach(), out.kd.detach(), *torch.autograd.grad(out.total, (h, w))]

    mine = run(hidden, weight, teachers)
    assert len(calls) == 3
    with monkeypatch.context() as m:
        m.setattr(cpu_head, "_library", None)
        torchs = run(hidden, weight, teachers)
    exact = run(hidden.double(), weight.double(), [t.double() for t in teachers])
    assert len(calls) == 3
    for name, got, torch32, want in zip(("total", "ce", "kd", "hidden", "weight"), mine, torchs, exact):
        scale = want.abs().max()
        error = float((got.double() - want).abs().max() / scale)
        assert error < 1e-5 and error <= 2 * max(float((torch32.double() - want).abs().max() / scale), 1e-7), name


def test_the_distillation_kernel_reads_each_block_by_its_own_row_spacing(kernel):
    """Student and teacher blocks whose rows lie differently far apart give the same rows as contiguous ones; an
    out-of-range target and arguments the kernel was not written for are errors."""
    torch.manual_seed(3)
    z, u = torch.randn(6, 37) * 3, torch.randn(6, 37) * 3
    target, a, b = torch.tensor([0, 36, 5, 7, 9, 1]), torch.full((6,), 0.1), torch.full((6,), 0.2)
    wide_z, wide_u = torch.zeros(6, 40), torch.zeros(6, 51)
    wide_z[:, :37], wide_u[:, :37] = z, u
    out = [(torch.empty(6), torch.empty(6)) for _ in range(2)]
    dense = z.clone()
    cpu_head.distill_gradient(wide_z[:, :37], wide_u[:, :37], target, a, b, 0.5, *out[0])
    cpu_head.distill_gradient(dense, u.clone(), target, a, b, 0.5, *out[1])
    assert torch.equal(wide_z[:, :37], dense) and torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])
    assert torch.equal(wide_z[:, 37:], torch.zeros(6, 3))
    with pytest.raises(RuntimeError, match="outside the vocabulary's 37 classes"):
        cpu_head.distill_gradient(z.clone(), u.clone(), torch.full((6,), 37), a, b, 0.5, *out[0])
    for bad in ({"inv_t": -1.0}, {"a": a.double()}, {"u": u[:5].clone()}):
        args = {"z": z.clone(), "u": u.clone(), "target": target, "a": a, "b": b, "inv_t": 0.5, **bad}
        with pytest.raises(ValueError, match="not what the kernel reads"):
            cpu_head.distill_gradient(args["z"], args["u"], args["target"], args["a"], args["b"], args["inv_t"], *out[0])
