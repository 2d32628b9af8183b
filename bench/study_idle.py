"""Where a sweep's core-seconds go: training steps, the rest of each trial, waves waiting, and everything else.

    python bench/study_idle.py search_spaces/teachers.yaml --set data.builtin_words=30000   # runs it, then accounts
    python bench/study_idle.py --folder sweeps/teachers                                       # an existing sweep's folder

Slot-seconds = the sweep's wall time x its slots (search.concurrent trials at once). From each trial's
placement.json (started / finished around `train()`, written by babysweep/sweep.py) and metrics.jsonl
(tokens and tokens/s per epoch):
- training steps: the trainer's own clock of its steps (tokens / train/tokens_per_s, per epoch); a trial that
  early stopping ended counts until its last report;
- the rest of train(): set-up, dev loss, BLiMP, checkpoints, the final save;
- waves: a wave's trials that ended before its slowest one, until it ended (the price of reproducible
  waves, README "Reproducible sweeps"); trials are grouped into waves by their start order;
- other: Ray's start, worker start-up and imports before train(), the driver's work between waves.
Then: how many worker processes ran the trials (fewer with search.reuse_workers), and the seconds before train() from
Ray's start of each trial (the experiment state's start_time) and from a wave's end (load-independent when ~0).
With `--wall` the sweep's wall time is given (an existing folder); when the script runs the sweep it times it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def account(folder: Path, wall: float, slots: int) -> None:
    from babysweep.core import metrics as M
    from babysweep.sweep.driver import PLACEMENT_FILE

    trials = []
    for record in sorted(folder.glob(f"models/*/{PLACEMENT_FILE}")):
        placement = json.loads(record.read_text())
        rows = [json.loads(line) for line in (record.parent / "metrics.jsonl").read_text().splitlines() if line.strip()]
        tokens = [row[M.TOKENS_SEEN] - (rows[i - 1][M.TOKENS_SEEN] if i else 0) for i, row in enumerate(rows)]
        steps = sum(t / row[M.TOKENS_PER_S] for t, row in zip(tokens, rows) if row[M.TOKENS_PER_S] > 0)
        if not rows:
            continue
        # A trial the scheduler stopped has no "finished": its last report (elapsed since train() began) ends it.
        end = placement.get("finished", placement["started"] + rows[-1][M.ELAPSED_S])
        trials.append({**placement, "finished": end, "steps": steps, "trial_id": record.parent.name})
    if not trials:
        raise SystemExit(f"{folder}: no trial with a {PLACEMENT_FILE} and an epoch (sweeps run before it was written have none).")
    trials.sort(key=lambda t: t["started"])
    waves = [trials[i:i + slots] for i in range(0, len(trials), slots)]
    in_train = sum(t["finished"] - t["started"] for t in trials)
    steps = sum(t["steps"] for t in trials)
    waiting = sum(max(o["finished"] for o in wave) - t["finished"] for wave in waves for t in wave)
    total = wall * slots
    other = total - in_train - waiting
    print(f"{len(trials)} trials in {len(waves)} waves of {slots}; wall {wall:.0f} s x {slots} slots = {total:.0f} slot-seconds")
    for name, value in (("training steps", steps), ("rest of train() (set-up, evaluation, checkpoints)", in_train - steps),
                        ("waves waiting for their slowest trial", waiting),
                        ("other (Ray, worker start-up and imports, driver)", other)):
        print(f"   {name:52s} {value:7.0f} s  {100 * value / total:5.1f}%")
    starts(folder, trials, waves)


def starts(folder: Path, trials: list[dict], waves: list[list[dict]]) -> None:
    """Seconds before train(): from Ray's start of each trial (its actor ready, Ray's run_metadata start_time in the
    experiment state) to train(), and from the end of a wave to the start of each trial of the next; and how many
    worker processes ran the trials (fewer than the trials when workers are reused)."""
    found = sorted(folder.glob("experiment_state-*.json"))
    ray_start = {}
    if found:
        for info, runtime in json.loads(found[-1].read_text())["trial_data"]:
            ray_start[json.loads(info)["trial_id"]] = json.loads(runtime).get("start_time")
    pids = {t.get("pid") for t in trials}
    gaps = [t["started"] - ray_start[t["trial_id"]] for t in trials if ray_start.get(t.get("trial_id"))]
    between = [t["started"] - max(o["finished"] for o in before) for before, wave in zip(waves, waves[1:]) for t in wave]
    def show(values: list[float]) -> str:
        return (f"mean {sum(values) / len(values):.1f} s, min {min(values):.1f}, max {max(values):.1f} "
                f"({', '.join(f'{v:.1f}' for v in values)})") if values else "none"
    print(f"   {len(trials)} trials ran in {len(pids)} worker processes")
    print(f"   Ray's trial start to train(): {show(gaps)}")
    print(f"   a wave's end to the next wave's train(): {show(between)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec", nargs="?")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="spec overrides, key=value")
    parser.add_argument("--folder", default=None, help="account an existing sweep folder instead of running one")
    parser.add_argument("--wall", type=float, default=None, help="that sweep's wall time in seconds")
    parser.add_argument("--slots", type=int, default=None, help="trials at once (default: the spec's search.concurrent)")
    args = parser.parse_args()
    import yaml

    from babysweep.spec.load import load_spec

    if args.folder:
        folder = Path(args.folder)
        spec = load_spec(folder / "spec.yaml", check_paths=False) if (folder / "spec.yaml").is_file() else None
        slots = args.slots or (spec.search.concurrent if spec else 2)
        if args.wall is None:
            raise SystemExit("--wall: give the sweep's wall time in seconds for an existing folder.")
        return account(folder, args.wall, slots)
    from babysweep.sweep.driver import run_sweep

    overrides = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.sets)}
    spec = load_spec(args.spec, overrides)
    start = time.perf_counter()
    result = run_sweep(spec, live=False, fresh=True)
    account(result.folder, time.perf_counter() - start, args.slots or spec.search.concurrent)


if __name__ == "__main__":
    main()
