"""Two report sections kept apart from report/build.py: how strongly each student distilled, and which
sampler each sweep searched with.

    extra = report_sections(tracking_uri, data)          # {"distillation": {...}, "samplers": {...}}
    lines = sections_markdown({**report, **extra})        # markdown lines, [] when nothing to say

The distillation weights come from each entry's first run's params (all seeds of an entry share
its config): the KD weight per token relative to CE (report/kd_weight.py), the per-token alpha with the
same balance, and the epochs that carried a KD term (none in AntLM's MLM epochs).
"""

from __future__ import annotations

import math
from typing import Any

from babysweep.core.errors import UserError
from babysweep.report.kd_weight import kd_summary
from babysweep.spec.sampler import describe_sampler


def distillation_rows(entries: list, runs_by_sweep: dict[str, list[dict]]) -> dict[str, dict]:
    """{entry name: kd_summary} for the entries with role student."""
    by_id = {r["run_id"]: r for runs in runs_by_sweep.values() for r in runs}
    out = {}
    for e in entries:
        run = by_id.get(e.seeds[0].run_id) if e.role == "student" and e.seeds else None
        if run is not None:
            out[e.name] = kd_summary(run.get("params", {}))
    return out


def samplers(tracking_uri: str, sweeps: list[str]) -> dict[str, str]:
    """{sweep: one line on its sampler}, from the sweep's parent run (sweeps older than this record none)."""
    from babysweep.tracking.runs import sweep_parent

    out = {}
    for sweep in sweeps:
        try:
            line = describe_sampler(sweep_parent(tracking_uri, sweep)["params"])
        except UserError:
            line = None
        out[sweep] = line or "not recorded (a sweep run before babysweep logged its sampler)"
    return out


def report_sections(tracking_uri: str, data: Any) -> dict[str, dict]:
    return {"distillation": distillation_rows(data.entries, data.runs), "samplers": samplers(tracking_uri, data.sweeps)}


def _weight(x: float | None) -> str:
    if x is None:
        return "– (no teachers)"
    return "∞ (KD only)" if math.isinf(x) else f"{x:.3g}"


def sections_markdown(report: dict) -> list[str]:
    lines: list[str] = []
    if report.get("samplers"):
        lines += ["## Search", ""] + [f"- **{s}**: {line}" for s, line in report["samplers"].items()] + [""]
    kd = report.get("distillation")
    if kd:
        lines += ["## Distillation strength", "",
                  "| entry | alpha | T | kd_reduction | seq_len | KD weight per token vs CE | same balance as per-token alpha "
                  "| epochs with KD |", "|" + "---|" * 8]
        for name, r in kd.items():
            alpha_t = "–" if r["token_alpha"] is None else f"{r['token_alpha']:.3g}"
            lines.append(f"| {name} | {r['alpha']:.3g} | {r['temperature']:.3g} | {r['kd_reduction']} | {r['seq_len']} "
                         f"| {_weight(r['kd_per_ce'])} | {alpha_t} | {r['kd_epochs']} of {r['epochs']} |")
        lines += ["", "KD weight per token vs CE = (1 − alpha) T² / alpha, times (seq_len − 1) with kd_reduction "
                  "babyllama (BabyLlama's sum over positions): its alpha 0.5 at 128 tokens is 508 (T 2), a per-token "
                  "alpha of 1/128. KD is active only in causal-LM epochs (none in AntLM's MLM epochs).", ""]
    return lines


__all__ = ["distillation_rows", "samplers", "report_sections", "sections_markdown"]
