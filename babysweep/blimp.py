"""BLiMP minimal pairs: read them, score a causal LM on them, aggregate and show the results.

    pairs = load_pairs("../shared/data/blimp")          # a folder of jsonl files, or one jsonl file
    results = evaluate(model, tokenizer, pairs)         # {"overall", "fields", "paradigms", "pairs", ...}
    metrics = to_metrics(results)                       # {"blimp/overall": .., "blimp/field/..": ..}
    console.print(results_table(results)); save_results(results, "out/blimp.json")
    sample = subset(pairs, per_paradigm=20, seed=0)     # the same seeded sample every epoch

Scoring rule (lm-evaluation-harness's loglikelihood with an empty context, the BabyLM pipeline's
rule for causal models): a sentence's score is the sum of its tokens' log-probabilities, each given
<s> (bos_token_id) and the tokens before it, with no length normalisation; a pair is right when
score(good) > score(bad), strictly. Sentences are encoded without special tokens and <s> is put
first here, as the corpus encoder feeds training lines. Two details of lm-eval's BLiMP *task* differ
on purpose: it scores " " + sentence (its default target_delimiter, a leading-space token with our
byte-level BPE, which our models never see after <s>), and its argmax counts a tie as right.

Batching: about `batch_size` sentences per forward pass. LLaMA and GPT-2 (sdpa or eager attention)
are scored as prefix tries: the sentences, sorted as token sequences, are packed into rows where
each distinct prefix is one position (position id = its length - 1) that attends to its own
prefixes only, so a prefix shared by the two sentences of a pair or by a paradigm's sentences is
computed once (on BLiMP a third of the positions), and only those positions go through the output
head (a third of the FLOPs of a small model). Other architectures: one right-padded row per
sentence, sorted by length, scored from their full logits. Either way each scored token sees
exactly the keys it sees alone, so batched and one-at-a-time scores agree to float rounding.

Truncation (no warning): the causal scorer scores at most the first max_position_embeddings tokens
of a sentence (the model reads <s> and all but the last scored token, as lm-eval feeds it); the PLL
scorer, which reads the whole sequence, keeps <s> and the first max_position_embeddings - 1 tokens.
The dropped tail is simply not scored. BLiMP's longest sentence is under 40 tokens.

scorer="pll" scores by pseudo-log-likelihood, for models trained with MLM phases: each token in
turn is replaced by <mask> and log p(token | all the others) is summed, with bidirectional
attention (objectives.bidirectional_mask). The masked token at position i is read from the logits
at position i (PLL_SHIFT = 0), as babysweep.objectives.mlm_loss trains it; <s> is never masked.

Results: accuracy per paradigm; per field the mean of its paradigms' accuracies; overall the mean
over paradigms (not over pairs, so every paradigm weighs the same). The one upstream file whose
field is spelled "syntax/semantics" counts as "syntax_semantics" (a "/" would also split the
metric name).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from babysweep import metrics as M
from babysweep.atomic import write_text_atomic
from babysweep.errors import UserError
from babysweep.objectives import bidirectional_mask

PLL_SHIFT = 0  # PLL reads the masked token at i from the logits at i - PLL_SHIFT (as mlm_loss trains)
SCORERS = ("causal", "pll")


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


def _read_file(path: Path) -> Iterator[Pair]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as UTF-8 text ({exc.__class__.__name__}).") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield _parse_row(line, path, number)


def _parse_row(line: str, path: Path, number: int) -> Pair:
    where = f"{path}, line {number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: is not valid JSON ({exc.msg}).") from None
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a JSON object with sentence_good and sentence_bad.")
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
    value = " ".join(value.split())  # line breaks and runs of spaces (BabyLM's supplement) -> one space
    if not value:
        raise UserError(f"{where}: {key!r} is empty.")
    return value


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


# ---------------------------------------------------------------------------------------- scoring


def sentence_logprobs(model, tokenizer, sentences: Sequence[str], batch_size: int = 64, device=None) -> list[float]:
    """Sum of log p(token | <s>, earlier tokens) per sentence; about `batch_size` sentences per forward pass.

    LLaMA and GPT-2 are scored as prefix tries (_trie_logprobs): a prefix shared by several sentences
    is read once. Other architectures take the padded path (_padded_logprobs)."""
    seqs = _encode(model, tokenizer, sentences, extra=1)
    with _scoring(model, device) as device:
        if _trie_ok(model):
            return _trie_logprobs(model, seqs, batch_size, device)
        return _padded_logprobs(model, seqs, _pad_id(tokenizer), batch_size, device)


def _padded_logprobs(model, seqs: list[list[int]], pad: int, batch_size: int, device) -> list[float]:
    """One right-padded row per sentence, rows sorted by length."""
    scores = [0.0] * len(seqs)
    for batch in _batches([len(s) for s in seqs], batch_size):
        # The last token is only a target: the model reads seq[:-1] (one position fewer per sentence).
        ids, keep = _pad([seqs[i][:-1] or seqs[i] for i in batch], pad, device)
        targets, scored = _pad([seqs[i][1:] for i in batch], pad, device, width=ids.shape[1])
        rows, cols = scored.nonzero(as_tuple=True)  # padding is never a target
        logp = _target_logprobs(model, ids, keep.long(), rows, cols, targets[rows, cols])
        sums = torch.zeros(len(batch), dtype=torch.float32, device=device).index_add_(0, rows, logp)
        for i, value in zip(batch, sums.tolist()):
            scores[i] = value
    return scores


# Prefix tries. Sentences sorted as token sequences are packed into rows; a row is a trie: one position
# per distinct prefix that is read (every prefix but whole sentences), position id = its depth (<s> at
# 0), attending only to its ancestors and itself. The two sentences of a minimal pair, and the
# sentences of a paradigm, often share their first tokens; those positions are computed once, and the
# output head runs once per read prefix, whatever the number of tokens that follow it.
# Scores equal the padded path's to float rounding: each position sees exactly the keys (same tokens,
# same positions) it sees there.
TRIE_ROW = 96  # read positions per row at most (unless one sentence needs more): attention is quadratic in it


@dataclass
class _TrieRow:
    tokens: list[int]   # per read position (distinct prefix): its last token
    parent: list[int]   # per read position: the position of the prefix one shorter (<s>: itself)
    depth: list[int]    # per read position: its position id
    targets: list[tuple[int, int]]  # distinct (read position, next token): one log-prob each
    ends: dict[int, list[int]]      # sentence -> indices into targets along its path


def _trie_ok(model) -> bool:
    """LLaMA or GPT-2 (exact types) attending with sdpa or eager, the two that take a custom 4D
    additive mask and position ids as given (transformers.masking_utils returns a 4D mask as is)."""
    return _head_split(model) is not None and getattr(model.config, "_attn_implementation", None) in ("sdpa", "eager")


def _trie_rows(seqs: list[list[int]], row_size: int) -> list[_TrieRow]:
    """The sentences (<s> + tokens) sorted as token sequences, packed greedily into rows of at most
    `row_size` read positions (a longer sentence gets a row of its own)."""
    order = sorted(range(len(seqs)), key=lambda i: seqs[i])  # neighbours share the longest prefixes
    rows: list[_TrieRow] = []
    row: _TrieRow | None = None
    node_of: dict[tuple[int, int], int] = {}    # (read position, next token) -> read position
    target_of: dict[tuple[int, int], int] = {}  # (read position, next token) -> index into targets
    for s in order:
        seq = seqs[s]
        if len(seq) < 2:
            continue  # <s> alone: nothing to score (0.0)
        if row is not None:
            if row.tokens[0] != seq[0]:
                row = None
            else:  # the read prefixes seq[:k], k = 2..len-1, not yet in this row are new positions
                node, k = 0, 1
                while k < len(seq) - 1 and node is not None:
                    node = node_of.get((node, seq[k]))
                    k += node is not None
                new = len(seq) - 1 - k
                if new and len(row.tokens) + new > row_size:
                    row = None
        if row is None:
            row = _TrieRow([seq[0]], [0], [0], [], {})
            node_of, target_of = {}, {}
            rows.append(row)
        node, path = 0, []
        for k in range(1, len(seq)):
            key = (node, seq[k])
            t = target_of.get(key)
            if t is None:
                t = target_of[key] = len(row.targets)
                row.targets.append(key)
            path.append(t)
            if k < len(seq) - 1:  # the whole sentence is never read
                child = node_of.get(key)
                if child is None:
                    child = node_of[key] = len(row.tokens)
                    row.tokens.append(seq[k])
                    row.parent.append(node)
                    row.depth.append(k)
                node = child
        row.ends[s] = path
    return rows


def _trie_batches(rows: list[_TrieRow], batch_size: int) -> Iterator[list[_TrieRow]]:
    """Rows of similar width together, about `batch_size` sentences per batch."""
    rows = sorted(rows, key=lambda r: -len(r.tokens))
    batch, count = [], 0
    for row in rows:
        if batch and count + len(row.ends) > max(1, batch_size):
            yield batch
            batch, count = [], 0
        batch.append(row)
        count += len(row.ends)
    if batch:
        yield batch


def _trie_logprobs(model, seqs: list[list[int]], batch_size: int, device) -> list[float]:
    scores = [0.0] * len(seqs)
    body, head = _head_split(model)
    dtype = next(model.parameters()).dtype
    for batch in _trie_batches(_trie_rows(seqs, TRIE_ROW), batch_size):
        width = max(len(r.tokens) for r in batch)
        n = len(batch)
        ids = torch.zeros(n, width, dtype=torch.long)
        pos = torch.zeros(n, width, dtype=torch.long)
        parent = torch.arange(width).repeat(n, 1)  # padding: its own parent, sees only itself
        for b, r in enumerate(batch):
            m = len(r.tokens)
            ids[b, :m] = torch.tensor(r.tokens)
            pos[b, :m] = torch.tensor(r.depth)
            parent[b, :m] = torch.tensor(r.parent)
        # position q sees itself and its ancestors: one parent step at a time, as deep as the deepest
        seen = torch.eye(width, dtype=torch.bool).repeat(n, 1, 1)
        anc = parent.clone()
        brow = torch.arange(n)[:, None].expand(n, width)
        qcol = torch.arange(width)[None, :].expand(n, width)
        for _ in range(int(pos.max())):
            seen[brow, qcol, anc] = True
            anc = parent.gather(1, anc)
        mask = torch.zeros(n, 1, width, width, dtype=dtype).masked_fill_(~seen[:, None], torch.finfo(dtype).min)
        hidden = body(input_ids=ids.to(device), attention_mask=mask.to(device),
                      position_ids=pos.to(device)).last_hidden_state
        # one head row per read position that some target needs (all of them: every read prefix has a next token)
        flat_rows = torch.cat([torch.full((len(r.tokens),), b, dtype=torch.long) for b, r in enumerate(batch)])
        flat_cols = torch.cat([torch.arange(len(r.tokens)) for r in batch])
        offsets = [0]
        for r in batch:
            offsets.append(offsets[-1] + len(r.tokens))
        src = torch.tensor([offsets[b] + p for b, r in enumerate(batch) for p, _ in r.targets], device=device)
        tgt = torch.tensor([t for r in batch for _, t in r.targets], device=device)
        picked = hidden[flat_rows.to(device), flat_cols.to(device)]
        logp = _gathered_logprobs(head, picked, src, tgt, _head_rows(model)).tolist()
        base = 0
        for r in batch:
            for s, path in r.ends.items():
                scores[s] = float(sum(logp[base + t] for t in path))
            base += len(r.targets)
    return scores


def _gathered_logprobs(head, hidden, src, tgt, chunk: int) -> torch.Tensor:
    """float32 log p(tgt[n]) from head(hidden[src[n]]); each hidden row goes through the head once,
    `chunk` rows per matmul."""
    out = torch.empty(len(tgt), dtype=torch.float32, device=hidden.device)
    order = torch.argsort(src, stable=True)
    src_sorted = src[order]
    starts = torch.arange(0, len(hidden) + chunk, chunk, device=hidden.device)
    bounds = torch.searchsorted(src_sorted, starts).tolist()
    for c, start in enumerate(range(0, len(hidden), chunk)):
        lo, hi = bounds[c], bounds[c + 1]
        if lo == hi:
            continue
        # log_softmax is one fused pass; logsumexp on CPU is several (3x slower on [1000, 8000])
        logp = head(hidden[start:start + chunk]).float().log_softmax(-1)
        idx = order[lo:hi]
        out[idx] = logp[src_sorted[lo:hi] - start, tgt[idx]]
    return out


def pll_logprobs(model, tokenizer, sentences: Sequence[str], batch_size: int = 64, device=None,
                 shift: int = PLL_SHIFT) -> list[float]:
    """Pseudo-log-likelihood: sum over tokens of log p(token | all other tokens, bidirectionally),
    the token replaced by <mask>. `batch_size` counts masked copies per forward pass."""
    mask_id = tokenizer.mask_token_id
    if mask_id is None:
        raise ValueError("pseudo-log-likelihood needs a tokenizer with a mask token")
    seqs = _encode(model, tokenizer, sentences)
    # One masked copy per (sentence, scored position); position 0 is <s> and is never scored.
    copies = [(s, pos) for s, seq in enumerate(seqs) for pos in range(max(1, shift), len(seq))]
    pad = _pad_id(tokenizer)
    scores = [0.0] * len(seqs)
    with _scoring(model, device) as device:
        dtype = getattr(model, "dtype", None) or next(model.parameters()).dtype
        for batch in _batches([len(seqs[s]) for s, _ in copies], batch_size):
            ids, keep = _pad([seqs[copies[c][0]] for c in batch], pad, device)
            rows = torch.arange(len(batch), device=device)
            pos = torch.tensor([copies[c][1] for c in batch], device=device)
            targets = ids[rows, pos]
            ids[rows, pos] = mask_id
            attn = bidirectional_mask(keep, dtype)  # every query sees every real key
            logp = _target_logprobs(model, ids, attn, rows, pos - shift, targets)
            for c, value in zip(batch, logp.tolist()):
                scores[copies[c][0]] += value
    return scores


HEAD_LOGITS = 1 << 23  # logits per output-head chunk (32 MB in float32): about 1,000 rows of an 8k vocabulary


def _head_rows(model) -> int:
    """Rows per output-head chunk: big enough for an efficient matmul, small enough for a laptop's memory."""
    return max(64, HEAD_LOGITS // max(1, model.config.vocab_size))


def _target_logprobs(model, ids, attention_mask, rows, cols, targets) -> torch.Tensor:
    """float32 log p(targets[n]) from the logits at (rows[n], cols[n]), n = 0..N-1.

    For LLaMA and GPT-2, whose logits are exactly lm_head(body(x).last_hidden_state), only the N
    wanted hidden states go through the output head, in chunks: the head is a third of this model
    size's FLOPs, and neither padding nor unscored positions pay for it. Other models: full logits.
    """
    split = _head_split(model)
    if split is None:
        picked = model(input_ids=ids, attention_mask=attention_mask).logits[rows, cols]
    else:
        body, head = split
        picked = body(input_ids=ids, attention_mask=attention_mask).last_hidden_state[rows, cols]
    out = []
    step = _head_rows(model)
    for start in range(0, len(targets), step):
        chunk = picked[start:start + step]
        logits = (chunk if split is None else head(chunk)).float()
        out.append(-F.cross_entropy(logits, targets[start:start + step], reduction="none"))  # log_softmax + gather
    return torch.cat(out) if out else torch.zeros(0, device=ids.device)


def _head_split(model):
    """(body, output head) for the architectures whose logits are head(body output), else None."""
    from transformers import GPT2LMHeadModel, LlamaForCausalLM

    if type(model) in (LlamaForCausalLM, GPT2LMHeadModel):  # exact types: a subclass may change forward
        return model.base_model, model.get_output_embeddings()
    return None


def score_pairs(model, tokenizer, pairs: Sequence[Pair], batch_size: int = 64, scorer: str = "causal",
                device=None) -> list[bool]:
    """One decision per pair: score(good) > score(bad). Both sentences of all pairs share batches."""
    if scorer not in SCORERS:
        raise ValueError(f"scorer must be one of {SCORERS}, got {scorer!r}")
    fn = sentence_logprobs if scorer == "causal" else pll_logprobs
    scores = fn(model, tokenizer, [p.good for p in pairs] + [p.bad for p in pairs], batch_size, device)
    n = len(pairs)
    return [scores[i] > scores[n + i] for i in range(n)]


def _encode(model, tokenizer, sentences: Sequence[str], extra: int = 0) -> list[list[int]]:
    """<s> + tokens per sentence, one batch tokenizer call; at most max positions + `extra` tokens."""
    bos = tokenizer.bos_token_id
    if bos is None:
        raise ValueError("BLiMP scoring needs a tokenizer with a bos token (<s> goes before each sentence)")
    max_len = getattr(model.config, "max_position_embeddings", None) or None
    encoded = tokenizer(list(sentences), add_special_tokens=False)["input_ids"] if sentences else []
    limit = max_len + extra if max_len else None
    return [([bos] + ids)[:limit] for ids in encoded]


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # never attended to


def _batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices in batches of similar length, longest first (an out-of-memory shows at once)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), max(1, batch_size)):
        yield order[start:start + batch_size]


def _pad(seqs: list[list[int]], pad: int, device, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids [B, L] and a bool mask of real tokens. Right padding leaves every real
    token's position id unchanged, for models that count positions from 0 whatever the mask."""
    width = width or max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    keep = torch.zeros((len(seqs), width), dtype=torch.bool)
    for row, seq in enumerate(seqs):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        keep[row, :len(seq)] = True
    return ids.to(device), keep.to(device)


@contextmanager
def _scoring(model, device):
    """inference_mode and eval mode (no dropout) for the duration; the model's mode comes back after.
    Yields the device for the inputs: `device`, else the model's."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield torch.device(device) if device is not None else next(model.parameters()).device
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------------------- results


def aggregate(pairs: Sequence[Pair], correct: Sequence[bool]) -> dict:
    """Accuracy per paradigm, per field (mean of its paradigms) and overall (mean of paradigms)."""
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
        by_field[field_of[p]].append(acc)
    return {
        "overall": sum(paradigms.values()) / len(paradigms),
        "fields": {f: sum(v) / len(v) for f, v in sorted(by_field.items())},
        "paradigms": paradigms,
        "pairs": len(pairs),
        "counts": {p: len(right[p]) for p in paradigms},  # pairs per paradigm
        "field_of": {p: field_of[p] for p in paradigms},
        # one "1"/"0" per pair in the given order: bootstrap intervals over pairs need them
        "decisions": {p: "".join("1" if ok else "0" for ok in right[p]) for p in paradigms},
    }


def evaluate(model, tokenizer, pairs: Sequence[Pair], batch_size: int = 64, scorer: str = "causal",
             device=None) -> dict:
    """aggregate(score_pairs(...)), plus the scorer's name."""
    results = aggregate(pairs, score_pairs(model, tokenizer, pairs, batch_size, scorer, device))
    results["scorer"] = scorer
    return results


def to_metrics(results: dict) -> dict[str, float]:
    out = {M.BLIMP_OVERALL: results["overall"]}
    out.update({M.blimp_field(f): acc for f, acc in results["fields"].items()})
    out.update({M.blimp_paradigm(p): acc for p, acc in results["paradigms"].items()})
    return out


def results_table(results: dict):
    """A rich table: each field (mean of its paradigms) followed by its paradigms, then overall."""
    from rich.table import Table

    table = Table(title=f"BLiMP ({results.get('scorer', 'causal')} scorer)")
    table.add_column("field / paradigm")
    table.add_column("pairs", justify="right")
    table.add_column("accuracy", justify="right")
    counts = results.get("counts", {})
    field_of = results.get("field_of", {})
    for field, acc in results["fields"].items():
        members = [p for p in results["paradigms"] if field_of.get(p) == field]
        table.add_row(f"[bold]{field}[/bold] ({len(members)} paradigms)",
                      f"{sum(counts.get(p, 0) for p in members):,}", f"[bold]{acc:.3f}[/bold]")
        for p in members:
            table.add_row(f"  {p}", f"{counts.get(p, 0):,}", f"{results['paradigms'][p]:.3f}")
    table.add_section()
    table.add_row(f"[bold]overall[/bold] (mean of {len(results['paradigms'])} paradigms)",
                  f"{results['pairs']:,}", f"[bold]{results['overall']:.3f}[/bold]")
    return table


def save_results(results: dict, path: str | Path) -> Path:
    """Write the results as JSON; the file appears complete or not at all."""
    return write_text_atomic(path, json.dumps(results, indent=1, allow_nan=False) + "\n")


__all__ = ["Pair", "load_pairs", "subset", "sentence_logprobs", "pll_logprobs", "score_pairs", "aggregate",
           "evaluate", "to_metrics", "results_table", "save_results", "PLL_SHIFT"]
