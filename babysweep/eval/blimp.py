"""BLiMP minimal pairs: read them, score a model on them (eval/logprobs.py says how a sentence is scored),
aggregate and show the results.

    pairs = load_pairs("../shared/data/blimp")          # a folder of jsonl files, or one jsonl file
    results = evaluate(model, tokenizer, pairs)         # {"overall", "fields", "paradigms", "pairs", ...}
    metrics = to_metrics(results)                       # {"blimp/overall": .., "blimp/field/..": ..}
    console.print(results_table(results)); save_results(results, "out/blimp.json")
    sample = subset(pairs, per_paradigm=20, seed=0)     # the same seeded sample every epoch

A pair is right when score(good) >= score(bad): both references count a tie as right (BLiMP has pairs
whose two sentences are identical). Results: accuracy per paradigm; overall the mean over paradigms (not
over pairs, so every paradigm weighs the same); per field as the rule says; per-pair decisions by
paradigm in file order; the scorer and rule by name (results from different ones are not compared:
check_comparable). The one upstream file whose field is spelled "syntax/semantics" counts as
"syntax_semantics" (a "/" would also split the metric name).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence
from babysweep.core import metrics as M
from babysweep.core.atomic import write_text_atomic
from babysweep.core.errors import UserError
from babysweep.eval.logprobs import DEFAULT_RULE, RULES, SCORERS, pll_logprobs, sentence_logprobs



@dataclass(frozen=True)
class Pair:
    good: str
    bad: str
    paradigm: str
    field: str
    term: str
    pair_id: str


# ---------------------------------------------------------------------------------------- reading


def load_pairs(source: str | Path) -> list[Pair]:
    """Every pair of a folder of *.jsonl files (sorted by name) or of one jsonl file."""
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.glob("*.jsonl") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise UserError(f"{path}: the BLiMP folder holds no .jsonl file.")
    elif path.is_file():
        files = [path]
    else:
        raise UserError(f"{path}: no such BLiMP file or folder.")
    pairs = [pair for file in files for pair in _read_file(file)]
    if not pairs:
        raise UserError(f"{path}: holds no minimal pair (every line is blank).")
    return pairs


def json_rows(path: Path, what: str = "a JSON object") -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a jsonl file (BLiMP's, the BabyLM suite's); a file
    that is not UTF-8, a line that is not JSON, or one that is not `what` ends in one sentence naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as UTF-8 text ({exc.__class__.__name__}).") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}, line {number}: is not valid JSON ({exc.msg}).") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}, line {number}: expected {what}.")
        yield number, row


def _read_file(path: Path) -> Iterator[Pair]:
    for number, row in json_rows(path, "a JSON object with sentence_good and sentence_bad"):
        yield _pair(row, path, number)


def _pair(row: dict, path: Path, number: int) -> Pair:
    where = f"{path}, line {number}"
    good, bad = (_sentence(row, key, where) for key in ("sentence_good", "sentence_bad"))
    paradigm = _text(row.get("UID")) or path.stem
    field = (_text(row.get("field")) or "unknown").replace("/", "_")
    pair_id = row.get("pairID")
    pair_id = str(pair_id) if pair_id is not None and str(pair_id) else str(number)
    return Pair(good, bad, paradigm, field, _text(row.get("linguistics_term")), f"{paradigm}/{pair_id}")


def _sentence(row: dict, key: str, where: str) -> str:
    if key not in row:
        raise UserError(f"{where}: has no {key!r}.")
    value = row[key]
    if not isinstance(value, str):
        raise UserError(f"{where}: {key!r} must be a string, got {type(value).__name__}.")
    if not value.strip():
        raise UserError(f"{where}: {key!r} is empty.")
    return value  # as in the file: both references tokenize line breaks (BabyLM's supplement has dialogues)


def _text(value) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def subset(pairs: Sequence[Pair], per_paradigm: int, seed: int) -> list[Pair]:
    """At most `per_paradigm` pairs of each paradigm, drawn with `seed`, in their original order.
    Each paradigm has its own generator, so adding or removing a paradigm changes no other's sample."""
    by_paradigm: dict[str, list[int]] = defaultdict(list)
    for i, pair in enumerate(pairs):
        by_paradigm[pair.paradigm].append(i)
    keep: list[int] = []
    for paradigm, indices in by_paradigm.items():
        rng = random.Random(f"{seed}:{paradigm}")  # str seeds hash deterministically (not PYTHONHASHSEED)
        keep += indices if len(indices) <= per_paradigm else rng.sample(indices, per_paradigm)
    return [pairs[i] for i in sorted(keep)]


def score_pairs(model, tokenizer, pairs: Sequence[Pair], batch_size: int = 64, scorer: str = "causal",
                device=None, rule: str = DEFAULT_RULE) -> list[bool]:
    """One decision per pair: score(good) >= score(bad), a tie counting as right as in both references
    (torch.max and numpy's argmax return the first of equal values). Both sentences of all pairs
    share batches. `rule` applies to the causal scorer; PLL has one rule."""
    if scorer not in SCORERS:
        raise ValueError(f"scorer must be one of {SCORERS}, got {scorer!r}")
    sentences = list(dict.fromkeys(s for p in pairs for s in (p.good, p.bad)))  # each once: identical ones tie exactly
    if scorer == "causal":
        scores = sentence_logprobs(model, tokenizer, sentences, batch_size, device, rule)
    else:
        scores = pll_logprobs(model, tokenizer, sentences, batch_size, device)
    score = dict(zip(sentences, scores))
    return [score[p.good] >= score[p.bad] for p in pairs]


# ---------------------------------------------------------------------------------------- results


def aggregate(pairs: Sequence[Pair], correct: Sequence[bool], pooled_fields: bool = False) -> dict:
    """Accuracy per paradigm, per field (the mean of its paradigms, or with `pooled_fields` its pairs
    pooled, as the BabyLM pipeline's FIELD ACCURACY) and overall (mean of paradigms)."""
    if len(pairs) != len(correct):
        raise ValueError(f"{len(pairs)} pairs but {len(correct)} decisions")
    if not pairs:
        raise ValueError("no pairs to aggregate")
    right: dict[str, list[bool]] = defaultdict(list)
    field_of: dict[str, str] = {}
    for pair, ok in zip(pairs, correct):
        right[pair.paradigm].append(bool(ok))
        field_of.setdefault(pair.paradigm, pair.field)
    paradigms = {p: sum(v) / len(v) for p, v in sorted(right.items())}
    by_field: dict[str, list[float]] = defaultdict(list)
    for p, acc in paradigms.items():
        by_field[field_of[p]] += right[p] if pooled_fields else [acc]
    return {
        "overall": sum(paradigms.values()) / len(paradigms),
        "fields": {f: sum(v) / len(v) for f, v in sorted(by_field.items())},
        "fields_pooled": pooled_fields,
        "paradigms": paradigms,
        "pairs": len(pairs),
        "counts": {p: len(right[p]) for p in paradigms},  # pairs per paradigm
        "field_of": {p: field_of[p] for p in paradigms},
        # one "1"/"0" per pair in the given order: bootstrap intervals over pairs need them
        "decisions": {p: "".join("1" if ok else "0" for ok in right[p]) for p in paradigms},
    }


def evaluate(model, tokenizer, pairs: Sequence[Pair], batch_size: int = 64, scorer: str = "causal",
             device=None, rule: str = DEFAULT_RULE) -> dict:
    """aggregate(score_pairs(...)) with the rule's field aggregation, plus the scorer's and rule's names."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    decisions = score_pairs(model, tokenizer, pairs, batch_size, scorer, device, rule)
    results = aggregate(pairs, decisions, pooled_fields=rule == "babylm")
    results["scorer"], results["rule"] = scorer, rule
    if scorer == "causal" and rule == "babylm":
        from babysweep.data.tokenizer import reads_bos

        results["first_word_scored"] = reads_bos(tokenizer)  # False: a tokenizer without a BOS template
    return results


def method(results: dict) -> str:
    """How a result was scored, e.g. "causal scorer, babylm rule"; results from before the rules
    existed (strict >, <s> + whitespace-collapsed text) say "rule not recorded"."""
    rule = results.get("rule")
    how = f"{results.get('scorer', 'causal')} scorer, {f'{rule} rule' if rule else 'rule not recorded'}"
    # a tokenizer that puts <s> first makes the babylm rule score the first word: not comparable with
    # results made without (older model folders, and every result from before the flag existed)
    return how + (", <s> read first" if results.get("first_word_scored") else "")


def check_comparable(methods: dict[str, str]) -> None:
    """Refuse (UserError) when BLiMP numbers to be compared were scored differently; `methods` maps
    a label (a run, a contender) to method(results)."""
    kinds = defaultdict(list)
    for label, how in methods.items():
        kinds[how].append(label)
    if len(kinds) > 1:
        parts = "; ".join(f"{', '.join(sorted(labels)[:3])}{' ...' if len(labels) > 3 else ''}: {how}"
                          for how, labels in sorted(kinds.items()))
        raise UserError(f"BLiMP numbers made with different scoring cannot be compared ({parts}); "
                        f"rescore with one rule (babysweep eval --rule) or compare them separately.")


def to_metrics(results: dict) -> dict[str, float]:
    out = {M.BLIMP_OVERALL: results["overall"]}
    out.update({M.blimp_field(f): acc for f, acc in results["fields"].items()})
    out.update({M.blimp_paradigm(p): acc for p, acc in results["paradigms"].items()})
    return out


def results_table(results: dict):
    """A rich table: each field (mean of its paradigms) followed by its paradigms, then overall."""
    from rich.table import Table

    table = Table(title=f"BLiMP ({method(results)})")
    table.add_column("field / paradigm")
    table.add_column("pairs", justify="right")
    table.add_column("accuracy", justify="right")
    counts = results.get("counts", {})
    field_of = results.get("field_of", {})
    for field, acc in results["fields"].items():
        members = [p for p in results["paradigms"] if field_of.get(p) == field]
        how = "pairs pooled" if results.get("fields_pooled") else "mean"
        table.add_row(f"[bold]{field}[/bold] ({len(members)} paradigms, {how})",
                      f"{sum(counts.get(p, 0) for p in members):,}", f"[bold]{acc:.3f}[/bold]")
        for p in members:
            table.add_row(f"  {p}", f"{counts.get(p, 0):,}", f"{results['paradigms'][p]:.3f}")
    table.add_section()
    table.add_row(f"[bold]overall[/bold] (mean of {len(results['paradigms'])} paradigms)",
                  f"{results['pairs']:,}", f"[bold]{results['overall']:.3f}[/bold]")
    return table


def save_results(results: dict, path: str | Path) -> Path:
    """Write the results as JSON; the file appears complete or not at all."""
    return write_text_atomic(path, json.dumps(results, indent=1, allow_nan=False) + "\n", "BLiMP results")


__all__ = ["Pair", "load_pairs", "json_rows", "subset", "score_pairs", "aggregate", "evaluate", "method", "check_comparable", "to_metrics",
           "results_table", "save_results"]
