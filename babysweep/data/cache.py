"""Token cache: each (corpus content, tokenizer settings) is tokenised once, memory-mapped after.

    entry = tokenizer_entry(cache_dir, train_files, vocab_size=8000, min_frequency=2)
    tok = load_tokenizer(entry)                         # data.tokenizer; trained on train files only
    train = token_array(entry, train_files, tok)         # np.memmap of token ids
    dev = token_array(entry, dev_files, tok)
    tune = token_array(entry, train_files, tok, ("tune", 0.1, 0))    # 10% of train's lines, held out (data.tune_split)

Layout: <cache_dir>/tok-<key>/tokenizer.json and <cache_dir>/tok-<key>/split-<key>.bin (+ .json),
where each key is a SHA-256 of the files' bytes (and of the tokenizer settings). Every entry is built
in a temporary folder or file, flushed to disk and renamed into place (core/atomic.py), so a half-written entry is never read; an
entry whose metadata is missing or inconsistent is rebuilt. A file lock makes concurrent trials wait
for one builder instead of all tokenising the same corpus.

Each non-empty cleaned line becomes `<s>` followed by its tokens; lines are concatenated in file order.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from babysweep.core.file_hash import update_with_files
from babysweep.core.atomic import replace_dir_durably, write_file_atomic
from babysweep.data.corpus import Document, read_corpus
from babysweep.data.tokenizer import BOS_ID, train_tokenizer
from babysweep.core.errors import UserError

CACHE_VERSION = 1  # bump when the encoding rule changes
_ENCODE_CHUNK = 20_000  # lines per encode_batch call: bounds memory of the Encoding objects


def in_tune_split(line: str, fraction: float, seed: int) -> bool:
    """Whether a training line belongs to the held-out tuning slice: a seeded hash of its text, so the
    choice is the same on every machine and identical lines always fall on the same side."""
    digest = hashlib.blake2b(f"{seed}\0{line}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2**64


def content_key(files: list[Path], extra: str = "") -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{extra}".encode())
    return update_with_files(digest, files, after_each=b"\1").hexdigest()[:20]


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tokenizer_entry(cache_dir: str | Path, train_files: list[Path], vocab_size: int, min_frequency: int) -> Path:
    """The cache folder holding the tokenizer trained on these files with these settings."""
    cache_dir = Path(cache_dir)
    key = content_key(train_files, f"bpe|{vocab_size}|{min_frequency}")
    entry = cache_dir / f"tok-{key}"
    if (entry / "tokenizer.json").is_file():
        return entry
    with _locked(cache_dir / f"tok-{key}.lock"):
        if (entry / "tokenizer.json").is_file():
            return entry
        lines = (line for doc in read_corpus(train_files) for line in doc.lines)
        tok = train_tokenizer(lines, vocab_size=vocab_size, min_frequency=min_frequency)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir))
        tok.save_pretrained(tmp)
        replace_dir_durably(tmp, entry, "a tokenizer cache entry")  # a stale, incomplete entry is never read: replaced
    return entry


def encode_documents(docs, tok) -> np.ndarray:
    """Token ids of every line, each preceded by <s>, concatenated."""
    backend = tok.backend_tokenizer
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # fast: no offsets
    pieces: list[np.ndarray] = []
    for doc in docs:
        for start in range(0, len(doc.lines), _ENCODE_CHUNK):
            batch = encode(doc.lines[start : start + _ENCODE_CHUNK], add_special_tokens=False)
            ids = [[BOS_ID, *enc.ids] for enc in batch]
            lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
            flat = np.fromiter((t for x in ids for t in x), dtype=np.int32, count=int(lengths.sum()))
            pieces.append(flat)
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)


def _valid(bin_path: Path, meta_path: Path) -> dict | None:
    try:
        meta = json.loads(meta_path.read_text())
        if bin_path.stat().st_size == meta["tokens"] * np.dtype(meta["dtype"]).itemsize:
            return meta
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def token_array(entry: Path, files: list[Path], tok, part: tuple[str, float, int] | None = None) -> np.memmap:
    """Memory-mapped token ids of these files under this tokenizer entry (built once). `part`
    = ("train" | "tune", fraction, seed) keeps only the lines outside or inside the tuning slice."""
    key = content_key(files, "" if part is None else "part|%s|%r|%d" % part)
    bin_path, meta_path = entry / f"split-{key}.bin", entry / f"split-{key}.json"
    meta = _valid(bin_path, meta_path)
    if meta is None:
        with _locked(entry / f"split-{key}.lock"):
            meta = _valid(bin_path, meta_path)
            if meta is None:
                meta = _build_split(entry, files, tok, bin_path, meta_path, part)
    return np.memmap(bin_path, dtype=meta["dtype"], mode="r", shape=(meta["tokens"],))


def split_words(entry: Path, files: list[Path], part: tuple[str, float, int] | None = None) -> int | None:
    """Words (whitespace-separated, as corpus.Document.words counts them) in the lines a token_array of the
    same arguments holds, from its metadata; None before that array is built or when its metadata lacks them."""
    key = content_key(files, "" if part is None else "part|%s|%r|%d" % part)
    meta = _valid(entry / f"split-{key}.bin", entry / f"split-{key}.json")
    words = (meta or {}).get("words")
    return int(words) if isinstance(words, int) else None


def _build_split(entry: Path, files: list[Path], tok, bin_path: Path, meta_path: Path, part=None) -> dict:
    docs = read_corpus(files)
    if part is not None:
        name, fraction, seed = part
        docs = [Document(d.name, [line for line in d.lines if in_tune_split(line, fraction, seed) == (name == "tune")]) for d in docs]
        if not any(d.lines for d in docs):
            raise UserError(f"data.tune_split {fraction} leaves the {name} part of {files[0].parent} without a line.")
    ids = encode_documents(docs, tok)
    dtype = "uint16" if len(tok) <= np.iinfo(np.uint16).max else "uint32"
    meta = {
        "tokens": int(ids.size),
        "dtype": dtype,
        "files": [str(p) for p in files],
        "words": sum(doc.words for doc in docs),
        "lines": sum(len(doc.lines) for doc in docs),
    }
    # The .bin is renamed into place before its metadata: a reader validates the size against the
    # metadata, so a crash between the two renames leaves an entry that is rebuilt, never misread.
    write_file_atomic(bin_path, lambda f: ids.astype(dtype).tofile(f), "a token cache entry")
    write_file_atomic(meta_path, lambda f: f.write(json.dumps(meta).encode()), "a token cache entry")
    return meta

