"""The study's word-statistics floor: a Kneser-Ney trigram (eval/ngram_floor.py) fitted once on the training
tokens of the student finalists' config and scored as the models are, stored beside the report.

    path = write_floor(uri, "students", paths.report_dir("study"))   # reports/study/ngram_floor.json

The config is the first student finalist's config.json (its data, seq_len, tokenizer and eval.rule; every
finalist of a sweep shares them), else the best tuning trial's. The file holds the metrics and what they were
computed from; report/build.py shows them as the row "n-gram floor", outside the verdict's family. A second
call with the same config finds the file and computes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from babysweep.core.atomic import write_text_atomic
from babysweep.core.errors import UserError
from babysweep.core.records import FINAL, fully_trained
from babysweep.report.floor import FLOOR_FILE

FLOOR_VERSION = 1  # of the floor's method (lm/ngram.py, eval/ngram_floor.py): a new one recomputes


def floor_config(tracking_uri: str, sweep: str) -> tuple[str, dict]:
    """(the run id it came from, its config.json) for the floor: a finalist of `sweep`, else its best trial."""
    from babysweep.studies.finalists import best_run_config
    from babysweep.tracking.runs import run_json, sweep_objective, sweep_runs

    try:
        finals = [r for r in sweep_runs(tracking_uri, sweep + FINAL) if fully_trained(r)]
    except UserError:
        finals = []
    for run in finals:
        config = run_json(tracking_uri, run["run_id"], "config.json")
        if config is not None:
            return run["run_id"], config
    best = best_run_config(tracking_uri, sweep, sweep_runs(tracking_uri, sweep), *sweep_objective(tracking_uri, sweep))
    if best is None:
        raise UserError(f"sweep '{sweep}' has no fully trained run with a config.json: the n-gram floor has no config to follow")
    return best[0]["run_id"], best[1]


def floor_inputs(config: dict) -> dict:
    """What the floor depends on: the config's data section and BLiMP rule (not the model or training)."""
    return {"data": config.get("data", {}), "eval": {k: config.get("eval", {}).get(k) for k in ("blimp", "rule")},
            "version": FLOOR_VERSION}


def write_floor(tracking_uri: str, sweep: str, out_dir: Path, say=print) -> Path:
    """Compute (unless stored with the same inputs) and store the floor; returns the file's path."""
    from babysweep.core.config import RunConfig
    from babysweep.eval.ngram_floor import ngram_floor  # torch and the tokenizer: only when a floor is computed

    run_id, config = floor_config(tracking_uri, sweep)
    inputs = floor_inputs(config)
    path = Path(out_dir) / FLOOR_FILE
    try:
        stored = json.loads(path.read_text())
        if stored.get("inputs") == inputs:
            say(f"  n-gram floor: stored in {path}, skipped")
            return path
    except (OSError, ValueError):
        pass
    metrics = ngram_floor(RunConfig.of(config))
    floor = {"model": "interpolated Kneser-Ney trigram over the training tokens (lm/ngram.py)",
             "config_of": sweep, "run_id": run_id, "inputs": inputs, "metrics": metrics}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(floor, indent=1, allow_nan=False) + "\n", "the n-gram floor")
    return path


__all__ = ["floor_config", "floor_inputs", "write_floor"]
