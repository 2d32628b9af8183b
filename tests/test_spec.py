"""Specs: validation messages, search-space translation, conditions, grids, overrides, fingerprints."""

from __future__ import annotations

import math
import pickle
import random
import statistics
import textwrap
from pathlib import Path

import optuna
import pytest

from babysweep.core.config import RunConfig
from babysweep.core.errors import UserError
from babysweep.spec.space import Distribution, OptunaSpace, sample_params
from babysweep.spec.load import diff_specs, load_spec
from babysweep.spec.sweep_spec import describe, grid_points
from babysweep.spec.overrides import parse_override

optuna.logging.set_verbosity(optuna.logging.WARNING)
REPO = Path(__file__).resolve().parents[1]

EXAMPLE = """\
name: teachers
data:  {train: builtin, dev: builtin, seq_len: 64, tokenizer: {vocab_size: 2000}}
model:
  arch: {choice: [llama, gpt2]}
  hidden: {choice: [64, 128]}
  kv_heads: {choice: [1, 2], when: {model.arch: llama}}
  dropout: {uniform: [0.0, 0.2], when: {model.arch: gpt2}}
train:
  lr: {loguniform: [1.0e-4, 3.0e-3]}
  weight_decay: {lognormal: [-2.0, 1.0]}
  scheduler: {choice: [cosine, linear]}
distill:
  teachers: {from_sweep: teachers, top: 2}
  temperature: {uniform: [1.0, 4.0]}
antlm: {schedule: {choice: ["4clm", "1clm+2mlm+1clm"]}}
eval: {blimp: builtin}
search: {algorithm: optuna, metric: eval/loss, mode: min, samples: 12, scheduler: asha, concurrent: 2,
         repeats: 1, seed: 0, max_failures: 1, grace_period: 1, reduction_factor: 2}
resources: {cpu: 1, gpu: 0}
tracking: {models: best}
"""


def write(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


# ------------------------------------------------------------------ malformed specs
MALFORMED = [
    ("yaml-syntax", "name: t\nmodel:\n  arch: llama\n   hidden: 64\n", ["(line 4)", "YAML syntax error"]),
    ("not-a-mapping", "- a\n- b\n", ["must be a mapping"]),
    ("no-name", "model: {layers: 2}\n", ["name is missing"]),
    ("bad-name", "name: a b\n", ["name (line 1)", "not a valid sweep name"]),
    ("unknown-section", "name: t\ntrian:\n  lr: 0.1\n", ["trian (line 2)", "did you mean train"]),
    ("unknown-key", "name: t\nmodel:\n  hiden: 64\n", ["model.hiden (line 3)", "did you mean hidden"]),
    ("section-not-mapping", "name: t\nmodel: 5\n", ["model (line 2)", "expected a mapping"]),
    ("wrong-type", "name: t\nmodel:\n  layers: four\n", ["model.layers (line 3)", "'four' is invalid"]),
    ("constraint", "name: t\nmodel:\n  hidden: 4\n", ["model.hidden (line 3)", "greater than or equal to 8"]),
    ("loguniform-order", "name: t\ntrain:\n  lr: {loguniform: [0.01, 0.001]}\n",
     ["train.lr (line 3): loguniform needs 0 < low < high, got [0.01, 0.001]."]),
    ("uniform-empty", "name: t\ndistill:\n  temperature: {uniform: [2.0, 2.0]}\n",
     ["distill.temperature (line 3)", "uniform needs low < high"]),
    ("randint-order", "name: t\ntrain:\n  epochs: {randint: [5, 2]}\n", ["train.epochs (line 3)", "low <= high"]),
    ("randint-fraction", "name: t\ntrain:\n  epochs: {randint: [1.5, 3]}\n", ["train.epochs (line 3)", "not an integer"]),
    ("unknown-distribution", "name: t\ntrain:\n  lr: {gaussian: [0, 1]}\n",
     ["train.lr (line 3)", "unknown distribution 'gaussian'"]),
    ("two-distributions", "name: t\ntrain:\n  lr: {uniform: [0.1, 0.2], choice: [0.1]}\n",
     ["train.lr (line 3)", "one distribution, got uniform and choice"]),
    ("unknown-key-beside", "name: t\ntrain:\n  lr: {uniform: [0.1, 0.2], whn: {model.arch: gpt2}}\n",
     ["train.lr (line 3)", "unknown key 'whn'"]),
    ("empty-choice", "name: t\nmodel:\n  arch: {choice: []}\n", ["model.arch (line 3)", "non-empty list"]),
    ("bad-candidate", "name: t\nmodel:\n  arch: {choice: [llama, bert]}\n",
     ["model.arch (line 3)", "choice candidate 'bert' is invalid"]),
    ("bound-out-of-range", "name: t\nmodel:\n  dropout: {uniform: [0.0, 1.5]}\n",
     ["model.dropout (line 3)", "can give 1.5, which is invalid", "less than 1"]),
    ("float-on-int", "name: t\ntrain:\n  epochs: {uniform: [1, 4]}\n", ["train.epochs (line 3)", "takes integers"]),
    ("normal-below-zero", "name: t\ntrain:\n  weight_decay: {normal: [0.1, 1.0]}\n",
     ["train.weight_decay (line 3)", "normal [0.1, 1.0] can give -4.65342, which is invalid", "greater than or equal to 0"]),
    ("q-fraction-on-int", "name: t\ndata:\n  seq_len: {quniform: [16, 64, 0.5]}\n", ["data.seq_len (line 3)", "integer q"]),
    ("q-no-multiple", "name: t\ntrain:\n  warmup_steps: {qrandint: [1, 4, 5]}\n",
     ["train.warmup_steps (line 3)", "no multiple of q"]),
    ("when-unknown-key", "name: t\nmodel:\n  arch: {choice: [llama, gpt2]}\n  kv_heads: {choice: [1, 2], when: {model.archh: llama}}\n",
     ["model.kv_heads (line 4)", "did you mean model.arch"]),
    ("when-unset-key", "name: t\nmodel:\n  kv_heads: {choice: [1, 2], when: {model.layers: 2}}\n",
     ["model.kv_heads.when (line 3)", "model.layers, which this spec does not set"]),
    ("when-cycle", "name: t\nmodel:\n  dropout: {uniform: [0.0, 0.2], when: {model.attention_dropout: 0.1}}\n"
                   "  attention_dropout: {choice: [0.1, 0.2], when: {model.dropout: 0.1}}\n",
     ["(line 3)", "cycle: model.dropout -> model.attention_dropout -> model.dropout"]),
    ("missing-corpus", "name: t\ndata:\n  train: no/such/corpus\n", ["data.train (line 3)", "no/such/corpus does not exist"]),
    ("glob-no-match", "name: t\ndata:\n  dev: 'nothing/*.txt'\n", ["data.dev (line 3)", "no file matches the glob"]),
    ("missing-blimp", "name: t\neval:\n  blimp: blimp_data\n", ["eval.blimp (line 3)", "blimp_data does not exist"]),
    ("missing-teacher", "name: t\ndistill:\n  teachers: [gone_teacher]\n",
     ["distill.teachers (line 3)", "teacher folder", "gone_teacher does not exist"]),
    ("from-sweep-extra", "name: t\ndistill:\n  teachers: {from_sweep: x, best: 2}\n",
     ["distill.teachers (line 3)", "from_sweep takes top, per_arch, metric and mode"]),
    ("grid-with-range", "name: t\ntrain:\n  lr: {uniform: [0.001, 0.01]}\nsearch: {algorithm: grid}\n",
     ["train.lr (line 3)", "grid takes only choice or grid values, got uniform"]),
    ("schedule-epochs", "name: t\ntrain:\n  epochs: 4\nantlm:\n  schedule: 2clm+1mlm\n",
     ["antlm.schedule (line 5)", "has 3 epochs but train.epochs is 4"]),
    ("schedule-choice-epochs", "name: t\nantlm:\n  schedule: {choice: [4clm, 3clm]}\n",
     ["antlm.schedule (line 3)", "'3clm' has 3 epochs but train.epochs is 4"]),
    ("cross-field", "name: t\nmodel:\n  hidden: 100\n  heads: 3\n",
     ["model (line 2)", "divisible by heads (3)"]),
    ("cross-field-first-candidate", "name: t\nmodel:\n  arch: {choice: [gpt2, llama]}\n  kv_heads: 2\n",
     ["model (line 2)", "first value", "kv_heads exists only for arch: llama"]),
    ("search-samples", "name: t\nsearch:\n  samples: 0\n", ["search.samples (line 3)", "0 is invalid: input should be greater than or equal to 1"]),
    ("search-unknown", "name: t\nsearch: {sampels: 3}\n", ["search.sampels (line 2)", "did you mean samples"]),
    ("metric-unknown", "name: t\nsearch:\n  metric: eval/los\n", ["search.metric (line 3)", "not a metric babysweep reports"]),
    ("metric-final-with-asha", "name: t\nsearch: {metric: blimp/overall, mode: max}\n",
     ["search.metric (line 2)", "after a trial's last epoch only", "scheduler: none"]),
    ("metric-subset-without-pairs", "name: t\nsearch: {metric: blimp_subset/overall, mode: max}\n",
     ["search.metric (line 2)", "eval.blimp_pairs_per_paradigm above 0"]),
    ("repeats-with-asha", "name: t\nsearch:\n  repeats: 2\n", ["search.repeats (line 3)", "scheduler: none or repeats: 1"]),
    ("resources-cpu", "name: t\nresources: {cpu: 0}\n", ["resources.cpu (line 2)", "greater than 0"]),
    ("tracking-models", "name: t\ntracking:\n  models: some\n", ["tracking.models (line 3)", "'best', 'all' or 'none'"]),
    ("duplicate-key", "name: t\ntrain:\n  lr: 0.1\n  lr: 0.2\n", ["train.lr (line 4)", "duplicate key"]),
    ("bad-role", "name: t\nrole: teecher\n", ["role (line 2)", "not a role"]),
]


@pytest.mark.parametrize("text, expected", [pytest.param(t, e, id=i) for i, t, e in MALFORMED])
def test_malformed_spec_names_file_key_and_line(tmp_path, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, text, "bad.yaml")
    with pytest.raises(UserError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") or message.startswith(f"{path} (line"), message
    for part in expected:
        assert part in message, message
    assert message.endswith((".", "?")) and "\n" not in message, message


def test_missing_file_and_bad_overrides(tmp_path):
    with pytest.raises(UserError, match=r"nope\.yaml: the spec file does not exist\."):
        load_spec(tmp_path / "nope.yaml")
    path = write(tmp_path, "name: t\ntrain:\n  epochs: 2\n")
    with pytest.raises(UserError, match=r"override train\.epoch: unknown key; did you mean train\.epochs\?$"):
        load_spec(path, {"train.epoch": 1})
    with pytest.raises(UserError, match=r"train\.epochs \(set by override\): 0 is invalid"):
        load_spec(path, {"train.epochs": 0})


# ------------------------------------------------------------------ search-space translation
DISTRIBUTIONS = """\
name: dists
data:
  seq_len: {quniform: [16, 64, 16]}          # int field: q kinds give ints
model:
  layers: {choice: [1, 2, 3]}
  hidden: {qlognormal: [5.0, 0.3, 8]}
  attention_dropout: {quniform: [0.0, 0.5, 0.1]}
train:
  lr: {loguniform: [1e-4, 1.0e-1]}            # 1e-4 is a string in YAML 1.1: accepted as a number
  beta1: {uniform: [0.8, 0.99]}
  weight_decay: {lognormal: [-2.0, 0.5]}
  grad_clip: {normal: [5.0, 1.0]}
  epochs: {randint: [1, 3]}
  batch_size: {lograndint: [1, 64]}
  warmup_steps: {qrandint: [0, 100, 10]}
  seed: {qnormal: [100, 10, 5]}
distill:
  temperature: {quniform: [1.0, 4.0, 0.5]}
  alpha: {qloguniform: [0.01, 1.0, 0.01]}
"""


def _optuna_draws(space, n=200, seed=0, sampler=None):
    study = optuna.create_study(sampler=sampler or optuna.samplers.RandomSampler(seed=seed))
    draws = []
    for _ in range(n):
        trial = study.ask()
        draws.append(space(trial))
        study.tell(trial, 0.0)
    return draws, study


def _multiple(x, q):
    return abs(x / q - round(x / q)) < 1e-9


@pytest.mark.parametrize("source", ["optuna", "random"])
def test_every_distribution_translates(tmp_path, source):
    spec = load_spec(write(tmp_path, DISTRIBUTIONS))
    if source == "optuna":
        draws, study = _optuna_draws(OptunaSpace(spec.space))
        # Normal kinds are searched in quantile space: the study stores u, the config the value.
        assert all(0 < t.params["train.grad_clip"] < 1 for t in study.trials)
    else:
        rng = random.Random(0)
        draws = [sample_params(spec, rng) for _ in range(200)]
    col = {name: [d[name] for d in draws] for name in spec.distributions()}

    lr = col["train.lr"]
    assert all(1e-4 <= v <= 1e-1 for v in lr)
    assert 0.2 < sum(v < 1e-3 for v in lr) / len(lr) < 0.47  # log scale: a third per decade
    assert all(0.8 <= v <= 0.99 for v in col["train.beta1"])
    logs = [math.log(v) for v in col["train.weight_decay"]]
    assert abs(statistics.mean(logs) + 2.0) < 0.15 and abs(statistics.stdev(logs) - 0.5) < 0.1
    clip = col["train.grad_clip"]
    assert abs(statistics.mean(clip) - 5.0) < 0.3 and abs(statistics.stdev(clip) - 1.0) < 0.2
    assert set(col["train.epochs"]) == {1, 2, 3}  # randint: both ends inclusive
    batch = col["train.batch_size"]
    assert all(isinstance(v, int) and 1 <= v <= 64 for v in batch) and {1, 64} & set(batch)
    assert 0.3 < sum(v <= 8 for v in batch) / len(batch) < 0.7  # log scale: median near sqrt(64)
    assert set(col["train.warmup_steps"]) == set(range(0, 101, 10))
    assert all(isinstance(v, int) for v in col["train.warmup_steps"])
    seeds = col["train.seed"]
    assert all(isinstance(v, int) and v % 5 == 0 for v in seeds) and abs(statistics.mean(seeds) - 100) < 3
    assert set(col["model.layers"]) == {1, 2, 3}
    assert all(isinstance(v, int) and v % 8 == 0 and v >= 8 for v in col["model.hidden"])
    assert set(col["model.attention_dropout"]) == {0.0, 0.1, 0.2, 0.3, 0.4, 0.5}  # clean multiples
    assert set(col["distill.temperature"]) == {1.0 + 0.5 * k for k in range(7)}
    alpha = col["distill.alpha"]
    assert all(0.01 <= v <= 1.0 and _multiple(v, 0.01) for v in alpha)
    assert sum(v < 0.1 for v in alpha) / len(alpha) > 0.3  # log scale
    assert set(col["data.seq_len"]) == {16, 32, 48, 64} and all(isinstance(v, int) for v in col["data.seq_len"])


def test_optuna_space_is_picklable_and_seeded(tmp_path):
    spec = load_spec(write(tmp_path, DISTRIBUTIONS))
    space = pickle.loads(pickle.dumps(OptunaSpace(spec.space)))
    a, _ = _optuna_draws(space, n=15, sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=5))
    b, _ = _optuna_draws(OptunaSpace(spec), n=15, sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=5))
    assert a == b
    c, _ = _optuna_draws(space, n=15, sampler=optuna.samplers.TPESampler(seed=4, n_startup_trials=5))
    assert a != c


def test_choice_of_lists_goes_through_optuna(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("t1", "t2"):
        (tmp_path / name).mkdir()
    spec = load_spec(write(tmp_path, "name: s\ndistill:\n  teachers: {choice: [[t1], [t1, t2]]}\n"))
    draws, _ = _optuna_draws(OptunaSpace(spec), n=30)
    seen = {tuple(d["distill.teachers"]) for d in draws}
    assert seen == {(str(tmp_path / "t1"),), (str(tmp_path / "t1"), str(tmp_path / "t2"))}
    assert spec.role == "student"


# ------------------------------------------------------------------ conditions
CONDITIONAL = """\
name: cond
model:
  heads: {choice: [2, 4], when: {model.kv_heads: 2}}    # depends on a conditional leaf defined below
  arch: {choice: [llama, gpt2]}
  hidden: 64
  kv_heads: {choice: [1, 2], when: {model.arch: llama}}
  dropout: {uniform: [0.0, 0.2], when: {model.arch: gpt2}}
train:
  warmup_steps: {value: 0, when: {model.arch: [gpt2]}}
"""


def test_conditional_leaves_exist_only_when_their_condition_holds(tmp_path):
    spec = load_spec(write(tmp_path, CONDITIONAL))
    assert set(spec.distributions()) == {"model.heads", "model.arch", "model.kv_heads", "model.dropout"}
    draws, _ = _optuna_draws(OptunaSpace(spec), n=80, seed=1)
    draws += [sample_params(spec, random.Random(i)) for i in range(40)]
    archs = set()
    for params in draws:
        llama = params["model.arch"] == "llama"
        archs.add(params["model.arch"])
        assert ("model.kv_heads" in params) == llama and ("model.dropout" in params) == (not llama)
        assert ("model.heads" in params) == (params.get("model.kv_heads") == 2)
        config = spec.materialize(params)
        RunConfig.model_validate(config)
        assert config["model"]["kv_heads"] == params.get("model.kv_heads")
        assert config["train"]["warmup_steps"] == (100 if llama else 0)  # conditional constant vs default
    assert archs == {"llama", "gpt2"}
    # A param of an inactive leaf is dropped: gpt2 has no kv_heads.
    config = spec.materialize({"model.arch": "gpt2", "model.kv_heads": 2, "model.dropout": 0.1})
    assert config["model"]["kv_heads"] is None and config["model"]["dropout"] == 0.1


def test_grid_points_respect_conditions(tmp_path):
    spec = load_spec(write(tmp_path, """\
        name: grid
        model:
          arch: {grid: [llama, gpt2]}
          kv_heads: {choice: [1, 2], when: {model.arch: llama}}
        train:
          lr: {grid: [0.001, 0.002]}
          epochs: 1
        search: {algorithm: grid}
        """))
    points = grid_points(spec)
    as_set = {tuple(sorted(p.items())) for p in points}
    expected = {(("model.arch", "llama"), ("model.kv_heads", k), ("train.lr", lr)) for k in (1, 2) for lr in (0.001, 0.002)}
    expected |= {(("model.arch", "gpt2"), ("train.lr", lr)) for lr in (0.001, 0.002)}
    assert len(points) == 6 and as_set == expected
    for p in points:
        assert spec.materialize(p)["train"]["epochs"] == 1
    with pytest.raises(UserError, match="train.lr: a grid takes only choice or grid values"):
        grid_points(load_spec(write(tmp_path, "name: x\ntrain:\n  lr: {uniform: [0.001, 0.01]}\n", "x.yaml")))


# ------------------------------------------------------------------ materialize, overrides, paths
def test_materialize_the_example_spec(tmp_path):
    spec = load_spec(write(tmp_path, EXAMPLE))
    assert spec.role == "student" and spec.teachers_from_sweep.sweep == "teachers" and spec.teachers_from_sweep.top == 2
    assert spec.search.samples == 12 and spec.resources.cpu == 1 and spec.tracking.models == "best"
    params = {"model.arch": "llama", "model.hidden": 128, "model.kv_heads": 2, "train.lr": 1e-3,
              "train.weight_decay": 0.1, "train.scheduler": "linear", "distill.temperature": 2.0,
              "antlm.schedule": "4clm"}
    config = spec.materialize(params, teachers=[str(tmp_path)])
    assert RunConfig.model_validate(config).model_dump() == config
    assert pickle.loads(pickle.dumps(spec)).materialize(params, teachers=[str(tmp_path)]) == config  # Ray ships it
    assert config["distill"]["teachers"] == [str(tmp_path)] and config["model"]["kv_heads"] == 2
    assert config["data"]["tokenizer"] == {"vocab_size": 2000, "min_frequency": 2}  # default kept
    with pytest.raises(UserError, match="from sweep 'teachers'"):
        spec.materialize(params)
    with pytest.raises(ValueError, match="model.kv_heads is active but has no sampled value"):
        spec.materialize({k: v for k, v in params.items() if k != "model.kv_heads"}, teachers=[])
    with pytest.raises(ValueError, match="not config keys: train.lrr"):
        spec.materialize({**params, "train.lrr": 1.0}, teachers=[])
    with pytest.raises(UserError, match="divisible by heads"):
        spec.materialize({**params, "model.heads": 3}, teachers=[])


def test_fixed_spec_overrides_and_defaults(tmp_path):
    path = write(tmp_path, """\
        name: one
        model: {arch: {choice: [llama, gpt2]}, layers: 2}
        train: {epochs: 3, lr: 1e-4}
        """)
    spec = load_spec(path)
    assert spec.role == "teacher" and not spec.is_fixed() and spec.space["train"]["lr"] == 1e-4  # "1e-4" -> float
    assert load_spec(path, {"role": "baseline"}).role == "baseline"
    spec = load_spec(path, {"train.epochs": 1, "model.layers": 1, "model.arch": "gpt2", "search.samples": 3})
    assert spec.is_fixed() and spec.search.samples == 3
    config = spec.materialize({})
    assert (config["train"]["epochs"], config["model"]["layers"], config["model"]["arch"]) == (1, 1, "gpt2")
    assert config["train"]["batch_size"] == RunConfig().train.batch_size
    # The overrides travel with the text: the sweep folder's copy loads to the same spec.
    copy = write(tmp_path, spec.text, "copy.yaml")
    assert load_spec(copy).fingerprint() == spec.fingerprint() and diff_specs(spec.text, spec) == []
    assert diff_specs(path.read_text(), spec) == ["model.arch", "model.layers", "search.samples", "train.epochs"]


def test_parse_override():
    assert parse_override("train.epochs=1") == ("train.epochs", 1)
    assert parse_override("model.arch = gpt2") == ("model.arch", "gpt2")
    assert parse_override("train.lr=1.0e-3") == ("train.lr", 1e-3)
    assert parse_override("data.train=a=b") == ("data.train", "a=b")
    assert parse_override("model.hidden={choice: [64, 128]}") == ("model.hidden", {"choice": [64, 128]})
    for bad in ("train.epochs", "=3", "x=[1"):
        with pytest.raises(UserError, match="--set"):
            parse_override(bad)


def test_fingerprint_and_diff(tmp_path):
    base = load_spec(write(tmp_path, EXAMPLE))
    commented = EXAMPLE.replace("name: teachers", "name: teachers   # a new comment\n# and a line")
    same = load_spec(write(tmp_path, commented, "b.yaml"))
    assert same.fingerprint() == base.fingerprint() and diff_specs(EXAMPLE, same) == []
    wider = load_spec(write(tmp_path, EXAMPLE.replace("[1.0e-4, 3.0e-3]", "[1.0e-4, 1.0e-2]"), "c.yaml"))
    assert wider.fingerprint() != base.fingerprint() and diff_specs(EXAMPLE, wider) == ["train.lr"]
    runtime = load_spec(write(tmp_path, EXAMPLE.replace("concurrent: 2", "concurrent: 4"), "d.yaml"))
    assert diff_specs(EXAMPLE, runtime) == [] and runtime.fingerprint() == base.fingerprint()
    more = load_spec(write(tmp_path, EXAMPLE.replace("samples: 12", "samples: 20").replace("  hidden: {choice: [64, 128]}\n", ""), "e.yaml"))
    assert diff_specs(EXAMPLE, more) == ["model.hidden", "search.samples"]
    assert diff_specs("", base) == []


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.train").write_text("hello\n")
    (tmp_path / "teacher").mkdir()
    spec = load_spec(write(tmp_path, """\
        name: paths
        data: {train: corpus, dev: 'corpus/*.train', cache_dir: cache}
        distill: {teachers: [teacher, ./teacher/../teacher]}
        eval: {blimp: {choice: [none, corpus/a.train]}}
        """))
    data = spec.space["data"]
    assert data["train"] == str(tmp_path / "corpus") and data["dev"] == str(tmp_path / "corpus" / "*.train")
    assert data["cache_dir"] == str(tmp_path / "cache")
    assert spec.space["distill"]["teachers"] == [str(tmp_path / "teacher")] * 2
    assert spec.distributions()["eval.blimp"].args == ("none", str(tmp_path / "corpus" / "a.train"))
    monkeypatch.chdir(tmp_path / "corpus")  # as in a Ray trial: the config no longer depends on the cwd
    assert spec.materialize({"eval.blimp": "none"})["data"]["train"] == str(tmp_path / "corpus")


def test_describe_lists_the_space(tmp_path):
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(describe(load_spec(write(tmp_path, EXAMPLE))))
    text = console.export_text()
    for part in ("train.lr", "loguniform", "model.kv_heads", "model.arch in ['llama']", "top 2 of sweep teachers"):
        assert part in text
    assert str(Distribution("randint", (1, 3))) == "randint low=1, high=3 (inclusive)"


# ------------------------------------------------------------------ shipped specs
SHIPPED = sorted(p for p in (REPO / "search_spaces").rglob("*.yaml") if p.name != "study.yaml")  # studies: test_search_spaces


@pytest.mark.parametrize("path", SHIPPED or [pytest.param(None, marks=pytest.mark.skip(reason="no specs yet"))],
                         ids=lambda p: str(p.relative_to(REPO)) if p else "none")
def test_shipped_specs_validate(path):
    # Paper-scale specs point at corpora that a test machine lacks: only their existence is not checked.
    spec = load_spec(path, check_paths=False)
    assert spec.name and spec.fingerprint()


def test_repeats_with_asha_only_refused_for_optuna(tmp_path):
    for search in ("{repeats: 2, scheduler: none}", "{repeats: 2, algorithm: random}", "{repeats: 2, algorithm: grid}"):
        spec = load_spec(write(tmp_path, f"name: t\nsearch: {search}\n", "ok.yaml"))
        assert spec.search.repeats == 2


def test_teachers_from_sweep_per_arch(tmp_path):
    spec = load_spec(write(tmp_path, "name: s\ndistill:\n  teachers: {from_sweep: teachers, top: 1, per_arch: true}\n", "s.yaml"))
    assert spec.role == "student" and spec.teachers_from_sweep.per_arch and spec.teachers_from_sweep.top == 1
    rendered = " ".join(str(cell) for column in describe(spec).columns for cell in column._cells)
    assert "top 1 of each model.arch of sweep teachers" in rendered


def test_paths_from_environment_variables(tmp_path, monkeypatch):
    from babysweep.spec.load import missing_paths

    (tmp_path / "corpus" / "train_10M").mkdir(parents=True)
    (tmp_path / "corpus" / "train_10M" / "a.train").write_text("one line\n")
    (tmp_path / "blimp").mkdir()
    path = write(tmp_path, """\
        name: env
        data: {train: "$BABYSWEEP_DATA/train_10M/*.train", dev: "${BABYSWEEP_DATA}/train_10M"}
        eval: {blimp: $BABYSWEEP_BLIMP}
        """)
    monkeypatch.delenv("BABYSWEEP_DATA", raising=False)
    monkeypatch.delenv("BABYSWEEP_BLIMP", raising=False)
    # Unset: one sentence naming the file, the key and the variable; validate (check_paths=False) only warns.
    with pytest.raises(UserError, match=r"spec.yaml: data.train \(line 2\): .*\$BABYSWEEP_DATA, which is not set"):
        load_spec(path)
    lenient = load_spec(path, check_paths=False)
    assert any("$BABYSWEEP_BLIMP" in line for line in missing_paths(lenient))
    monkeypatch.setenv("BABYSWEEP_DATA", str(tmp_path / "corpus"))
    monkeypatch.setenv("BABYSWEEP_BLIMP", str(tmp_path / "blimp"))
    spec = load_spec(path)
    assert spec.space["data"]["train"] == str(tmp_path / "corpus" / "train_10M" / "*.train")
    assert spec.space["data"]["dev"] == str(tmp_path / "corpus" / "train_10M")
    assert spec.space["eval"]["blimp"] == str(tmp_path / "blimp")
    # The saved copy records the values: a resumed sweep or its finalists read the same data without the variables...
    copy = write(tmp_path, spec.text, "copy.yaml")
    monkeypatch.delenv("BABYSWEEP_DATA")
    monkeypatch.delenv("BABYSWEEP_BLIMP")
    assert load_spec(copy).fingerprint() == spec.fingerprint()
    # ...and a run of the spec with the variable pointing elsewhere is another spec.
    (tmp_path / "other" / "train_10M").mkdir(parents=True)
    (tmp_path / "other" / "train_10M" / "a.train").write_text("one line\n")
    monkeypatch.setenv("BABYSWEEP_DATA", str(tmp_path / "other"))
    monkeypatch.setenv("BABYSWEEP_BLIMP", str(tmp_path / "blimp"))
    assert diff_specs(spec.text, load_spec(path)) == ["data.dev", "data.train"]


def test_blimp_final_subset_needs_a_subset_and_a_loss_metric(tmp_path):
    base = "name: b\neval: {blimp: builtin, blimp_final: subset%s}\nsearch: {metric: %s, scheduler: none}\n"
    with pytest.raises(UserError, match="blimp_final subset needs blimp_pairs_per_paradigm"):
        load_spec(write(tmp_path, base % ("", "eval/loss")))
    with pytest.raises(UserError, match="search.metric.*eval.blimp_final is subset"):
        load_spec(write(tmp_path, base % (", blimp_pairs_per_paradigm: 5", "blimp/overall")))
    assert load_spec(write(tmp_path, base % (", blimp_pairs_per_paradigm: 5", "blimp_subset/overall"))).name == "b"
