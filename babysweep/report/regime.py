"""The regime a study trained in, beside the papers': how large each model is for its data, how long it trained,
and how heavily the students weighed distillation.

    regime = regime_table(data.entries)      # {"rows": [...], "papers": [...]}: report.json's "regime"
    lines = regime_markdown(regime)          # the report's "Regime" section

Baby Llama and BabyLlama-2 found their effect with teachers far larger than their data (10M words: 36 and 70.5
parameters per training word for Baby Llama's 360M LLaMA and 705M GPT-2, 34.5 for BabyLlama-2's 345M) and with
a KD term summed over the sequence (kd_weight.py: 508x CE per token at T 2, 127x at T 1, 128 tokens). A study
far from that regime asks another question; this table shows how far.

Per entry (mean over its seeds): training words (data/train_words, logged by the trainer; runs made before
it was logged show "–"), parameters per training word, epochs, tokens seen per parameter, words seen per
parameter (epochs x words / parameters: the one both the papers and our runs give), size against each teacher
entry, KD weight per token relative to CE, and for teachers the epoch of each seed's lowest dev loss (a teacher
that overfits, as the papers' did, has its best epoch before its last).
"""

from __future__ import annotations

from babysweep.report.entries import Entry
from babysweep.report.kd_weight import kd_per_ce, kd_summary

PAPER_WORDS = 10e6  # BabyLM's strict-small track: both papers trained on its 10M words
PAPER_SEQ_LEN = 128


def _paper(paper: str, role: str, model: str, params: float, epochs: int, kd: float | None, ratio: str | None) -> dict:
    return {"paper": paper, "role": role, "model": model, "params": params, "words": PAPER_WORDS,
            "params_per_word": params / PAPER_WORDS, "epochs": epochs, "tokens_seen_per_param": None,
            "words_seen_per_param": epochs * PAPER_WORDS / params, "size_vs_teachers": ratio, "kd_per_ce": kd}


# The papers' values as /work/shared/STACK-NOTES.md and issue 27 give them. Their tokens per word are not
# known here, so their tokens seen per parameter are left out ("–"); words seen per parameter stand in.
PAPERS = [
    _paper("Baby Llama", "teacher", "LLaMA 360M", 360e6, 6, None, None),
    _paper("Baby Llama", "teacher", "GPT-2 705M", 705e6, 6, None, None),
    _paper("Baby Llama", "student", "LLaMA 58M", 58e6, 6, kd_per_ce(0.5, 2.0, "babyllama", PAPER_SEQ_LEN),
           f"1/{360 / 58:.1f} (LLaMA), 1/{705 / 58:.1f} (GPT-2)"),
    _paper("BabyLlama-2", "teacher", "LLaMA 345M (x2)", 345e6, 8, None, None),
    _paper("BabyLlama-2", "student", "LLaMA 345M", 345e6, 8, kd_per_ce(0.5, 1.0, "babyllama", PAPER_SEQ_LEN), "1/1.0"),
]


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def best_point(history: list[tuple[int, float]]) -> tuple[int, float]:
    """(epoch, dev loss) of the lowest dev loss in a history; the first such epoch on a tie."""
    return min(history, key=lambda point: (point[1], point[0]))


def best_epochs(e: Entry) -> list[int]:
    """The epoch of each seed's lowest dev loss (its history's first minimum), in seed order."""
    return [int(best_point(s.history)[0]) for s in e.seeds if s.history]


def _kd(e: Entry) -> float | None:
    if e.role != "student" or not e.config:
        return None
    value = kd_summary({k: str(v) for k, v in e.config.items()})["kd_per_ce"]
    return None if value is None or value == float("inf") else value  # inf (alpha 0, KD only): JSON has no infinity


def regime_row(e: Entry, teachers: list[Entry]) -> dict:
    params, words, epochs, tokens = e.params, e.budget("words"), e.budget("epochs"), e.budget("tokens")
    ratios = {t.name: _div(e.params, t.params) for t in teachers} if e.role != "teacher" else {}
    return {"entry": e.name, "role": e.role, "arch": e.arch, "params": params, "words": words,
            "params_per_word": _div(params, words), "epochs": epochs, "tokens_seen_per_param": _div(tokens, params),
            "words_seen_per_param": _div(epochs * words, params) if epochs is not None and words is not None else None,
            "size_vs_teachers": {k: v for k, v in ratios.items() if v is not None}, "kd_per_ce": _kd(e),
            "best_epochs": best_epochs(e) if e.role == "teacher" else None}


def regime_table(entries: list[Entry]) -> dict:
    teachers = [e for e in entries if e.role == "teacher"]
    return {"rows": [regime_row(e, teachers) for e in entries], "papers": [dict(p) for p in PAPERS]}


def _cell(value, fmt) -> str:
    return "–" if value is None else fmt(value)


def _ratio(value: float) -> str:
    return f"1/{1 / value:.1f}" if 0 < value < 1 else f"{value:.2f}x"


def _size(p: float) -> str:
    return f"{p / 1e6:.3g}M"


def regime_markdown(regime: dict | None) -> list[str]:
    """The "Regime" section: this study's entries, then the papers' rows."""
    if not regime or not regime.get("rows"):
        return []
    g = lambda digits: (lambda v: f"{v:.{digits}g}")  # noqa: E731
    lines = ["## Regime", "", "| entry | role | params | training words | params per word | epochs | tokens seen per param "
             "| words seen per param | size vs teachers | KD weight per token / CE | teachers' best epoch |", "|" + "---|" * 11]
    for r in regime["rows"]:
        sizes = ", ".join(f"{_ratio(v)} ({k})" for k, v in (r.get("size_vs_teachers") or {}).items()) or "–"
        best = r.get("best_epochs")
        best_cell = "–" if not best else ", ".join(map(str, best)) + (f" of {r['epochs']:g}" if r.get("epochs") else "")
        lines.append(f"| {r['entry']} | {r['role']} | {_cell(r['params'], _size)} | {_cell(r['words'], lambda v: f'{v:,.0f}')} "
                     f"| {_cell(r['params_per_word'], g(3))} | {_cell(r['epochs'], lambda v: f'{v:g}')} "
                     f"| {_cell(r['tokens_seen_per_param'], g(3))} | {_cell(r['words_seen_per_param'], g(3))} | {sizes} "
                     f"| {_cell(r['kd_per_ce'], g(3))}x | {best_cell} |".replace("| –x |", "| – |"))
    for p in regime.get("papers", []):
        lines.append(f"| {p['paper']}: {p['model']} | {p['role']} | {_size(p['params'])} | {p['words']:,.0f} "
                     f"| {p['params_per_word']:.3g} | {p['epochs']} | – | {p['words_seen_per_param']:.3g} "
                     f"| {p['size_vs_teachers'] or '–'} | {_cell(p['kd_per_ce'], g(3))}{'x' if p['kd_per_ce'] else ''} | – |")
    return lines + ["", "Per entry, mean over its seeds. Training words: whitespace-separated words of the training lines "
                    "(the tuning slice left out; – for runs made before babysweep logged data/train_words). Tokens "
                    "seen per param: tokens trained on over parameters; words seen per param: epochs x training words over "
                    "parameters (the papers' token counts are not known here, so their rows give only this one). Size vs "
                    "teachers: parameters over each teacher entry's. KD weight per token / CE: the weight of one "
                    "position's distillation term against one token's cross-entropy (report/kd_weight.py; the papers: "
                    "alpha 0.5 with KD summed over 128 positions, T 2 for Baby Llama, T 1 for BabyLlama-2). Teachers' "
                    "best epoch: the epoch of each seed's lowest dev loss; before the last, the teacher overfit. The "
                    "papers' rows: 10M words (BabyLM strict-small), their models' sizes and epochs: teachers with "
                    "34.5 to 70.5 parameters per training word, the regime in which they found distillation to help.", ""]


__all__ = ["PAPERS", "best_point", "best_epochs", "regime_table", "regime_markdown"]
