"""CLI start-up: wall time of `babysweep --help`, `validate` (a spec and a study file) and `status`.

    python bench/cli_startup.py [--project DIR] [--repeats 5]

Each command runs as a fresh process, as a user types it; the figure is the median of --repeats
runs. The reference, measured in the same run, is the bare interpreter (`python -c pass`) and
`python -c "import torch"` (what `status` paid before it stopped importing the training stack).
Target: under 1.5 s for each command. `status` needs a sweep: without --project the script runs
a one-trial, one-epoch sweep in a temporary project first (about a minute, not timed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 1.5
REPO = Path(__file__).resolve().parents[1]
TINY = """name: startup
data: {seq_len: 32, builtin_words: 20000, tokenizer: {vocab_size: 500}}
model: {layers: 1, hidden: 32, heads: 2}
train: {epochs: 1, batch_size: 32, lr: 3.0e-3, warmup_steps: 5}
eval: {dev_batches: 2, blimp: none}
search: {algorithm: random, samples: 1, scheduler: none, concurrent: 1}
resources: {cpu: 1}
"""


def timed(argv: list[str], env: dict, cwd: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", type=Path, help="a project folder that holds at least one sweep")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    project = args.project or Path(tempfile.mkdtemp(prefix="bench-cli-"))
    env = {**os.environ, "BABYSWEEP_PROJECT": str(project.resolve())}
    cli = [sys.executable, "-m", "babysweep.cli"]
    if args.project is None:
        (project / "startup.yaml").write_text(TINY)
        print("running a one-trial sweep for `status` (not timed)...", flush=True)
        subprocess.run([*cli, "run", "startup.yaml"], env=env, cwd=project, stdout=subprocess.DEVNULL, check=True)

    references = {"python -c pass": [sys.executable, "-c", "pass"],
                  "python -c 'import torch'": [sys.executable, "-c", "import torch"]}
    commands = {"babysweep --help": [*cli, "--help"],
                "babysweep validate search_spaces/teachers.yaml": [*cli, "validate", str(REPO / "search_spaces/teachers.yaml")],
                "babysweep validate search_spaces/study.yaml": [*cli, "validate", str(REPO / "search_spaces/study.yaml")],
                "babysweep status": [*cli, "status"]}
    bare = None
    print(f"median of {args.repeats} fresh processes each; target under {TARGET_S} s")
    for label, argv in {**references, **commands}.items():
        seconds = timed(argv, env, project, args.repeats)
        bare = bare or seconds
        verdict = "" if label in references else ("  ok" if seconds < TARGET_S else "  OVER TARGET")
        print(f"{label:50s} {seconds:6.2f} s  {seconds / bare:5.1f}x bare python{verdict}")


if __name__ == "__main__":
    main()
