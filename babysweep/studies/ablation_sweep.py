"""Run the one-factor-at-a-time ablations of a base config as a sweep, and tabulate them.

    result, path = run_ablation("students", seeds=3)                 # base: the best trial of a sweep
    result, path = run_ablation("configs/my_student.yaml", seeds=3)  # base: a spec with fixed values

The variants (babysweep.studies.ablation.ablation_variants) become the named points of a sweep
`<base>.ablation` (each trained with the same `seeds` seeds, no early stopping), so an
interrupted ablation resumes like any sweep and its runs are in MLflow. The table of differences
to the base is written to reports/<name>/ablation.md and .json and logged as a report run.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from babysweep.core import paths
from babysweep.studies.ablation import ablation_table, ablation_variants
from babysweep.core.config import SECTIONS, RunConfig, flatten
from babysweep.core.errors import UserError
from babysweep.studies.finalists import DEFAULT_SEEDS, SEED_OFFSET, best_run_config, tuning_spec
from babysweep.core.records import ABLATION, ABLATION_OF, FINAL, POINT, fully_trained
from babysweep.report.build import render_ablation
from babysweep.spec.sweep_spec import Spec
from babysweep.spec.load import load_spec, spec_from_text
from babysweep.tracking.runs import sweep_objective, sweep_runs, teacher_runs



def base_from_sweep(tracking_uri: str, sweep: str, storage=None) -> tuple[dict, Spec]:
    """The full config of the best fully trained trial of a sweep (its finalists' when they exist)."""
    spec = tuning_spec(sweep, storage)
    metric, mode = sweep_objective(tracking_uri, sweep)
    try:
        finals = sweep_runs(tracking_uri, sweep + FINAL)
    except UserError:
        finals = []
    best = (best_run_config(tracking_uri, sweep + FINAL, finals, metric, mode)
            or best_run_config(tracking_uri, sweep, sweep_runs(tracking_uri, sweep), metric, mode))
    if best is None:
        raise UserError(f"sweep '{sweep}' has no fully trained trial with a value of {metric} to ablate")
    return best[1], spec


def base_from_file(tracking_uri: str, path: Path) -> tuple[dict, Spec]:
    """The config of a spec whose values are all fixed (teachers from a sweep are resolved)."""
    spec = load_spec(path)
    if not spec.is_fixed():
        names = ", ".join(sorted(spec.distributions()))
        raise UserError(f"{path}: an ablation base needs fixed values, but {names} {'is' if ',' not in names else 'are'} sampled")
    teachers = None
    if spec.teachers_from_sweep is not None:
        teachers = [r.model_dir for r in teacher_runs(tracking_uri, spec.teachers_from_sweep)]
    return spec.materialize({}, teachers=teachers), spec


def ablation_spec(base: dict, source: Spec, name: str, seeds: int) -> Spec:
    """A points sweep: the base config as fixed values, one point per variant (only what it changes)."""
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, not {seeds}")
    typed = RunConfig.of(json.loads(json.dumps(base)))
    typed.train.seed += SEED_OFFSET
    typed.eval.blimp_final = "full"  # the table's BLiMP: every pair, as for finalists
    base = typed.model_dump()
    flat_base = flatten(base)
    points = {}
    for variant, config in ablation_variants(base).items():
        points[variant] = {k: v for k, v in flatten(config).items() if flat_base.get(k, object()) != v}
    search = source.search
    doc = {"name": name, "role": source.role, **{k: base[k] for k in SECTIONS if k in base},
           "search": {"algorithm": "points", "points": points, "repeats": seeds, "scheduler": "none",
                      "metric": search.metric, "mode": search.mode, "concurrent": search.concurrent},
           "resources": source.resources.model_dump(),
           "tracking": {"models": "none", "tags": {ABLATION_OF: source.name}}}
    text = f"# Ablations of the best config of '{source.name}', written by babysweep ablate.\n" + yaml.safe_dump(doc, sort_keys=False)
    return spec_from_text(text, f"{name} (ablation spec)")


def ablation_results(tracking_uri: str, name: str) -> dict[str, list[dict]]:
    """{variant: fully trained runs}, from MLflow alone."""
    results: dict[str, list[dict]] = {}
    for run in sweep_runs(tracking_uri, name):
        if fully_trained(run) and run["tags"].get(POINT):
            results.setdefault(run["tags"][POINT], []).append(run)
    return results


def run_ablation(source: str, seeds: int = DEFAULT_SEEDS, *, name: str | None = None, address: str | None = None,
                 storage=None, tracking_uri: str | None = None, live: bool = True) -> tuple[object, Path | None]:
    """Run (or resume) the ablation sweep of a sweep's best config or of a config file; returns
    (SweepResult, path of ablation.md or None when interrupted)."""
    from babysweep.sweep.driver import run_sweep, trained_like
    from babysweep.tracking.runs import log_report

    uri = paths.tracking_uri(tracking_uri)
    as_file = Path(source)
    folder = None  # the sweep ablated, whose chunks the variants train on
    if as_file.suffix in (".yaml", ".yml") or as_file.is_file():
        base, spec = base_from_file(uri, as_file)
    else:
        base, spec = base_from_sweep(uri, source, storage)
        folder = paths.sweep_folder(source, storage)
    name = name or paths.safe_name(spec.name) + ABLATION
    ablation = ablation_spec(base, spec, name, seeds)
    with trained_like(folder):
        result = run_sweep(ablation, address=address, storage=storage, tracking_uri=uri, live=live)
    if result.interrupted:
        return result, None
    rows = ablation_table(ablation_results(uri, name))
    out_dir = paths.report_dir(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ablation.json").write_text(json.dumps({"name": name, "base_of": spec.name, "rows": rows}, indent=1) + "\n")
    path = out_dir / "ablation.md"
    path.write_text(render_ablation(name, spec.name, rows, ablation.search.points))
    metrics = {f"{r['variant']}.{k}": v for r in rows for k, v in r.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    log_report(uri, name, {"ablation.of": spec.name, "ablation.seeds": seeds}, metrics, out_dir)
    return result, path


__all__ = ["base_from_sweep", "base_from_file", "ablation_spec", "ablation_results", "run_ablation"]
