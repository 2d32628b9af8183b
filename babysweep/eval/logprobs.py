"""BLiMP minimal pairs: read them, score a causal LM on them, aggregate and show the results.

    pairs = load_pairs("../shared/data/blimp")          # a folder of jsonl files, or one jsonl file
    results = evaluate(model, tokenizer, pairs)         # {"overall", "fields", "paradigms", "pairs", ...}
    metrics = to_metrics(results)                       # {"blimp/overall": .., "blimp/field/..": ..}
    console.print(results_table(results)); save_results(results, "out/blimp.json")
    sample = subset(pairs, per_paradigm=20, seed=0)     # the same seeded sample every epoch

Two rules for the causal scorer (`rule=`, `eval.rule`, `babysweep eval --rule`), each the code of a
reference as read (commits in docs/blimp-rules.md); a sentence's score is a sum of token
log-probabilities, no length normalisation; a pair is right when score(good) >= score(bad): both
references count a tie as right (BLiMP has pairs whose two sentences are identical).
- "babylm" (default): the BabyLM 2025 evaluation pipeline's causal backend (evaluation-pipeline-2025,
  sentence_zero_shot). The sentence as it is in the file, tokenized with the tokenizer's own special
  tokens (`tokenizer(sentence)`): [BOS] + sentence for a tokenizer whose template adds BOS (LLaMA's),
  the bare sentence for one that adds none (babysweep's own, GPT-2's). The first token is context
  only, so without a BOS the first word is not scored; trailing special tokens are not scored.
  Accuracy per paradigm (UID), overall the mean over paradigms, per field the field's pairs pooled.
- "lm-eval": lm-evaluation-harness 0.4's blimp_* tasks: an empty context, so the model's prefix token
  (bos_token_id, else eos_token_id) is read first, then the continuation " " + sentence (the task's
  target_delimiter) encoded without special tokens is scored whole. Overall and fields: means of
  paradigms (lm-eval's blimp group averages its tasks unweighted).
With babysweep's tokenizer the two differ in <s> (lm-eval only), the leading-space token (lm-eval
only: byte-level BPE encodes " The" and "The" differently) and the first word's score (babylm
leaves it out).

Batching: about `batch_size` sentences per forward pass. LLaMA and GPT-2 (sdpa or eager attention)
are scored as prefix tries: the sentences, sorted as token sequences, are packed into rows where
each distinct prefix is one position (position id = its length - 1) that attends to its own
prefixes only, so a prefix shared by the two sentences of a pair or by a paradigm's sentences is
computed once (on BLiMP a third of the positions), and only those positions go through the output
head (a third of the FLOPs of a small model). Other architectures: one right-padded row per
sentence, sorted by length, scored from their full logits. Either way each scored token sees
exactly the keys it sees alone, so batched and one-at-a-time scores agree to float rounding.

Truncation (no warning, ours alone): the causal scorer keeps the first max_position_embeddings + 1
tokens, context included (the model reads all but the last); lm-eval would cut from the left and
the pipeline not at all. The PLL scorer, which reads the whole sequence, keeps <s> and the first
max_position_embeddings - 1 tokens. BLiMP's longest sentence is under 40 tokens.

scorer="pll" scores by pseudo-log-likelihood, for models trained with MLM phases: each token in
turn is replaced by <mask> and log p(token | all the others) is summed, with bidirectional
attention (objectives.bidirectional_mask). The masked token at position i is read from the logits
at position i (PLL_SHIFT = 0), as babysweep.lm.objectives.mlm_loss trains it; <s> is never masked.
The BabyLM pipeline's `mlm` backend is the same method for encoders (AutoModelForMaskedLM, which our
decoders are not): it masks one token at a time and reads it at its own position too, but over the
tokenizer's own template and with the model's own attention; its `mntp` backend reads at i - 1.
PLL has no rule: it always reads <s> + sentence.

Results: accuracy per paradigm; overall the mean over paradigms (not over pairs, so every paradigm
weighs the same); per field as the rule says; per-pair decisions by paradigm in file order; the
scorer and rule by name (results from different ones are not compared: check_comparable). The one upstream file whose
field is spelled "syntax/semantics" counts as "syntax_semantics" (a "/" would also split the
metric name).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence
import torch
import torch.nn.functional as F
from babysweep.lm.objectives import bidirectional_mask



PLL_SHIFT = 0  # PLL reads the masked token at i from the logits at i - PLL_SHIFT (as mlm_loss trains)
SCORERS = ("causal", "pll")
RULES = ("babylm", "lm-eval")  # how the causal scorer reads a sentence: see the module docstring
DEFAULT_RULE = "babylm"

# ---------------------------------------------------------------------------------------- scoring


def sentence_logprobs(model, tokenizer, sentences: Sequence[str], batch_size: int = 64, device=None,
                      rule: str = DEFAULT_RULE) -> list[float]:
    """Each sentence's score under `rule` (see the module docstring); about `batch_size` sentences per pass.

    LLaMA and GPT-2 are scored as prefix tries (_trie_logprobs): a prefix shared by several sentences
    is read once. Other architectures take the padded path (_padded_logprobs). Sentences that encode
    identically are scored once, so they get exactly the same score (a tie)."""
    return score_encoded(model, encode(model, tokenizer, sentences, rule), _pad_id(tokenizer), batch_size, device)


def score_encoded(model, encoded: Sequence[tuple[tuple, tuple]], pad: int, batch_size: int = 64, device=None,
                  row_size: int = 0) -> list[float]:
    """Each (token ids, which tokens after the first are scored) pair's summed log-probability, as
    sentence_logprobs scores them (a trie for LLaMA and GPT-2, else padded rows); equal pairs are
    scored once. `row_size`: read positions per trie row (default TRIE_ROW); a row may then hold
    several long sequences that share a prefix, whose shared positions are computed once."""
    keys = list(dict.fromkeys(encoded))  # distinct (tokens, scored) in first-seen order
    seqs, masks = [list(k[0]) for k in keys], [k[1] for k in keys]
    with _scoring(model, device) as device:
        if _trie_ok(model):
            scores = _trie_logprobs(model, seqs, masks, batch_size, device, row_size or TRIE_ROW)
        else:
            scores = _padded_logprobs(model, seqs, masks, pad, batch_size, device)
    index = {k: i for i, k in enumerate(keys)}
    return [scores[index[e]] for e in encoded]


def encode(model, tokenizer, sentences: Sequence[str], rule: str = DEFAULT_RULE) -> list[tuple[tuple, tuple]]:
    """Per sentence (token ids read and scored, which of the tokens after the first are scored), under
    `rule`. The first token is always context. At most max_position_embeddings + 1 tokens are kept
    (the model reads all but the last): a longer sentence loses its tail, unscored, here and only here."""
    return encode_ids(tokenizer, sentences, rule, getattr(model.config, "max_position_embeddings", None) or None)


def encode_ids(tokenizer, sentences: Sequence[str], rule: str = DEFAULT_RULE, max_len: int | None = None) -> list[tuple[tuple, tuple]]:
    """encode() for any scorer of token sequences (an n-gram model too): at most max_len + 1 tokens kept."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    sentences = list(sentences)
    if rule == "lm-eval":
        # lm-eval 0.4's empty context: [prefix_token_id] (BOS, else EOS) + the continuation encoded
        # without special tokens; when the continuation already starts with that token, that token is the context.
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if prefix is None:
            raise ValueError("the lm-eval rule needs a tokenizer with a bos or eos token (its empty-context prefix)")
        conts = tokenizer([" " + s for s in sentences], add_special_tokens=False)["input_ids"] if sentences else []
        seqs = [c if c and c[0] == prefix else [prefix] + c for c in conts]
        masks = [None] * len(seqs)
    else:
        seqs, masks = _babylm_tokens(tokenizer, sentences)
    out = []
    for seq, mask in zip(seqs, masks):
        seq = seq[:max_len + 1] if max_len else seq
        mask = tuple(mask[:len(seq) - 1]) if mask is not None else (True,) * max(0, len(seq) - 1)
        out.append((tuple(seq), mask))
    return out


def _babylm_tokens(tokenizer, sentences: list[str]) -> tuple[list[list[int]], list]:
    """The BabyLM 2025 pipeline's causal backend: the tokenizer's own special tokens (its template:
    [BOS] + sentence for LLaMA's, nothing added for babysweep's and GPT-2's), the first token read as
    context only, and of the others those whose character span ends after the first token's start
    (which leaves out special tokens the template appends, their span being empty)."""
    if not sentences:
        return [], []
    try:
        enc = tokenizer(sentences, return_offsets_mapping=True)
    except NotImplementedError:  # a slow tokenizer has no offsets (the pipeline fails on it): score them all
        return tokenizer(sentences)["input_ids"], [None] * len(sentences)
    masks = []
    for ids, offsets in zip(enc["input_ids"], enc["offset_mapping"]):
        start = offsets[0][0] if offsets else 0
        masks.append([end > start for _, end in offsets[1:]])
    return enc["input_ids"], masks


def _padded_logprobs(model, seqs: list[list[int]], masks: list[tuple], pad: int, batch_size: int, device) -> list[float]:
    """One right-padded row per sentence, rows sorted by length."""
    scores = [0.0] * len(seqs)
    for batch in _batches([len(s) for s in seqs], batch_size):
        # The last token is only a target: the model reads seq[:-1] (one position fewer per sentence).
        ids, keep = _pad([seqs[i][:-1] or seqs[i] for i in batch], pad, device)
        targets, _ = _pad([seqs[i][1:] for i in batch], pad, device, width=ids.shape[1])
        scored = torch.zeros_like(keep)
        for row, i in enumerate(batch):
            scored[row, :len(masks[i])] = torch.tensor(masks[i], dtype=torch.bool)
        rows, cols = scored.nonzero(as_tuple=True)  # padding and unscored tokens are never targets
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


def _trie_rows(seqs: list[list[int]], row_size: int, masks: list[tuple] | None = None) -> list[_TrieRow]:
    """The sentences (first token + tokens) sorted as token sequences, packed greedily into rows of at
    most `row_size` read positions (a longer sentence gets a row of its own). masks[s][k - 1] says
    whether token k of sentence s counts in its score (default: all do)."""
    order = sorted(range(len(seqs)), key=lambda i: seqs[i])  # neighbours share the longest prefixes
    rows: list[_TrieRow] = []
    row: _TrieRow | None = None
    node_of: dict[tuple[int, int], int] = {}    # (read position, next token) -> read position
    target_of: dict[tuple[int, int], int] = {}  # (read position, next token) -> index into targets
    for s in order:
        seq = seqs[s]
        if len(seq) < 2:
            continue  # the first token alone: nothing to score (0.0)
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
            if masks is None or masks[s][k - 1]:
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


def _trie_logprobs(model, seqs: list[list[int]], masks: list[tuple], batch_size: int, device,
                   row_size: int = TRIE_ROW) -> list[float]:
    scores = [0.0] * len(seqs)
    body, head = _head_split(model)
    dtype = next(model.parameters()).dtype
    for batch in _trie_batches(_trie_rows(seqs, row_size, masks), batch_size):
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


