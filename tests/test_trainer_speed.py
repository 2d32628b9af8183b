"""The training step's speed-ups (train.fused: AdamW's fused step, the output head and cross-entropy or the head and
distillation loss in row blocks) give the same losses as the plain step to float rounding; train.precision bf16 runs
on the CPU."""

import json

import pytest
import torch

from babysweep.core.config import RunConfig
from babysweep.data import prepare
from babysweep.lm import objectives
from babysweep.lm.models import build_model, save_model
from babysweep.train import trainer
from babysweep.train.trainer import train
from conftest import tiny_config


def test_head_loss_equals_logits_then_cross_entropy():
    torch.manual_seed(0)
    hidden = torch.randn(8, 70, 16, dtype=torch.float64, requires_grad=True)  # 560 rows: two blocks and a remainder
    weight = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, 50, (8, 70))
    assert 2 * objectives.HEAD_CE_ROWS < ids.numel() < 3 * objectives.HEAD_CE_ROWS
    plain = torch.nn.functional.cross_entropy((hidden @ weight.t())[:, :-1].reshape(-1, 50), ids[:, 1:].reshape(-1))
    grads = torch.autograd.grad(plain, (hidden, weight))
    fused = objectives.head_causal_lm_loss(hidden, weight, ids)
    fused_grads = torch.autograd.grad(2.0 * fused, (hidden, weight))  # the incoming gradient scales both
    assert torch.allclose(fused, plain, rtol=1e-12)
    for g, f in zip(grads, fused_grads):
        assert torch.allclose(2.0 * g, f, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_fused_steps_give_the_same_losses(tmp_path, cache_dir, arch):
    runs = {}
    for fused in (False, True):
        config = tiny_config(cache_dir, model={"arch": arch}, train={"fused": fused, "epochs": 2, "max_steps": 12},
                             eval={"blimp": "none", "dev_batches": 2})
        steps = []
        final = train(config, tmp_path / f"{arch}-{fused}", progress=lambda info: steps.append(info["loss"]))
        runs[fused] = (final, [json.loads(line) for line in (tmp_path / f"{arch}-{fused}" / "metrics.jsonl").open()], steps)
    (plain, plain_rows, plain_steps), (fast, fast_rows, fast_steps) = runs[False], runs[True]
    assert plain_steps == pytest.approx(fast_steps, rel=1e-5)  # the loss every 10 steps
    for a, b in zip(plain_rows, fast_rows):
        for key in ("train/loss", "eval/loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key


@pytest.fixture(scope="module")
def teachers(tmp_path_factory, cache_dir):
    """Two untrained teachers (LLaMA, GPT-2), their final norm scaled so that logits reach |z| ~ 10 as trained ones do."""
    data = prepare(RunConfig.of(tiny_config(cache_dir)).data)
    folders = []
    for i, arch in enumerate(("llama", "gpt2")):
        torch.manual_seed(i)
        model = build_model(RunConfig.of(tiny_config(cache_dir, model={"arch": arch})).model, len(data.tokenizer), 32)
        with torch.no_grad():
            (model.model.norm if arch == "llama" else model.transformer.ln_f).weight.mul_(40.0)
        folders.append(str(save_model(model, data.tokenizer, tmp_path_factory.mktemp(f"teacher{i}"))))
    return folders


@pytest.mark.parametrize("reduction,ensemble,cache", [("token", "logits", "exact"), ("babyllama", "logits", "exact"),
                                                      ("token", "probs", "none")])
def test_fused_distilled_steps_give_the_same_losses(tmp_path, cache_dir, teachers, monkeypatch, reduction, ensemble, cache):
    """A student with train.fused false (logits, then objectives.distillation_loss) and true (the head and the loss in
    row blocks, objectives.head_distillation_loss): the same loss at every step, and per epoch. With the exact cache
    the fused run reads the entry the plain run built (warm); `none` distils on the fly."""
    calls, losses = [], []
    real, real_batch_loss = objectives.head_distillation_loss, trainer.batch_loss
    monkeypatch.setattr(objectives, "head_distillation_loss", lambda *a, **k: calls.append(1) or real(*a, **k))

    def batch_loss(*args):
        loss = real_batch_loss(*args)
        losses.append(float(loss.detach()))
        return loss

    monkeypatch.setattr(trainer, "batch_loss", batch_loss)
    runs = {}
    for fused in (False, True):
        config = tiny_config(cache_dir, train={"fused": fused, "epochs": 2, "max_steps": 12},
                             eval={"blimp": "none", "dev_batches": 2},
                             distill={"teachers": teachers, "alpha": 0.3, "temperature": 1.7, "cache": cache,
                                      "kd_reduction": reduction, "ensemble": ensemble})
        losses.clear()
        folder = tmp_path / f"{reduction}-{fused}"
        train(config, folder)
        runs[fused] = ([json.loads(line) for line in (folder / "metrics.jsonl").open()], list(losses))
        assert len(calls) == (12 if fused else 0)  # the fused run took the fused path at every step
    (plain_rows, plain_steps), (fast_rows, fast_steps) = runs[False], runs[True]
    assert len(plain_steps) == 12 and plain_steps == pytest.approx(fast_steps, rel=1e-5)  # every step's loss
    for a, b in zip(plain_rows, fast_rows):
        for key in ("train/loss", "eval/loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key


def test_bf16_precision_runs_on_the_cpu(tmp_path, cache_dir):
    config = tiny_config(cache_dir, train={"precision": "bf16", "epochs": 1, "max_steps": 4}, eval={"blimp": "none", "dev_batches": 2})
    final = train(config, tmp_path / "bf16")
    assert final["eval/loss"] == pytest.approx(final["eval/loss"]) and 0 < final["eval/loss"] < 20
    assert json.loads((tmp_path / "bf16" / "run.json").read_text())["device"] == "cpu"


@pytest.mark.parametrize("teachers_on", [False, True])
def test_compiled_steps_give_the_same_losses(tmp_path, cache_dir, monkeypatch, teachers, teachers_on):
    """train.compile: the training steps go through the compiled base model (counted here, so the test fails if they
    do not), without and with teachers, and every loss equals the eager run's to float rounding."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # what importing transformers leaves there
    calls = []
    real = trainer.compiled_body

    def counted(cfg, model):
        body = real(cfg, model)
        if body is None:
            return None
        return lambda **kw: calls.append(kw["input_ids"].shape) or body(**kw)

    monkeypatch.setattr(trainer, "compiled_body", counted)
    runs = {}
    for compiled in (False, True):
        distill = {"teachers": teachers, "alpha": 0.5, "temperature": 2.0, "cache": "none"} if teachers_on else {}
        config = tiny_config(cache_dir, train={"compile": compiled, "epochs": 2, "max_steps": 12}, distill=distill,
                             eval={"blimp": "none", "dev_batches": 2})
        steps = []
        train(config, tmp_path / f"{compiled}", progress=lambda info: steps.append(info["loss"]))
        runs[compiled] = ([json.loads(line) for line in (tmp_path / f"{compiled}" / "metrics.jsonl").open()], steps)
    assert len(calls) == 12 and set(calls) == {(16, 32)}
    assert any((cache_dir / "inductor").rglob("*.py"))  # Inductor's kernels went to data.cache_dir, not /tmp
    (plain_rows, plain_steps), (fast_rows, fast_steps) = runs[False], runs[True]
    assert plain_steps == pytest.approx(fast_steps, rel=1e-5)
    for a, b in zip(plain_rows, fast_rows):
        for key in ("train/loss", "eval/loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key


def test_compile_without_a_cpp_compiler_is_refused_in_one_sentence(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    config = tiny_config(cache_dir, train={"compile": True, "epochs": 1, "max_steps": 1}, eval={"blimp": "none"})
    with pytest.raises(trainer.UserError, match=r"^train.compile: .*no-such-compiler-here, which is not installed"):
        train(config, tmp_path / "run")


def test_a_rotary_table_holds_the_modules_own_cos_and_sin_and_leaves_eager_calls_alone():
    """tabulate_rotary (train.compile's LLaMA): compiled code looks cos and sin up, bitwise what the module computes;
    eager calls, of any length (evaluation reads past the training length), still go to the module."""
    from babysweep.core.config import RunConfig
    from babysweep.lm.models import RotaryTable, build_model, tabulate_rotary

    def model(arch):
        torch.manual_seed(0)
        return build_model(RunConfig.of({"model": {"arch": arch, "layers": 2, "hidden": 32, "heads": 4}}).model, 300, 24)

    plain, tabled = model("llama"), model("llama")
    assert tabulate_rotary(tabled) and isinstance(tabled.base_model.rotary_emb, RotaryTable)
    assert not tabulate_rotary(tabled) and not tabulate_rotary(model("gpt2"))  # once; GPT-2 has no rotary module
    assert tabled.state_dict().keys() == plain.state_dict().keys()  # saved models are unchanged
    table, x = tabled.base_model.rotary_emb, torch.zeros(2, 24, 32)
    positions = torch.stack([torch.arange(24), torch.arange(24).flip(0)])
    for got, want in zip(table.lookup(x, positions), plain.base_model.rotary_emb(x, positions)):
        assert torch.equal(got, want)
    ids = torch.randint(0, 300, (3, 40))  # longer than the table's 24 positions
    assert torch.equal(plain(input_ids=ids).logits, tabled(input_ids=ids).logits)
    table.cos.zero_()  # now the two routes differ: compiled code reads the table, eager code the module
    compiled = torch.compile(table, backend="eager", fullgraph=True)
    assert not compiled(x, positions)[0].any() and table(x, positions)[0].any()
    assert compiled(x, torch.arange(30)[None])[0].any()  # longer than the table: the module, compiled too
