"""The report's numbers: each entry against the reference teacher (and the baseline), and the verdict line.

    rows = build_table(data)          # mean ± std per entry, differences with 95% intervals
    line = verdict(data)              # Supported / Contradicted / Inconclusive: the student vs the reference
                                      # teacher and the baseline, Holm-corrected, with power figures
                                      # (and, when tokens seen differ by over 5%, a sentence saying so)

Intervals are t intervals over seeds, paired over the seeds both sides ran (else Welch's); the verdict
decides each comparison of its family (the student vs the reference teacher and vs the baseline, on
each metric) as better, worse or cannot tell with Holm's correction (report/decide.py); for BLiMP a
separate pairs-only bootstrap gives the evaluation noise (report/stats.py).
"""

from __future__ import annotations

import dataclasses

from typing import Any, Callable

import numpy as np

from babysweep.core import metrics as M
from babysweep.report.entries import ROLES, Entry, ReportData, column, entries_from_runs, pair_weights, read_blimp, suite_columns
from babysweep.report.decide import (ALPHA, SEQUENTIAL_TAG, SeedTest, above_chance, holm, outcome, seed_test, sequential_look,
                              spending_schedule)
from babysweep.report.stats import mean_std, pair_noise_interval

N_BOOT = 2000
BUDGET_TOLERANCE = 0.05  # entries' mean tokens seen may differ by this share of the smallest before the verdict says so


def compare(a: Entry, b: Entry, col: str, n: int = N_BOOT, seed: int = 0) -> dict:
    """a - b on a column ("dev_loss", or "blimp" in points), 95% interval, test, power, and what was resampled."""
    key = (b.name, col, n, seed)
    if key not in a.compared:  # the table and the verdict ask for the same comparisons
        a.compared[key] = _compare(a, b, col, n, seed)
    return dict(a.compared[key])


def seed_test_of(a: Entry, b: Entry, col: str) -> SeedTest:
    """decide.seed_test on the entries' seeds: paired when both have the same seed labels, else Welch's."""
    pa, pb = a.by_seed(col), b.by_seed(col)
    if pa is not None and pb is not None and set(pa) == set(pb):
        return seed_test(pa, pb)
    return seed_test(a.values(col), b.values(col))


def _compare(a: Entry, b: Entry, col: str, n: int, seed: int) -> dict:
    """The verdict's t test over seeds: paired over the seeds both entries ran (finalists of every role
    run the same seeds), else Welch's. basis: "seeds" (both sides have 2+ runs), "one side's seeds" (the
    other has one run, so its seed-to-seed variation is missing) or "none"; method: "paired" or "welch";
    p: the unadjusted two-sided p-value (None without a full interval: such a comparison decides nothing);
    mdd: the smallest difference it detects at 80% power; seeds_needed: seeds per arm the observed
    difference would need for that power. For BLiMP on shared pairs, noise_low/noise_high: the pairs-only
    bootstrap (evaluation noise)."""
    va, vb = a.values(col), b.values(col)
    out = {"diff": None, "low": None, "high": None, "basis": "none", "noise_low": None, "noise_high": None,
           "method": None, "n_pairs": None, "p": None, "mdd": None, "seeds_needed": None}
    if not va or not vb:
        return out
    scale = 100.0 if col == "blimp" else 1.0
    t = seed_test_of(a, b, col)
    out.update(diff=t.diff * scale, basis=("none", "one side's seeds", "seeds")[(len(va) > 1) + (len(vb) > 1)],
               method=t.method if t.method in ("paired", "welch") else None)
    if t.low is not None:
        out.update(low=t.low * scale, high=t.high * scale)
    if out["method"] is not None:
        mdd = t.detectable()
        out.update(p=t.p, mdd=None if mdd is None else mdd * scale, seeds_needed=t.seeds_needed(),
                   n_pairs=t.n_a if t.method == "paired" else None)
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
    cols = ("dev_loss", "blimp", *suite_columns(entries))
    refs = {col: teacher if teacher is not None and teacher.values(col) else None for col in cols}
    rows = []
    for e in entries:
        row: dict[str, Any] = {"entry": e.name, "sweep": e.sweep, "role": e.role, "arch": e.arch, "params": e.params,
                               "trials": e.trials, "arch_trials": e.arch_trials, "source": e.source, "n": len(e.seeds),
                               "epochs": e.budget("epochs"), "tokens_seen": e.budget("tokens"), "flops": e.budget("flops"),
                               "trials_completed": e.completed, "trials_stopped": e.stopped, "config": dict(e.config),
                               "seeds": [{"seed": s.seed, "dev_loss": s.dev_loss, "blimp": s.blimp,
                                          **({"suite": dict(s.suite)} if s.suite else {})} for s in e.seeds],
                               "chance": chance(e), "words_seen": e.budget("words_seen"),
                               "teacher_words": e.budget("teacher_words")}
        for col in cols:
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
    return num(x, digits(col), "+")


def full_interval(basis: str) -> bool:
    """The interval covers the seed-to-seed variation of both sides."""
    return basis == "seeds"


def _ci(col: str, c: dict) -> str:
    if c["basis"] == "none":
        return "no interval (one run each)"
    partial = "" if full_interval(c["basis"]) else " (a side with one run: its seed variation is missing, so it decides nothing)"
    return f"95% CI [{num(c['low'], digits(col))}, {num(c['high'], digits(col))}]{partial}"


# ------------------------------------------------------------------------------------ BLiMP vs chance


def chance(e: Entry) -> dict[str, dict] | None:
    """{"overall" and each field: {"accuracy" (%), "pairs", "p"}}: one-sided binomial tests against 50% of
    the seed-averaged count of pairs right, over the pairs scored (pairs pooled, as the binomial needs);
    None when the entry's runs carry no per-pair decisions (the pairs scored are then unknown)."""
    seeds = [s for s in e.seeds if s.decisions is not None]
    if (not seeds or e.pairs() is None) and e.blimp_pairs and e.values("blimp"):
        # Rebuilt from report.json: overall accuracy x pairs (the pooled count when paradigms are equally large)
        right = float(np.mean(e.values("blimp"))) * e.blimp_pairs
        return {"overall": {"accuracy": 100.0 * right / e.blimp_pairs, "pairs": e.blimp_pairs,
                            "p": above_chance(right, e.blimp_pairs)}}
    if not seeds or e.pairs() is None:
        return None
    pairs = int(seeds[0].decisions.size)
    right = float(np.mean([s.decisions.sum() for s in seeds]))
    out = {"overall": {"accuracy": 100.0 * right / pairs, "pairs": pairs, "p": above_chance(right, pairs)}}
    per = seeds[0].field_pairs or {}
    for name, n in sorted(per.items()):
        accs = [s.fields.get(name) for s in seeds]
        if n and None not in accs:
            acc = float(np.mean(accs))
            out[name] = {"accuracy": 100.0 * acc, "pairs": n, "p": above_chance(acc * n, n)}
    return out


def not_above_chance(e: Entry, alpha: float = ALPHA) -> dict | None:
    """The entry's overall chance test when BLiMP overall is not above 50% at level alpha, else None."""
    c = chance(e)
    return c["overall"] if c is not None and c["overall"]["p"] > alpha else None


# ------------------------------------------------------------------------------------ the verdict

METRIC = {"blimp": ("BLiMP", " points", True), "dev_loss": ("dev loss", "", False)}  # label, unit, higher is better


def metric_info(col: str) -> tuple[str, str, bool]:
    """(label, unit, higher is better) of a column: METRIC's, or a BabyLM suite metric's (points, higher better)."""
    if col in METRIC:
        return METRIC[col]
    return f"suite {col.removeprefix(M.SUITE_PREFIX)}", " points", True


def digits(col: str) -> int:
    """Decimals shown: 3 for the dev loss, 2 for scores in points."""
    return 3 if col == "dev_loss" else 2


def sequential_design(entries: list[Entry]) -> tuple[int, int, int] | None:
    """(first, batch, cap) when the finalists' seeds came in looks of finalists.seeds: auto (their runs' tag)."""
    found = {s.tags[SEQUENTIAL_TAG] for e in entries for s in e.seeds if SEQUENTIAL_TAG in s.tags}
    if len(found) != 1:
        return None
    try:
        first, batch, cap = (int(x) for x in found.pop().split(","))
    except ValueError:
        return None
    return first, batch, cap


def first_seeds(e: Entry, n: int) -> Entry:
    """The entry on its first n seeds, in seed order (the seeds a look of the sequential design had)."""
    def order(s):
        return (0, int(s.seed), "") if s.seed is not None and str(s.seed).lstrip("-").isdigit() else (1, 0, str(s.seed))
    return dataclasses.replace(e, seeds=sorted(e.seeds, key=order)[:n], compared={})


def replay(student: Entry, family: list[dict], design: tuple[int, int, int]) -> tuple[float, str]:
    """Decide the family as the sequential rule did, look by look on the seeds each look had (Holm at each
    look's spent alpha over the comparisons still open); fills p_adj and outcome; returns (level, note).
    A family item's own "student" (one of several student arms) stands in for `student` where it has one."""
    have = min(len(e.seeds) for e in [student] + [f.get("student", student) for f in family] + [f["other"] for f in family])
    decided: dict[int, str] = {}
    adjusted: dict[int, float | None] = {}
    applied, n_used = ALPHA, 0
    for n, level in spending_schedule(*design):
        if n > have:  # a look the finalists never reached
            break
        tests = {i: seed_test_of(first_seeds(f.get("student", student), n), first_seeds(f["other"], n), f["col"])
                 for i, f in enumerate(family)}
        tests = {i: t if t.method in ("paired", "welch") else dataclasses.replace(t, p=None) for i, t in tests.items()}
        now: dict = {}
        decided = sequential_look(tests, decided, level, {i: metric_info(f["col"])[2] for i, f in enumerate(family)}, now)
        adjusted.update(now)
        applied, n_used = level, n
        if all(v != "cannot tell" for v in decided.values()):
            break
    for i, f in enumerate(family):
        f["p_adj"], f["outcome"] = adjusted.get(i), decided.get(i, "cannot tell")
    first, batch, cap = design
    return applied, (f"sequential: finalists.seeds auto added seeds in batches of {batch} from {first} up to {cap}; "
                   f"alpha spent O'Brien-Fleming-like over the looks; this verdict replays them up to {n_used} seeds, "
                   f"where each comparison was decided or the look's level, {applied:.4g}, applied")


def flops_clause(entries: list[Entry]) -> str | None:
    """Hook for the FLOPs ratio of the student to the baseline (issue 24, finding 5, done elsewhere): a sentence
    or None. The verdict appends what this returns after the budget sentence."""
    return None


def _name(kind: str, e: Entry) -> str:
    return f"the {kind} {e.name}"


def _and(items: list[str]) -> str:
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _detail(col: str, kind: str, other: Entry, c: dict, p_adj: float | None, said: str) -> str:
    label, unit, _ = metric_info(col)
    chosen_on = f" (chosen on {other.selected_by[0]})" if kind == "reference teacher" else ""
    parts = [f"{label} vs {_name(kind, other)}{chosen_on}: {said}, {_fmt(col, c['diff'])}{unit}, {_ci(col, c)}"]
    if c["method"] is not None:
        how = (f"paired t over {c['n_pairs']} shared seeds" if c["method"] == "paired" else "Welch's t over independent seeds")
        parts.append(f"{how}, Holm-adjusted p {p_adj:.3g}" if p_adj is not None else how)
        if c["mdd"] is not None:
            need = (f"{c['seeds_needed']} seeds per arm would detect {_fmt(col, c['diff'])}" if c["seeds_needed"]
                    else f"no number of seeds up to a million would detect {_fmt(col, c['diff'])}")
            parts.append(f"smallest detectable difference {num(c['mdd'], digits(col))}{unit} at 80% power; {need}")
    return "; ".join(parts)


def verdict(data: ReportData) -> str:
    """One paragraph, derived from the intervals: is the best distilled student better than the reference
    tuned teacher and the baseline, on BLiMP and dev loss? Each comparison is better, worse or cannot tell,
    decided by its t test over seeds with Holm's correction over the verdict's family; the head is
    Supported (all better), Contradicted (any worse) or Inconclusive, with its reason. Ends with
    budget_clause's sentence when the entries trained on unequal numbers of tokens."""
    return _verdict(data.entries, data.metrics)


def claim(e: Entry) -> str:
    """Which paper's claim a student arm tests, from its chosen config: Baby Llama's loss exactly (KD summed over
    the sequence, alpha 0.5, temperature 2) tests Baby Llama's; any other tuned recipe, BabyLlama-2's question."""
    c = e.config or {}
    def value(key: str) -> str:
        return str(c.get(key, "")).strip()
    try:
        papers = value("distill.kd_reduction") == "babyllama" and float(value("distill.alpha")) == 0.5 \
            and float(value("distill.temperature")) == 2.0
    except ValueError:
        papers = False
    if papers:
        return ("Baby Llama's claim: a student trained with its loss exactly (alpha 0.5, temperature 2, KD summed over "
                "the sequence; only the learning rate tuned) beats its teachers and the same student without distillation")
    return ("BabyLlama-2's question: a student distilled from tuned teachers, its own recipe tuned, beats those "
            "teachers and the same student without distillation")


def verdict_family(entries: list[Entry], metrics=M.DEFAULT_VERDICT_METRICS) -> dict:
    """The verdict's decisions as data: {"student" (the arm its sweeps' metric prefers), "students" (every student
    arm), "level", "family": [{student, col, kind, other, cmp, p_adj, outcome}], "outside": [...] (other teachers,
    unadjusted), "chance": [sentences: BLiMP comparisons left out]}. Each student arm (each student sweep) is
    compared with the reference teacher and the baseline, on each metric; Holm's correction runs over all of them."""
    by_role = {r: [e for e in entries if e.role == r] for r in ROLES}
    student, reference, baseline = chosen(by_role["student"]), chosen(by_role["teacher"]), chosen(by_role["baseline"])
    arms = [e for e in by_role["student"] if e.selection() is not None] or ([student] if student is not None else [])
    design = sequential_design(entries)
    level, why = ALPHA, None
    family, outside, notes = [], [], []
    cols = [column(m) for m in metrics]  # report.metrics: blimp/overall, eval/loss, suite/* in the order given
    for arm in arms:
        for col in cols:
            if not arm.values(col):
                continue
            for kind, other in (("reference teacher", reference), ("baseline", baseline)):
                if other is None or not other.values(col):
                    continue
                if col == "blimp":
                    low = [(e, c) for e in (arm, other) if (c := not_above_chance(e, level)) is not None]
                    if low:
                        listed = _and([f"{e.name} {c['accuracy']:.2f}% of {c['pairs']:,} pairs (binomial p {c['p']:.2g})"
                                       for e, c in low])
                        notes.append(f"BLiMP cannot separate the distilled student ({arm.name}) and {_name(kind, other)}: "
                                     f"not above chance: {listed}; that comparison rests on dev loss")
                        continue
                family.append({"student": arm, "col": col, "kind": kind, "other": other, "cmp": compare(arm, other, col)})
            for t in by_role["teacher"]:
                if t is not reference and t.values(col):
                    c = compare(arm, t, col)
                    outside.append({"student": arm, "col": col, "kind": "teacher", "other": t, "cmp": c, "p_adj": c["p"],
                                    "outcome": outcome(c["diff"], c["p"], metric_info(col)[2], ALPHA)})
    if design is not None and student is not None and family:
        level, why = replay(student, family, design)
    else:
        for f, p_adj in zip(family, holm([f["cmp"]["p"] for f in family])):
            f["p_adj"] = p_adj
            f["outcome"] = outcome(f["cmp"]["diff"], p_adj, metric_info(f["col"])[2], level)
    return {"student": student, "students": arms, "level": level, "why_level": why, "family": family, "outside": outside,
            "chance": notes}


def decisions(data: ReportData) -> dict:
    """The verdict's decisions as report.json stores them: the correction, its level, and each comparison."""
    v = verdict_family(data.entries, data.metrics)
    on = _and([metric_info(column(m))[0] for m in data.metrics])

    def row(f: dict, in_family: bool) -> dict:
        c = f["cmp"]
        return {"student": f["student"].name, "metric": f["col"], "vs": f["other"].name, "kind": f["kind"], "in_family": in_family,
                "diff": c["diff"], "low": c["low"], "high": c["high"], "method": c["method"], "p": c["p"],
                "p_holm": f["p_adj"] if in_family else None, "outcome": f["outcome"], "mdd": c["mdd"],
                "seeds_needed": c["seeds_needed"]}

    return {"correction": "holm", "level": v["level"], "level_note": v["why_level"],
            "family": (f"the best student vs the reference teacher and vs the baseline, on {on}"
                       if len(v["students"]) < 2 else f"each student arm vs the reference teacher and vs the baseline, "
                       f"on {on}"),
            "metrics": list(data.metrics),
            "student": v["student"].name if v["student"] is not None else None,
            "arms": [{"student": a.name, "claim": claim(a)} for a in v["students"]],
            "comparisons": [row(f, True) for f in v["family"]] + [row(o, False) for o in v["outside"]],
            "chance_notes": v["chance"]}


def _head(student: Entry, family: list[dict]) -> str:
    """Supported / Contradicted / Inconclusive and its reason, one sentence."""
    def grouped(want: str) -> str:
        by_other: dict[str, list[str]] = {}
        for f in family:
            if f["outcome"] == want:
                by_other.setdefault(_name(f["kind"], f["other"]), []).append(metric_info(f["col"])[0])
        return _and([f"{who} (on {_and(cols)})" for who, cols in by_other.items()])

    subject = f"the distilled student ({student.name})"
    outcomes = [f["outcome"] for f in family]
    better, unsure = grouped("better"), grouped("cannot tell")
    if "worse" in outcomes:
        also = [f"; it is better than {better}" if better else "", f"; it cannot be told from {unsure}" if unsure else ""]
        return f"Contradicted: {subject} is worse than {grouped('worse')}" + "".join(also) + "."
    if all(o == "better" for o in outcomes):
        return f"Supported: {subject} is better than {better}."
    return (f"Inconclusive: the seeds cannot tell {subject} from {unsure}"
            + (f"; it is better than {better}." if better else "."))


def _verdict(entries: list[Entry], metrics=M.DEFAULT_VERDICT_METRICS) -> str:
    by_role = {r: [e for e in entries if e.role == r] for r in ROLES}
    if not by_role["student"] or not by_role["teacher"]:
        missing = "distilled student (role student)" if not by_role["student"] else "tuned teacher (role teacher)"
        return f"No verdict: the report has no {missing} entry."
    v = verdict_family(entries, metrics)
    student, family = v["student"], v["family"]
    if student is None or not family:
        return (f"No verdict: there are no values to compare the distilled student with the reference teacher or the "
                f"baseline." + (" " + "; ".join(v["chance"]) + "." if v["chance"] else ""))
    arms = list({id(f["student"]): f["student"] for f in family}.values())  # in family order (entries are unhashable)
    if len(arms) == 1:
        head = _head(arms[0], family)
        details = "; ".join(_detail(f["col"], f["kind"], f["other"], f["cmp"], f["p_adj"], f["outcome"]) for f in family)
    else:  # each student arm has its own head; Holm ran over all of them together
        head = " ".join(f"{a.name} ({claim(a)}): " + _head(a, [f for f in family if f["student"] is a]) for a in arms)
        details = "; ".join(f"{f['student'].name}, " + _detail(f["col"], f["kind"], f["other"], f["cmp"], f["p_adj"], f["outcome"])
                            for f in family)
    baseline = "" if by_role["baseline"] else " There is no baseline sweep in this report."
    cols = _and(sorted({metric_info(f["col"])[0] for f in family}))
    whom = _and(list(dict.fromkeys(f"vs {_name(f['kind'], f['other'])}" for f in family)))
    whom = whom if len(arms) == 1 else f"arms {_and([a.name for a in arms])}, each {whom}"
    level = (f"at each look's spent alpha, {ALPHA:.0%} family-wise over all looks ({v['why_level']})" if v["why_level"]
             else f"at a {v['level']:.0%} family-wise error rate")
    parts = [head + baseline,
             f"Decisions: Holm's correction over the verdict's family of {len(family)} comparison{'s' * (len(family) > 1)} "
             f"(the student {whom}, on {cols}) {level}: {details}."]
    if v["chance"]:
        parts.append("; ".join(v["chance"]) + ".")
    if v["outside"]:
        parts.append("Outside the family (not corrected): " + "; ".join(
            ("" if len(arms) == 1 else f"{o['student'].name}, ") +
            f"{metric_info(o['col'])[0]} vs {_name(o['kind'], o['other'])}: {o['outcome']}, {_fmt(o['col'], o['cmp']['diff'])}"
            f"{metric_info(o['col'])[1]}, {_ci(o['col'], o['cmp'])}" for o in v["outside"]) + ".")
    for extra in (budget_clause(entries), flops_clause(entries)):
        if extra:
            parts.append(extra)
    return " ".join(parts)
