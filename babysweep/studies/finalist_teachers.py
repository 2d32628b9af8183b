"""Teachers of a student's finalists, one set per seed: student finalist k distils from the teachers of
its tuning trials retrained with the student's seed k, so the student's interval includes what another
teacher seed would have done (with shared seed-0 teachers it would leave that variance out).

    rows = seeded_teachers("students", final_spec, address=None, storage=None, tracking_uri=uri, live=False)
    # -> rows of `<students>.final/teachers.json`: {"repeat", "seed", "run_id", "model_dir", "of"} per teacher
    #    and repeat; or a SweepResult when the retraining sweep was interrupted

Each teacher of the tuning trials (the rows of `<students>/teachers.json`) is a config of the teacher
sweep: its sampled values, from its config.json. Where the teacher finalists (`<teachers>.final`) retrained
exactly that config with exactly the student's seed, that finalist run is the student's teacher (the
usual case: from_sweep picks each architecture's best config, which is what the teacher finalists
retrain, and both count seeds from tuning seed + SEED_OFFSET). Any other teacher is retrained with every
student seed in the points sweep `<students>.final.teachers` (tagged teachers_for), which the study runs
as part of the students' finalists stage. `plan` is the pure part and is tested without training.
(Belongs in studies/.)
"""

from __future__ import annotations

import json
from pathlib import Path

from babysweep.core import paths
from babysweep.core.config import RunConfig, flatten
from babysweep.core.errors import UserError
from babysweep.core.records import FINAL, MODEL_DIR, POINT, SEED, fully_trained, run_arch, sampled_keys

TEACHERS_SUFFIX = ".teachers"  # `<student>.final.teachers`: teachers retrained with the student finalists' seeds
TEACHERS_FOR = "teachers_for"  # tag on its runs: the student finalists' sweep
_KEEP_OUT = ("eval.blimp_final",)  # a finalist point leaves it to the finalist override


def _same(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def plan(teachers: list[dict], points: dict[str, dict], finalist_runs: list[dict], seeds: list[int]
         ) -> tuple[dict[tuple[int, int], dict], dict[str, dict]]:
    """(found, retrain): found[(teacher index, seed)] = the teacher finalist run to reuse; retrain = {label:
    point} of the teachers some seed of which no finalist covers, to be retrained with every seed.

    teachers: [{"run_id", "arch", "point"}] in the student's order; points: the teacher finalists'
    {label: point}; finalist_runs: their MLflow run dicts (tags point, seed, model_dir)."""
    found: dict[tuple[int, int], dict] = {}
    retrain: dict[str, dict] = {}
    for i, teacher in enumerate(teachers):
        point = {k: v for k, v in teacher["point"].items() if k not in _KEEP_OUT}
        labels = [label for label, p in points.items() if _same({k: v for k, v in p.items() if k not in _KEEP_OUT}, point)]
        for seed in seeds:
            runs = [r for r in finalist_runs if r.get("tags", {}).get(POINT) in labels and fully_trained(r)
                    and r.get("tags", {}).get(SEED) == str(seed) and r.get("tags", {}).get(MODEL_DIR)]
            if runs:
                found[(i, seed)] = runs[0]
        if any((i, s) not in found for s in seeds):
            retrain[f"t{i}-{teacher['arch']}"] = point
            for s in seeds:
                found.pop((i, s), None)  # one teacher, one source: all its seeds retrained together
    return found, retrain


def rows_for(teachers: list[dict], seeds: list[int], found: dict[tuple[int, int], dict]) -> list[dict]:
    """teachers.json rows of the student finalists: each repeat's teachers, in the tuning trials' order."""
    rows = []
    for k, seed in enumerate(seeds):
        for i, teacher in enumerate(teachers):
            run = found.get((i, seed))
            if run is None:
                raise UserError(f"no trained teacher {i} ({teacher['arch']}) with seed {seed} for the student finalists; "
                                f"run the finalists again to retrain it")
            rows.append({"repeat": k, "seed": seed, "run_id": run["run_id"], "model_dir": run["tags"][MODEL_DIR],
                         "of": teacher["run_id"]})
    return rows


def _tuning_teachers(tracking_uri: str, source_sweep: str, saved: Path) -> list[dict]:
    """The teachers of the tuning trials as {"run_id", "arch", "point"}: their sampled values from config.json."""
    from babysweep.tracking.runs import run_json, sweep_runs

    by_id = {r["run_id"]: r for r in sweep_runs(tracking_uri, source_sweep)}
    out = []
    for row in json.loads(saved.read_text()):
        run = by_id.get(row["run_id"])
        config = run_json(tracking_uri, row["run_id"], "config.json") if run else None
        if run is None or config is None:
            raise UserError(f"{saved}: teacher run {row['run_id']} is not a run of sweep '{source_sweep}' with a "
                            f"config.json, so it cannot be retrained with the finalists' seeds")
        flat = flatten(config)
        out.append({"run_id": row["run_id"], "arch": run_arch(run), "point": {k: flat[k] for k in sampled_keys(run) if k in flat}})
    return out


def seeded_teachers(student: str, final_spec, *, address: str | None, storage: str | Path | None, tracking_uri: str,
                    live: bool):
    """Write `<student>.final/teachers.json` with each repeat's own teachers (retraining them when needed);
    returns the retraining sweep's SweepResult when it was interrupted, else None."""
    from babysweep.studies.finalists import tuning_spec
    from babysweep.spec.load import load_spec
    from babysweep.sweep.driver import fixed_value, run_sweep
    from babysweep.tracking.runs import sweep_runs

    target = paths.sweep_folder(final_spec.name, storage) / paths.TEACHERS_FILE
    saved = paths.sweep_folder(student, storage) / paths.TEACHERS_FILE
    source = final_spec.teachers_from_sweep.sweep
    teachers = _tuning_teachers(tracking_uri, source, saved)
    base = int(fixed_value(final_spec, "train.seed", RunConfig.model_fields["train"].default.seed))
    seeds = [base + k for k in range(final_spec.search.repeats)]
    try:
        points = tuning_spec(source + FINAL, storage).search.points or {}
        finalist_runs = sweep_runs(tracking_uri, source + FINAL)
    except UserError:  # no teacher finalists (yet): every teacher is retrained
        points, finalist_runs = {}, []
    found, retrain = plan(teachers, points, finalist_runs, seeds)
    if retrain:
        spec = tuning_spec(source, storage)
        overrides = {"name": final_spec.name + TEACHERS_SUFFIX, "role": spec.role, "search.algorithm": "points",
                     "search.points": retrain, "search.repeats": len(seeds), "search.scheduler": "none",
                     "search.stratify": None, "train.seed": base,
                     "tracking.tags": {**spec.tracking.tags, TEACHERS_FOR: final_spec.name}}
        retrain_spec = load_spec(spec.path, {**spec.overrides, **overrides}, check_paths=False)
        result = run_sweep(retrain_spec, address=address, storage=storage, tracking_uri=tracking_uri, live=live)
        if result.interrupted:
            return result
        runs = sweep_runs(tracking_uri, retrain_spec.name)
        for i, teacher in enumerate(teachers):
            label = f"t{i}-{teacher['arch']}"
            if label not in retrain:
                continue
            for seed in seeds:
                mine = [r for r in runs if r["tags"].get(POINT) == label and r["tags"].get(SEED) == str(seed)
                        and fully_trained(r) and r["tags"].get(MODEL_DIR)]
                if mine:
                    found[(i, seed)] = mine[0]
    rows = rows_for(teachers, seeds, found)
    target.parent.mkdir(parents=True, exist_ok=True)
    from babysweep.core.atomic import write_text_atomic

    write_text_atomic(target, json.dumps(rows, indent=1), "the student finalists' teachers")
    return None


__all__ = ["TEACHERS_SUFFIX", "TEACHERS_FOR", "plan", "rows_for", "seeded_teachers"]
