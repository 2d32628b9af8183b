"""Every shipped spec validates; the paper-scale ones also train for a few steps with tiny sizes."""

import random
from pathlib import Path

import pytest

from babysweep.spec.space import sample_params
from babysweep.spec.load import load_spec
from babysweep.studies.study import load_study

ROOT = Path(__file__).resolve().parents[1] / "search_spaces"
STUDIES = sorted(ROOT.rglob("study.yaml"))
SPECS = sorted(p for p in ROOT.rglob("*.yaml") if p.name != "study.yaml")
PAPER = [p for p in SPECS if p.parent.name == "babylm"]


def test_the_expected_specs_ship():
    names = {p.relative_to(ROOT).as_posix() for p in SPECS}
    assert {"teachers.yaml", "students.yaml", "students_babyllama.yaml", "baselines.yaml", "antlm.yaml"} <= names
    assert {"storybooks/teachers.yaml", "storybooks/students.yaml", "storybooks/students_babyllama.yaml", "storybooks/baselines.yaml"} <= names
    assert len(PAPER) >= 6 and len(STUDIES) == 3


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_spec_validates(path):
    spec = load_spec(path, check_paths=path.parent == ROOT)  # BabyLM's data and the storybooks are not here
    assert spec.name and spec.role in ("teacher", "student", "baseline")


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_study_validates(path):
    study = load_study(path)
    assert study.seeds >= 1 and all(p.is_file() for p in study.specs)
    names = [load_spec(p, check_paths=False).name for p in study.specs]
    roles = [load_spec(p, check_paths=False).role for p in study.specs]
    assert roles[0] == "teacher" and set(roles) == {"teacher", "student", "baseline"} and len(set(names)) == len(names)


TINY = {"data.train": "builtin", "data.dev": "builtin", "data.builtin_words": 20000, "data.seq_len": 32,
        "data.tokenizer.vocab_size": 500, "model.layers": 1, "model.hidden": 32, "model.heads": 2, "model.ffn": 64,
        "train.batch_size": 8, "train.warmup_steps": 2, "train.threads": 1, "eval.blimp": "builtin", "eval.dev_batches": 1}


@pytest.fixture(scope="module")
def tiny_teachers(tmp_path_factory, cache_dir):
    """Two tiny saved teachers (LLaMA and GPT-2) sharing the tiny overrides' tokenizer."""
    from babysweep.core.config import resolve, unflatten
    from babysweep.train.trainer import train

    folders = []
    for arch in ("llama", "gpt2"):
        flat = {**TINY, "data.cache_dir": str(cache_dir), "model.arch": arch, "train.epochs": 1, "train.max_steps": 2}
        out = tmp_path_factory.mktemp(f"teacher-{arch}")
        train(resolve(unflatten(flat)), out)
        folders.append(str(out / "final"))
    return folders


@pytest.mark.slow
@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.name)
def test_paper_spec_trains_a_few_steps_with_tiny_sizes(path, tmp_path, cache_dir, tiny_teachers):
    from babysweep.train.trainer import train

    spec = load_spec(path, check_paths=False)
    overrides = {**TINY, "data.cache_dir": str(cache_dir), "train.epochs": 1, "train.max_steps": 3}
    if "model.kv_heads" in spec.space.get("model", {}) or "kv_heads" in spec.space.get("model", {}):
        overrides["model.kv_heads"] = 1
    if "distill" in spec.space and spec.teachers_from_sweep is None:
        overrides["distill.teachers"] = tiny_teachers
    if "antlm" in spec.space:  # the paper's 4+16+4 epochs, shrunk to one epoch of each phase
        overrides.update({"antlm.schedule": "1clm+1mlm+1clm", "train.epochs": 3})
    tiny = load_spec(path, overrides, check_paths=False)
    params = sample_params(tiny, random.Random(0))
    config = tiny.materialize(params, teachers=tiny_teachers if tiny.teachers_from_sweep else None)
    assert config["model"]["layers"] == 1 and config["data"]["train"] == "builtin"
    metrics = train(config, tmp_path / "run")
    assert metrics["eval/loss"] > 0 and (tmp_path / "run" / "final" / "config.json").is_file()
    # The real spec keeps its published size: only the test shrinks it.
    assert spec.space["model"]["layers"] >= 16


def _distill(spec) -> dict:
    return spec.space.get("distill", {})


def _values(leaf) -> list:
    """The values a leaf can take: a fixed value, a choice/grid list, or a range's two ends."""
    return list(leaf.args) if hasattr(leaf, "args") else [leaf]


@pytest.mark.parametrize("path", [p for p in PAPER if "distill" in load_spec(p, check_paths=False).space],
                         ids=lambda p: p.name)
def test_paper_student_specs_use_the_papers_loss(path):
    distill = _distill(load_spec(path, check_paths=False))
    assert distill.get("kd_reduction") == "babyllama"
    assert distill.get("ensemble", "logits") == "logits"  # BabyLlama averages raw logits


def test_paper_specs_carry_the_papers_settings():
    spec = lambda name: _distill(load_spec(ROOT / "babylm" / name, check_paths=False))  # noqa: E731
    baby = spec("babyllama_student.yaml")  # Baby Llama: T 2, alpha 0.5 (the grid's first points)
    assert _values(baby["temperature"])[0] == 2.0 and _values(baby["alpha"])[0] == 0.5
    two = spec("babyllama2_students.yaml")  # BabyLlama-2: T 1, alpha 0.5, inside the searched ranges
    low, high = _values(two["alpha"])
    assert low <= 0.5 <= high and _values(two["temperature"])[0] <= 1.0
    antlm = spec("antlm.yaml")
    assert antlm["temperature"] == 2.0 and 0.5 in _values(antlm["alpha"])


def test_the_students_space_reaches_the_papers_regime():
    """In token units the papers trained at alpha about 1/seq_len: the default space must go below it."""
    from babysweep.report.kd_weight import token_alpha

    spec = load_spec(ROOT / "students.yaml")
    seq_len, distill = spec.space["data"]["seq_len"], _distill(spec)
    reduction = distill.get("kd_reduction", "token")
    lowest = min(token_alpha(a, reduction, seq_len) for a in _values(distill["alpha"]))
    assert lowest < 1.0 / seq_len
    assert max(token_alpha(a, reduction, seq_len) for a in _values(distill["alpha"])) >= 0.5


def test_the_default_study_gives_every_contender_the_same_tokens():
    """Tokens per epoch depend on the corpus and seq_len only (an epoch's last batch is short, never
    dropped), so equal epochs, data and seq_len, with no step cap, mean equal tokens seen."""
    budget = ("data.train", "data.dev", "data.builtin_words", "data.seq_len", "train.epochs", "train.max_steps")
    seen = {}
    for path in load_study(ROOT / "study.yaml").specs:
        spec = load_spec(path, check_paths=False)
        for draw in range(20):
            params = sample_params(spec, random.Random(draw))
            config = spec.materialize(params, teachers=["/t/final"] if spec.teachers_from_sweep else None)
            seen.setdefault(tuple(config[k.split(".")[0]][k.split(".")[1]] for k in budget), set()).add(spec.name)
    assert len(seen) == 1 and next(iter(seen.values())) == {"teachers", "students", "students_babyllama", "baselines"}, seen
    ((_, _, _, _, epochs, max_steps),) = seen
    assert epochs == 8 and not max_steps


def test_batch_size_changes_steps_not_tokens():
    import numpy as np

    from babysweep.data.batches import train_batches

    tokens = np.arange(1000)
    seen = {b: sum(batch.numel() for _, batch in train_batches(tokens, 16, b, seed=0, epoch=1)) for b in (16, 32, 7)}
    assert len(set(seen.values())) == 1 and seen[16] == (1000 - 16) // 16 * 16
