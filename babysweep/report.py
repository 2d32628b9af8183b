"""Does a student distilled from tuned teachers beat them, and the non-distilled baseline?

Reads runs from MLflow only (through babysweep.tracking, never mlflow or ray directly), plus each
run's blimp.json for per-pair BLiMP decisions, and writes report.md, report.json and figures.

    path = write_report(uri, ["teachers", "students", "baselines"], Path("reports/r1"), "r1")
    data = collect(uri, ["teachers", "students", "baselines"])
    rows, line = build_table(data), verdict(data)
    rows_again = table_from_runs(data.runs, data.objectives)   # the same numbers from run dicts alone

Entries: one per architecture of a teacher sweep, one per student or baseline sweep. Each holds the
runs of `<sweep>.final` (the best config retrained with N seeds) when that sweep exists, else the
best config of the tuning sweep itself (n=1 usually; the report warns: its value was selected
as the best of many, so it is optimistic). Differences are to the best tuned teacher of each
column, with 95% bootstrap intervals over seeds and, for BLiMP, over pairs (babysweep.stats).
"""

from __future__ import annotations

import json
import math
import re
import warnings as pywarnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from babysweep import metrics as M
from babysweep.config import DEFAULT_ARCH
from babysweep.errors import UserError
from babysweep.report_plots import blimp_bars, factor_plots, learning_curves
from babysweep.stats import bootstrap_diff, excludes_zero, mean_std
from babysweep.tracking import run_json, sweep_parent, sweep_runs

FINAL = ".final"  # the finalists of sweep X live in sweep "X.final"
ROLES = ("teacher", "student", "baseline")
N_BOOT = 2000
LogRun = Callable[[str, dict, dict, Path], None]


@dataclass
class Seed:
    """One run of an entry: a seed of the finalist config (or the best tuning trial)."""

    run_id: str
    seed: str | None
    dev_loss: float | None
    blimp: float | None  # BLiMP overall, a fraction
    fields: dict[str, float]
    history: list[tuple[int, float]]  # (epoch, eval/loss)
    decisions: np.ndarray | None = None  # 0/1 per pair, paradigms sorted, pairs in file order
    signature: tuple | None = None  # ((paradigm, pairs), ...): which pairs `decisions` covers
    scoring: str | None = None  # blimp.method() of its blimp.json: BLiMP numbers of different scoring never meet


@dataclass
class Entry:
    name: str  # "teachers/llama", "students"
    sweep: str
    role: str
    arch: str
    params: float | None  # model size
    trials: int  # trials of its tuning sweep (finished, stopped early or failed)
    arch_trials: int | None  # of those, the ones that sampled this architecture (teachers only)
    source: str  # "final" or "best-trial"
    seeds: list[Seed]
    compared: dict = field(default_factory=dict, repr=False, compare=False)  # compare() results, reused

    def values(self, col: str) -> list[float]:
        """Per-seed values of a column; BLiMP as a fraction."""
        vals = [s.dev_loss if col == "dev_loss" else s.blimp for s in self.seeds]
        return [v for v in vals if v is not None]

    def pairs(self) -> tuple | None:
        """The common pair signature when every seed has decisions on the same pairs."""
        sigs = {s.signature for s in self.seeds}
        return next(iter(sigs)) if len(sigs) == 1 and None not in sigs else None


@dataclass
class ReportData:
    sweeps: list[str]
    runs: dict[str, list[dict]]  # sweep (and "<sweep>.final") -> run dicts from sweep_runs
    objectives: dict[str, tuple[str, str]]  # tuning sweep -> (metric, mode)
    entries: list[Entry]
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------- reading


def read_blimp(run: dict) -> dict | None:
    """The run's blimp.json on disk (beside its model folder, <out>/final -> <out>/blimp.json), or
    None: the fallback for runs whose MLflow artifact lacks the per-pair decisions."""
    model_dir = run.get("tags", {}).get("model_dir")
    path = Path(model_dir).parent / "blimp.json" if model_dir else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _decisions(blimp: dict | None) -> tuple[tuple | None, np.ndarray | None]:
    """(signature, 0/1 array) from blimp.json's {"decisions": {paradigm: "0110..."}}."""
    table = (blimp or {}).get("decisions")
    if not isinstance(table, dict) or not table:
        return None, None
    names = sorted(table)
    if not all(isinstance(table[p], str) and table[p] and set(table[p]) <= {"0", "1"} for p in names):
        return None, None
    signature = tuple((p, len(table[p])) for p in names)
    bits = np.frombuffer("".join(table[p] for p in names).encode(), dtype=np.uint8) - ord("0")
    return signature, bits.astype(np.float64)


def pair_weights(signature: tuple) -> np.ndarray:
    """BLiMP overall is the mean of paradigm accuracies: a pair weighs 1 / (paradigms * its paradigm's pairs)."""
    return np.concatenate([np.full(n, 1.0 / (len(signature) * n)) for _, n in signature])


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _seed(run: dict, load_blimp: Callable[[dict], dict | None]) -> Seed:
    m = run.get("metrics", {})
    fields = {k[len(M.BLIMP_FIELD_PREFIX):]: v for k, v in m.items() if k.startswith(M.BLIMP_FIELD_PREFIX)}
    data = load_blimp(run) if _number(m.get(M.BLIMP_OVERALL)) is not None else None
    signature, bits = _decisions(data)
    history = sorted((int(step), float(v)) for step, v in run.get("histories", {}).get(M.EVAL_LOSS, []))
    return Seed(run["run_id"], run.get("tags", {}).get("seed", run.get("params", {}).get("train.seed")),
                _number(m.get(M.EVAL_LOSS)), _number(m.get(M.BLIMP_OVERALL)), fields, history, bits, signature,
                _blimp_method(data))


def _blimp_method(data: dict | None) -> str | None:
    from babysweep.blimp import method  # lazily: blimp imports torch

    return method(data) if isinstance(data, dict) else None


def _complete(run: dict) -> bool:
    """Ran every epoch: finished and not stopped early by the scheduler."""
    return run.get("status") == "FINISHED" and run.get("tags", {}).get("stopped_early") != "true"


def run_arch(run: dict) -> str:
    return run.get("params", {}).get("model.arch", DEFAULT_ARCH)


def _config_key(run: dict) -> tuple:
    """Runs of one sampled config (repeats differ only in seed) share this key."""
    sampled = [k for k in run.get("tags", {}).get("sampled", "").split(",") if k and k != "train.seed"]
    if not sampled:
        return (run["run_id"],)
    return tuple((k, run["params"].get(k)) for k in sorted(sampled))


def sweep_objective(tracking_uri: str, sweep: str) -> tuple[str, str]:
    """(metric, mode) the sweep was tuned on, from its parent run's tags."""
    tags = sweep_parent(tracking_uri, sweep)["tags"]
    return tags.get("metric", M.EVAL_LOSS), tags.get("mode", "min")


def best_config(runs: list[dict], metric: str, mode: str) -> list[dict]:
    """The complete runs of the config with the best mean `metric` (all its repeats)."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        if _complete(run) and _number(run.get("metrics", {}).get(metric)) is not None:
            groups.setdefault(_config_key(run), []).append(run)
    if not groups:
        return []
    sign = 1.0 if mode == "min" else -1.0
    return min(groups.values(), key=lambda g: sign * float(np.mean([r["metrics"][metric] for r in g])))


def entries_from_runs(runs_by_sweep: dict[str, list[dict]], objectives: dict[str, tuple[str, str]] | None = None,
                      load_blimp: Callable[[dict], dict | None] = read_blimp) -> tuple[list[Entry], list[str]]:
    """Group runs into report entries; returns (entries, warning lines). Pure but for reading blimp.json."""
    objectives = objectives or {}
    entries, warns = [], []
    for sweep, runs in runs_by_sweep.items():
        if sweep.endswith(FINAL):
            continue
        final = [r for r in runs_by_sweep.get(sweep + FINAL, []) if r.get("tags", {}).get("finalist_of", sweep) == sweep]
        roles = Counter(r.get("tags", {}).get("role", "teacher") for r in runs + final)
        role = roles.most_common(1)[0][0] if roles else "teacher"
        metric, mode = objectives.get(sweep, (M.EVAL_LOSS, "min"))
        if role == "teacher":  # each architecture is its own contender
            groups = sorted({run_arch(r) for r in runs + final})
        else:
            groups = [None]
        for arch in groups:
            tuning = [r for r in runs if arch is None or run_arch(r) == arch]
            finals = [r for r in final if arch is None or run_arch(r) == arch]
            name = sweep if arch is None else f"{sweep}/{arch}"
            chosen, source = [r for r in finals if _complete(r)], "final"
            if finals and len(chosen) < len(finals):
                warns.append(f"{name}: {len(finals) - len(chosen)} of {len(finals)} finalist runs in {sweep}{FINAL} "
                             f"did not finish; they are left out")
            if not chosen:
                chosen, source = best_config(tuning, metric, mode), "best-trial"
                if not chosen:
                    warns.append(f"{name}: no finished trial with a value of {metric}; left out of the report")
                    continue
                warns.append(f"{name}: no finished {sweep}{FINAL} runs; using the best tuning config "
                             f"(n={len(chosen)}), whose value was selected as the best of many and is optimistic")
            archs = sorted({run_arch(r) for r in chosen})
            seeds = [_seed(r, load_blimp) for r in chosen]
            sizes = [_number(r.get("metrics", {}).get(M.PARAMS)) for r in chosen]
            sizes = [s for s in sizes if s is not None]
            spent = [r for r in runs if r.get("status") in ("FINISHED", "FAILED")]  # not KILLED: resumable
            entry = Entry(name, sweep, role, arch or "+".join(archs), sizes[0] if sizes else None, len(spent),
                          None if arch is None else sum(run_arch(r) == arch for r in spent), source, seeds)
            for s in seeds:  # decisions from another evaluation (a subset, an older file) would mislead
                if s.decisions is not None and abs(float(s.decisions @ pair_weights(s.signature)) - s.blimp) > 1e-6:
                    warns.append(f"{name}: the decisions in run {s.run_id}'s blimp.json do not give its "
                                 f"{M.BLIMP_OVERALL} ({s.blimp:.4f}); they are ignored")
                    s.decisions = s.signature = None
            lacking = sum(s.blimp is not None and s.decisions is None for s in seeds)
            if lacking:
                warns.append(f"{name}: {lacking} of {len(seeds)} runs have no usable per-pair decisions in blimp.json; "
                             f"BLiMP intervals with this entry resample seeds only")
            entries.append(entry)
    entries.sort(key=lambda e: ROLES.index(e.role) if e.role in ROLES else len(ROLES))  # stable within a role
    from babysweep.blimp import check_comparable  # a UserError when BLiMP rules or scorers differ

    check_comparable({f"{e.name} (run {s.run_id})": s.scoring for e in entries for s in e.seeds if s.scoring})
    warns += _consistency_warnings(entries)
    return entries, warns


def _consistency_warnings(entries: list[Entry]) -> list[str]:
    out = []
    budgets = {e.sweep: e.trials for e in entries}
    if len(set(budgets.values())) > 1:
        listed = ", ".join(f"{k} {v}" for k, v in budgets.items())
        out.append(f"Tuning budgets differ ({listed} trials): the contenders were not tuned equally hard")
    split = [f"{e.name} {e.arch_trials}" for e in entries if e.arch_trials is not None]
    if len(split) > 1:
        out.append(f"The teachers' architectures shared their sweep's trials ({', '.join(split)}), so each was "
                   f"tuned with fewer trials than its sweep's total")
    sigs = {e.pairs() for e in entries if e.pairs() is not None}
    if len(sigs) > 1:
        out.append("Entries were scored on different BLiMP pair sets; BLiMP intervals between them resample seeds only")
    counts = {e.name: len(e.seeds) for e in entries}
    if len(set(counts.values())) > 1:
        out.append("Seeds per entry differ (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")")
    return out


def collect(tracking_uri: str, sweeps: list[str]) -> ReportData:
    """Runs of each sweep and of its `<sweep>.final` (when it exists), grouped into entries."""
    if not sweeps:
        raise UserError("name at least one sweep to report on")
    runs, objectives = {}, {}
    for sweep in sweeps:
        if sweep.endswith(FINAL):
            raise UserError(f"name the tuning sweep '{sweep[:-len(FINAL)]}', not '{sweep}': "
                            f"its finalists are found automatically")
        objectives[sweep] = sweep_objective(tracking_uri, sweep)
        runs[sweep] = sweep_runs(tracking_uri, sweep, histories=[M.EVAL_LOSS])
        try:
            runs[sweep + FINAL] = sweep_runs(tracking_uri, sweep + FINAL, histories=[M.EVAL_LOSS])
        except UserError:
            pass  # no finalists: entries fall back to the best tuning config
    entries, warns = entries_from_runs(runs, objectives, lambda run: run_json(tracking_uri, run["run_id"], "blimp.json") or read_blimp(run))
    return ReportData(list(sweeps), runs, objectives, entries, warns)


# ------------------------------------------------------------------------------------ numbers


def compare(a: Entry, b: Entry, col: str, n: int = N_BOOT, seed: int = 0) -> dict:
    """a - b on a column ("dev_loss", or "blimp" in points), 95% interval, and what was resampled."""
    key = (b.name, col, n, seed)
    if key not in a.compared:  # the table and the verdict ask for the same comparisons
        a.compared[key] = _compare(a, b, col, n, seed)
    return dict(a.compared[key])


def _compare(a: Entry, b: Entry, col: str, n: int, seed: int) -> dict:
    """basis names what the interval resampled: "seeds" (both sides have 2+ runs), "one side's seeds"
    (the other has one run, so its seed-to-seed variation is missing), "+pairs", or "none"."""
    va, vb = a.values(col), b.values(col)
    if not va or not vb:
        return {"diff": None, "low": None, "high": None, "basis": "none"}
    multi = (len(va) > 1) + (len(vb) > 1)
    parts = [("", "one side's seeds", "seeds")[multi]]
    if col == "blimp" and a.pairs() is not None and a.pairs() == b.pairs():
        diff, low, high = bootstrap_diff(va, vb, [s.decisions for s in a.seeds], [s.decisions for s in b.seeds],
                                         n=n, seed=seed, weights=pair_weights(a.pairs()), paired=True)
        parts.append("pairs")
    else:
        diff, low, high = bootstrap_diff(va, vb, n=n, seed=seed)
    basis = "+".join(p for p in parts if p) or "none"
    scale = 100.0 if col == "blimp" else 1.0
    return {"diff": diff * scale, "low": low * scale, "high": high * scale, "basis": basis}


def _best(entries: list[Entry], col: str) -> Entry | None:
    """Lowest mean dev loss, or highest mean BLiMP."""
    scored = [(float(np.mean(e.values(col))), e) for e in entries if e.values(col)]
    if not scored:
        return None
    sign = 1.0 if col == "dev_loss" else -1.0
    return min(scored, key=lambda t: sign * t[0])[1]


def _rows(entries: list[Entry]) -> list[dict]:
    teachers = [e for e in entries if e.role == "teacher"]
    refs = {col: _best(teachers, col) for col in ("dev_loss", "blimp")}
    rows = []
    for e in entries:
        row: dict[str, Any] = {"entry": e.name, "sweep": e.sweep, "role": e.role, "arch": e.arch, "params": e.params,
                               "trials": e.trials, "arch_trials": e.arch_trials, "source": e.source, "n": len(e.seeds)}
        for col in ("dev_loss", "blimp"):
            vals = [v * (100.0 if col == "blimp" else 1.0) for v in e.values(col)]
            row[f"{col}_mean"], row[f"{col}_std"] = mean_std(vals) if vals else (None, None)
            ref = refs[col]
            row[f"{col}_ref"] = ref.name if ref else None
            if ref is None or ref is e:
                cmp = {"diff": None, "low": None, "high": None, "basis": "none" if ref is None else "ref"}
            else:
                cmp = compare(e, ref, col)
            row.update({f"{col}_{k}": v for k, v in cmp.items()})
        rows.append(row)
    return rows


def build_table(data: ReportData) -> list[dict]:
    """One row per entry: mean ± std of dev loss and BLiMP (points), and the difference to the best
    tuned teacher of each column with its 95% interval."""
    return _rows(data.entries)


def table_from_runs(runs_by_sweep: dict[str, list[dict]], objectives: dict[str, tuple[str, str]] | None = None,
                    load_blimp: Callable[[dict], dict | None] = read_blimp) -> list[dict]:
    """build_table from run dicts alone (as sweep_runs returns them, `<sweep>.final` keys included)."""
    return _rows(entries_from_runs(runs_by_sweep, objectives, load_blimp)[0])


# ------------------------------------------------------------------------------------ verdict


def _num(x: float, digits: int, sign: str = "") -> str:
    """Fixed-point text; a value that rounds to zero prints as 0 (never "-0.00")."""
    return f"{0.0 if round(x, digits) == 0 else x:{sign}.{digits}f}"


def _fmt(col: str, x: float) -> str:
    return _num(x, 2 if col == "blimp" else 3, "+")


def full_interval(basis: str) -> bool:
    """The interval covers the seed-to-seed variation of both sides."""
    return basis in ("seeds", "seeds+pairs")


def _ci(col: str, c: dict) -> str:
    if c["basis"] == "none":
        return "no interval (one run each)"
    side = "excludes zero" if excludes_zero(c["low"], c["high"]) else "includes zero"
    digits = 2 if col == "blimp" else 3
    partial = "" if full_interval(c["basis"]) else " (a side with one run: its seed variation is missing)"
    return f"95% CI [{_num(c['low'], digits)}, {_num(c['high'], digits)}]{partial}, {side}"


def _metric_clause(col: str, subject: str, student: Entry, teachers: list[Entry], baselines: list[Entry]) -> tuple[str, str]:
    """(clause, outcome) for one column; outcome: clear (beats all, intervals exclude zero), weak, no."""
    label, unit = ("BLiMP", " points") if col == "blimp" else ("dev loss", "")
    better = (lambda d: d > 0) if col == "blimp" else (lambda d: d < 0)
    mean, n = float(np.mean(student.values(col))), len(teachers)
    beaten = sum(better(mean - float(np.mean(t.values(col)))) for t in teachers)
    everyone = "the tuned teacher" if n == 1 else ("both tuned teachers" if n == 2 else f"all {n} tuned teachers")
    best_t, best_b = _best(teachers, col), _best(baselines, col)
    wins, losses = [], []
    if beaten == n:
        wins.append(everyone)
    elif beaten == 0:
        losses.append("the tuned teacher" if n == 1 else "the tuned teachers")
    else:
        wins.append(f"{beaten} of {n} tuned teachers")
        losses.append(f"the best one ({best_t.name})")
    ct = compare(student, best_t, col)
    details = [f"{_fmt(col, ct['diff'])}{unit} vs the best teacher {best_t.name}, {_ci(col, ct)}"]
    cb = None
    if best_b is not None:
        cb = compare(student, best_b, col)
        (wins if better(cb["diff"]) else losses).append("the baseline")
        details.append(f"{_fmt(col, cb['diff'])}{unit} vs the baseline {best_b.name}, {_ci(col, cb)}")
    if wins and losses:
        said = f"beats {' and '.join(wins)} but not {' or '.join(losses)}"
    elif wins:
        said = f"beats {' and '.join(wins)}"
    else:
        said = f"does not beat {' or '.join(losses)}"
    clause = f"on {label} {subject} {said} ({'; '.join(details)})"
    if losses:
        return clause, "no"
    sure = all(full_interval(c["basis"]) and excludes_zero(c["low"], c["high"]) for c in (ct, cb) if c is not None)
    return clause, "clear" if sure else "weak"


def verdict(data: ReportData) -> str:
    """One line, derived from the numbers: does the best distilled student beat every tuned teacher
    and the baseline, on BLiMP and on dev loss, by how much, and do the intervals exclude zero?"""
    return _verdict(data.entries)


def _verdict(entries: list[Entry]) -> str:
    by_role = {r: [e for e in entries if e.role == r] for r in ROLES}
    if not by_role["student"] or not by_role["teacher"]:
        missing = "distilled student (role student)" if not by_role["student"] else "tuned teacher (role teacher)"
        return f"No verdict: the report has no {missing} entry."
    clauses, outcomes, previous = [], [], None
    for col in ("blimp", "dev_loss"):
        student = _best(by_role["student"], col)
        teachers = [t for t in by_role["teacher"] if t.values(col)]
        if student is None or not teachers:
            clauses.append(f"on {'BLiMP' if col == 'blimp' else 'dev loss'} there are no values to compare")
            outcomes.append("none")
            continue
        subject = "it" if student is previous else f"the distilled student ({student.name})"
        previous = student
        clause, outcome = _metric_clause(col, subject, student, teachers, by_role["baseline"])
        clauses.append(clause)
        outcomes.append(outcome)
    if outcomes == ["clear", "clear"]:
        head = "Supported"
    elif "none" in outcomes and "no" not in outcomes and "clear" in outcomes:
        head = "Supported on one metric only (the other has no values)"
    elif all(o in ("no", "none") for o in outcomes):
        head = "Not supported" if "no" in outcomes else "No verdict"
    elif "no" not in outcomes:
        head = "Suggestive but not conclusive"
    else:
        head = "Mixed"
    baseline = "" if by_role["baseline"] else " (no baseline sweep in this report)"
    return f"{head}{baseline}: " + "; ".join(clauses) + "."


# -------------------------------------------------------------------------------- importances


def _distribution(values: list[str]):
    """FloatDistribution over the observed range when every value is a number, else categorical."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    numbers = [_number(_parse(v)) for v in values]
    if all(x is not None for x in numbers):
        low, high = min(numbers), max(numbers)
        return FloatDistribution(low, high, log=low > 0 and high / low >= 10)  # wide positive ranges: log priors
    return CategoricalDistribution(sorted(set(values)))


def _parse(text: str):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def importances(runs: list[dict], metric: str, mode: str) -> tuple[dict[str, float] | None, str]:
    """PED-ANOVA importances (Optuna's default evaluator) of the sampled params for the sweep's
    metric; (None, why) when they cannot be computed. Trials stopped early count with their last value."""
    import optuna  # lazy: only reports with importances need it

    rows = []
    for run in runs:
        value = _number(run.get("metrics", {}).get(metric))
        sampled = [k for k in run.get("tags", {}).get("sampled", "").split(",") if k in run.get("params", {})]
        if run.get("status") == "FINISHED" and value is not None and sampled:
            rows.append(({k: run["params"][k] for k in sampled}, value))
    if len(rows) < 3:
        return None, f"too few finished trials with sampled params and a value of {metric} ({len(rows)}) for PED-ANOVA"
    names = sorted({k for params, _ in rows for k in params})
    varied = {k for k in names if len({p.get(k) for p, _ in rows}) > 1}  # a constant explains nothing
    rows = [({k: v for k, v in params.items() if k in varied}, value) for params, value in rows]
    names = sorted(varied)
    if not names:
        return None, f"no sampled parameter took more than one value in {len(rows)} trials"
    dists = {k: _distribution([p[k] for p, _ in rows if k in p]) for k in names}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line per sweep
    try:
        study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
        for params, value in rows:
            values = {k: v if isinstance(dists[k], optuna.distributions.CategoricalDistribution) else float(v)
                      for k, v in params.items()}
            trial = optuna.trial.create_trial(params=values, distributions={k: dists[k] for k in params}, value=value)
            study.add_trial(trial)
        with pywarnings.catch_warnings(record=True) as caught:
            pywarnings.simplefilter("always")
            result = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        return None, f"PED-ANOVA failed on {len(rows)} trials: {exc}"
    finally:
        optuna.logging.set_verbosity(verbosity)
    notes = sorted({str(w.message).split(". ")[0] for w in caught})
    if not any(v > 0 for v in result.values()):
        return None, f"PED-ANOVA found no difference between the best trials and the rest ({len(rows)} trials)" + \
            (f": {'; '.join(notes)}" if notes else "")
    note = f"PED-ANOVA on {len(rows)} trials, {metric} ({mode})" + (f"; Optuna noted: {'; '.join(notes)}" if notes else "")
    if len(rows) < 10:  # PED-ANOVA contrasts the top 10% of trials with the rest
        note += f"; with {len(rows)} trials its top 10% is a single trial, so these values are weak evidence"
    return {k: float(v) for k, v in result.items()}, note


# ------------------------------------------------------------------------------------- output


def _fields(entries: list[Entry]) -> dict[str, dict[str, list[float]]]:
    """{entry: {field: [mean, std]}} in points."""
    out = {}
    for e in entries:
        names = sorted({f for s in e.seeds for f in s.fields})
        out[e.name] = {f: list(mean_std([100.0 * s.fields[f] for s in e.seeds if f in s.fields])) for f in names}
    return out


def _figures(data: ReportData, rows: list[dict], out_dir: Path) -> list[str]:
    paths = []
    for sweep in data.sweeps:
        role = next((e.role for e in data.entries if e.sweep == sweep), None)
        if role in ("student", "baseline"):
            slug = re.sub(r"[^\w.-]", "_", sweep)
            paths.append(factor_plots(sweep, data.runs[sweep], data.objectives[sweep][0], out_dir / f"factors_{slug}.png"))
    paths.append(learning_curves(data.entries, out_dir / "learning_curves.png"))
    paths.append(blimp_bars(rows, out_dir / "blimp_overall.png"))
    return [p.name for p in paths if p is not None]


def write_report(tracking_uri: str, sweeps: list[str], out_dir: Path, name: str, log_run: LogRun | None = None) -> Path:
    """Write out_dir/report.md, report.json and PNG figures; returns report.md's path.

    log_run(name, params, metrics, out_dir), when given, records the report (e.g. as an MLflow run)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = collect(tracking_uri, sweeps)
    rows = build_table(data)
    report = {"name": name, "sweeps": list(sweeps), "verdict": verdict(data), "warnings": list(data.warnings),
              "rows": rows, "fields": _fields(data.entries), "importances": {}, "figures": _figures(data, rows, out_dir),
              "blimp_scoring": next((s.scoring for e in data.entries for s in e.seeds if s.scoring), None)}
    for sweep in data.sweeps:
        values, note = importances(data.runs[sweep], *data.objectives[sweep])
        report["importances"][sweep] = {"params": values, "note": note}
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    path = out_dir / "report.md"
    path.write_text(render_markdown(report))
    if log_run is not None:
        metrics = {f"{r['entry']}.{k}": float(v) for r in rows for k, v in r.items()  # log_report makes keys MLflow-safe
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("trials", "arch_trials", "n")}
        log_run(name, {"report.sweeps": ",".join(sweeps), "report.verdict": report["verdict"]}, metrics, out_dir)
    return path


def _pm(mean, std, digits: int, n: int = 2) -> str:
    """mean ± std; one run has no spread to show (a std of 0 would claim one)."""
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" if n < 2 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _diff_cell(row: dict, col: str, digits: int) -> str:
    if row[f"{col}_basis"] == "ref":
        return "best teacher"
    if row[f"{col}_diff"] is None:
        return "–"
    cell = _num(row[f"{col}_diff"], digits, "+")
    if row[f"{col}_basis"] == "none":
        return cell + " (one run each: no interval)"
    star = " *" if excludes_zero(row[f"{col}_low"], row[f"{col}_high"]) else ""
    star += "" if full_interval(row[f"{col}_basis"]) else " †"
    return cell + f" [{_num(row[f'{col}_low'], digits, '+')}, {_num(row[f'{col}_high'], digits, '+')}]{star}"


def render_markdown(report: dict) -> str:
    """report.md from report.json's content: every number shown is one stored there."""
    lines = [f"# {report['name']}: does distillation beat tuned teachers?", "",
             f"Sweeps: {', '.join(report['sweeps'])}.", "", f"**Verdict.** {report['verdict']}", ""]
    lines += [f"BLiMP: {report['blimp_scoring']} (babysweep eval --help).", ""] if report.get("blimp_scoring") else []
    lines += [f"> **Warning:** {w}" for w in report["warnings"]] + ([""] if report["warnings"] else [])
    lines += ["## Comparison", "",
              "| entry | role | arch | params | tuning trials | source | n | dev loss | Δ dev loss vs best teacher [95% CI] "
              "| BLiMP (%) | Δ BLiMP vs best teacher [95% CI] |", "|" + "---|" * 11]
    for r in report["rows"]:
        size = f"{r['params'] / 1e6:.2f}M" if r["params"] else "–"
        trials = f"{r['trials']}" + (f" ({r['arch_trials']} {r['arch']})" if r["arch_trials"] is not None else "")
        lines.append(f"| {r['entry']} | {r['role']} | {r['arch']} | {size} | {trials} | {r['source']} | {r['n']} "
                     f"| {_pm(r['dev_loss_mean'], r['dev_loss_std'], 3, r['n'])} | {_diff_cell(r, 'dev_loss', 3)} "
                     f"| {_pm(r['blimp_mean'], r['blimp_std'], 2, r['n'])} | {_diff_cell(r, 'blimp', 2)} |")
    lines += ["", "Mean ± std over seeds (std with ddof=1). Δ = entry − best tuned teacher of that column (lowest "
              "dev loss, highest BLiMP); * = the interval excludes zero; † = one side has a single run, so the "
              "interval lacks its seed-to-seed variation and is too narrow. Intervals: 2000-replicate percentile bootstrap "
              "over seeds and, for BLiMP when per-pair decisions exist, over pairs shared by both sides (paired). "
              "With few seeds they are narrower than the truth.", ""]
    fields = sorted({f for per in report["fields"].values() for f in per})
    seeds = {r["entry"]: r["n"] for r in report["rows"]}
    if fields:
        lines += ["## BLiMP per field (%)", "", "| entry | " + " | ".join(fields) + " |", "|" + "---|" * (len(fields) + 1)]
        for entry, per in report["fields"].items():
            lines.append(f"| {entry} | " + " | ".join(_pm(*per[f], 1, seeds.get(entry, 2)) if f in per else "–" for f in fields) + " |")
        lines.append("")
    lines += ["## Hyperparameter importance (PED-ANOVA)", ""]
    for sweep, imp in report["importances"].items():
        lines += [f"**{sweep}**: {imp['note']}.", ""]
        if imp["params"]:
            lines += ["| param | importance |", "|---|---|"]
            lines += [f"| {k} | {v:.3f} |" for k, v in sorted(imp["params"].items(), key=lambda kv: -kv[1])] + [""]
    if report["figures"]:
        lines += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in report["figures"]] + [""]
    return "\n".join(lines)


def _short(value):
    """Teacher folders by their trial (<models>/<trial>/final -> <trial>): paths would swamp the table."""
    if isinstance(value, list):
        return "[" + ", ".join(Path(v).parent.name if Path(str(v)).name == "final" else str(v) for v in value) + "]"
    return value


def render_ablation(name: str, base_of: str, rows: list[dict], changes: dict[str, dict]) -> str:
    """ablation.md: each variant's change, mean ± std, and its difference to the base with a 95% interval."""
    lines = [f"# {name}: one-factor-at-a-time ablations of the best config of {base_of}", "",
             "| variant | change | n | dev loss | Δ dev loss vs base [95% CI] | BLiMP (%) | Δ BLiMP vs base [95% CI] |",
             "|" + "---|" * 7]
    for r in rows:
        change = ", ".join(f"{k}={_short(v)}" for k, v in changes.get(r["variant"], {}).items()) or "–"
        cells = []
        for col, digits in (("dev_loss", 3), ("blimp", 2)):
            cells.append(_pm(r[f"{col}_mean"], r[f"{col}_std"], digits, r["n"]))
            if r[f"{col}_diff"] is None:
                cells.append("base" if r["variant"] == "base" else "–")
            else:
                star = " *" if r[f"{col}_excludes_zero"] else ""
                cells.append(f"{_num(r[f'{col}_diff'], digits, '+')} [{_num(r[f'{col}_low'], digits, '+')}, "
                             f"{_num(r[f'{col}_high'], digits, '+')}]{star}")
        lines.append(f"| {r['variant']} | {change} | {r['n']} | " + " | ".join(cells) + " |")
    lines += ["", "Mean ± std over seeds; every variant ran with the same seeds as the base. Δ = variant − base; "
              "95% percentile bootstrap over seeds (2000 replicates); * = the interval excludes zero. "
              "With few seeds the intervals are narrower than the truth.", ""]
    return "\n".join(lines)


__all__ = ["Seed", "Entry", "ReportData", "read_blimp", "run_arch", "sweep_objective", "best_config", "pair_weights", "entries_from_runs", "collect", "compare",
           "full_interval", "build_table", "table_from_runs", "verdict", "importances", "write_report", "render_markdown", "render_ablation"]
