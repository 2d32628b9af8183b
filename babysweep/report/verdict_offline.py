"""The verdict rebuilt from a report.json alone, without the MLflow store it was made from.

    text, decided = verdict_from_report(Path("docs/example-study/report.json"))
    python scripts/verdict_from_report.py docs/example-study/report.json

Belongs with the report (report/ in the package layout). A report.json written since issue 24 keeps each
entry's per-seed values with their seed labels, so the rebuilt verdict is the one `babysweep report`
gives (paired where seeds match). An older one keeps only mean, std and n per entry: its seeds are
rebuilt as n values with exactly that mean and std (ddof=1), which reproduces Welch's t, but not a
paired test (the seed labels are gone), so every comparison is then Welch's and the verdict says so.
The verdict compares the metrics the report's verdict compared (its "verdict_metrics": report.metrics,
BLiMP and dev loss by default, suite metrics when chosen). BLiMP's pairs come from the report's
"blimp_use" lines; the chance test then uses overall accuracy x pairs (the pooled count when every
paradigm has the same number of pairs, as in BLiMP and the built-in corpus).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from babysweep.core import metrics as M
from babysweep.report.entries import Entry, ReportData, Seed
from babysweep.report.verdict import decisions, verdict


def _standard(n: int) -> np.ndarray:
    """n values with mean 0 and std 1 (ddof=1); zeros for one value."""
    if n < 2:
        return np.zeros(n)
    z = np.linspace(-1.0, 1.0, n)
    return (z - z.mean()) / z.std(ddof=1)


def _pairs(report: dict, entry: str) -> int | None:
    for line in report.get("blimp_use") or []:
        found = re.match(rf"{re.escape(entry)} in the tables: full BLiMP \(([\d,]+) pairs\)", line)
        if found:
            return int(found.group(1).replace(",", ""))
    return None


def entries_from_report(report: dict) -> tuple[list[Entry], bool]:
    """(entries, paired_possible): Entry objects with the report's per-seed values, or rebuilt ones."""
    chosen_on = re.search(r"chosen on ([\w/.\-]+)\)", report.get("verdict", ""))
    metric = chosen_on.group(1) if chosen_on else M.EVAL_LOSS
    entries, exact = [], True
    for r in report["rows"]:
        n = int(r["n"])
        if r.get("seeds"):
            seeds = [Seed(f"{r['entry']}#{i}", s.get("seed"), s.get("dev_loss"), s.get("blimp"), {}, [],
                          suite=dict(s.get("suite") or {})) for i, s in enumerate(r["seeds"])]
        else:
            exact = False
            z = _standard(n)
            rebuilt = {col: r[f"{col}_mean"] + (r.get(f"{col}_std") or 0.0) * z
                       for col in ("dev_loss", "blimp", *report.get("suite_columns", [])) if r.get(f"{col}_mean") is not None}
            seeds = [Seed(f"{r['entry']}#{i}", None, float(rebuilt["dev_loss"][i]) if "dev_loss" in rebuilt else None,
                          float(rebuilt["blimp"][i]) / 100.0 if "blimp" in rebuilt else None, {}, [],
                          suite={col: float(v[i]) for col, v in rebuilt.items() if col.startswith(M.SUITE_PREFIX)})
                     for i in range(n)]
        is_reference = "ref" in (r.get("dev_loss_basis"), r.get("blimp_basis"))
        for s in seeds:
            s.selection = 0.0 if (r["role"] != "teacher" or is_reference) else 1.0
            s.tokens, s.epochs, s.flops = r.get("tokens_seen"), r.get("epochs"), r.get("flops")
        entries.append(Entry(r["entry"], r.get("sweep", r["entry"]), r["role"], r.get("arch", ""), r.get("params"),
                             r.get("trials", 0), r.get("arch_trials"), r.get("source", "final"), seeds,
                             selected_by=(metric, "min"), config=dict(r.get("config") or {}),
                             blimp_pairs=_pairs(report, r["entry"])))
    return entries, exact


def verdict_from_report(path: Path) -> tuple[str, dict]:
    """(verdict line, decisions) rebuilt from a report.json file."""
    report = json.loads(Path(path).read_text())
    entries, exact = entries_from_report(report)
    metrics = tuple(report.get("verdict_metrics") or M.DEFAULT_VERDICT_METRICS)  # report.metrics, as the report chose
    data = ReportData(report.get("sweeps", []), {}, {}, entries, [], metrics=metrics)
    text = verdict(data)
    if not exact:
        text += (" (Rebuilt from an older report.json, which keeps mean, std and n per entry but not the seeds: every "
                 "comparison is Welch's t, not the paired test a report from the store would use.)")
    return text, decisions(data)


__all__ = ["entries_from_report", "verdict_from_report"]
