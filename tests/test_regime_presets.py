"""Both shipped studies sit in the papers' data-limited regime: teachers with at least 30 parameters per training
word, 6 to 10 epochs; the default study's student is 1/6 to 1/12 of each teacher (Baby Llama), the storybooks
study's as large as its LLaMA teacher (BabyLlama-2). Read from the
specs, the built-in corpus they name (its training words after the tuning slice) and the models they build."""

from __future__ import annotations

from pathlib import Path

import pytest

from babysweep.core.config import RunConfig
from babysweep.spec.load import load_spec
from babysweep.studies.study import load_study
from conftest import needs_shared

REGIME = Path(__file__).resolve().parents[1] / "search_spaces"


def _fixed(spec, section: str) -> dict:
    """A spec section's fixed values (the regime's keys are never searched)."""
    from babysweep.spec.space import Distribution

    return {k: v for k, v in spec.space.get(section, {}).items() if not isinstance(v, Distribution)}


def _params(spec, arch: str, vocab: int, seq_len: int) -> int:
    from babysweep.lm.models import build_model, count_params

    model = {**_fixed(spec, "model"), "arch": arch}
    model = {k: v for k, v in model.items() if k in ("arch", "layers", "hidden", "heads", "kv_heads", "ffn", "tie_embeddings")}
    return count_params(build_model(RunConfig.of({"model": model}).model, vocab, seq_len))


def _check_regime(study_path: Path, cache: Path, student_ratio: tuple[float, float]) -> None:
    from babysweep.data import prepare

    study = load_study(study_path)
    specs = [load_spec(p) for p in study.specs]
    by_role = {}
    for s in specs:
        by_role.setdefault(s.role, []).append(s)
    data_sections = {repr(sorted(_fixed(s, "data").items())) for s in specs}
    assert len(data_sections) == 1  # one corpus, tokenizer and seq_len for every contender
    data_cfg = RunConfig.of({"data": {**_fixed(specs[0], "data"), "cache_dir": str(cache)}}).data
    data = prepare(data_cfg)
    words, vocab = data.train_words, len(data.tokenizer)
    assert words > 0
    (teachers,) = by_role["teacher"]
    archs = teachers.space["model"]["arch"]
    archs = list(archs.args) if archs.__class__.__name__ == "Distribution" else [archs]
    assert archs == ["llama", "gpt2"]
    sizes = {a: _params(teachers, a, vocab, data_cfg.seq_len) for a in archs}
    for arch, n in sizes.items():
        assert n / words >= 30, f"{arch} teacher: {n / words:.1f} parameters per training word"
    for s in specs:
        assert 6 <= s.space["train"]["epochs"] <= 10
    low, high = student_ratio
    for s in by_role["student"] + by_role["baseline"]:
        n = _params(s, s.space["model"]["arch"], vocab, data_cfg.seq_len)
        assert low <= sizes["llama"] / n <= high, f"{s.name}: 1/{sizes['llama'] / n:.2f} of the LLaMA teacher"
    assert any(s.space["distill"].get("kd_reduction") == "babyllama" for s in by_role["student"])  # the papers' arm


def test_the_default_study_meets_baby_llamas_ratios(tmp_path):
    _check_regime(REGIME / "study.yaml", tmp_path, (6, 12))


def test_the_storybooks_study_meets_babyllama2s_ratios(tmp_path, monkeypatch):
    """The storybooks specs read $BABYSWEEP_DATA and $BABYSWEEP_BLIMP; the corpus is ../shared/data's (skipped without it)."""
    monkeypatch.setenv("BABYSWEEP_DATA", str(needs_shared("storybooks")))
    monkeypatch.setenv("BABYSWEEP_BLIMP", str(needs_shared("blimp")))
    _check_regime(REGIME / "storybooks" / "study.yaml", tmp_path, (1, 1))  # BabyLlama-2: the student is the teacher's size
