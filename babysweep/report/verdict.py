"""The report's numbers: each entry against the reference teacher (and the baseline), and the verdict line.

    rows = build_table(data)          # mean ± std per entry, differences with 95% intervals
    line = verdict(data)              # does the best student beat every tuned teacher and the baseline?
                                      # (and, when tokens seen differ by over 5%, a sentence saying so)

Intervals are Welch t intervals over seeds; for BLiMP a separate pairs-only bootstrap gives the
evaluation noise (babysweep.report.stats).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from babysweep.report.entries import ROLES, Entry, ReportData, entries_from_runs, pair_weights, read_blimp
from babysweep.report.stats import excludes_zero, mean_std, pair_noise_interval, welch_interval

N_BOOT = 2000
BUDGET_TOLERANCE = 0.05  # entries' mean tokens seen may differ by this share of the smallest before the verdict says so


def compare(a: Entry, b: Entry, col: str, n: int = N_BOOT, seed: int = 0) -> dict:
    """a - b on a column ("dev_loss", or "blimp" in points), 95% interval, and what was resampled."""
    key = (b.name, col, n, seed)
    if key not in a.compared:  # the table and the verdict ask for the same comparisons
        a.compared[key] = _compare(a, b, col, n, seed)
    return dict(a.compared[key])


def _compare(a: Entry, b: Entry, col: str, n: int, seed: int) -> dict:
    """Welch's t interval over seeds (the verdict's); basis: "seeds" (both sides have 2+ runs), "one
    side's seeds" (the other has one run, so its seed-to-seed variation is missing) or "none". For
    BLiMP on shared pairs, noise_low/noise_high: the pairs-only bootstrap (evaluation noise)."""
    va, vb = a.values(col), b.values(col)
    out = {"diff": None, "low": None, "high": None, "basis": "none", "noise_low": None, "noise_high": None}
    if not va or not vb:
        return out
    scale = 100.0 if col == "blimp" else 1.0
    diff, low, high = welch_interval(va, vb)
    out.update(diff=diff * scale, basis=("none", "one side's seeds", "seeds")[(len(va) > 1) + (len(vb) > 1)])
    if low is not None:
        out.update(low=low * scale, high=high * scale)
    if col == "blimp" and a.pairs() is not None and a.pairs() == b.pairs():
        _, nl, nh = pair_noise_interval([s.decisions for s in a.seeds], [s.decisions for s in b.seeds],
                                        weights=pair_weights(a.pairs()), n=n, seed=seed)
        out.update(noise_low=nl * scale, noise_high=nh * scale)
    return out


def chosen(entries: list[Entry]) -> Entry | None:
    """The entry its sweeps' tuning metric prefers (the reference teacher, the best student or baseline):
    chosen on the metric the sweeps were tuned on, never on the dev loss or BLiMP numbers it is compared on
    (unless a sweep was tuned on those, which the report's warnings then say)."""
    scored = [(e.selection(), e) for e in entries if e.selection() is not None]
    if not scored:
        return None
    return min(scored, key=lambda t: t[0])[1]


def _rows(entries: list[Entry]) -> list[dict]:
    teacher = chosen([e for e in entries if e.role == "teacher"])
    refs = {col: teacher if teacher is not None and teacher.values(col) else None for col in ("dev_loss", "blimp")}
    rows = []
    for e in entries:
        row: dict[str, Any] = {"entry": e.name, "sweep": e.sweep, "role": e.role, "arch": e.arch, "params": e.params,
                               "trials": e.trials, "arch_trials": e.arch_trials, "source": e.source, "n": len(e.seeds),
                               "epochs": e.budget("epochs"), "tokens_seen": e.budget("tokens"), "flops": e.budget("flops"),
                               "trials_completed": e.completed, "trials_stopped": e.stopped}
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




def si(x: float) -> str:
    """3 significant digits with an SI prefix: 512, 4.1M, 2.35T."""
    x = float(f"{x:.3g}")  # rounded first: 999,999 is 1M, not 1e+03k
    for prefix, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{prefix}"
    return f"{x:.3g}"


def budget_clause(entries: list[Entry]) -> str | None:
    """A sentence when the entries' mean tokens seen differ by more than BUDGET_TOLERANCE, else None."""
    seen = {e.name: e.budget("tokens") for e in entries}
    known = {k: v for k, v in seen.items() if v}
    if len(known) < 2:
        return None
    low, high = min(known, key=known.get), max(known, key=known.get)
    gap = known[high] / known[low] - 1
    if round(gap, 9) <= BUDGET_TOLERANCE:  # exactly 5% stays equal, whatever the float rounding
        return None
    listed = ", ".join(f"{k} {si(v)}" for k, v in known.items())
    missing = [k for k, v in seen.items() if not v]
    unknown = f"; not recorded for {', '.join(missing)}" if missing else ""
    return (f"Budgets differ: {high} trained on {gap:.1%} more tokens than {low} (tokens seen: {listed}{unknown}), "
            f"so part of any difference may come from training longer, not from the method.")


def num(x: float, digits: int, sign: str = "") -> str:
    """Fixed-point text; a value that rounds to zero prints as 0 (never "-0.00")."""
    return f"{0.0 if round(x, digits) == 0 else x:{sign}.{digits}f}"


def _fmt(col: str, x: float) -> str:
    return num(x, 2 if col == "blimp" else 3, "+")


def full_interval(basis: str) -> bool:
    """The interval covers the seed-to-seed variation of both sides."""
    return basis == "seeds"


def _ci(col: str, c: dict) -> str:
    if c["basis"] == "none":
        return "no interval (one run each)"
    side = "excludes zero" if excludes_zero(c["low"], c["high"]) else "includes zero"
    digits = 2 if col == "blimp" else 3
    partial = "" if full_interval(c["basis"]) else " (a side with one run: its seed variation is missing)"
    return f"95% CI [{num(c['low'], digits)}, {num(c['high'], digits)}]{partial}, {side}"


def _metric_clause(col: str, subject: str, student: Entry, teachers: list[Entry], reference: Entry,
                   baselines: list[Entry]) -> tuple[str, str]:
    """(clause, outcome) for one column; outcome: clear (beats all, intervals exclude zero), weak, no."""
    label, unit = ("BLiMP", " points") if col == "blimp" else ("dev loss", "")
    better = (lambda d: d > 0) if col == "blimp" else (lambda d: d < 0)
    mean, n = float(np.mean(student.values(col))), len(teachers)
    beaten = sum(better(mean - float(np.mean(t.values(col)))) for t in teachers)
    everyone = "the tuned teacher" if n == 1 else ("both tuned teachers" if n == 2 else f"all {n} tuned teachers")
    best_t, best_b = reference, chosen(baselines)
    best_b = best_b if best_b is not None and best_b.values(col) else None
    wins, losses = [], []
    if beaten == n:
        wins.append(everyone)
    elif beaten == 0:
        losses.append("the tuned teacher" if n == 1 else "the tuned teachers")
    else:
        wins.append(f"{beaten} of {n} tuned teachers")
        losses.append(f"the reference one ({best_t.name})")
    ct = compare(student, best_t, col)
    details = [f"{_fmt(col, ct['diff'])}{unit} vs the reference teacher {best_t.name} (chosen on "
               f"{best_t.selected_by[0]}), {_ci(col, ct)}"]
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
    and the baseline, on BLiMP and on dev loss, by how much, and do the intervals exclude zero? Ends
    with budget_clause's sentence when the entries trained on unequal numbers of tokens."""
    return _verdict(data.entries)


def _verdict(entries: list[Entry]) -> str:
    by_role = {r: [e for e in entries if e.role == r] for r in ROLES}
    if not by_role["student"] or not by_role["teacher"]:
        missing = "distilled student (role student)" if not by_role["student"] else "tuned teacher (role teacher)"
        return f"No verdict: the report has no {missing} entry."
    clauses, outcomes, previous = [], [], None
    # One student and one reference teacher, each chosen on its sweep's tuning metric, for both columns.
    student, reference = chosen(by_role["student"]), chosen(by_role["teacher"])
    for col in ("blimp", "dev_loss"):
        teachers = [t for t in by_role["teacher"] if t.values(col)]
        if student is None or reference is None or not student.values(col) or not reference.values(col):
            clauses.append(f"on {'BLiMP' if col == 'blimp' else 'dev loss'} there are no values to compare")
            outcomes.append("none")
            continue
        subject = "it" if student is previous else f"the distilled student ({student.name})"
        previous = student
        clause, outcome = _metric_clause(col, subject, student, teachers, reference, by_role["baseline"])
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
    budget = budget_clause(entries)
    return f"{head}{baseline}: " + "; ".join(clauses) + "." + (f" {budget}" if budget else "")
