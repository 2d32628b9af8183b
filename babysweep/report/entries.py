"""A report's contenders, gathered from run records: one entry per teacher architecture, student or
baseline sweep, with each seed's dev loss, BLiMP and per-pair decisions.

    data = collect(uri, ["teachers", "students", "baselines"])     # from MLflow, through babysweep.tracking.tracker
    entries, warnings = entries_from_runs(runs_by_sweep, objectives)  # the same from run dicts alone

Each entry holds the runs of `<sweep>.final` (the best config retrained with N seeds) when that
sweep exists, else the best config of the tuning sweep itself (n=1 usually; a warning says its
value was selected as the best of many, so it is optimistic). Which runs count and which config is
best are core/records.py's rules.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from babysweep.core import metrics as M
from babysweep.core import records as R
from babysweep.core.errors import UserError
from babysweep.core.records import FINAL, best_config, fully_trained, run_arch
from babysweep.tracking.runs import run_json, sweep_objective, sweep_runs

ROLES = ("teacher", "student", "baseline")
MAX_LOOKS = 1000  # batches of finalists a report reads (finalists.batch_name: <sweep>.final, then .b2, .b3, ...)


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
    selection: float | None = None  # the run's value of the metric its sweep was tuned on
    epochs: float | None = None  # budget: epochs trained (history's last), tokens trained on, training FLOPs
    tokens: float | None = None
    flops: float | None = None
    scoring: str | None = None  # blimp.method() of its blimp.json: BLiMP numbers of different scoring never meet
    field_pairs: dict[str, int] | None = None  # pairs per BLiMP field, from blimp.json's field_of (the chance test's n)
    tags: dict = field(default_factory=dict)  # the run's tags (finalists.seeds: auto records its look there)
    words: float | None = None  # words in its training lines (data/train_words; None for runs made before it was logged)
    suite: dict[str, float] = field(default_factory=dict)  # BabyLM suite metrics: {"suite/macro": ..., "suite/ewok": ...}
    words_seen: float | None = None  # words trained on (train/words_seen; else epochs x words)
    teacher_words: float | None = None  # its teachers' own training words (train/teacher_words_seen), distilled runs only

    def value(self, col: str) -> float | None:
        """The seed's value of a report column: "dev_loss", "blimp" (a fraction) or a suite metric (points)."""
        if col == "dev_loss":
            return self.dev_loss
        if col == "blimp":
            return self.blimp
        return self.suite.get(col)


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
    completed: int = 0  # of its tuning trials (its architecture's, for teachers): fully trained,
    stopped: int = 0  # and stopped early by the scheduler
    selected_by: tuple[str, str] = (M.EVAL_LOSS, "min")  # (metric, mode) its sweep was tuned on
    config: dict = field(default_factory=dict)  # the chosen config: what its search chose (its runs' params, seed aside)
    blimp_pairs: int | None = None  # pairs scored, when no per-pair decisions tell it (an entry rebuilt from report.json)
    compared: dict = field(default_factory=dict, repr=False, compare=False)  # compare() results, reused

    def selection(self) -> float | None:
        """Mean of the seeds' tuning metric, signed so that lower is better (None without values)."""
        vals = [s.selection for s in self.seeds if s.selection is not None]
        if not vals:
            return None
        return float(np.mean(vals)) * (1.0 if self.selected_by[1] == "min" else -1.0)

    def values(self, col: str) -> list[float]:
        """Per-seed values of a column ("dev_loss", "blimp", or a suite metric such as "suite/macro"); BLiMP as a fraction."""
        vals = [s.value(col) for s in self.seeds]
        return [v for v in vals if v is not None]

    def by_seed(self, col: str) -> dict[str, float] | None:
        """{seed label: value} of a column, or None when a seed lacks its label or two runs share one
        (then the entry cannot be matched by seed and comparisons with it are Welch's)."""
        labelled = [(s.seed, v) for s in self.seeds if (v := s.value(col)) is not None]
        labels = [k for k, _ in labelled]
        if not labelled or None in labels or len(set(labels)) != len(labels):
            return None
        return dict(labelled)

    def budget(self, name: str) -> float | None:
        """Mean over seeds of a budget figure ("epochs", "tokens", "flops"), or None when no seed has it."""
        vals = [getattr(s, name) for s in self.seeds if getattr(s, name) is not None]
        return float(np.mean(vals)) if vals else None

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
    metrics: tuple[str, ...] = M.DEFAULT_VERDICT_METRICS  # what the verdict compares (report.metrics)


def column(metric: str) -> str:
    """The report's column of a verdict metric: blimp/overall -> "blimp", eval/loss -> "dev_loss", suite/* itself."""
    return {M.BLIMP_OVERALL: "blimp", M.EVAL_LOSS: "dev_loss"}.get(metric, metric)


def suite_columns(entries: list[Entry]) -> list[str]:
    """The suite metrics any entry's seeds have, in the leaderboard's column order, suite/macro last."""
    have = {k for e in entries for s in e.seeds for k in s.suite}
    order = [M.suite_metric(c) for c in M.SUITE_COLUMNS] + [M.SUITE_MACRO]
    return [k for k in order if k in have] + sorted(have - set(order))


def read_blimp(run: dict) -> dict | None:
    """The run's blimp.json on disk (beside its model folder, <out>/final -> <out>/blimp.json), or
    None: the fallback for runs whose MLflow artifact lacks the per-pair decisions."""
    model_dir = run.get("tags", {}).get(R.MODEL_DIR)
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


def number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _seed(run: dict, load_blimp: Callable[[dict], dict | None], metric: str) -> Seed:
    m = run.get("metrics", {})
    fields = {k[len(M.BLIMP_FIELD_PREFIX):]: v for k, v in m.items() if k.startswith(M.BLIMP_FIELD_PREFIX)}
    data = load_blimp(run) if number(m.get(M.BLIMP_OVERALL)) is not None else None
    signature, bits = _decisions(data)
    history = sorted((int(step), float(v)) for step, v in run.get("histories", {}).get(M.EVAL_LOSS, []))
    return Seed(run["run_id"], run.get("tags", {}).get(R.SEED, run.get("params", {}).get(R.SEED_KEY)),
                number(m.get(M.EVAL_LOSS)), number(m.get(M.BLIMP_OVERALL)), fields, history, bits, signature,
                number(m.get(metric)), float(history[-1][0]) if history else None,  # eval/loss is logged every epoch, at step = epoch
                number(m.get(M.TOKENS_SEEN)), number(m.get(M.FLOPS)), _blimp_method(data),
                _field_pairs(data, signature), dict(run.get("tags", {})), number(m.get(M.TRAIN_WORDS)),
                {k: v for k, v in m.items() if k.startswith(M.SUITE_PREFIX) and number(v) is not None},
                _words_seen(m, history), number(m.get(M.TEACHER_WORDS)))


def _words_seen(m: dict, history: list) -> float | None:
    """train/words_seen, or (runs logged before it) epochs trained x the corpus's words."""
    seen = number(m.get(M.WORDS_SEEN))
    if seen is not None:
        return seen
    words = number(m.get(M.TRAIN_WORDS))
    return float(history[-1][0]) * words if words is not None and history else None


def _field_pairs(data: dict | None, signature: tuple | None) -> dict[str, int] | None:
    """Pairs per field: the signature's paradigm sizes summed by blimp.json's field_of."""
    field_of = (data or {}).get("field_of")
    if signature is None or not isinstance(field_of, dict):
        return None
    out: dict[str, int] = {}
    for paradigm, n in signature:
        if paradigm not in field_of:
            return None
        out[field_of[paradigm]] = out.get(field_of[paradigm], 0) + n
    return out


def _blimp_method(data: dict | None) -> str | None:
    from babysweep.eval.blimp import method  # lazily: blimp imports torch

    return method(data) if isinstance(data, dict) else None


def chosen_config(runs: list[dict]) -> dict:
    """The values its search chose, as recorded (MLflow params are text): the first run's params, without the
    seed and the teacher cache's own params (which are the runner's, not the config's)."""
    params = runs[0].get("params", {}) if runs else {}
    return {k: v for k, v in sorted(params.items()) if k != R.SEED_KEY and not k.startswith(M.CACHE_PARAMS)}


def entries_from_runs(runs_by_sweep: dict[str, list[dict]], objectives: dict[str, tuple[str, str]] | None = None,
                      load_blimp: Callable[[dict], dict | None] = read_blimp) -> tuple[list[Entry], list[str]]:
    """Group runs into report entries; returns (entries, warning lines). Pure but for reading blimp.json."""
    objectives = objectives or {}
    entries, warns = [], []
    for sweep, runs in runs_by_sweep.items():
        if sweep.endswith(FINAL):
            continue
        final = [r for r in runs_by_sweep.get(sweep + FINAL, []) if r.get("tags", {}).get(R.FINALIST_OF, sweep) == sweep]
        roles = Counter(r.get("tags", {}).get(R.ROLE, "teacher") for r in runs + final)
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
            chosen, source = [r for r in finals if fully_trained(r)], "final"
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
            seeds = [_seed(r, load_blimp, metric) for r in chosen]
            sizes = [number(r.get("metrics", {}).get(M.PARAMS)) for r in chosen]
            sizes = [s for s in sizes if s is not None]
            spent = [r for r in runs if r.get("status") in ("FINISHED", "FAILED")]  # not KILLED: resumable
            own = [r for r in spent if arch is None or run_arch(r) == arch]
            entry = Entry(name, sweep, role, arch or "+".join(archs), sizes[0] if sizes else None, len(spent),
                          None if arch is None else len(own), source, seeds,
                          sum(map(fully_trained, own)), sum(map(R.stopped_early, own)), (metric, mode),
                          chosen_config(chosen))
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
    from babysweep.eval.blimp import check_comparable  # a UserError when BLiMP rules or scorers differ

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
    return out + selection_warnings(entries)


def selection_warnings(entries: list[Entry]) -> list[str]:
    """What a reader must know about how the configs and the reference entries were chosen."""
    out = []
    by_metric: dict[str, list[str]] = {}
    for e in entries:
        by_metric.setdefault(e.selected_by[0], []).append(e.name)
    for metric, names in by_metric.items():
        if metric.startswith(("blimp", M.BLIMP_SUBSET_OVERALL)):
            out.append(f"{', '.join(names)} were tuned and chosen on {metric}: BLiMP was used for selection, so "
                       f"their BLiMP numbers are optimistic")
        elif metric in (M.EVAL_LOSS, M.EVAL_PPL):
            out.append(f"{', '.join(names)} were tuned and chosen on {metric}, the dev loss this report shows: "
                       f"their dev loss is optimistic (tune on {M.TUNE_LOSS} with data.tune_split)")
    if len(by_metric) > 1:
        out.append("Sweeps were tuned on different metrics (" + "; ".join(f"{m}: {', '.join(n)}" for m, n in by_metric.items())
                   + "): a reference is chosen among entries of one role by their own metric")
    return out


def collect(tracking_uri: str, sweeps: list[str], metrics=None) -> ReportData:
    """Runs of each sweep and of its `<sweep>.final` (when it exists), grouped into entries; `metrics`: what the
    verdict compares (report.metrics; default blimp/overall and eval/loss)."""
    if not sweeps:
        raise UserError("name at least one sweep to report on")
    try:
        metrics = M.check_verdict_metrics(metrics or M.DEFAULT_VERDICT_METRICS)
    except ValueError as exc:
        raise UserError(f"report.metrics: {exc}.") from None
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
            continue  # no finalists: entries fall back to the best tuning config
        for look in range(1, MAX_LOOKS):  # later looks of finalists.seeds: auto: <sweep>.final.b2, .b3, ...
            try:
                runs[sweep + FINAL] += sweep_runs(tracking_uri, f"{sweep}{FINAL}.b{look + 1}", histories=[M.EVAL_LOSS])
            except UserError:
                break
    entries, warns = entries_from_runs(runs, objectives, lambda run: run_json(tracking_uri, run["run_id"], "blimp.json") or read_blimp(run))
    missing = [m for m in metrics if not any(e.values(column(m)) for e in entries)]
    if missing:
        warns.append(f"report.metrics names {', '.join(missing)}, which no entry's runs logged (for the suite: "
                     f"set eval.suite in the specs); the verdict leaves {'it' if len(missing) == 1 else 'them'} out")
    return ReportData(list(sweeps), runs, objectives, entries, warns, metrics)
