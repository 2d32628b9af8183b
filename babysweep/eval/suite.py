"""BabyLM's zero-shot suite, scored as the BabyLM 2025 pipeline's causal backend scores it.

    results = evaluate(model, tokenizer, "~/babylm/evaluation_data/full_eval")   # every task found
    results = evaluate(model, tokenizer, DIR, tasks=["entity_tracking"])         # one task
    results["tasks"]["ewok"]["score"], results["macro"]; console.print(summary_table(results))

Belongs in eval/ (next to blimp.py, whose scorer it reuses). The reference is
babylm/evaluation-pipeline-2025 at bf55c11, `evaluation_pipeline/sentence_zero_shot` (the causal
backend at temperature 1) and `evaluation_pipeline/reading`; docs/babylm-suite.md lists every rule
and the few places where we differ on purpose.

DIR has the layout of the pipeline's evaluation_data/full_eval: one folder per task (TASKS); a task
whose folder is missing is skipped (`skipped` in the results).

Choice tasks (BLiMP, its supplement, EWoK, entity tracking, WUG): each option is a whole sentence
(prefix + completion) read with the tokenizer's own special tokens; its score is the summed
log-probability of the tokens after the first whose character span ends after the prefix (the
completion, plus the token that straddles the boundary). The chosen option is the first of the
highest scores; an item is right when it is option 0. Accuracy per UID (x100); the task's score is
the mean over UIDs, for entity tracking the mean over its three splits of the mean over their UIDs.
WUG: the softmax over the options' scores gives option 0's probability; the score is Spearman's rho
between those and the human ratios (x100, as calculate_results_from_pred prints it).
Reading: each word's surprisal -log p(word | its context), a word of several tokens read token by
token with the context re-tokenized after each as the pipeline does; then the pipeline's
regressions (R2 gained over a baseline without surprisal, relative to what the baseline leaves:
eye tracking averaged over 4 measures, self-paced reading with spillover predictors).

All options of all items of a task go through blimp's prefix trie together: options that share a
prefix (entity tracking's five share a long one, reading's words share their sentence) read it once.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from babysweep.eval import logprobs as B
from babysweep.eval.blimp import json_rows
from babysweep.core.errors import UserError

PIPELINE_COMMIT = "bf55c11"  # babylm/evaluation-pipeline-2025, the version every rule here was read from


@dataclass(frozen=True)
class Item:
    sentences: tuple[str, ...]    # one full text per option; option 0 is the right one
    completions: tuple[str, ...]  # the scored tail of each sentence
    uid: str
    ratio: float | None = None    # WUG: the human ratio


# ---------------------------------------------------------------------------------------- reading


def _jsonl(folder: Path) -> Iterator[tuple[Path, int, dict]]:
    files = sorted(p for p in folder.glob("*.jsonl") if p.is_file())
    if not files:
        raise UserError(f"{folder}: holds no .jsonl file.")
    for path in files:
        for number, row in json_rows(path):
            yield path, number, row


def _get(row: dict, key: str, path: Path, number: int, kind=str):
    value = row.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UserError(f"{path}, line {number}: {key!r} is missing or not a {getattr(kind, '__name__', 'value')}.")
    return value


def read_blimp(folder: Path) -> list[Item]:
    """BLiMP and its supplement: the UID of a row with a 'field', else the file's name."""
    items = []
    for path, n, row in _jsonl(folder):
        good, bad = _get(row, "sentence_good", path, n), _get(row, "sentence_bad", path, n)
        uid = _get(row, "UID", path, n) if "field" in row else path.stem
        items.append(Item((good, bad), (good, bad), uid))
    return items


def read_ewok(folder: Path) -> list[Item]:
    """EWoK: Context1 + " " + Target1 against Context1 + " " + Target2; " " + target is scored."""
    items = []
    for path, n, row in _jsonl(folder):
        context, t1, t2 = (_get(row, k, path, n) for k in ("Context1", "Target1", "Target2"))
        items.append(Item((f"{context} {t1}", f"{context} {t2}"), (" " + t1, " " + t2), _get(row, "Domain", path, n)))
    return items


def read_entity_tracking(folder: Path) -> list[Item]:
    """Entity tracking: input_prefix + each option, options scored; UID '<file>_<numops>_ops'."""
    items = []
    for path, n, row in _jsonl(folder):
        prefix, options = _get(row, "input_prefix", path, n), _get(row, "options", path, n, list)
        if not options or not all(isinstance(o, str) for o in options):
            raise UserError(f"{path}, line {n}: 'options' must be a non-empty list of strings.")
        numops = _get(row, "numops", path, n, int)
        items.append(Item(tuple(prefix + o for o in options), tuple(options), f"{path.stem}_{numops}_ops"))
    return items


def _read_wug(uid: str) -> Callable[[Path], list[Item]]:
    def read(folder: Path) -> list[Item]:
        items = []
        for path, n, row in _jsonl(folder):
            sentences = tuple(_get(row, "sentences", path, n).split("\t"))
            ratio = row.get("ratio")
            try:
                ratio = float(ratio)
            except (TypeError, ValueError):
                raise UserError(f"{path}, line {n}: 'ratio' must be a number.") from None
            items.append(Item(sentences, sentences, uid, ratio))
        return items
    return read


@dataclass(frozen=True)
class Task:
    folder: str   # under DIR, as in the pipeline's evaluation_data/full_eval
    kind: str     # "choice", "wug" or "reading"
    read: Callable[[Path], list] | None = None


TASKS: dict[str, Task] = {
    "blimp": Task("blimp_filtered", "choice", read_blimp),
    "supplement": Task("supplement_filtered", "choice", read_blimp),
    "ewok": Task("ewok_filtered", "choice", read_ewok),
    "entity_tracking": Task("entity_tracking", "choice", read_entity_tracking),
    "wug_adj": Task("wug_adj_nominalization", "wug", _read_wug("wug_adj")),
    "wug_past": Task("wug_past_tense", "wug", _read_wug("wug_past")),
    "reading": Task("reading", "reading"),
}
ENTITY_SPLITS = ("regular", "ambiref", "move_contents")


# ---------------------------------------------------------------------------------------- scoring


def encode_options(tokenizer, sentences: Sequence[str], completions: Sequence[str]) -> list[tuple[tuple, tuple]]:
    """(token ids, scored flags of tokens 1..) per option, as the pipeline's process_causal_sentences
    and causal collate do: the tokenizer's own template, token k >= 1 scored when its span ends after
    len(sentence) - len(completion) + the first token's start."""
    if not sentences:
        return []
    out = []
    for ids, offsets, sentence, completion in zip(*_encode(tokenizer, sentences), sentences, completions):
        start = len(sentence) - len(completion) + (offsets[0][0] if offsets else 0)
        out.append((tuple(ids), tuple(end > start for _, end in offsets[1:])))
    return out


def _encode(tokenizer, texts: Sequence[str]) -> tuple[list, list]:
    """(ids, offsets) per text, the template's special tokens included, as tokenizer(texts,
    return_offsets_mapping=True) gives them; through the Rust tokenizer directly when the tokenizer is
    babysweep's (transformers' per-text conversion costs more than the encoding itself)."""
    from transformers import PreTrainedTokenizerFast

    if type(tokenizer) is PreTrainedTokenizerFast:  # exactly: a subclass may change what __call__ returns
        encs = tokenizer.backend_tokenizer.encode_batch(list(texts), add_special_tokens=True)
        return [e.ids for e in encs], [e.offsets for e in encs]
    enc = tokenizer(list(texts), return_offsets_mapping=True)
    return enc["input_ids"], enc["offset_mapping"]


def _check_length(model, encoded, task: str) -> None:
    """The pipeline never truncates; a model with learned positions cannot read past its table."""
    from transformers import LlamaForCausalLM

    if isinstance(model, LlamaForCausalLM):
        return  # rotary positions: any length is read, as the pipeline reads it
    limit = getattr(model.config, "max_position_embeddings", None)
    longest = max((len(ids) for ids, _ in encoded), default=0)
    if limit and longest - 1 > limit:
        raise UserError(f"{task}: an option needs {longest - 1} positions but the model reads at most {limit} "
                        f"(config.json max_position_embeddings); the pipeline could not score it either.")


def _scores(model, tokenizer, encoded, batch_size: int, task: str) -> list[float]:
    _check_length(model, encoded, task)
    longest = max((len(ids) for ids, _ in encoded), default=0)
    # a row wide enough for a few options that share a long prefix (entity tracking's, reading's)
    return B.score_encoded(model, encoded, B._pad_id(tokenizer), batch_size, row_size=max(B.TRIE_ROW, 2 * longest))


def _choose(scores: Sequence[float]) -> int:
    """torch.max's index: the first of the highest."""
    best = 0
    for i, s in enumerate(scores):
        if s > scores[best]:
            best = i
    return best


def score_choice(model, tokenizer, items: Sequence[Item], batch_size: int = 64, task: str = "") -> list[list[float]]:
    flat_s = [s for it in items for s in it.sentences]
    flat_c = [c for it in items for c in it.completions]
    scores = _scores(model, tokenizer, encode_options(tokenizer, flat_s, flat_c), batch_size, task)
    out, k = [], 0
    for it in items:
        out.append(scores[k:k + len(it.sentences)])
        k += len(it.sentences)
    return out


def _accuracies(items: Sequence[Item], chosen: Sequence[int]) -> tuple[dict, dict]:
    right: dict[str, list[bool]] = defaultdict(list)
    for it, c in zip(items, chosen):
        right[it.uid].append(c == 0)
    per_uid = {u: 100.0 * sum(v) / len(v) for u, v in right.items()}
    decisions = {u: "".join("1" if ok else "0" for ok in v) for u, v in right.items()}
    return per_uid, decisions


def evaluate_choice(model, tokenizer, items: Sequence[Item], name: str, batch_size: int = 64) -> dict:
    scores = score_choice(model, tokenizer, items, batch_size, name)
    chosen = [_choose(s) for s in scores]
    per_uid, decisions = _accuracies(items, chosen)
    if name == "entity_tracking":
        splits = {}
        for split in ENTITY_SPLITS:
            keys = [u for u in per_uid if u.startswith(split)]
            if keys:
                splits[split] = sum(per_uid[k] for k in keys) / len(keys)
        score = sum(splits.values()) / len(splits)
    else:
        splits = None
        score = sum(per_uid.values()) / len(per_uid)
    out = {"score": score, "uids": per_uid, "decisions": decisions, "items": len(items)}
    if splits is not None:
        out["splits"] = splits
    return out


def evaluate_wug(model, tokenizer, items: Sequence[Item], name: str, batch_size: int = 64) -> dict:
    import torch
    from scipy.stats import spearmanr

    scores = score_choice(model, tokenizer, items, batch_size, name)
    probs, chosen = [], []
    for s in scores:
        t = torch.tensor(s, dtype=torch.float32)  # the pipeline stacks float32 sums and softmaxes them
        probs.append(float(torch.softmax(t, dim=0)[0]))
        chosen.append(_choose(t.tolist()))
    rho = float(spearmanr(probs, [it.ratio for it in items])[0])
    per_uid, decisions = _accuracies(items, chosen)
    return {"score": 100.0 * rho, "spearman": rho, "uids": per_uid, "decisions": decisions,
            "probs": probs, "items": len(items)}


# ---------------------------------------------------------------------------------------- reading


READING_RT = ("RTfirstfix", "RTfirstpass", "RTgopast", "RTrightbound")
READING_BASE = ("Subtlex_log10", "length", "context_length")
READING_SPILL = ("Subtlex_log10", "length", "context_length", "prev_length", "prev_pred")


def _word_queries(tokenizer, context: str, word: str) -> list[tuple[str, int]]:
    """The pipeline's get_p2: (context text, target token id) per token of the word; after each token
    the context grows by its decoded text and is tokenized again."""
    target = tokenizer(word, add_special_tokens=False)["input_ids"]
    if not target:
        raise UserError(f"reading: the word {word!r} encodes to no token.")
    queries = [(context, target[0])]
    text = context + tokenizer.decode(target[0])
    for token in target[1:]:
        piece = tokenizer.decode(token)
        queries.append((text, tokenizer(piece, add_special_tokens=False)["input_ids"][0]))
        text += piece
    return queries


def surprisals(model, tokenizer, pairs: Sequence[tuple[str, str]], batch_size: int = 64) -> list[float]:
    """-log p(word | context) per (context, word), p the product of its tokens' probabilities."""
    per_pair = [_word_queries(tokenizer, c, w) for c, w in pairs]
    contexts = list(dict.fromkeys(c for qs in per_pair for c, _ in qs))
    ids = dict(zip(contexts, _encode(tokenizer, contexts)[0])) if contexts else {}
    keys = list(dict.fromkeys((c, t) for qs in per_pair for c, t in qs))
    encoded = [(tuple(ids[c]) + (t,), (False,) * (len(ids[c]) - 1) + (True,)) for c, t in keys]
    logp = dict(zip(keys, _scores(model, tokenizer, encoded, batch_size, "reading")))
    return [-sum(logp[q] for q in qs) for qs in per_pair]  # -log of the product of the tokens' p


def _r2(y, columns) -> float:
    """OLS with an intercept, as statsmodels' rsquared (1 - SSR / centred TSS)."""
    import numpy as np

    X = np.column_stack([np.ones(len(y))] + list(columns))
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    return float(1.0 - resid @ resid / ((y - y.mean()) @ (y - y.mean())))


def _design(df, names: Sequence[str]):
    """Main effects then every pairwise interaction, in the formula's order."""
    cols = [df[n].to_numpy(float) for n in names]
    cols += [df[a].to_numpy(float) * df[b].to_numpy(float) for i, a in enumerate(names) for b in names[i + 1:]]
    return cols


def _gain(df, dv: str, names: Sequence[str]) -> float:
    base = df[[dv, *names]].dropna()
    full = df[["pred", dv, *names]].dropna()
    r2_base = _r2(base[dv].to_numpy(float), _design(base, names))
    r2_full = _r2(full[dv].to_numpy(float), _design(full, names) + [full["pred"].to_numpy(float)])
    return (r2_full - r2_base) / (1 - r2_base) * 100


def evaluate_reading(model, tokenizer, folder: Path, batch_size: int = 64) -> dict:
    import pandas as pd

    path = folder / "reading_data.csv"
    if not path.is_file():
        raise UserError(f"{path}: no such file (the reading task's data).")
    df = pd.read_csv(path, dtype={"item": str})
    missing = [c for c in ("item", "word", "prev_item", "prev_word", "self_paced_reading_time", *READING_RT,
                           *READING_SPILL[:4]) if c not in df.columns]
    if missing:
        raise UserError(f"{path}: has no column {missing[0]!r}.")
    df["item"] = df["item"].fillna("None")
    pairs = list(zip(df["item"], df["word"].astype(str)))
    prev = [i for i, v in enumerate(df["prev_item"]) if isinstance(v, str)]
    values = surprisals(model, tokenizer, pairs + [(df["prev_item"][i], str(df["prev_word"][i])) for i in prev], batch_size)
    df["pred"] = values[:len(pairs)]
    prev_pred = [float("nan")] * len(df)
    for i, v in zip(prev, values[len(pairs):]):
        prev_pred[i] = v
    df["prev_pred"] = prev_pred
    eye = sum(_gain(df, dv, READING_BASE) for dv in READING_RT) / len(READING_RT)
    spr = _gain(df, "self_paced_reading_time", READING_SPILL)
    return {"score": (eye + spr) / 2, "eye_tracking": eye, "self_paced_reading": spr,
            "surprisal": df["pred"].tolist(), "prev_surprisal": prev_pred, "items": len(df)}


# ---------------------------------------------------------------------------------------- the suite


def evaluate(model, tokenizer, data_dir: str | Path, tasks: Sequence[str] | None = None, batch_size: int = 64,
             on_skip: Callable[[str], None] | None = None) -> dict:
    """Every task of TASKS (or `tasks`) whose folder is in `data_dir`; {"tasks": {name: result},
    "skipped": [...], "macro": mean of the leaderboard numbers (columns()), "pipeline": commit}."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: no such folder (--data: the suite's evaluation data, full_eval's layout).")
    names = list(tasks) if tasks else list(TASKS)
    for n in names:
        if n not in TASKS:
            raise UserError(f"--task: unknown task {n!r}; expected one of {', '.join(TASKS)}.")
    out, skipped = {}, []
    for name in names:
        task = TASKS[name]
        folder = root / task.folder
        if not folder.is_dir():
            skipped.append(name)
            if on_skip:
                on_skip(f"{name}: skipped, {folder} is missing")
            continue
        start, cpu = time.perf_counter(), time.process_time()
        if task.kind == "reading":
            out[name] = evaluate_reading(model, tokenizer, folder, batch_size)
        else:
            items = task.read(folder)
            if not items:
                raise UserError(f"{folder}: holds no item.")
            run = evaluate_wug if task.kind == "wug" else evaluate_choice
            out[name] = run(model, tokenizer, items, name, batch_size)
        out[name]["seconds"] = time.perf_counter() - start  # reading the data and scoring, not loading the model
        out[name]["cpu_seconds"] = time.process_time() - cpu  # all threads: on a shared machine, the work done
    from babysweep.data.tokenizer import reads_bos

    cols = columns({"tasks": out})
    # False for a model folder saved before babysweep's tokenizers put <s> first: every option's first
    # token is then context only (no sentence's first word is scored), in the pipeline as here
    return {"tasks": out, "skipped": skipped, "first_word_scored": reads_bos(tokenizer), "macro": sum(cols.values()) / len(cols) if cols else None,
            "columns": cols, "pipeline": f"babylm/evaluation-pipeline-2025@{PIPELINE_COMMIT}", "scorer": "causal"}


def columns(results: dict) -> dict[str, float]:
    """The numbers calculate_results_from_pred prints, one per leaderboard column (reading gives two)."""
    cols = {}
    for name, r in results["tasks"].items():
        if name == "reading":
            cols["reading_spr"], cols["reading_et"] = r["self_paced_reading"], r["eye_tracking"]
        else:
            cols[name] = r["score"]
    return cols


CHECKPOINT_NAME = re.compile(r"chck_(\d+)M")  # BabyLM's intermediate checkpoints: chck_1M ... chck_1000M


def checkpoint_folders(folder: str | Path) -> list[tuple[int, Path]]:
    """(millions of words, folder) of each chck_<n>M model folder (one with a config.json) in `folder`, in word order."""
    found = []
    for path in Path(folder).expanduser().iterdir() if Path(folder).expanduser().is_dir() else ():
        match = CHECKPOINT_NAME.fullmatch(path.name)
        if match and (path / "config.json").is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def evaluate_checkpoints(folder: str | Path, data_dir: str | Path, tasks: Sequence[str] | None = None,
                         batch_size: int = 64, device: str = "cpu", on_skip: Callable[[str], None] | None = None) -> dict:
    """The suite on every chck_<n>M folder of `folder`, in word order: {"checkpoints": [{"name", "words_m",
    **evaluate's results}]}. A task missing from data_dir is said once."""
    from babysweep.lm.models import load_model

    found = checkpoint_folders(folder)
    if not found:
        raise UserError(f"{folder}: holds no chck_<n>M model folder (BabyLM's checkpoint names).")
    rows = []
    for n, path in found:
        model, tok = load_model(path, device)
        said = on_skip if not rows else None
        rows.append({"name": path.name, "words_m": n, **evaluate(model, tok, data_dir, tasks, batch_size, on_skip=said)})
    return {"checkpoints": rows}


def checkpoints_table(results: dict):
    """One row per checkpoint: its leaderboard columns and the macro average."""
    from rich.table import Table

    rows = results["checkpoints"]
    cols = list(dict.fromkeys(c for r in rows for c in r["columns"]))
    table = Table(title=f"BabyLM zero-shot suite per checkpoint (as {rows[0]['pipeline']}, causal, temperature 1)")
    for c in ("checkpoint", "words", *cols, "macro"):
        table.add_column(c, justify="left" if c == "checkpoint" else "right")
    for r in rows:
        cells = [f"{r['columns'][c]:.2f}" if c in r["columns"] else "–" for c in cols]
        table.add_row(r["name"], f"{r['words_m']}M", *cells, "–" if r["macro"] is None else f"{r['macro']:.2f}")
    return table


def summary_table(results: dict):
    from rich.table import Table

    table = Table(title=f"BabyLM zero-shot suite (as {results['pipeline']}, causal, temperature 1)")
    for c in ("task", "items", "score"):
        table.add_column(c, justify="left" if c == "task" else "right")
    for name, r in results["tasks"].items():
        if name == "reading":
            table.add_row("reading: self-paced (R2 gain %)", f"{r['items']:,}", f"{r['self_paced_reading']:.2f}")
            table.add_row("reading: eye tracking (R2 gain %)", f"{r['items']:,}", f"{r['eye_tracking']:.2f}")
        else:
            what = "Spearman x100" if "spearman" in r else "accuracy %"
            table.add_row(f"{name} ({what})", f"{r['items']:,}", f"{r['score']:.2f}")
    if results["macro"] is not None:
        table.add_section()
        table.add_row(f"[bold]macro average[/bold] ({len(results['columns'])} columns)", "", f"[bold]{results['macro']:.2f}[/bold]")
    return table


__all__ = ["Item", "TASKS", "PIPELINE_COMMIT", "read_blimp", "read_ewok", "read_entity_tracking", "encode_options",
           "score_choice", "evaluate_choice", "evaluate_wug", "surprisals", "evaluate_reading", "evaluate", "columns",
           "summary_table", "checkpoint_folders", "evaluate_checkpoints", "checkpoints_table"]
