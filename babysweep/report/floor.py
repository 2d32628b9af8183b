"""The word-statistics floor in a report: the row "n-gram floor" of the comparison table and what it means.

    floor = read_floor(out_dir)             # reports/<name>/ngram_floor.json (studies/floor.py writes it), or None
    lines = floor_row(floor, columns=11)    # the table's row; floor_note(floor): the sentence under the table

Outside the verdict's family: the floor is one deterministic model, not a contender with seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

from babysweep.core import metrics as M

FLOOR_FILE = "ngram_floor.json"


def read_floor(out_dir: Path) -> dict | None:
    """The stored floor of a report folder, or None when there is none (or it cannot be read)."""
    try:
        floor = json.loads((Path(out_dir) / FLOOR_FILE).read_text())
    except (OSError, ValueError):
        return None
    return floor if isinstance(floor, dict) and isinstance(floor.get("metrics"), dict) else None


def floor_summary(floor: dict | None) -> dict | None:
    """report.json's "ngram_floor": dev loss and BLiMP overall (points), and what it was fitted on."""
    if not floor:
        return None
    m = floor["metrics"]
    blimp = m.get(M.BLIMP_OVERALL)
    return {"dev_loss": m.get(M.EVAL_LOSS), "tune_loss": m.get(M.TUNE_LOSS),
            "blimp": None if blimp is None else 100.0 * blimp, "config_of": floor.get("config_of"),
            "run_id": floor.get("run_id"), "model": floor.get("model"),
            "fields": {k[len(M.BLIMP_FIELD_PREFIX):]: 100.0 * v for k, v in m.items() if k.startswith(M.BLIMP_FIELD_PREFIX)}}


def floor_row(summary: dict | None) -> list[str]:
    """The comparison table's row (11 columns), or nothing without a floor."""
    if not summary:
        return []
    cell = lambda v, d: "–" if v is None else f"{v:.{d}f}"  # noqa: E731
    return [f"| n-gram floor | floor | trigram | – | – | data of {summary['config_of']} | 1 | {cell(summary['dev_loss'], 3)} | – "
            f"| {cell(summary['blimp'], 2)} | – |"]


def floor_note(summary: dict | None) -> list[str]:
    if not summary:
        return []
    return ["", f"n-gram floor: {summary['model']}, fitted on the training tokens of {summary['config_of']}'s config "
            "(run " + str(summary["run_id"]) + ") and scored as the models are (the same dev chunks, tokenizer and BLiMP "
            "rule). It knows only which token follows which two tokens: a model that does not beat it has learned no "
            "more than word statistics. It is one deterministic fit, not a contender: outside the verdict's family, "
            "without seeds or intervals."]


__all__ = ["FLOOR_FILE", "read_floor", "floor_summary", "floor_row", "floor_note"]
