"""`babysweep status` reads a sweep's folder without Ray: states, epochs, varying params, resume lines."""

import json
import os
import subprocess
import sys

from babysweep.train.checkpoint import save_checkpoint
from babysweep.sweep.state import (DRIVER_FILE, best_row, driver_running, resume_summary, sweep_status,
                                   varying_params)

SPEC = """name: fake
model: {layers: 1, hidden: 32, heads: 2}
train: {epochs: 3, lr: {loguniform: [1.0e-3, 1.0e-2]}, max_steps: 50}
search: {algorithm: random, samples: 6, scheduler: asha}
"""


def _trial(trial_id, status, lr, result=None):
    info = {"trial_id": trial_id, "status": status, "config": {"train.lr": lr}, "relative_logdir": f"trial_{trial_id}"}
    return [json.dumps(info), json.dumps({"last_result": result or {}})]


def _folder(tmp_path):
    folder = tmp_path / "sweeps" / "fake"
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(SPEC)
    trials = [
        _trial("done", "TERMINATED", 0.002, {"epoch": 3, "step": 30, "eval/loss": 3.0}),
        _trial("capped", "TERMINATED", 0.003, {"epoch": 2, "step": 50, "eval/loss": 2.9}),  # reached max_steps
        _trial("asha", "TERMINATED", 0.004, {"epoch": 1, "step": 10, "eval/loss": 3.5}),  # stopped by the scheduler
        _trial("broken", "ERROR", 0.005),
        _trial("midway", "PENDING", 0.006, {"epoch": 1, "step": 10, "eval/loss": 3.4}),  # Ray saves RUNNING as PENDING
        _trial("waiting", "PENDING", 0.007),
    ]
    (folder / "experiment_state-2026.json").write_text(json.dumps({"trial_data": trials}))
    # An earlier run's state, rewritten after the newer one (Ray touches it on restore): not the one to read.
    (folder / "experiment_state-2025.json").write_text(json.dumps({"trial_data": [_trial("done", "PENDING", 0.002)]}))
    (folder / "trial_broken").mkdir()
    (folder / "trial_broken" / "error.txt").write_text("Traceback ...\nValueError: hidden must be even\n")
    midway = folder / "models" / "midway"
    save_checkpoint(midway / "checkpoints", 20, {}, {})
    # The trial's own metrics are newer than Ray's saved result.
    (midway / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "step": 10}) + "\n" + json.dumps({"epoch": 2, "step": 20}) + "\n")
    return folder


def test_states_epochs_and_notes(tmp_path):
    folder = _folder(tmp_path)
    rows = {r["trial_id"]: r for r in sweep_status("fake", tmp_path / "sweeps")}
    states = {k: r["state"] for k, r in rows.items()}
    assert states == {"done": "FINISHED", "capped": "FINISHED", "asha": "STOPPED", "broken": "ERROR",
                      "midway": "INTERRUPTED", "waiting": "PENDING"}
    assert rows["broken"]["error"] == "ValueError: hidden must be even"
    assert rows["midway"]["epoch"] == 2 and rows["midway"]["planned"] == 3
    assert rows["midway"]["checkpoint"] == "step_00000020"
    assert best_row(list(rows.values()), "eval/loss", "min")["trial_id"] == "capped"  # not the stopped one
    assert varying_params(list(rows.values())) == ["train.lr"]
    lines = resume_summary(list(rows.values()), total=8)
    assert lines[0] == "continuing: 3 of 8 trials done (1 of them stopped early), 1 errored, 2 not created yet"
    assert "midway continues from step_00000020 (epoch 2)" in lines[1]
    assert "waiting" in lines[2]

    # While a driver runs the sweep, a started trial is RUNNING; a dead driver's mark does not count.
    with driver_running(folder):
        assert {r["trial_id"]: r["state"] for r in sweep_status("fake", tmp_path / "sweeps")}["midway"] == "RUNNING"
    assert not (folder / DRIVER_FILE).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    (folder / DRIVER_FILE).write_text(json.dumps({"pid": int(dead), "host": os.uname().nodename}))
    assert {r["trial_id"]: r["state"] for r in sweep_status("fake", tmp_path / "sweeps")}["midway"] == "INTERRUPTED"


def test_status_command_shows_varying_params_and_each_metric_once(tmp_path, monkeypatch, capsys):
    from test_cli import run

    from babysweep.sweep.stops import record_stop

    folder = _folder(tmp_path)
    record_stop(folder, "asha", scheduler="asha", rung=1, metric="eval/loss", mode="min", value=3.5, cutoff=3.2,
                compared=2, among="earlier waves")
    monkeypatch.setenv("BABYSWEEP_PROJECT", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")
    code, out, err = run(monkeypatch, capsys, "status", "fake")
    assert code == 0, err
    header = next(line for line in out.splitlines() if "trial" in line and "state" in line).split()
    assert "lr" in header and header.count("dev") == 1 and "blimp" in header
    assert "lr = train.lr" in out and "dev = eval/loss (the sweep's metric)" in out
    asha = next(line for line in out.splitlines() if line.strip().startswith("asha"))
    assert "stopped" in asha and "asha@1" in asha and "1/3" in asha and "ASHA" not in out
    midway = next(line for line in out.splitlines() if line.strip().startswith("midway"))
    assert "interrupted" in midway and "2/3" in midway and "0.006" in midway
    assert "error in broken: ValueError: hidden must be even" in out
    assert out.splitlines()[-1].startswith("disk: sweeps ") and "mlruns" in out
    # One trial in full: the scheduler as the spec names it, the rung and the value compared with.
    code, out, err = run(monkeypatch, capsys, "status", "fake", "asha")
    assert code == 0, err
    assert "stopped early by asha at its rung of epoch 1: eval/loss 3.5, above the cutoff 3.2 set by 2 trials of earlier waves" in out
    assert "train.lr = 0.004" in out
    code, out, err = run(monkeypatch, capsys, "status", "fake", "nosuch")
    assert code == 2 and "no trial 'nosuch'" in err


WIDE = """name: wide
model: {layers: 1, hidden: {choice: [32, 64]}, heads: 2, arch: {choice: [llama, gpt2]}, dropout: {uniform: [0.0, 0.2]}}
train: {epochs: 4, lr: {loguniform: [1.0e-4, 1.0e-2]}, weight_decay: {lognormal: [-2.3, 1.0]},
        warmup_steps: {randint: [0, 200]}, batch_size: {choice: [16, 32]}, scheduler: {choice: [cosine, linear]}}
data: {tune_split: 0.1}
search: {algorithm: random, samples: 4, scheduler: asha, metric: tune/loss}
"""


def _wide(tmp_path):
    import random

    folder = tmp_path / "sweeps" / "wide"
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(WIDE)
    rng = random.Random(0)
    trials = []
    for i in range(4):
        config = {"model.hidden": rng.choice([32, 64]), "model.arch": ["llama", "gpt2"][i % 2], "model.dropout": rng.random() / 5,
                  "train.lr": 10 ** rng.uniform(-4, -2), "train.weight_decay": rng.lognormvariate(-2.3, 1.0),
                  "train.warmup_steps": rng.randint(0, 200), "train.batch_size": rng.choice([16, 32]),
                  "train.scheduler": rng.choice(["cosine", "linear"])}
        result = {"epoch": 4, "step": 40, "tune/loss": 3.123456789 + i / 7, "eval/loss": 3.3333333 + i / 9,
                  "blimp/overall": 51.23456 + i}
        info = {"trial_id": f"{i:08x}", "status": "TERMINATED", "config": config, "relative_logdir": f"trial_{i}"}
        trials.append([json.dumps(info), json.dumps({"last_result": result})])
    (folder / "experiment_state-2026.json").write_text(json.dumps({"trial_data": trials}))
    return folder


def test_status_fits_80_and_160_columns_without_cut_cells_or_repeated_headers(tmp_path, monkeypatch, capsys):
    from test_cli import run

    _wide(tmp_path)
    monkeypatch.setenv("BABYSWEEP_PROJECT", str(tmp_path))
    seen = {}
    from rich.console import Console

    import babysweep.cli as cli

    for width in (80, 160):
        monkeypatch.setenv("COLUMNS", str(width))
        # A new process's console reads COLUMNS once, when the CLI module is imported: a console made now does.
        monkeypatch.setattr(cli, "console", Console(soft_wrap=True))
        code, out, err = run(monkeypatch, capsys, "status", "wide")
        assert code == 0, err
        assert "…" not in out and "..." not in out
        table = [line for line in out.splitlines() if line.startswith(("trial ", "0000", "─"))]
        assert all(len(line.rstrip()) <= width for line in table), table
        headers = [line.split() for line in table if line.startswith("trial ")]
        for header in headers:  # no header repeats within a table; only the trial id leads each
            assert len(header) == len(set(header)), header
        assert {"trial", "state", "epoch", "tune"} <= set(headers[0])
        assert "3.123" in out and "3.1235" not in out  # 4 significant figures
        seen[width] = (headers, out)
    narrow, wide = seen[80][0], seen[160][0]
    assert len(narrow) == 2 and len(wide) == 1  # at 80 columns what does not fit goes to a second table
    assert {name for header in narrow for name in header} == set(wide[0])
    assert sum(header.count("lr") for header in narrow) == 1
    assert "one trial in full: babysweep status wide 00000000" in seen[80][1]
    assert {"lr", "wd", "warmup", "batch", "sched", "drop", "hidden", "arch", "dev", "blimp"} <= set(wide[0])
