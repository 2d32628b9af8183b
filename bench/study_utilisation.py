"""A finished study's utilisation of the machine, and where its core-seconds went.

    python bench/study_utilisation.py PROJECT --wall SECONDS [--cores 2]

PROJECT is the folder the study ran in (its sweeps/); --wall the study's wall time (e.g. /usr/bin/time's).
In one run it measures this core's fp32 matmul peak with torch on one thread (bench/utilisation.py's
`peak`), reads every trial of every sweep (each trial's metrics.jsonl: training FLOPs by babysweep's
FLOPs model, the teachers' forward passes included; tokens and tokens/s per epoch; placement.json:
when train() started and ended) and prints:
- utilisation = training FLOPs / (wall x cores x peak): issue 28's study target is 50%;
- core-seconds (wall x cores) split into training steps (the trainer's own clock of its steps), the rest
  of train() (set-up, dev loss, BLiMP, checkpoints, saving), and idle: everything outside a trial's
  train() (Ray's and workers' start-up, waves waiting for their slowest trial, a stage's tail with one
  trial left, the n-gram floor, the report). Issue 28's target for idle is under 10%.
The peak is measured when this script runs, per CPU second of its own process (time.process_time), which
other load on the machine hardly moves; run it on the machine the study ran on.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def trials(sweeps: Path):
    """(sweep, flops, step seconds, train() seconds, train()'s start) of every trial that reported an epoch; a trial
    stopped early has no end in its placement.json: its train() time is then its last report's elapsed time."""
    from babysweep.core import metrics as M
    from babysweep.sweep.driver import PLACEMENT_FILE

    for record in sorted(sweeps.glob("*/models/*/metrics.jsonl")):
        rows = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
        rows = [row for row in rows if M.TOKENS_SEEN in row]
        if not rows:
            continue
        tokens = [row[M.TOKENS_SEEN] - (rows[i - 1][M.TOKENS_SEEN] if i else 0) for i, row in enumerate(rows)]
        steps = sum(t / row[M.TOKENS_PER_S] for t, row in zip(tokens, rows) if row.get(M.TOKENS_PER_S, 0) > 0)
        placement = record.parent / PLACEMENT_FILE
        in_train, started = rows[-1].get(M.ELAPSED_S, steps), None
        if placement.is_file():
            where = json.loads(placement.read_text())
            started = where["started"]
            in_train = where.get("finished", started + in_train) - started
        yield record.parent.parent.parent.name, rows[-1].get(M.FLOPS, 0.0), steps, in_train, started


def stage_timeline(rows: list[tuple]) -> list[tuple[str, float, float, float, int]]:
    """Per sweep, in the order it ran: (name, first train() start, last train() end, core-seconds in train(), trials)."""
    stages: dict[str, list] = {}
    for sweep, _, _, in_train, started in rows:
        if started is None:
            continue
        entry = stages.setdefault(sweep, [math.inf, 0.0, 0.0, 0])
        entry[0] = min(entry[0], started)
        entry[1] = max(entry[1], started + in_train)
        entry[2] += in_train
        entry[3] += 1
    return sorted(((name, *values) for name, values in stages.items()), key=lambda row: row[1])


def print_timeline(rows: list[tuple], cores: int, wall: float, ended: float | None) -> None:
    """Where the idle core-seconds are: inside each stage's span (slots waiting for a wave's slowest trial, the
    stage's tail, the next trial's start) and in the gaps between stages (Ray, workers' start, the driver's work)."""
    stages = stage_timeline(rows)
    if not stages:
        return
    end = ended if ended is not None else stages[-1][2]
    start = end - wall
    print(f"timeline (idle core-seconds; study from {start:.0f} to {end:.0f}, {cores} cores):")
    print(f"   {'stage':30s} {'gap before':>10s} {'span':>7s} {'trials':>6s} {'in train()':>10s} {'idle in span':>12s}")
    previous, gaps, inside = start, 0.0, 0.0
    for name, first, last, busy, count in stages:
        gap, span = max(0.0, first - previous) * cores, last - first
        idle = span * cores - busy
        gaps, inside = gaps + gap, inside + idle
        print(f"   {name:30s} {gap:10.0f} {span:7.0f} {count:6d} {busy:10.0f} {idle:12.0f}")
        previous = max(previous, last)
    tail = max(0.0, end - previous) * cores
    print(f"   {'(after the last trial)':30s} {tail:10.0f}")
    total = wall * cores
    print(f"   idle between stages {gaps + tail:.0f} core-s ({100 * (gaps + tail) / total:.1f}%), "
          f"inside stages {inside:.0f} ({100 * inside / total:.1f}%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--wall", type=float, required=True, help="the study's wall time in seconds")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ended", type=float, default=None,
                        help="when the study ended (seconds since the epoch); the last trial's end when not given")
    args = parser.parse_args()
    import torch
    from utilisation import peak

    torch.set_num_threads(1)
    fp32_wall, fp32 = peak("float32", args.repeats)
    rows = list(trials(args.project / "sweeps"))
    if not rows:
        raise SystemExit(f"{args.project / 'sweeps'}: no trial with a metrics.jsonl; is this a study's project folder?")
    flops = sum(r[1] for r in rows)
    steps, in_train = sum(r[2] for r in rows), sum(r[3] for r in rows)
    total = args.wall * args.cores
    print(f"matmul peak, 1 thread: fp32 {fp32:.1f} GFLOP per CPU second (the reference), {fp32_wall:.1f} per wall second")
    print(f"{len(rows)} trials in {len({r[0] for r in rows})} sweeps; {flops / 1e12:.1f} TFLOP of training in "
          f"{args.wall:.0f} s x {args.cores} cores")
    print(f"study utilisation = training FLOPs / (wall x cores x peak) = {100 * flops / (total * fp32 * 1e9):.1f}%")
    print(f"core-seconds: {total:.0f}")
    for name, value in (("training steps", steps), ("rest of train() (set-up, evaluation, checkpoints)", in_train - steps),
                        ("idle: outside any trial's train()", total - in_train)):
        print(f"   {name:52s} {value:7.0f} s  {100 * value / total:5.1f}%")
    by_sweep = {}
    for sweep, f, s, t, _ in rows:
        entry = by_sweep.setdefault(sweep, [0, 0.0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += f
        entry[2] += s
        entry[3] += t
    print("per sweep: trials, TFLOP, step s, train() s, achieved GFLOP/s in steps")
    for sweep, (n, f, s, t) in by_sweep.items():
        print(f"   {sweep:34s} {n:3d} {f / 1e12:7.2f} {s:8.0f} {t:8.0f} {f / max(s, 1e-9) / 1e9:7.1f}")
    print_timeline(rows, args.cores, args.wall, args.ended)


if __name__ == "__main__":
    main()
