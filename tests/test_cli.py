"""The command line, in process: exit codes, one-sentence errors, train -> distil -> eval end to end."""

import json
import sys

import pytest

from babysweep import __version__
from babysweep.cli import main


def run(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["babysweep", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_version_and_help(monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, "--version")
    assert code == 0 and __version__ in out
    code, out, _ = run(monkeypatch, capsys, "--help")
    assert code == 0 and all(cmd in out for cmd in ("run", "resume", "status", "train", "eval", "validate", "ui", "data",
                                               "finalists", "report", "ablate", "study"))


def test_user_errors_exit_2_with_one_line(monkeypatch, capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntrain:\n  lr: {loguniform: [0.01, 0.001]}\n")
    study = tmp_path / "study.yaml"
    study.write_text("name: s\nsweeps: [bad.yaml]\nfinalists: {seeds: two}\n")
    monkeypatch.setenv("BABYSWEEP_PROJECT", str(tmp_path))
    for args in (("validate", bad), ("validate", tmp_path / "missing.yaml"), ("eval", tmp_path / "nomodel"),
                 ("data", tmp_path / "nothing-here"), ("study", study), ("study", tmp_path / "none.yaml"),
                 ("report", "no-such-sweep"), ("finalists", "no-such-sweep"), ("ablate", "no-such-sweep"),
                 ("ablate", bad), ("ui", "no-such-sweep"), ("eval", tmp_path / "nomodel", "--rule", "babylm-2024")):
        code, _, err = run(monkeypatch, capsys, *args)
        assert code == 2, args
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err


def _spec(folder, cache_dir, name, extra=""):
    path = folder / f"{name}.yaml"
    path.write_text(f"""
name: {name}
data: {{seq_len: 32, builtin_words: 20000, tokenizer: {{vocab_size: 500}}, cache_dir: {cache_dir}}}
model: {{layers: 1, hidden: 32, heads: 2}}
train: {{epochs: 1, batch_size: 32, lr: 3.0e-3, warmup_steps: 5, threads: 1}}
eval: {{dev_batches: 2}}
{extra}
""")
    return path


def test_train_teachers_then_distil_a_student_then_eval(monkeypatch, capsys, tmp_path, cache_dir):
    teacher = _spec(tmp_path, cache_dir, "teacher")
    for index, arch in enumerate(("llama", "gpt2")):
        code, out, err = run(monkeypatch, capsys, "train", teacher, "--out", tmp_path / f"t{index}", "--set", f"model.arch={arch}")
        assert code == 0, err
        assert (tmp_path / f"t{index}" / "final" / "model.safetensors").is_file()
    student = _spec(tmp_path, cache_dir, "student", "distill: {alpha: 0.5, temperature: 2.0}\nantlm: {schedule: 1clm}")
    code, out, err = run(monkeypatch, capsys, "train", student, "--out", tmp_path / "s",
                         "--teacher", tmp_path / "t0" / "final", "--teacher", tmp_path / "t1" / "final")
    assert code == 0, err
    run_info = json.loads((tmp_path / "s" / "run.json").read_text())
    assert len(run_info["config"]["distill"]["teachers"]) == 2
    rows = [json.loads(line) for line in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and "blimp/overall" in rows[0]
    code, out, err = run(monkeypatch, capsys, "eval", tmp_path / "s" / "final", "--json",
                         "--blimp", sorted((cache_dir / "builtin").glob("builtin-*"))[0] / "blimp")
    assert code == 0, err
    assert json.loads(out)["overall"] == pytest.approx(rows[0]["blimp/overall"])
    assert json.loads(out)["rule"] == "babylm" and json.loads(out)["scorer"] == "causal"  # the defaults of both


def test_usage_errors_exit_2_with_one_line(monkeypatch, capsys):
    for args, says in ((("study", "x.yaml", "--no-such-option"), "--no-such-option"), (("run",), "'spec'"),
                       (("no-such-command",), "no-such-command")):
        code, _, err = run(monkeypatch, capsys, *args)
        assert code == 2, args
        assert err.startswith("error: ") and says in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_train_refuses_a_sweep_spec(monkeypatch, capsys, tmp_path, cache_dir):
    spec = _spec(tmp_path, cache_dir, "sweepy").read_text().replace("lr: 3.0e-3", "lr: {loguniform: [1.0e-3, 1.0e-2]}")
    (tmp_path / "sweepy.yaml").write_text(spec)
    code, _, err = run(monkeypatch, capsys, "train", tmp_path / "sweepy.yaml", "--out", tmp_path / "x")
    assert code == 2 and "train.lr" in err and "babysweep run" in err


def test_validate_warns_about_paths_missing_on_this_machine(monkeypatch, capsys, tmp_path):
    spec = tmp_path / "elsewhere.yaml"
    spec.write_text(f"name: x\ndata: {{train: {tmp_path / 'babylm' / 'train_10M'}}}\n")
    code, out, err = run(monkeypatch, capsys, "validate", spec)
    assert code == 0 and "valid" in out
    assert err.startswith("warning: ") and "data.train" in err and "train_10M does not exist" in err


def test_validate_a_study_file_checks_every_sweep_it_names(monkeypatch, capsys, tmp_path):
    from pathlib import Path

    study = Path(__file__).resolve().parents[1] / "search_spaces" / "study.yaml"
    code, out, err = run(monkeypatch, capsys, "validate", study)
    assert code == 0, err
    for spec in ("teachers.yaml", "students.yaml", "students_babyllama.yaml", "baselines.yaml"):
        assert f"{spec}: valid" in out
    assert "valid study 'study': 4 sweeps" in out
    # A study whose second spec is broken: one line naming that spec's file and key.
    (tmp_path / "good.yaml").write_text("name: good\ntrain: {lr: 1.0e-3}\n")
    (tmp_path / "bad.yaml").write_text("name: bad\ntrain: {lr: {loguniform: [0.01, 0.001]}}\n")
    (tmp_path / "s.yaml").write_text("name: s\nsweeps: [good.yaml, bad.yaml]\n")
    code, _, err = run(monkeypatch, capsys, "validate", tmp_path / "s.yaml")
    assert code == 2 and "bad.yaml" in err and "train.lr" in err and err.count("\n") == 1, err


def test_validate_warns_when_random_draws_give_invalid_configs(monkeypatch, capsys, tmp_path):
    spec = tmp_path / "odd.yaml"
    spec.write_text("name: odd\nmodel: {heads: 4, hidden: {choice: [128, 130]}}\n")
    code, out, err = run(monkeypatch, capsys, "validate", spec)
    assert code == 0 and "random draws" in err and "divisible by heads" in err, err


def test_data_prints_a_glob_as_given(monkeypatch, capsys, tmp_path):
    """A glob's character class ("[cp]") is text in the table's title, not rich markup that vanishes."""
    for name in ("carroll", "potter"):
        (tmp_path / f"{name}.train").write_text("the cat sat on the mat . the dog ran .\n" * 50)
    glob = str(tmp_path / "[cp]*.train")
    code, out, err = run(monkeypatch, capsys, "data", glob, "--vocab-size", "300", "--cache-dir", tmp_path / "cache")
    assert code == 0, err
    assert f"data: {glob}" in out.replace("\n", "")
