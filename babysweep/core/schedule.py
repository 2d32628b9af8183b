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


def comparable_epochs(schedules: list[list[str]], max_t: int) -> set[int]:
    """Epochs at which early stopping may judge trials of a sweep whose trials run `schedules` (a phase
    list per possible trial): from half the budget (max_t) on, below max_t, and only epochs that are
    causal-LM for every schedule long enough to reach them and follow a causal-LM epoch (an epoch in or
    right after an MLM block leaves the causal loss high by design, so an AntLM trial would be judged for
    its phase, not its config). 1-based, like the trainer's epoch count.

        comparable_epochs([["clm"] * 8, parse_schedule("2clm+4mlm+2clm")], 8)   # -> set(): nothing to judge
        comparable_epochs([["clm"] * 8, parse_schedule("1clm+2mlm+5clm")], 8)   # -> {5, 6, 7}
    """
    def causal(phases: list[str], epoch: int) -> bool:
        if epoch > len(phases):
            return True  # a shorter trial has ended: it is not judged there
        before = phases[epoch - 2] if epoch >= 2 else "clm"
        return phases[epoch - 1] == "clm" and before == "clm"

    return {e for e in range(1, max_t) if 2 * e >= max_t and all(causal(p, e) for p in schedules)}
