"""Does a student distilled from tuned teachers beat them, and the non-distilled baseline? The report's
files: report.json, report.md and figures, rendered from the numbers of report/verdict.py.

    path = write_report(uri, ["teachers", "students", "baselines"], Path("reports/r1"), "r1")

Reads runs from MLflow only (report_entries.collect, through babysweep.tracking.tracker), never mlflow or ray
directly. The parts: report/entries.py gathers the contenders, report/verdict.py computes the table and the
verdict, report/importance.py the importances, report/search.py the search and distillation sections,
report/plots.py the figures; this module writes and renders them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Callable

from babysweep.core import metrics as M
from babysweep.report.importance import importances
from babysweep.report.entries import Entry, ReportData, collect, suite_columns
from babysweep.report.floor import floor_note, floor_row, floor_summary, read_floor
from babysweep.report.fairness import equal_flops_entries, fairness, fairness_markdown, flops_sentence
from babysweep.report.plots import blimp_bars, factor_plots, learning_curves
from babysweep.report.regime import regime_markdown, regime_table
from babysweep.report.search import report_sections, sections_markdown
from babysweep.report.stats import excludes_zero, mean_std
from babysweep.report.verdict import build_table, decisions, digits as _digits, full_interval, metric_info, num as _num, si, verdict

LogRun = Callable[[str, dict, dict, Path], None]


def _fields(entries: list[Entry]) -> dict[str, dict[str, list[float]]]:
    """{entry: {field: [mean, std]}} in points."""
    out = {}
    for e in entries:
        names = sorted({f for s in e.seeds for f in s.fields})
        out[e.name] = {f: list(mean_std([100.0 * s.fields[f] for s in e.seeds if f in s.fields])) for f in names}
    return out


def blimp_use(data: ReportData) -> list[str]:
    """Which BLiMP each stage scored: tuning trials (full, or the seeded subset with eval.blimp_final: subset)
    and the entries whose numbers the tables show."""
    lines = []
    for sweep in data.sweeps:
        params = [r.get("params", {}) for r in data.runs.get(sweep, [])]
        subsets = sorted({p.get("eval.blimp_pairs_per_paradigm", "0") for p in params if p.get("eval.blimp_final") == "subset"},
                         key=str)
        full = sum(p.get("eval.blimp_final", "full") == "full" and p.get("eval.blimp", "") != "none" for p in params)
        if subsets:
            lines.append(f"tuning trials of {sweep}: a seeded subset of {' or '.join(subsets)} pairs per paradigm, each epoch "
                         f"and at the end ({M.BLIMP_SUBSET_OVERALL}, not shown here)" + (f"; {full} of them full BLiMP" if full else ""))
        elif full:
            lines.append(f"tuning trials of {sweep}: full BLiMP at their end")
    for e in data.entries:
        pairs = {sum(n for _, n in s.signature) for s in e.seeds if s.signature}
        size = f"{pairs.pop():,} pairs" if len(pairs) == 1 else "every pair"
        if any(s.blimp is not None for s in e.seeds):
            who = "its finalists" if e.source == "final" else "its best tuning trial"
            lines.append(f"{e.name} in the tables: full BLiMP ({size}) of {who}")
        else:
            lines.append(f"{e.name} in the tables: no full BLiMP (its runs scored a subset only, or none)")
    return lines


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


def write_report(tracking_uri: str, sweeps: list[str], out_dir: Path, name: str, log_run: LogRun | None = None,
                 metrics=None) -> Path:
    """Write out_dir/report.md, report.json and PNG figures; returns report.md's path. `metrics`: what the verdict
    compares (report.metrics; default blimp/overall and eval/loss).

    log_run(name, params, metrics, out_dir), when given, records the report (e.g. as an MLflow run)."""
    out_dir = Path(out_dir)
    data = collect(tracking_uri, sweeps, metrics)  # checks the metrics' names before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    arms = equal_flops_entries(tracking_uri, data)  # shown in the tables, not part of the verdict's family
    rows = build_table(dataclasses.replace(data, entries=data.entries + arms))
    fair = fairness(data, arms)
    compute = flops_sentence(fair["flops"])
    report = {"name": name, "sweeps": list(sweeps), "verdict": verdict(data) + (" " + compute if compute else ""),
              "decisions": decisions(data), "warnings": list(data.warnings) + fair["few_trials"], "fairness": fair,
              "rows": rows, "fields": _fields(data.entries), "importances": {}, "figures": _figures(data, rows, out_dir),
              "blimp_scoring": next((s.scoring for e in data.entries for s in e.seeds if s.scoring), None),
              "blimp_use": blimp_use(data), "regime": regime_table(data.entries),
              "ngram_floor": floor_summary(read_floor(out_dir)),  # studies/floor.py stores it there; outside the verdict
              "verdict_metrics": list(data.metrics), "suite_columns": suite_columns(data.entries)}
    report["teacher_best_epochs"] = {r["entry"]: r["best_epochs"] for r in report["regime"]["rows"] if r["role"] == "teacher"}
    for sweep in data.sweeps:
        values, note = importances(data.runs[sweep], *data.objectives[sweep])
        report["importances"][sweep] = {"params": values, "note": note}
    report.update(report_sections(tracking_uri, data))  # samplers and distillation strength
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    path = out_dir / "report.md"
    path.write_text(render_markdown(report))
    if log_run is not None:
        metrics = {f"{r['entry']}.{k}": float(v) for r in rows for k, v in r.items()  # log_report makes keys MLflow-safe
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("trials", "arch_trials", "n", "trials_completed", "trials_stopped")}
        log_run(name, {"report.sweeps": ",".join(sweeps), "report.verdict": report["verdict"]}, metrics, out_dir)
    return path


def _pm(mean, std, digits: int, n: int = 2) -> str:
    """mean ± std; one run has no spread to show (a std of 0 would claim one)."""
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" if n < 2 else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _diff_cell(row: dict, col: str, digits: int) -> str:
    if row[f"{col}_basis"] == "ref":
        return "reference teacher"
    if row[f"{col}_diff"] is None:
        return "–"
    cell = _num(row[f"{col}_diff"], digits, "+")
    if row.get(f"{col}_noise_low") is not None:  # evaluation noise: BLiMP pairs resampled, seeds fixed
        noise = f"; eval noise [{_num(row[f'{col}_noise_low'], digits, '+')}, {_num(row[f'{col}_noise_high'], digits, '+')}]"
    else:
        noise = ""
    if row[f"{col}_basis"] == "none" or row[f"{col}_low"] is None:
        return cell + f" (one run each: no interval{noise})"
    star = " *" if excludes_zero(row[f"{col}_low"], row[f"{col}_high"]) else ""
    star += "" if full_interval(row[f"{col}_basis"]) else " †"
    how = {"paired": " paired", "welch": " Welch"}.get(row.get(f"{col}_method") or "", "")
    power = f"; mdd {_num(row[f'{col}_mdd'], digits)}" if row.get(f"{col}_mdd") is not None else ""
    return cell + f" [{_num(row[f'{col}_low'], digits, '+')}, {_num(row[f'{col}_high'], digits, '+')}]{star}{how}{power}{noise}"


def decisions_table(d: dict | None) -> list[str]:
    """The "Decisions" section: each comparison the verdict rests on, its test, Holm-adjusted p and outcome."""
    if not d or not d.get("comparisons"):
        return []
    level = f"{d['level']:.4g} at the last look, 5% over all looks" if d.get("level_note") else f"{d['level']:.0%}"
    lines = ["## Decisions", "", "| comparison | Δ [95% CI] | test | p | Holm p | outcome | smallest detectable (80% power) "
             "| seeds per arm for the observed Δ |", "|" + "---|" * 8]
    for c in d["comparisons"]:
        digits, label = _digits(c["metric"]), metric_info(c["metric"])[0]
        ci = "–" if c["low"] is None else f"[{_num(c['low'], digits, '+')}, {_num(c['high'], digits, '+')}]"
        fmt = lambda x, f="{:.3g}": "–" if x is None else f.format(x)  # noqa: E731
        lines.append(f"| {c.get('student') or d['student']} − {c['vs']} ({label}){'' if c['in_family'] else ' (outside the family)'} "
                     f"| {_num(c['diff'], digits, '+')} {ci} | {c['method'] or 'none'} | {fmt(c['p'])} | {fmt(c['p_holm'])} "
                     f"| {c['outcome']} | {fmt(c['mdd'], '{:.' + str(digits) + 'f}')} | {fmt(c['seeds_needed'], '{:,}')} |")
    lines += ["", f"Correction: Holm's step-down over the verdict's family ({d['family']}), at a {level} family-wise "
              f"error rate{' (' + d['level_note'] + ')' if d.get('level_note') else ''}. Each comparison is better, worse, "
              "or cannot tell: decided only when its Holm-adjusted p is at or below that rate, never on a point estimate. "
              "Comparisons outside the family (other teachers) are unadjusted. Power: (t_{1-α/2,df} + t_{0.8,df}) x the "
              "standard error of the test that was run; seeds per arm: the smallest n at which that figure falls to the "
              "observed |Δ|, the variances held at their observed values."]
    if d.get("arms"):
        lines += ["", "What each student arm tests: " + "; ".join(f"**{a['student']}**: {a['claim']}" for a in d["arms"]) + "."]
    if d.get("chance_notes"):
        lines += ["", "; ".join(d["chance_notes"]) + "."]
    return lines + [""]


def config_lines(rows: list[dict]) -> list[str]:
    """The "Chosen configs" section: what each finalist retrained (its search's choices, as recorded)."""
    shown = [r for r in rows if r.get("config")]
    if not shown:
        return []
    lines = ["## Chosen configs", ""]
    for r in shown:
        lines.append(f"- **{r['entry']}** ({r['source']}): " + ", ".join(f"`{k}={_short(v)}`" for k, v in r["config"].items()))
    return lines + ["", "The values each sweep's search chose for its best config, as recorded with its runs; every "
                    "other key is the spec's.", ""]


def budget_table(rows: list[dict]) -> list[str]:
    """The "Budgets" section: what each entry's runs cost, so unequal training shows next to the results."""
    def cell(value, fmt=si):
        return "–" if value is None else fmt(value)

    lines = ["## Budgets", "", "| entry | epochs | tokens seen | params | training FLOPs | tuning trials: completed / stopped early |",
             "|" + "---|" * 6]
    for r in rows:
        lines.append(f"| {r['entry']} | {cell(r['epochs'], lambda v: f'{v:g}')} | {cell(r['tokens_seen'])} "
                     f"| {cell(r['params'], lambda v: f'{v / 1e6:.2f}M')} | {cell(r['flops'])} | {r['trials_completed']} / {r['trials_stopped']} |")
    return lines + ["", "Per finalist, mean over its seeds. Epochs: the last one with a dev loss. Tokens seen: tokens "
                    "trained on, every epoch (MLM ones too) counted once per position of each training chunk. "
                    "Training FLOPs: 3 forward passes per token of 2 x the weight matrices (output head included, embedding lookups not) + 4 x layers x seq_len x "
                    "hidden for attention, plus each teacher's forward pass in distilled causal-LM epochs "
                    "(babysweep/flops.py); dev and BLiMP evaluation not counted. Tuning trials: of its sweep "
                    "(a teacher: of its architecture's trials), the fully trained ones and those the scheduler "
                    "stopped early; failed trials are neither.", ""]


def suite_table(report: dict) -> list[str]:
    """The "BabyLM suite" section: per entry each task's score and the macro average (mean ± std over seeds, in the
    pipeline's points), and the macro's difference to the reference teacher with its interval."""
    cols = report.get("suite_columns") or []
    if not cols:
        return []
    names = [c.removeprefix(M.SUITE_PREFIX) for c in cols]
    diff = M.SUITE_MACRO if M.SUITE_MACRO in cols else cols[-1]
    lines = ["## BabyLM zero-shot suite", "", "| entry | n | " + " | ".join(names)
             + f" | Δ {diff.removeprefix(M.SUITE_PREFIX)} vs reference teacher [95% CI] |", "|" + "---|" * (len(cols) + 3)]
    for r in report["rows"]:
        if all(r.get(f"{c}_mean") is None for c in cols):
            continue
        cells = [_pm(r.get(f"{c}_mean"), r.get(f"{c}_std"), 2, r["n"]) for c in cols]
        lines.append(f"| {r['entry']} | {r['n']} | " + " | ".join(cells) + f" | {_diff_cell(r, diff, 2)} |")
    return lines + ["", "Scored at each finalist's end (eval.suite) as babylm/evaluation-pipeline-2025's causal backend "
                    "scores it (docs/babylm-suite.md): accuracy in % for blimp, supplement, ewok, entity_tracking; "
                    "Spearman's rho x 100 for wug_adj and wug_past; reading's R2 gain in % (reading_spr, reading_et); "
                    "macro: their unweighted mean. Δ and intervals as in the comparison table; every suite column's "
                    "difference is in report.json (rows: suite/<column>_diff, _low, _high).", ""]


BABYLM_EPOCH_CAP = 10  # BabyLM 2025: at most 10 epochs over the track's corpus (100M words for strict-small's 10M)


def babylm_budget_table(rows: list[dict]) -> list[str]:
    """The "BabyLM's budget" section: words seen and epochs per entry against BabyLM's cap of 10 epochs, a
    distilled student's teachers' training words counted with its own (docs/babylm-suite.md)."""
    shown = [r for r in rows if r.get("words_seen")]
    if not shown:
        return []
    lines = ["## BabyLM's budget", "", "| entry | words seen | teachers' words | counted | epochs | BabyLM cap (10 epochs) "
             "| counted / cap |", "|" + "---|" * 7]
    for r in shown:
        own, teach = r["words_seen"], r.get("teacher_words")
        epochs = r.get("epochs")
        per_epoch = own / epochs if epochs else None
        counted = own + (teach or 0.0)
        cap = BABYLM_EPOCH_CAP * per_epoch if per_epoch else None
        share = f"{counted / cap:.2f}" + (" (over)" if counted > cap * (1 + 1e-9) else "") if cap else "–"
        lines.append(f"| {r['entry']} | {si(own)} | {si(teach) if teach else '–'} | {si(counted)} "
                     f"| {'–' if epochs is None else f'{epochs:g}'} | {si(cap) if cap else '–'} | {share} |")
    return lines + ["", "Words seen: words trained on, each epoch counting the training corpus's words (BabyLM's count, "
                    "\"not unique\"), the current epoch in proportion to its tokens. Counted: the entry's own words plus, "
                    "for a distilled student, the words its teachers were trained on (their own teachers' too): the "
                    "rule babysweep applies for BabyLM 2025 (docs/babylm-suite.md). Cap: 10 epochs of this corpus.", ""]


def render_markdown(report: dict) -> str:
    """report.md from report.json's content: every number shown is one stored there."""
    lines = [f"# {report['name']}: does distillation beat tuned teachers?", "",
             f"Sweeps: {', '.join(report['sweeps'])}.", "", f"**Verdict.** {report['verdict']}", ""]
    lines += [f"BLiMP: {report['blimp_scoring']} (babysweep eval --help).", ""] if report.get("blimp_scoring") else []
    if report.get("blimp_use"):
        lines += ["BLiMP pairs scored: " + "; ".join(report["blimp_use"]) + ".", ""]
    lines += [f"> **Warning:** {w}" for w in report["warnings"]] + ([""] if report["warnings"] else [])
    lines += ["## Comparison", "",
              "| entry | role | arch | params | tuning trials | source | n | dev loss | Δ dev loss vs reference teacher [95% CI] "
              "| BLiMP (%) | Δ BLiMP vs reference teacher [95% CI] |", "|" + "---|" * 11]
    for r in report["rows"]:
        size = f"{r['params'] / 1e6:.2f}M" if r["params"] else "–"
        trials = f"{r['trials']}" + (f" ({r['arch_trials']} {r['arch']})" if r["arch_trials"] is not None else "")
        lines.append(f"| {r['entry']} | {r['role']} | {r['arch']} | {size} | {trials} | {r['source']} | {r['n']} "
                     f"| {_pm(r['dev_loss_mean'], r['dev_loss_std'], 3, r['n'])} | {_diff_cell(r, 'dev_loss', 3)} "
                     f"| {_pm(r['blimp_mean'], r['blimp_std'], 2, r['n'])} | {_diff_cell(r, 'blimp', 2)} |")
    lines += floor_row(report.get("ngram_floor"))
    lines += ["", "Mean ± std over seeds (std with ddof=1). Δ = entry − the reference teacher: the teacher its "
              "sweep's tuning metric prefers (never the dev loss or BLiMP shown here, unless a warning says so); * = the interval excludes zero; † = one side has a single run, so the "
              "interval lacks its seed-to-seed variation and is too narrow. Intervals: t over seeds (another "
              "seed's luck): paired over the seeds both sides ran (finalists of every role run the same seeds, so seed k "
              "of each starts from the same draw of weights and data order), Welch's where the seeds differ; "
              "mdd = the smallest difference detectable at 80% power with these seeds. The stars are unadjusted; "
              "the verdict's decisions are Holm-corrected (the Decisions section). Eval noise (BLiMP, when per-pair decisions exist): "
              "2000-replicate bootstrap over the BLiMP pairs shared by both sides, seeds fixed: how much the finite "
              "test set moves the difference."] + floor_note(report.get("ngram_floor")) + [""]
    lines += suite_table(report)
    lines += decisions_table(report.get("decisions"))
    lines += budget_table(report["rows"])
    lines += babylm_budget_table(report["rows"])
    lines += regime_markdown(report.get("regime"))
    lines += config_lines(report["rows"])
    fields = sorted({f for per in report["fields"].values() for f in per})
    seeds = {r["entry"]: r["n"] for r in report["rows"]}
    chance = {r["entry"]: r.get("chance") or {} for r in report["rows"]}
    if fields:
        def cell(entry: str, per: dict, f: str) -> str:
            if f not in per:
                return "–"
            test = chance.get(entry, {}).get(f)
            return _pm(*per[f], 1, seeds.get(entry, 2)) + (" °" if test and test["p"] > 0.05 else "")

        lines += ["## BLiMP per field (%)", "", "| entry | overall | " + " | ".join(fields) + " |", "|" + "---|" * (len(fields) + 2)]
        for entry, per in report["fields"].items():
            test = chance.get(entry, {}).get("overall")
            overall = "–" if not test else f"{test['accuracy']:.2f}" + (" °" if test["p"] > 0.05 else "")
            lines.append(f"| {entry} | {overall} | " + " | ".join(cell(entry, per, f) for f in fields) + " |")
        lines += ["", "° = not above chance: a one-sided binomial test of the seed-averaged count of pairs right against "
                  "50% over the pairs scored (overall: every pair pooled) has p > 0.05. When an entry the verdict compares "
                  "is not above chance overall, its BLiMP comparison leaves the verdict, which rests on dev loss.", ""]
    lines += sections_markdown(report)
    lines += fairness_markdown(report)
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
            elif r[f"{col}_low"] is None:
                cells.append(f"{_num(r[f'{col}_diff'], digits, '+')} (one seed: no interval)")
            else:
                star = " *" if r[f"{col}_excludes_zero"] else ""
                cells.append(f"{_num(r[f'{col}_diff'], digits, '+')} [{_num(r[f'{col}_low'], digits, '+')}, "
                             f"{_num(r[f'{col}_high'], digits, '+')}]{star}")
        lines.append(f"| {r['variant']} | {change} | {r['n']} | " + " | ".join(cells) + " |")
    lines += ["", "Mean ± std over seeds; every variant ran with the same seeds as the base. Δ = variant − base; "
              "95% paired t interval over the shared seeds (Welch's t where seeds do not match); * = the "
              "interval excludes zero. One seed: no interval and no star.", ""]
    return "\n".join(lines)


__all__ = ["write_report", "render_markdown", "render_ablation"]
