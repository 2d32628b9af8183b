"""The AntLM schedule grammar: which objective each epoch trains. Pure string logic, no torch, so
spec validation, reports and ablations read schedules without importing the trainer's stack.

    parse_schedule("4clm+16mlm+4clm")              # -> ["clm"] * 4 + ["mlm"] * 16 + ["clm"] * 4
    schedule_from_ratio(8, 0.25)                    # -> 3 clm, 2 mlm, 3 clm
    phases(None, 0.5, 4)                            # what the trainer runs, epoch by epoch (antlm.schedule, antlm.mlm_ratio, train.epochs)
"""

from __future__ import annotations

import re

_PART = re.compile(r"^(\d+)(clm|mlm)$")


def parse_schedule(text: str) -> list[str]:
    """"4clm+16mlm+4clm" -> a phase per epoch."""
    parts = [p.strip().lower() for p in str(text).split("+")]
    phases: list[str] = []
    for part in parts:
        match = _PART.match(part)
        if not match or int(match.group(1)) == 0:
            raise ValueError(f"AntLM schedule {text!r} is not of the form '4clm+16mlm+4clm' (positive epoch counts of clm or mlm)")
        phases += [match.group(2)] * int(match.group(1))
    return phases


def schedule_from_ratio(epochs: int, mlm_ratio: float) -> list[str]:
    """MLM epochs = round(epochs * ratio) in one block; CLM epochs split before and after it
    (the extra one before)."""
    mlm = round(epochs * mlm_ratio)
    clm = epochs - mlm
    before = clm - clm // 2
    return ["clm"] * before + ["mlm"] * mlm + ["clm"] * (clm // 2)


def phases(schedule: str | None, mlm_ratio: float | None, epochs: int) -> list[str]:
    """The phase of each epoch: the schedule's if there is one (it must have `epochs` epochs), else the ratio's."""
    if schedule:
        out = parse_schedule(schedule)
        if len(out) != epochs:
            raise ValueError(f"AntLM schedule {schedule!r} has {len(out)} epochs but train.epochs is {epochs}")
        return out
    return schedule_from_ratio(epochs, mlm_ratio or 0.0)
