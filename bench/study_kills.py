"""Kills at every stage of a study: SIGKILL the driver's process group at seeded random moments, rerun
the same command until it completes, then check that nothing was lost or doubled.

    python bench/study_kills.py [--kills 5] [--seed 0] [--keep DIR]

A tiny study (teachers, students, baselines, finalists, report) first runs once without a kill: its
report is the reference, its wall time the clock the kill moments are drawn from (a uniform fraction of
it, seeded). Then the same study runs in a fresh project as `babysweep study` in its own process group
(Ray's processes included), killed --kills times and rerun until it exits 0. Checked afterwards: each
stage's trials and finalists exist once and finished, MLflow has one parent run per sweep and one run
per trial, none RUNNING, no metric step logged twice, one report run, and report.json equals the
reference's (timing fields and paths aside). Printed: the stage each kill hit, kills survived, and the
time lost per kill ((wall of all attempts - reference wall) / kills). tests/test_study_kills.py runs the
same with 1 kill on a smaller study (teachers and students, one trial each).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SPEC = """
name: {name}
role: {role}
data: {{seq_len: 16, builtin_words: 6000, tokenizer: {{vocab_size: 300}}, cache_dir: {cache}}}
model: {{arch: llama, layers: 1, hidden: 16, heads: 2}}
train: {{epochs: 2, batch_size: 16, lr: {lr}, warmup_steps: 2, threads: 1}}
eval: {{dev_batches: 2, blimp: builtin, blimp_pairs_per_paradigm: 0}}
search: {{algorithm: random, samples: {samples}, scheduler: none, concurrent: 2, max_failures: 0}}
resources: {{cpu: 1}}
"""
SWEEPS = {"teachers": ("teacher", 2), "students": ("student", 1), "baselines": ("baseline", 1)}
SEEDS = 1  # finalists per best config
# report.json fields that differ between two identical runs: clocks and the folders runs lived in.
VOLATILE = re.compile(r"(elapsed|tokens_per_s|time|duration|wall|_dir|path|folder|date|run_id|uri)", re.I)


def write_study(root: Path, cache: Path, sweeps: dict = SWEEPS) -> Path:
    """The tiny study's files in `root` ({sweep: (role, trials)}; students distil from teachers); returns study.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    for name, (role, samples) in sweeps.items():
        text = SPEC.format(name=name, role=role, cache=cache, samples=samples, lr="{loguniform: [1.0e-3, 1.0e-2]}")
        if role == "student":
            text += "distill: {teachers: {from_sweep: teachers, top: 1}, alpha: 0.5, temperature: 2.0}\n"
        (root / f"{name}.yaml").write_text(text)
    study = root / "study.yaml"
    names = ", ".join(f"{name}.yaml" for name in sweeps)
    study.write_text(f"name: kills\nsweeps: [{names}]\nfinalists: {{seeds: {SEEDS}}}\n")
    return study


def study_command(study: Path) -> list[str]:
    return [sys.executable, "-m", "babysweep.cli", "study", str(study)]


def _env(root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    return {**env, "BABYSWEEP_PROJECT": str(root), "COLUMNS": "200"}


def run_once(study: Path, log: Path, kill_after: float | None = None) -> tuple[int | None, float]:
    """Run the study in its own session; SIGKILL its process group after `kill_after` s. Returns
    (exit status, or None when killed; seconds it ran)."""
    root = study.parent
    start = time.perf_counter()
    with open(log, "ab") as out:
        proc = subprocess.Popen(study_command(study), cwd=root, env=_env(root), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=kill_after)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = None
        finally:
            _kill_session(proc.pid)  # also reaps any Ray process left behind by a finished driver
            proc.wait()
    return code, time.perf_counter() - start


def _kill_session(sid: int) -> None:
    """SIGKILL every process of the session the driver leads (its process group, and any Ray process that
    made a group of its own inside the session): a lost machine."""
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        try:
            if os.getsid(pid) == sid:
                os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def stage_at(log: Path) -> str:
    """The study stage the log shows last ("sweep teachers", "finalists students", "report kills"...)."""
    stages = re.findall(r"\[\d+/\d+\] ([^\n]+?)(?:: done before, skipped)?\s*$", log.read_text(errors="replace"), re.M)
    return stages[-1] if stages else "start-up"


@dataclass
class KillRun:
    kills: list[tuple[str, float]] = field(default_factory=list)  # (stage hit, seconds into that attempt)
    attempts: int = 0
    wall: float = 0.0


def run_with_kills(study: Path, kills: int, window: tuple[float, float], seed: int, max_attempts: int = 30) -> KillRun:
    """Kill the study `kills` times, each at a seeded uniform moment of `window` (seconds into an attempt),
    then let it run to the end; raises when it does not complete."""
    rng, result, log = random.Random(seed), KillRun(), study.parent / "study.log"
    while result.attempts < max_attempts:
        result.attempts += 1
        delay = rng.uniform(*window) if len(result.kills) < kills else None
        code, spent = run_once(study, log, delay)
        result.wall += spent
        if code is None:
            result.kills.append((stage_at(log), spent))
            continue
        if code != 0:
            tail = log.read_text(errors="replace")[-4000:]  # CI keeps no files: the reason must be in the message
            raise RuntimeError(f"the study exited {code} after {len(result.kills)} kills {result.kills}; end of {log}:\n{tail}")
        return result  # complete (with fewer kills than asked when it finished before a kill's moment)
    raise RuntimeError(f"the study did not complete in {max_attempts} attempts; see {log}")


def planned(sweeps: dict = SWEEPS) -> dict[str, int]:
    """Trials each sweep must end with: the tuning samples, then one finalist per best config and seed."""
    out = {name: samples for name, (_, samples) in sweeps.items()}
    out.update({f"{name}.final": SEEDS for name in sweeps})  # one architecture: one best config each
    return out


def check_project(root: Path, sweeps: dict = SWEEPS) -> list[str]:
    """What is wrong with a finished study's project (empty when nothing is)."""
    import mlflow
    from mlflow.entities import ViewType

    from babysweep.core.paths import default_tracking_uri

    problems = check_sweeps(root, planned(sweeps))
    client = mlflow.MlflowClient(default_tracking_uri(root))
    reports = client.get_experiment_by_name("reports")
    found = client.search_runs([reports.experiment_id], "", ViewType.ACTIVE_ONLY) if reports else []
    if len(found) != 1 or found[0].info.status != "FINISHED":
        problems.append(f"reports: {len(found)} active report runs ({[r.info.status for r in found]})")
    return problems


def check_sweeps(root: Path, counts: dict[str, int]) -> list[str]:
    """What is wrong with these finished sweeps of a project ({sweep: trials it must have}): trials not
    FINISHED, MLflow parents or trial runs not one each, runs not FINISHED, a metric step logged twice."""
    import mlflow
    from mlflow.entities import ViewType

    from babysweep.core.paths import default_tracking_uri
    from babysweep.sweep.state import sweep_status

    problems = []
    client = mlflow.MlflowClient(default_tracking_uri(root))
    for sweep, count in counts.items():
        rows = sweep_status(sweep, root / "sweeps")
        states = sorted(r["state"] for r in rows)
        if states != ["FINISHED"] * count:
            problems.append(f"{sweep}: trials {states}, expected {count} FINISHED")
        exp = client.get_experiment_by_name(sweep)
        if exp is None:
            problems.append(f"{sweep}: no MLflow experiment")
            continue
        runs = client.search_runs([exp.experiment_id], "", ViewType.ACTIVE_ONLY, max_results=1000)
        parents = [r for r in runs if r.data.tags.get("kind") == "sweep"]
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        if len(parents) != 1:
            problems.append(f"{sweep}: {len(parents)} parent runs")
        trial_ids = sorted(r.data.tags.get("trial_id", "?") for r in children)
        if len(children) != count or len(set(trial_ids)) != len(trial_ids) or sorted(r["trial_id"] for r in rows) != trial_ids:
            problems.append(f"{sweep}: trial runs {trial_ids}, trials {sorted(r['trial_id'] for r in rows)}")
        if parents and any(r.data.tags["mlflow.parentRunId"] != parents[0].info.run_id for r in children):
            problems.append(f"{sweep}: a trial run under another parent")
        for run in runs:
            if run.info.status != "FINISHED":
                problems.append(f"{sweep}: run {run.info.run_id} is {run.info.status}")
            for key in run.data.metrics:
                steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
                if len(steps) != len(set(steps)):
                    problems.append(f"{sweep}: run {run.info.run_id} logged {key} twice at a step ({sorted(steps)})")
    return problems


def comparable(value):
    """report.json without the fields two identical runs differ in."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if not VOLATILE.search(k)}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, str):
        return re.sub(r"/\S+", "<path>", value)
    return value


def report_of(root: Path) -> dict:
    return comparable(json.loads((root / "reports" / "kills" / "report.json").read_text()))


def differences(a, b, where: str = "report") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="work in this folder (kept) instead of a temporary one")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-kills-"))
    cache = base / "cache"
    reference = write_study(base / "reference", cache)
    code, reference_wall = run_once(reference, reference.parent / "study.log")
    if code != 0:
        sys.exit(f"the reference study failed ({code}); see {reference.parent / 'study.log'}")
    print(f"reference study: {reference_wall:.1f} s without a kill")
    killed = write_study(base / "killed", cache)
    # Each kill at 5-60% of the reference's wall time into an attempt: start-up, any stage, the report.
    result = run_with_kills(killed, args.kills, (0.05 * reference_wall, 0.6 * reference_wall), args.seed)
    for number, (stage, after) in enumerate(result.kills, start=1):
        print(f"kill {number}: {after:5.1f} s into attempt {number}, at stage '{stage}'")
    lost = (result.wall - reference_wall) / max(len(result.kills), 1)
    print(f"kills survived: {len(result.kills)} of {args.kills} asked; {result.attempts} attempts, {result.wall:.1f} s in all; "
          f"time lost per kill {lost:.1f} s (reference {reference_wall:.1f} s)")
    problems = check_project(killed.parent) + differences(report_of(reference.parent), report_of(killed.parent))
    print("checks: " + ("all passed (trials and finalists once, one parent per sweep, one run per trial, none RUNNING, "
                        "no duplicate steps, one report run, report equal to the uninterrupted one)" if not problems else
                        f"{len(problems)} FAILED:\n  " + "\n  ".join(problems)))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
