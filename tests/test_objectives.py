import math

import pytest
import torch

from babysweep.lm import objectives as O
def _log_softmax(row, t=1.0):
    m = max(x / t for x in row)
    z = math.log(sum(math.exp(x / t - m) for x in row)) + m
    return [x / t - z for x in row]


def test_causal_lm_loss_by_hand():
    logits = torch.tensor([[[1.0, 2.0, 0.5], [0.1, 0.2, 3.0], [2.0, 0.0, 1.0]]])
    ids = torch.tensor([[0, 2, 1]])
    expected = -(_log_softmax([1.0, 2.0, 0.5])[2] + _log_softmax([0.1, 0.2, 3.0])[1]) / 2
    assert O.causal_lm_loss(logits, ids).item() == pytest.approx(expected, rel=1e-6)
    mask = torch.tensor([[1, 1, 0]])  # last target is padding: only the first prediction counts
    assert O.causal_lm_loss(logits, ids, mask).item() == pytest.approx(-_log_softmax([1.0, 2.0, 0.5])[2], rel=1e-6)


def _kl_by_hand(student_rows, teacher_rows_list, t, ensemble):
    total = 0.0
    for pos, srow in enumerate(student_rows):
        slp = _log_softmax(srow, t)
        rows = [rows[pos] for rows in teacher_rows_list]
        if ensemble == "logits":
            tlp = _log_softmax([sum(c) / len(c) for c in zip(*rows)], t)
            tp = [math.exp(x) for x in tlp]
        else:
            tp = [sum(math.exp(x) for x in col) / len(col) for col in zip(*[_log_softmax(r, t) for r in rows])]
        total += sum(p * (math.log(p) - s) for p, s in zip(tp, slp))
    return total


@pytest.mark.parametrize("ensemble", ["logits", "probs"])
def test_distillation_by_hand(ensemble):
    g = torch.Generator().manual_seed(0)
    student = torch.randn(1, 4, 5, generator=g)
    teachers = [torch.randn(1, 4, 5, generator=g) * 2, torch.randn(1, 4, 5, generator=g)]
    ids = torch.tensor([[1, 4, 0, 2]])
    t, alpha = 2.0, 0.3
    out = O.distillation_loss(student, ids, teachers, alpha=alpha, temperature=t, ensemble=ensemble)
    kl = _kl_by_hand(student[0, :3].tolist(), [x[0, :3].tolist() for x in teachers], t, ensemble) / 3  # per token
    ce = O.causal_lm_loss(student, ids).item()
    assert out.kd.item() == pytest.approx(kl, rel=1e-5)
    assert out.total.item() == pytest.approx(alpha * ce + (1 - alpha) * t * t * kl, rel=1e-5)


def test_logits_and_probs_ensembles_differ_and_babyllama_scaling():
    g = torch.Generator().manual_seed(1)
    student, ids = torch.randn(2, 6, 7, generator=g), torch.randint(0, 7, (2, 6), generator=g)
    teachers = [torch.randn(2, 6, 7, generator=g) * 3, torch.randn(2, 6, 7, generator=g)]
    a = O.distillation_loss(student, ids, teachers, 0.5, 2.0, "logits").kd
    b = O.distillation_loss(student, ids, teachers, 0.5, 2.0, "probs").kd
    assert not torch.isclose(a, b)
    orig = O.distillation_loss(student, ids, teachers, 0.5, 2.0, "logits", kd_reduction="babyllama").kd
    last = _kl_by_hand(student[:, -1].tolist(), [x[:, -1].tolist() for x in teachers], 2.0, "logits") / 2
    assert orig.item() == pytest.approx(5 * a.item() + last, rel=1e-5)  # 5 predicted positions + the last one


def _babyllama_compute_loss(student, ids, teachers, alpha, t):
    """BabyLlama's DistillationTrainer.compute_loss, restated: the student's own HF loss (mean CE of
    position i predicting token i+1) plus torch's KLDivLoss(reduction="batchmean") between the
    student's log-softmax at T and the softmax of the teachers' averaged logits at T, which sums over
    every [batch, position, vocab] element (the last position too) and divides by the batch size,
    times T squared."""
    hf_ce = torch.nn.functional.cross_entropy(student[:, :-1].reshape(-1, student.size(-1)), ids[:, 1:].reshape(-1))
    avg = torch.stack(teachers).mean(0)
    kl = torch.nn.KLDivLoss(reduction="batchmean")(torch.log_softmax(student / t, -1), torch.softmax(avg / t, -1)) * t**2
    return alpha * hf_ce + (1.0 - alpha) * kl


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("alpha,t", [(0.5, 2.0), (0.0, 1.0), (0.8, 3.0)])
def test_babyllama_reduction_is_babyllamas_compute_loss(dtype, tol, alpha, t):
    g = torch.Generator().manual_seed(5)
    z = torch.randn(3, 8, 13, generator=g, dtype=dtype) * 2
    ids = torch.randint(0, 13, (3, 8), generator=g)
    teachers = [torch.randn(3, 8, 13, generator=g, dtype=dtype) * 3 for _ in range(2)]
    ours, ref = z.clone().requires_grad_(), z.clone().requires_grad_()
    out = O.distillation_loss(ours, ids, teachers, alpha, t, "logits", "babyllama")
    out.total.backward()
    expected = _babyllama_compute_loss(ref, ids, teachers, alpha, t)
    expected.backward()
    torch.testing.assert_close(out.total.to(dtype), expected, rtol=tol, atol=tol)
    torch.testing.assert_close(ours.grad, ref.grad, rtol=tol, atol=tol)
    assert ours.grad[:, -1].abs().sum() > 0  # the last position is distilled, as in BabyLlama
    token = O.distillation_loss(z, ids, teachers, alpha, t, "logits", "token")
    assert not torch.isclose(token.total.to(dtype), expected)  # the per-token default is another loss


def test_alpha_one_is_plain_ce_without_teachers():
    logits, ids = torch.randn(2, 5, 9), torch.randint(0, 9, (2, 5))
    out = O.distillation_loss(logits, ids, None, alpha=1.0, temperature=2.0)
    assert torch.equal(out.total, O.causal_lm_loss(logits, ids)) and out.kd is None


def test_mask_tokens_statistics_and_determinism():
    ids = torch.randint(4, 1000, (200, 128))
    ids[:, 0] = 1  # BOS: special, never chosen
    masked, labels = O.mask_tokens(ids, torch.Generator().manual_seed(0), mask_id=3, vocab_size=1000)
    chosen = labels != -100
    assert not chosen[:, 0].any()
    assert chosen.float().mean().item() == pytest.approx(0.15 * 127 / 128, abs=0.005)
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(masked[~chosen], ids[~chosen])
    as_mask = (masked[chosen] == 3).float().mean().item()
    unchanged = (masked[chosen] == ids[chosen]).float().mean().item()
    assert as_mask == pytest.approx(0.8, abs=0.02) and unchanged == pytest.approx(0.1 + 0.1 / 996, abs=0.02)
    assert (masked[chosen] >= 3).all()
    again = O.mask_tokens(ids, torch.Generator().manual_seed(0), mask_id=3, vocab_size=1000)
    assert torch.equal(again[0], masked) and torch.equal(again[1], labels)


def test_mlm_loss_counts_chosen_positions_only():
    logits = torch.randn(1, 3, 4)
    labels = torch.tensor([[-100, 2, -100]])
    assert O.mlm_loss(logits, labels).item() == pytest.approx(-_log_softmax(logits[0, 1].tolist())[2], rel=1e-6)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_bidirectional_attention_only_in_mlm_mode(arch):
    from babysweep.core.config import RunConfig
    from babysweep.lm.models import build_model

    torch.manual_seed(0)
    model = build_model(RunConfig.of({"model": {"arch": arch, "layers": 2, "hidden": 32, "heads": 2}}).model, 50, 16).eval()
    a = torch.tensor([[5, 6, 7, 8, 9, 10]])
    b = a.clone()
    b[0, 4] = 20  # a later token changes
    causal = lambda x: model(input_ids=x, attention_mask=torch.ones_like(x)).logits
    full = lambda x: model(input_ids=x, attention_mask=O.bidirectional_mask(torch.ones_like(x), torch.float32)).logits
    with torch.no_grad():
        assert torch.allclose(causal(a)[0, 1], causal(b)[0, 1])
        assert not torch.allclose(full(a)[0, 1], full(b)[0, 1])
        padded = torch.tensor([[5, 6, 7, 0, 0]])
        padded2 = torch.tensor([[5, 6, 7, 30, 31]])
        keep = torch.tensor([[1, 1, 1, 0, 0]])
        m = O.bidirectional_mask(keep, torch.float32)
        torch.testing.assert_close(model(input_ids=padded, attention_mask=m).logits[0, :3],
                                   model(input_ids=padded2, attention_mask=m).logits[0, :3])



def _reference_distillation(z, ids, teachers, alpha, t, ensemble, reduction, mask):
    """The plain formula, differentiated by autograd: the fused loss must match it."""
    batch, _, vocab = z.shape
    target = O._targets(ids, mask)
    flat = z.reshape(-1, vocab)
    ce = torch.nn.functional.cross_entropy(flat, target, ignore_index=-100)
    weight = (target != -100).to(z.dtype)
    if reduction == "babyllama":  # every real input position, the last one too
        weight = torch.ones_like(weight) if mask is None else mask.reshape(-1).to(z.dtype)
    if ensemble == "logits":
        p_t = torch.softmax(sum(x.reshape(-1, vocab) for x in teachers) / len(teachers) / t, -1)
    else:
        p_t = sum(torch.softmax(x.reshape(-1, vocab) / t, -1) for x in teachers) / len(teachers)
    kl = (p_t * (p_t.log() - torch.log_softmax(flat / t, -1))).sum(-1) * weight
    kd = kl.sum() / (batch if reduction == "babyllama" else weight.sum())
    return alpha * ce + (1 - alpha) * t * t * kd, ce, kd


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("ensemble", ["logits", "probs"])
@pytest.mark.parametrize("reduction", ["token", "babyllama"])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_fused_distillation_matches_autograd_of_the_formula(monkeypatch, alpha, ensemble, reduction, temperature):
    vocab = 11
    monkeypatch.setattr(O, "KD_CHUNK_ELEMENTS", {"cpu": 4 * vocab, "other": 4 * vocab})  # several chunks, a short last one
    g = torch.Generator().manual_seed(3)
    z = torch.randn(3, 7, vocab, generator=g, dtype=torch.float64) * 2
    ids = torch.randint(0, vocab, (3, 7), generator=g)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[0, 4:] = 0  # padding: ignored targets, zero gradient
    mask[2, 1:] = 0
    for n_teachers in (1, 2, 3):
        teachers = [torch.randn(3, 7, vocab, generator=g, dtype=torch.float64) * 3 for _ in range(n_teachers)]
        for m in (None, mask):
            ours, ref = z.clone().requires_grad_(), z.clone().requires_grad_()
            out = O.distillation_loss(ours, ids, teachers, alpha, temperature, ensemble, reduction, m)
            (out.total * 0.37).backward()  # a non-unit incoming gradient
            total, ce, kd = _reference_distillation(ref, ids, teachers, alpha, temperature, ensemble, reduction, m)
            (total * 0.37).backward()
            # alpha < 1: the fused loss works in float64 here; alpha = 1 is plain CE, float32 as ever.
            tol = 1e-12 if alpha < 1 else 1e-6
            torch.testing.assert_close(out.total.double(), total, rtol=tol, atol=tol)
            torch.testing.assert_close(out.ce.double(), ce, rtol=tol, atol=tol)
            if alpha < 1:
                assert out.total.dtype == torch.float64
                torch.testing.assert_close(out.kd, kd, rtol=tol, atol=tol)
            torch.testing.assert_close(ours.grad, ref.grad, rtol=100 * tol, atol=tol)
            if m is not None:
                ignored = (O._targets(ids, m).view(3, 7) == -100) if reduction == "token" or alpha == 1 else m == 0
                assert (ours.grad[ignored] == 0).all()


def test_fused_distillation_float32_and_bfloat16_logits():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(2, 9, 50, generator=g)
    ids = torch.randint(0, 50, (2, 9), generator=g)
    teachers = [torch.randn(2, 9, 50, generator=g) for _ in range(2)]
    ref = z.double().requires_grad_()
    total, _, _ = _reference_distillation(ref, ids, [t.double() for t in teachers], 0.5, 2.0, "logits", "token", None)
    total.backward()
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        ours = z.detach().to(dtype).requires_grad_()
        out = O.distillation_loss(ours, ids, [t.to(dtype) for t in teachers], 0.5, 2.0)
        assert out.total.dtype == torch.float32  # float32 math whatever the logits' dtype
        out.total.backward()
        assert ours.grad.dtype == dtype
        torch.testing.assert_close(out.total.double(), total, rtol=tol, atol=tol)
        torch.testing.assert_close(ours.grad.double(), ref.grad, rtol=tol, atol=tol * 1e-2)


def test_fused_distillation_refuses_a_second_backward():
    z = torch.randn(2, 5, 7, requires_grad=True)
    ids = torch.randint(0, 7, (2, 5))
    out = O.distillation_loss(z, ids, [torch.randn(2, 5, 7)], 0.5, 2.0)
    assert not out.ce.requires_grad and not out.kd.requires_grad and out.total.requires_grad
    (out.total * 2).backward(retain_graph=True)
    with pytest.raises(RuntimeError):
        (out.total * 2).backward()  # the saved gradient was scaled in place: no silent wrong answer


def test_kd_weight_in_token_units_and_active_epochs():
    from babysweep.core.config import RunConfig
    from babysweep.report.kd_weight import kd_epochs, kd_per_ce, token_alpha

    assert kd_per_ce(0.5, 2.0, "babyllama", 128) == pytest.approx(127 * 4)
    assert kd_per_ce(0.5, 2.0, "token", 128) == pytest.approx(4)
    assert kd_per_ce(1.0, 2.0, "token", 128) == 0.0
    a = token_alpha(0.5, "babyllama", 128)
    assert a == pytest.approx(1 / 128) and kd_per_ce(a, 2.0, "token", 128) == pytest.approx(kd_per_ce(0.5, 2.0, "babyllama", 128))
    config = {"train": {"epochs": 8}, "distill": {"teachers": ["t"], "alpha": 0.5},
              "antlm": {"schedule": "2clm+4mlm+2clm", "mlm_ratio": 0.0}}
    assert kd_epochs(RunConfig.of(config)) == (4, 8)  # none in MLM epochs
    assert kd_epochs(RunConfig.of({**config, "distill": {"teachers": [], "alpha": 0.5}})) == (0, 8)
    assert kd_epochs(RunConfig.of({**config, "distill": {"teachers": ["t"], "alpha": 1.0}})) == (0, 8)


def test_kd_weight_matches_the_losses_it_describes():
    """Token-unit weight: raising one position's KL by d moves the total by kd_per_ce * d * (CE weight per token)."""
    from babysweep.report.kd_weight import kd_per_ce

    g = torch.Generator().manual_seed(6)
    batch, seq, vocab, alpha, t = 2, 6, 5, 0.3, 2.0
    z = torch.randn(batch, seq, vocab, generator=g, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, vocab, (batch, seq), generator=g)
    teacher = [torch.randn(batch, seq, vocab, generator=g, dtype=torch.float64)]
    p = torch.softmax(teacher[0] / t, -1)
    kl = (p * (p.log() - torch.log_softmax(z.detach() / t, -1))).sum(-1)  # [batch, seq] per position
    for reduction in ("token", "babyllama"):
        out = O.distillation_loss(z, ids, teacher, alpha, t, "logits", reduction)
        counted = kl[:, :-1] if reduction == "token" else kl
        ce_weight = alpha / (batch * (seq - 1))  # d total / d (one token's CE): CE is a mean over targets
        kd_weight = (1 - alpha) * t * t * out.kd.item() / counted.sum().item()  # d total / d (one position's KL)
        assert kd_weight / ce_weight == pytest.approx(kd_per_ce(alpha, t, reduction, seq), rel=1e-9)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("ensemble", ["logits", "probs"])
@pytest.mark.parametrize("reduction", ["token", "babyllama"])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_head_distillation_equals_head_then_distillation(monkeypatch, alpha, ensemble, reduction, temperature):
    """objectives.head_distillation_loss (train.fused's distilled step) = distillation_loss(hidden @ weight^T): losses and
    the gradients of hidden and weight, in float64 to 1e-12, over several row blocks and a short last one."""
    monkeypatch.setattr(O, "HEAD_KD_ROWS", 4)
    g = torch.Generator().manual_seed(5)
    hidden = torch.randn(3, 7, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(11, 6, generator=g, dtype=torch.float64)
    ids = torch.randint(0, 11, (3, 7), generator=g)
    for n_teachers in (1, 2, 3):
        teachers = [torch.randn(3, 7, 11, generator=g, dtype=torch.float64) * 3 for _ in range(n_teachers)]
        h1, w1, h2, w2 = (x.clone().requires_grad_() for x in (hidden, weight, hidden, weight))
        ours = O.head_distillation_loss(h1, w1, ids, teachers, alpha, temperature, ensemble, reduction)
        ref = O.distillation_loss(h2 @ w2.t(), ids, teachers, alpha, temperature, ensemble, reduction)
        (ours.total * 0.37).backward()  # a non-unit incoming gradient
        (ref.total * 0.37).backward()
        tol = 1e-12 if alpha < 1 else 1e-6  # alpha = 1: distillation_loss is plain float32 CE
        torch.testing.assert_close(ours.total.double(), ref.total.double(), rtol=tol, atol=tol)
        torch.testing.assert_close(ours.ce.double(), ref.ce.double(), rtol=tol, atol=tol)
        if alpha < 1:
            torch.testing.assert_close(ours.kd, ref.kd, rtol=tol, atol=tol)
        for a, b in ((h1.grad, h2.grad), (w1.grad, w2.grad)):
            torch.testing.assert_close(a, b, rtol=100 * tol, atol=tol)


@pytest.mark.parametrize("reduction", ["token", "babyllama"])
def test_head_distillation_float32_with_float16_teachers(reduction):
    """The trainer's case: float32 hidden states and head, the cache's float16 logits of |z| up to ~10."""
    g = torch.Generator().manual_seed(6)
    hidden, weight = torch.randn(4, 70, 32, generator=g), torch.randn(300, 32, generator=g) * 0.5
    ids = torch.randint(0, 300, (4, 70), generator=g)
    teacher = [(torch.randn(4, 70, 300, generator=g) * 4).half()]
    for temperature in (1.0, 1.7):
        h1, w1, h2, w2 = (x.clone().requires_grad_() for x in (hidden, weight, hidden, weight))
        ours = O.head_distillation_loss(h1, w1, ids, teacher, 0.3, temperature, "logits", reduction)
        ref = O.distillation_loss(h2 @ w2.t(), ids, teacher, 0.3, temperature, "logits", reduction)
        ours.total.backward()
        ref.total.backward()
        for a, b in ((ours.total, ref.total), (ours.ce, ref.ce), (ours.kd, ref.kd), (h1.grad, h2.grad), (w1.grad, w2.grad)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))
