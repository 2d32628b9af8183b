"""A floor from word statistics: an interpolated Kneser-Ney trigram model over babysweep's tokens.

    lm = KneserNeyTrigram.fit(train_tokens, vocab_size=len(tokenizer))     # a numpy token array
    lm.dev_loss(dev_tokens, seq_len=128)        # nats per token, over the same chunks as trainer.dev_loss
    lm.sequence_logprob([bos, 17, 43, 9])       # sum of log p(token | two before), the first token context only

What a trained model must beat to have learned more than which tokens follow which. It reads the same
token stream as the models (the BPE tokenizer, lines starting with <s>), so its dev loss and its BLiMP
scores compare with theirs token for token. Counted with numpy (trigram keys a*V*V + b*V + c, sorted,
looked up with searchsorted): millions of tokens fit in seconds. nltk.lm's Kneser-Ney scores one
n-gram at a time in Python, far too slow for a dev set and BLiMP's 67,000 sentences, and KenLM's
Python package only queries models that its separate C++ tool builds; hence this small one.

Smoothing (Chen & Goodman's interpolated Kneser-Ney, one discount per order, D = n1 / (n1 + 2 n2)):
    p3(c | a b) = max(c(abc) - D3, 0) / c(ab.) + D3 * N1+(ab.) / c(ab.) * p2(c | b)      (p2 alone if c(ab.) = 0)
    p2(c | b)   = max(N1+(.bc) - D2, 0) / N1+(.b.) + D2 * N1+(b.) / N1+(.b.) * p1(c)     (p1 alone if N1+(.b.) = 0)
    p1(c)       = (1 - EPS) * N1+(.c) / N1+(..) + EPS / V                                (every token has mass)
Contexts never cross a chunk boundary when scoring dev loss, as the models' chunks do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-3  # the uniform share of the unigram distribution: unseen tokens keep a finite loss


def _discount(counts: np.ndarray) -> float:
    n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
    return n1 / (n1 + 2 * n2) if n1 else 0.5


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """values[i] where keys[i] == query, else 0 (keys sorted and unique)."""
    if len(keys) == 0:
        return np.zeros(len(queries), dtype=np.float64)
    at = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return np.where(keys[at] == queries, values[at], 0).astype(np.float64)


def _group(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unique, counts = np.unique(keys, return_counts=True)
    return unique, counts


@dataclass
class KneserNeyTrigram:
    vocab: int
    tri: tuple[np.ndarray, np.ndarray]  # (abc keys, counts)
    ctx2: tuple[np.ndarray, np.ndarray, np.ndarray]  # (ab keys, c(ab.), N1+(ab.))
    bi_cont: tuple[np.ndarray, np.ndarray]  # (bc keys, N1+(.bc))
    ctx1: tuple[np.ndarray, np.ndarray, np.ndarray]  # (b keys, N1+(.b.), N1+(b.) over continuation bigrams)
    uni: np.ndarray  # p1 over the vocabulary
    d3: float
    d2: float

    @classmethod
    def fit(cls, tokens, vocab_size: int) -> "KneserNeyTrigram":
        t = np.asarray(tokens, dtype=np.int64)
        if len(t) < 3:
            raise ValueError("an n-gram model needs at least three training tokens")
        v = int(vocab_size)
        tri_keys, tri_counts = _group((t[:-2] * v + t[1:-1]) * v + t[2:])
        ab = tri_keys // v
        ab_keys, ab_index = np.unique(ab, return_inverse=True)
        ab_total = np.bincount(ab_index, weights=tri_counts)  # c(ab.)
        ab_types = np.bincount(ab_index)  # N1+(ab.)
        bc_keys, bc_cont = _group(tri_keys % (v * v))  # N1+(.bc): distinct a before each bc
        b_of_bc = bc_keys // v
        b_keys, b_index = np.unique(b_of_bc, return_inverse=True)
        b_total = np.bincount(b_index, weights=bc_cont)  # N1+(.b.)
        b_types = np.bincount(b_index)  # N1+(b.): distinct c after b among continuation bigrams
        c_cont = np.bincount(bc_keys % v, minlength=v).astype(np.float64)  # N1+(.c)
        uni = (1 - EPS) * c_cont / max(c_cont.sum(), 1.0) + EPS / v
        return cls(v, (tri_keys, tri_counts), (ab_keys, ab_total, ab_types), (bc_keys, bc_cont),
                   (b_keys, b_total, b_types), uni, _discount(tri_counts), _discount(bc_cont))

    def _p2(self, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        p1 = self.uni[c]
        bc_keys, bc_cont = self.bi_cont
        b_keys, b_total, b_types = self.ctx1
        total = _lookup(b_keys, b_total, b)
        types = _lookup(b_keys, b_types, b)
        cont = _lookup(bc_keys, bc_cont, b * self.vocab + c)
        safe = np.maximum(total, 1.0)
        p = np.maximum(cont - self.d2, 0.0) / safe + self.d2 * types / safe * p1
        return np.where(total > 0, p, p1)

    def logprobs(self, a: np.ndarray, b: np.ndarray, c: np.ndarray, has_a: np.ndarray, has_b: np.ndarray) -> np.ndarray:
        """log p(c | context) per position; has_a / has_b say which context tokens exist (chunk or sentence starts)."""
        a, b, c = (np.asarray(x, dtype=np.int64) for x in (a, b, c))
        p1 = self.uni[c]
        p2 = np.where(has_b, self._p2(b, c), p1)
        ab_keys, ab_total, ab_types = self.ctx2
        tri_keys, tri_counts = self.tri
        v = self.vocab
        total = _lookup(ab_keys, ab_total, a * v + b)
        types = _lookup(ab_keys, ab_types, a * v + b)
        count = _lookup(tri_keys, tri_counts, (a * v + b) * v + c)
        safe = np.maximum(total, 1.0)
        p3 = np.maximum(count - self.d3, 0.0) / safe + self.d3 * types / safe * p2
        p = np.where(has_a & has_b & (total > 0), p3, p2)
        return np.log(p)

    def sequence_logprob(self, ids) -> float:
        """Sum of log p over ids[1:], each given up to two tokens before it (ids[0] is context only)."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) < 2:
            return 0.0
        pos = np.arange(1, len(ids))
        a = np.where(pos >= 2, ids[np.maximum(pos - 2, 0)], 0)
        return float(self.logprobs(a, ids[pos - 1], ids[pos], pos >= 2, np.ones_like(pos, dtype=bool)).sum())

    def dev_loss(self, tokens, seq_len: int) -> float:
        """Mean negative log-likelihood per predicted token over seq_len chunks of `tokens`, predicting positions
        1..seq_len-1 of each chunk from the tokens before them in that chunk (as the models' dev loss does)."""
        t = np.asarray(tokens, dtype=np.int64)
        n = len(t) // seq_len
        if n == 0:
            raise ValueError(f"fewer than {seq_len} dev tokens: not one chunk")
        chunks = t[: n * seq_len].reshape(n, seq_len)
        pos = np.broadcast_to(np.arange(1, seq_len), (n, seq_len - 1))
        a = np.where(pos >= 2, chunks[:, np.maximum(np.arange(1, seq_len) - 2, 0)], 0)
        lp = self.logprobs(a.ravel(), chunks[:, :-1].ravel(), chunks[:, 1:].ravel(), (pos >= 2).ravel(),
                           np.ones(a.size, dtype=bool))
        return float(-lp.mean())
