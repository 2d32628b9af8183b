"""The searcher's sampler: TPE gets most trials, multivariate where the space has conditions, and the
settings reach MLflow and the report."""

from pathlib import Path

import optuna
import pytest

from babysweep.spec.sampler import describe_sampler, make_sampler, mlflow_params, sampler_settings
from babysweep.spec.load import load_spec, spec_from_text

ROOT = Path(__file__).resolve().parents[1] / "search_spaces"


def spec(search: str, extra: str = ""):
    return spec_from_text(f"name: t\ntrain:\n  lr: {{loguniform: [1.0e-4, 1.0e-2]}}\n{extra}search:\n{search}", "t.yaml")


def test_default_startup_leaves_most_trials_to_tpe():
    for samples, startup in ((8, 2), (12, 3), (32, 8), (100, 10), (3, 2)):
        s = spec(f"  samples: {samples}\n")
        settings = sampler_settings(s.search, s.space)
        assert settings["name"] == "TPESampler" and settings["n_startup_trials"] == startup
    shipped = load_spec(ROOT / "students.yaml")  # the default study's sweeps: 8 samples
    settings = sampler_settings(shipped.search, shipped.space)
    assert settings["n_startup_trials"] < shipped.search.samples / 2


def test_startup_trials_is_a_spec_key():
    s = spec("  samples: 8\n  startup_trials: 5\n")
    sampler = make_sampler(sampler_settings(s.search, s.space))
    assert isinstance(sampler, optuna.samplers.TPESampler) and sampler._n_startup_trials == 5
    with pytest.raises(Exception, match="startup_trials"):
        spec("  startup_trials: 0\n")


def test_multivariate_tpe_where_the_space_has_conditions():
    plain = spec("  samples: 8\n")
    cond = spec("  samples: 8\n", "model:\n  arch: {choice: [llama, gpt2]}\n  dropout: {uniform: [0.0, 0.2], when: {model.arch: gpt2}}\n")
    p, c = sampler_settings(plain.search, plain.space), sampler_settings(cond.search, cond.space)
    assert (p["multivariate"], p["group"]) == (False, False) and (c["multivariate"], c["group"]) == (True, True)
    sampler = make_sampler(c)
    assert sampler._multivariate and sampler._group
    teachers = load_spec(ROOT / "teachers.yaml")  # GPT-2-only dropout
    assert sampler_settings(teachers.search, teachers.space)["multivariate"]


def test_tpe_takes_over_after_the_startup_trials():
    s = spec("  samples: 8\n")
    sampler = make_sampler(sampler_settings(s.search, s.space))
    study = optuna.create_study(sampler=sampler)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    calls = []
    real = sampler._random_sampler.sample_independent

    def spy(*args, **kwargs):
        calls.append(len(study.trials))
        return real(*args, **kwargs)

    sampler._random_sampler.sample_independent = spy
    study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.3) ** 2, n_trials=8)
    assert calls == [1, 2]  # only the first two trials are random


def test_random_and_enumerated_algorithms():
    s = spec("  algorithm: random\n")
    assert isinstance(make_sampler(sampler_settings(s.search, s.space)), optuna.samplers.RandomSampler)
    g = spec_from_text("name: g\nmodel:\n  arch: {grid: [llama, gpt2]}\nsearch:\n  algorithm: grid\n", "g.yaml")
    assert make_sampler(sampler_settings(g.search, g.space)) is None


def test_settings_as_mlflow_params_and_back_to_a_line():
    s = spec("  samples: 8\n", "model:\n  arch: {choice: [llama, gpt2]}\n  dropout: {uniform: [0.0, 0.2], when: {model.arch: gpt2}}\n")
    params = {f"search.{k}": str(v) for k, v in mlflow_params(sampler_settings(s.search, s.space)).items()}
    assert params["search.sampler.n_startup_trials"] == "2"
    assert describe_sampler(params) == "multivariate TPE (group=True), first 2 trials random, seed 0"
    assert describe_sampler({"search.algorithm": "optuna"}) is None


STRATIFIED = ("model:\n  arch: {choice: [llama, gpt2]}\n  dropout: {uniform: [0.0, 0.2], when: {model.arch: gpt2}}\n")


def test_stratified_values_take_turns_in_the_sweeps_searcher():
    """TPE that finds GPT-2 far better still gives LLaMA its half of the trials, and samples the other keys."""
    from babysweep.sweep.driver import _searcher

    s = spec("  samples: 8\n  stratify: model.arch\n  metric: eval/loss\n", STRATIFIED)
    searcher = _searcher(s)  # the wrapped searcher a sweep uses: waves of 2, Optuna inside
    searcher.set_search_properties(s.search.metric, s.search.mode, {})
    archs, lrs = [], set()
    for wave in range(4):
        ids = [f"t{wave}_{i}" for i in range(2)]
        configs = [searcher.suggest(i) for i in ids]
        for trial_id, config in zip(ids, configs):
            archs.append(config["model.arch"])
            lrs.add(config["train.lr"])
            assert ("model.dropout" in config) == (config["model.arch"] == "gpt2")
            loss = 1.0 if config["model.arch"] == "gpt2" else 5.0
            searcher.on_trial_complete(trial_id, {"eval/loss": loss, "epoch": 1})
    assert archs == ["llama", "gpt2"] * 4
    assert len(lrs) == 8
    params = {f"search.{k}": str(v) for k, v in mlflow_params(sampler_settings(s.search, s.space)).items()}
    assert describe_sampler(params).endswith(", model.arch in turn")


@pytest.mark.parametrize("search, extra, error", [
    ("  stratify: train.lr\n", "", r"search\.stratify \(line \d+\): train\.lr is not a choice"),
    ("  stratify: model.attention_dropout\n", STRATIFIED + "  attention_dropout: {choice: [0.0, 0.1], when: {model.arch: gpt2}}\n",
     r"search\.stratify \(line \d+\): model\.attention_dropout has a when condition"),
    ("  samples: 7\n  stratify: model.arch\n", STRATIFIED, r"search\.samples \(line \d+\): 7 samples do not split evenly"),
    ("  algorithm: random\n  stratify: model.arch\n  samples: 4\n  scheduler: none\n", "", r"model\.arch is not a choice"),
    ("  algorithm: points\n  points: {a: {}}\n  stratify: model.arch\n", "model:\n  arch: {choice: [llama, gpt2]}\n", r"search\.stratify \(line \d+\): stratify splits sampled trials; search\.algorithm points"),
])
def test_stratify_refuses_what_it_cannot_split(search, extra, error):
    from babysweep.core.errors import UserError

    with pytest.raises(UserError, match=error):
        spec(search, extra)


def test_the_default_teachers_sweep_tunes_both_architectures():
    teachers = load_spec(ROOT / "teachers.yaml")
    assert teachers.search.stratify == "model.arch"
