"""The report's "Fair tuning" section, kept apart from the verdict: was each arm tuned and trained on equal
terms? (Belongs in report/.)

    extra = fairness(tracking_uri, data)        # {"fairness": {...}}: stopped by region, few trials, FLOPs
    lines = fairness_markdown(report)           # markdown lines, [] when nothing to say
    sentence = flops_sentence(report["fairness"]["flops"])   # appended to the verdict

- Stopped by region: per tuning sweep and searched key, the fraction of its trials early stopping ended,
  per value (a choice: each value, e.g. each AntLM schedule) or per third of the sampled range (a number,
  e.g. alpha bins; log-spaced thirds when the values are positive and span a factor of 10 or more, unless
  they look like a fraction in [0, 1] reaching 0.5, as alpha and mlm_ratio do). A region stopped far
  more often than the rest was judged harder, whatever its merit.
- Few trials: a finalist's config chosen among fewer than MIN_TRIALS fully trained trials was hardly
  chosen at all; a warning says so.
- FLOPs: the student's training FLOPs over the baseline's (equal tokens: the student adds its teachers'
  forward passes), and, when the study ran it (finalists.equal_flops_baseline), the baseline arm trained
  longer to the student's FLOPs (equal_flops.py), shown beside the equal-tokens baseline.
"""

from __future__ import annotations

import math
from typing import Any

from babysweep.core import records as R
from babysweep.core.records import FINAL, sampled_keys

MIN_TRIALS = 3  # fewer fully trained trials than this behind a finalist's config: a warning
EQUAL_FLOPS = ".equal-flops"  # the arm of baseline B runs as sweep "B.equal-flops.final"


def _number(text: Any) -> float | None:
    try:
        x = float(text)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _regions(values: list[str]) -> list[tuple[str, Any]]:
    """[(label, test)] covering the values: each value of a choice, or thirds of a numeric range."""
    numbers = [_number(v) for v in values]
    distinct = sorted(set(values), key=str)
    if any(x is None for x in numbers) or len(distinct) <= 4:
        return [(str(v), lambda x, v=v: x == v) for v in distinct]
    low, high = min(numbers), max(numbers)
    fraction = 0 <= low and 0.5 <= high <= 1  # alpha, mlm_ratio: linear thirds
    log = not fraction and low > 0 and high / low >= 10  # lr, weight decay
    f = math.log if log else (lambda x: x)
    edges = [f(low) + (f(high) - f(low)) * k / 3 for k in range(4)]
    back = math.exp if log else (lambda x: x)
    out = []
    for k in range(3):
        lo, hi = edges[k], edges[k + 1]
        last = k == 2
        label = f"[{back(lo):.3g}, {back(hi):.3g}{']' if last else ')'}"
        out.append((label, lambda x, lo=lo, hi=hi, last=last: (lambda y: lo <= y < hi or (last and y == hi))(f(_number(x)))))
    return out


def stopped_by_region(runs: list[dict]) -> dict[str, list[dict]]:
    """{searched key: [{"region", "trials", "stopped"}]} over a sweep's ended trials (finished or stopped)."""
    ended = [r for r in runs if r.get("status") == "FINISHED"]
    keys = sorted({k for r in ended for k in sampled_keys(r)})
    out = {}
    for key in keys:
        having = [r for r in ended if key in r.get("params", {})]
        rows = []
        for label, test in _regions([r["params"][key] for r in having]):
            group = [r for r in having if test(r["params"][key])]
            rows.append({"region": label, "trials": len(group), "stopped": sum(map(R.stopped_early, group))})
        out[key] = rows
    return out


def few_trials_warnings(entries: list) -> list[str]:
    """A line per finalist entry whose config was chosen among fewer than MIN_TRIALS fully trained trials."""
    out = []
    for e in entries:
        if e.trials and e.completed < MIN_TRIALS:  # trials 0: an arm with no tuning of its own
            among = f"its architecture's {e.arch_trials}" if e.arch_trials is not None else f"its sweep's {e.trials}"
            out.append(f"{e.name}: its config was chosen among only {e.completed} fully trained trial"
                       f"{'' if e.completed == 1 else 's'} (of {among}; early stopping ended the rest or they failed); "
                       f"fewer than {MIN_TRIALS} is hardly a choice")
    return out


def flops_ratios(entries: list) -> list[dict]:
    """[{"student", "baseline", "ratio"}]: each student's mean training FLOPs over each baseline's."""
    out = []
    for s in (e for e in entries if e.role == "student"):
        for b in (e for e in entries if e.role == "baseline"):
            fs, fb = s.budget("flops"), b.budget("flops")
            if fs and fb:
                out.append({"student": s.name, "baseline": b.name, "ratio": fs / fb,
                            "tokens_ratio": (s.budget("tokens") / b.budget("tokens")) if s.budget("tokens") and b.budget("tokens") else None})
    return out


def flops_sentence(ratios: list[dict]) -> str:
    """One sentence for the verdict, '' when no FLOPs were recorded."""
    parts = []
    for r in ratios:
        kind = "equal-FLOPs arm" if r["baseline"].endswith(EQUAL_FLOPS) else "baseline"
        tokens = f" on {r['tokens_ratio']:.2f}x its tokens" if r.get("tokens_ratio") else ""
        parts.append(f"{r['student']} used {r['ratio']:.2f}x the training FLOPs of the {kind} {r['baseline']}{tokens}")
    return ("Compute: " + "; ".join(parts) + ".") if parts else ""


def equal_flops_entries(tracking_uri: str, data) -> list:
    """Entries of the equal-FLOPs baseline arms the study ran (sweeps `<baseline>.equal-flops.final`)."""
    from babysweep.core.errors import UserError
    from babysweep.report.entries import entries_from_runs, read_blimp
    from babysweep.tracking.runs import run_json, sweep_runs

    out = []
    for sweep in data.sweeps:
        arm = sweep + EQUAL_FLOPS
        try:
            runs = sweep_runs(tracking_uri, arm + FINAL, histories=["eval/loss"])
        except UserError:
            continue
        entries, _ = entries_from_runs({arm: [], arm + FINAL: runs}, {arm: data.objectives[sweep]},
                                       lambda run: run_json(tracking_uri, run["run_id"], "blimp.json") or read_blimp(run))
        out += [e for e in entries if e.role == "baseline"]
    return out


def fairness(data, arms: list) -> dict:
    """report.json's "fairness": stopped by region per sweep, few-trial warnings, FLOPs ratios, the arms'
    comparisons with each student (verdict.compare: the verdict's own interval)."""
    from babysweep.report.verdict import compare

    comparisons = []
    for s in (e for e in data.entries if e.role == "student"):
        for b in [e for e in data.entries if e.role == "baseline"] + arms:
            for col in ("blimp", "dev_loss"):
                if s.values(col) and b.values(col):
                    c = compare(s, b, col)  # BLiMP in points
                    comparisons.append({"student": s.name, "baseline": b.name, "metric": col,
                                        "equal": "FLOPs" if any(b is a for a in arms) else "tokens",
                                        "diff": c.get("diff"), "low": c.get("low"), "high": c.get("high")})
    return {"stopped_by_region": {sweep: stopped_by_region(data.runs.get(sweep, [])) for sweep in data.sweeps},
            "few_trials": few_trials_warnings(data.entries),
            "flops": flops_ratios(data.entries + arms),
            "student_vs_baselines": comparisons}


def fairness_markdown(report: dict) -> list[str]:
    f = report.get("fairness")
    if not f:
        return []
    lines = ["## Fair tuning", ""]
    if f["flops"]:
        lines += [flops_sentence(f["flops"]), ""]
    if f["student_vs_baselines"]:
        lines += ["| student | baseline | equal | metric | Δ student − baseline [95% CI] |", "|---|---|---|---|---|"]
        for c in f["student_vs_baselines"]:
            digits = 2 if c["metric"] == "blimp" else 3
            ci = f" [{c['low']:+.{digits}f}, {c['high']:+.{digits}f}]" if c.get("low") is not None else " (no interval)"
            diff = "–" if c.get("diff") is None else f"{c['diff']:+.{digits}f}{ci}"
            lines.append(f"| {c['student']} | {c['baseline']} | {c['equal']} | {'BLiMP (points)' if c['metric'] == 'blimp' else 'dev loss'} | {diff} |")
        lines += ["", "Equal tokens: the baseline finalists as tuned. Equal FLOPs: the same baseline config and seeds "
                  "trained for more epochs, to about the student's training FLOPs (finalists.equal_flops_baseline in "
                  "the study file); its realised FLOPs ratio is above.", ""]
    regions = {s: keys for s, keys in f["stopped_by_region"].items() if keys}
    if regions:
        lines += ["Stopped early, by region of each searched key (trials stopped / trials ended):", ""]
        for sweep, keys in regions.items():
            cells = []
            for key, rows in keys.items():
                cells.append(f"{key}: " + ", ".join(f"{r['region']} {r['stopped']}/{r['trials']}" for r in rows))
            lines.append(f"- **{sweep}**: " + "; ".join(cells))
        lines += ["", "Early stopping judges a trial only against trials of its search.stratify stratum, from half the "
                  "budget on, at epochs that are causal-LM (after a causal-LM epoch) for every AntLM schedule the "
                  "sweep can sample. A region stopped far more often than the others was judged harder.", ""]
    return lines


__all__ = ["MIN_TRIALS", "EQUAL_FLOPS", "stopped_by_region", "few_trials_warnings", "flops_ratios", "flops_sentence",
           "equal_flops_entries", "fairness", "fairness_markdown"]
