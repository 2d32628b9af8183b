"""Teacher-output cache: the teachers run once per (teachers, corpus, seq_len, seed, epoch); every trial reads.

    plan, cache = for_run(cfg, data, teachers, dev, phases)   # cache None on the fly; prints which mode and why
    cache.plan.params()                                 # {"distill.cache_mode": "exact", ...}: logged by the sweep
    stored = cache.read(epoch, index, batch_size)       # exact: [teacher logits]; topk: (values, indices, tail)

An epoch's batches are slices of one chunk order that depends only on (token count, seq_len, seed,
epoch) (data/batches.py), so an entry stores the teachers' outputs for the whole epoch in that visit
order: a batch, of any batch size, is a memory-mapped slice of rows [index * B, index * B + b). Entries
(train/teacher_cache_files.py for the files) are keyed by a hash of the teachers' weight files, the
ensemble kind, the token array, seq_len, seed, epoch and compute precision: a changed teacher, corpus,
tokenizer or seed never reuses an old entry. Storage is float16 (relative rounding 2^-11; bounds in
docs/teacher-cache.md); `exact` stores the averaged raw logits for ensemble "logits" (the loss only
needs their mean) and each teacher's logits for "probs"; `topk:K` stores the K largest averaged
logits, their token ids and the log-sum-exp of the rest (objectives.topk_distillation_loss).

Building: an entry is cut into shards; every trial that needs the entry takes the shards nobody holds
(a non-blocking lock per shard), so concurrent trials share the build instead of one waiting idle;
then waits for the others' shards and renames the files into place (train/teacher_cache_files.py).

Integrity: each shard's builder records a CRC-32 of the bytes it wrote (shard-<i>.done, then meta.json's
"crc32"); the first open of an entry in a process checks every shard against it (one sequential pass,
about 3 GB/s, before the epoch's reads) and an entry that does not match (a flipped page, a file written
over) is built again, with a line saying so: garbage is never read as teacher outputs.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from babysweep.train import teacher_cache_files as files
from babysweep.core.file_hash import update_with_files
from babysweep.train.disk import cache_budget
from babysweep.core.atomic import write_text_atomic
from babysweep.data.batches import chunk_rows, chunks_per_epoch, epoch_starts
from babysweep.core.config import DistillConfig, RunConfig
from babysweep.core.errors import UserError
from babysweep.core.paths import cache_dir
from babysweep.core.storage_errors import writing

FORMAT = 2  # bump when what an entry holds changes (2: per-shard CRC-32s)
STORE_BYTES = 2  # float16
SHARD_BYTES = 64 << 20  # a shard's output: big enough to amortise its locks, small enough to resume cheaply
BUILD_ROWS = 32  # chunks per teacher forward pass while building
FP16_MAX = float(np.finfo(np.float16).max)


def parse_mode(text: str) -> tuple[str, int | None]:
    mode, _, k = text.partition(":")
    return (mode, int(k)) if mode == "topk" else (mode, None)


def index_dtype(vocab: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab <= np.iinfo(np.uint16).max else np.int32)


def bytes_per_position(mode: str, k: int | None, vocab: int, n_stored: int) -> int:
    """Stored bytes per token position: exact V * 2 per stored teacher; topk K * (2 + index) + 4."""
    if mode == "topk":
        k = min(k, vocab)
        return k * (STORE_BYTES + index_dtype(vocab).itemsize) + 4
    return vocab * STORE_BYTES * n_stored


@dataclass(frozen=True)
class Plan:
    mode: str  # exact | topk | none
    k: int | None
    estimate_bytes: int  # this run's entries, all its distilled epochs
    reason: str

    def params(self) -> dict:
        """What the sweep logs as MLflow params (strings and numbers; no '/' so they are not metrics)."""
        return {"distill.cache_mode": self.mode if self.mode != "topk" else f"topk:{self.k}",
                "distill.cache_estimate_gb": round(self.estimate_bytes / 1e9, 4), "distill.cache_reason": self.reason}


def plan(distill: DistillConfig, chunks: int, seq_len: int, vocab: int, n_teachers: int, clm_epochs: int,
         root: str | Path | None = None) -> Plan:
    """Which mode this run uses and why: auto is exact when its estimate fits the budget (distill.cache_budget_gb,
    else a share of the free disk under `root`: disk.cache_budget), else none."""
    mode, k = parse_mode(distill.cache)
    n_stored = 1 if distill.ensemble == "logits" else n_teachers
    positions = chunks * seq_len * clm_epochs
    exact = positions * bytes_per_position("exact", None, vocab, n_stored)
    budget, budget_why = cache_budget(distill.cache_budget_gb, root if root is not None else Path.cwd())
    size = f"{files.human(exact)} ({clm_epochs} distilled epochs x {chunks} chunks x {seq_len} x vocab {vocab} x {n_stored} x 2 B)"
    if mode == "none":
        return Plan("none", None, exact, f"distill.cache is none; exact would take {size}")
    if mode == "topk":
        est = positions * bytes_per_position("topk", k, vocab, n_stored)
        return Plan("topk", min(k, vocab), est, f"distill.cache is topk:{k}: {files.human(est)} instead of {size}")
    if mode == "exact":
        note = "" if exact <= budget else f", over {budget_why}"
        return Plan("exact", None, exact, f"distill.cache is exact: {size}{note}")
    if exact <= budget:
        return Plan("exact", None, exact, f"auto: {size} fits {budget_why}")
    return Plan("none", None, exact, f"auto: {size} exceeds {budget_why}; "
                                     "distilling on the fly (distill.cache: topk:K stores far less)")


_DIGESTS: dict[tuple, str] = {}


def teacher_digest(folder: str | Path) -> str:
    """A hash of a saved model's weights and config (memoised per file sizes and mtimes)."""
    folder = Path(folder)
    names = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") or p.name == "config.json")
    stamp = (str(folder.resolve()), tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in names))
    if stamp not in _DIGESTS:
        _DIGESTS[stamp] = update_with_files(hashlib.sha256(), names).hexdigest()
    return _DIGESTS[stamp]


_VERIFIED: set[tuple] = set()  # entries (path and files' identity) whose shards matched their CRCs in this process


def shard_crc(arrays: dict[str, np.ndarray], lo: int, hi: int) -> int:
    """CRC-32 of rows [lo, hi) of every array (the chunk axis: 1 for exact's logits, 0 otherwise)."""
    crc = 0
    for name in sorted(arrays):
        array = arrays[name]
        for part in ([array[i, lo:hi] for i in range(array.shape[0])] if name == "logits" else [array[lo:hi]]):
            crc = zlib.crc32(memoryview(np.ascontiguousarray(part)).cast("B"), crc)
    return crc


def _say(text: str) -> None:
    print(f"teacher cache: {text}", file=sys.stderr, flush=True)


class TeacherCache:
    """One run's view of the cache: builds an epoch's entry on first use, then hands out slices."""

    def __init__(self, plan: Plan, root: Path, teachers: list[torch.nn.Module], teacher_dirs: list[str],
                 tokens: np.ndarray, token_id: str, seq_len: int, seed: int, ensemble: str, dev, vocab: int,
                 budget_bytes: float, epochs: list[int], shard_rows: int | None = None, bos: int | None = None):
        self.plan, self.root, self.teachers, self.tokens = plan, Path(root), teachers, tokens
        self.seq_len, self.seed, self.ensemble, self.dev, self.vocab = seq_len, seed, ensemble, dev, vocab
        self.budget_bytes, self.epochs, self.bos = budget_bytes, epochs, bos
        self.chunks = chunks_per_epoch(len(tokens), seq_len, bos)
        kind = f"topk:{plan.k}" if plan.mode == "topk" else f"exact-{ensemble}"
        precision = str(dev.autocast_dtype) if dev.autocast_dtype is not None else "fp32"
        self._base = json.dumps({"format": FORMAT, "kind": kind, "teachers": [teacher_digest(d) for d in teacher_dirs],
                                 "tokens": token_id, "n_tokens": len(tokens), "seq_len": seq_len, "seed": seed,
                                 "precision": precision, **({"chunk_bos": bos} if bos is not None else {})},
                                sort_keys=True)  # the older layout's entries keep their keys
        row_bytes = seq_len * bytes_per_position(plan.mode, plan.k, vocab, self._stored())
        self.shard_rows = shard_rows or max(1, SHARD_BYTES // row_bytes)
        self._epoch: int | None = None
        self._arrays: dict[str, np.ndarray] = {}

    def _stored(self) -> int:
        return 1 if self.ensemble == "logits" else len(self.teachers)

    def key(self, epoch: int) -> str:
        return hashlib.sha256(f"{self._base}|epoch={epoch}".encode()).hexdigest()[:24]

    def layout(self) -> dict[str, dict]:
        rows, s, v = self.chunks, self.seq_len, self.vocab
        if self.plan.mode == "topk":
            k, idx = self.plan.k, index_dtype(v)
            return {"values": {"dtype": "float16", "dtype_bytes": 2, "shape": [rows, s, k]},
                    "indices": {"dtype": idx.name, "dtype_bytes": idx.itemsize, "shape": [rows, s, k]},
                    "tail": {"dtype": "float32", "dtype_bytes": 4, "shape": [rows, s]}}
        return {"logits": {"dtype": "float16", "dtype_bytes": 2, "shape": [self._stored(), rows, s, v]}}

    # ----------------------------------------------------------------------------- reading
    def read(self, epoch: int, index: int, batch_size: int, rows: int):
        """The stored outputs for batch `index` (its `rows` chunks) of `epoch`, on the run's device.
        exact: a list of [rows, S, V] float16 tensors (the fused loss converts them chunk by chunk);
        topk: (values [rows, S, K], indices int64, tail [rows, S])."""
        if self._epoch != epoch:
            self._arrays, self._epoch = self.open(epoch), epoch
        sl = slice(index * batch_size, index * batch_size + rows)
        put = lambda a: torch.from_numpy(a).to(self.dev.device, non_blocking=True)  # noqa: E731
        if self.plan.mode == "topk":
            return (put(self._arrays["values"][sl]), put(self._arrays["indices"][sl].astype(np.int64)),
                    put(self._arrays["tail"][sl]))
        logits = self._arrays["logits"]
        return [put(logits[i, sl]) for i in range(logits.shape[0])]

    def open(self, epoch: int) -> dict[str, np.ndarray]:
        """Memory maps of the epoch's complete entry, built first if needed; an entry built by another process
        (or earlier) is checked against its CRCs once per process, and built again when it does not match."""
        entry = self.root / self.key(epoch)
        rebuilt = False
        while True:
            meta = files.complete_meta(entry)
            if meta is not None and not self._describes(meta, epoch):  # a damaged or foreign marker: never read it
                _say(f"epoch {epoch}: {entry / files.META} does not describe this run's teacher outputs (damaged?); "
                     "building the entry again")
                self._discard(entry)
                meta = None
            built = meta is None
            if built:
                with writing(entry, "the teacher cache (or lower distill.cache_budget_gb, or distill.cache: none)"):
                    meta = self._build(epoch, entry)
            files.touch(entry)
            try:  # copy-on-write maps: writable for torch.from_numpy, never written, so never copied
                maps = {name: np.memmap(entry / f"{name}.bin", dtype=spec["dtype"], mode="c", shape=tuple(spec["shape"]))
                        for name, spec in meta["arrays"].items()}
                identity = (str(entry), *((os.stat(entry / f"{name}.bin").st_ino, os.stat(entry / f"{name}.bin").st_mtime_ns)
                                          for name in sorted(meta["arrays"])))
            except FileNotFoundError:  # evicted or cleared between the check and the map: build it again
                continue
            if built or identity in _VERIFIED:
                _VERIFIED.add(identity)
                return maps
            bad = next((i for i, crc in enumerate(meta["crc32"])
                        if shard_crc(maps, i * meta["shard_rows"], (i + 1) * meta["shard_rows"]) != crc), None)
            if bad is None:
                _VERIFIED.add(identity)
                return maps
            del maps
            if rebuilt:
                raise UserError(f"{entry}: the teacher cache's entry for epoch {epoch} does not match its checksums even "
                                "after it was built again (failing storage?); run `babysweep cache clear`, or set "
                                "distill.cache: none to distil on the fly.")
            _say(f"epoch {epoch}: shard {bad} of {entry} does not match its checksum (damaged); building the entry again")
            self._discard(entry)
            rebuilt = True

    def _discard(self, entry: Path) -> None:
        """Remove the entry's marker (under its lock): the next open builds it again."""
        with files.locked(self.root / f"{entry.name}.lock"):
            (entry / files.META).unlink(missing_ok=True)

    def _describes(self, meta: dict, epoch: int) -> bool:
        """The marker names this run's teachers, tokens, seed, epoch and array layout (file sizes alone
        would let a marker of another shape, or another run's entry, be read as this one)."""
        if not (meta.get("key") == json.loads(self._base) and meta.get("epoch") == epoch and meta.get("arrays") == self.layout()):
            return False
        rows, crcs = meta.get("shard_rows"), meta.get("crc32")
        return (isinstance(rows, int) and rows > 0 and isinstance(crcs, list) and len(crcs) == math.ceil(self.chunks / rows)
                and all(isinstance(c, int) for c in crcs))

    # ----------------------------------------------------------------------------- building
    def _build(self, epoch: int, entry: Path) -> dict:
        layout = self.layout()
        n_shards = math.ceil(self.chunks / self.shard_rows)
        total = sum(files.array_bytes(a) for a in layout.values())
        with files.locked(self.root / f"{entry.name}.lock"):
            if files.complete_meta(entry) is None:
                self._prepare(entry, layout, total)
        done = lambda i: (entry / f"shard-{i}.done").exists()  # noqa: E731
        starts = epoch_starts(len(self.tokens), self.seq_len, self.seed, epoch, self.bos)
        _say(f"epoch {epoch}: building {files.human(total)} in {n_shards} shards ({entry})")
        while (meta := files.complete_meta(entry)) is None:
            pending = [i for i in range(n_shards) if not done(i)]
            for i in pending:
                with files.locked(entry / f"shard-{i}.lock", blocking=False) as got:
                    if got and not done(i) and files.complete_meta(entry) is None:
                        crc = self._build_shard(entry, layout, starts, i)
                        write_text_atomic(entry / f"shard-{i}.done", json.dumps({"crc32": crc}))
                        finished = sum(done(j) for j in range(n_shards))
                        if finished * 10 // n_shards != (finished - 1) * 10 // n_shards:  # about every 10%
                            _say(f"epoch {epoch}: {finished}/{n_shards} shards ({100 * finished // n_shards}%)")
            pending = [i for i in range(n_shards) if not done(i)]
            if pending:  # another trial builds it: wait for its lock (released when it finishes or dies)
                with files.locked(entry / f"shard-{pending[0]}.lock"):
                    pass
                continue
            with files.locked(self.root / f"{entry.name}.lock"):
                if files.complete_meta(entry) is None:
                    self._finish(entry, layout, epoch, n_shards)
        return meta

    def _prepare(self, entry: Path, layout: dict, total: int) -> None:
        """Under the entry's lock: room within the budget, then the (sparse) partial files, once."""
        if (entry / files.META).exists():  # a marker whose files are wrong: start this entry over
            (entry / files.META).unlink()
            for name in layout:
                (entry / f"{name}.bin").unlink(missing_ok=True)
        if all((entry / f"{name}.bin{files.PARTIAL}").exists() for name in layout):
            return  # an interrupted build: its done shards are kept
        keep = {self.key(e) for e in self.epochs}
        evicted = files.make_room(self.root, total, int(self.budget_bytes), keep)
        if evicted:
            _say(f"evicted {len(evicted)} least recently used entries to stay within distill.cache_budget_gb")
        entry.mkdir(parents=True, exist_ok=True)
        for stale in entry.glob("shard-*.done"):  # they spoke of partial files that are gone
            stale.unlink()
        for name, spec in layout.items():
            partial = entry / f"{name}.bin{files.PARTIAL}"
            fd, tmp = tempfile.mkstemp(dir=entry, prefix=f".{name}.", suffix=".tmp")
            try:
                _reserve(fd, files.array_bytes(spec))
            finally:
                os.close(fd)
            os.replace(tmp, partial)

    def _finish(self, entry: Path, layout: dict, epoch: int, n_shards: int) -> None:
        crcs = []
        for i in range(n_shards):
            try:
                crcs.append(int(json.loads((entry / f"shard-{i}.done").read_text())["crc32"]))
            except (OSError, ValueError, KeyError, TypeError):  # a damaged mark: build that shard again
                (entry / f"shard-{i}.done").unlink(missing_ok=True)
                return
        for name in layout:
            partial = entry / f"{name}.bin{files.PARTIAL}"
            with open(partial, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(partial, entry / f"{name}.bin")
        meta = {"arrays": layout, "key": json.loads(self._base), "epoch": epoch, "shard_rows": self.shard_rows, "crc32": crcs}
        write_text_atomic(entry / files.META, json.dumps(meta, indent=1))  # the marker comes last
        _say(f"epoch {epoch}: complete")

    @torch.inference_mode()
    def _build_shard(self, entry: Path, layout: dict, starts: np.ndarray, shard: int) -> int:
        """Writes the shard's rows of every array; returns their CRC-32 (shard_crc)."""
        lo, hi = shard * self.shard_rows, min((shard + 1) * self.shard_rows, self.chunks)
        maps = {name: np.memmap(entry / f"{name}.bin{files.PARTIAL}", dtype=spec["dtype"], mode="r+", shape=tuple(spec["shape"]))
                for name, spec in layout.items()}
        for a in range(lo, hi, BUILD_ROWS):
            b = min(a + BUILD_ROWS, hi)
            rows = chunk_rows(self.tokens, starts[a:b], self.seq_len, self.bos)
            batch = self.dev.put(torch.from_numpy(rows))
            with self.dev.autocast():
                outs = [t(input_ids=batch).logits.float() for t in self.teachers]
            if self.plan.mode == "topk" or self.ensemble == "logits":
                mean = outs[0] if len(outs) == 1 else torch.stack(outs).sum(0).div_(len(outs))
                outs = [mean]
            if any(float(o.abs().max()) > FP16_MAX for o in outs):
                raise RuntimeError("a teacher logit exceeds float16's range; use distill.cache: none")
            if self.plan.mode == "topk":
                values, indices = outs[0].topk(self.plan.k, dim=-1)
                tail = outs[0].scatter(-1, indices, float("-inf")).logsumexp(-1)
                maps["values"][a:b] = values.half().cpu().numpy()
                maps["indices"][a:b] = indices.cpu().numpy().astype(maps["indices"].dtype)
                maps["tail"][a:b] = tail.cpu().numpy()
            else:
                for i, o in enumerate(outs):
                    maps["logits"][i, a:b] = o.half().cpu().numpy()
        for m in maps.values():
            m.flush()
        return shard_crc(maps, lo, hi)


def _reserve(fd: int, size: int) -> None:
    """Allocate the file's blocks now: a full disk is then an OSError here (ENOSPC, said in one sentence by
    the caller), not a SIGBUS that kills the trial when a write through the memory map finds no block."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without fallocate: sparse, as before
            raise
        os.ftruncate(fd, size)


def for_run(cfg: RunConfig, data, teachers: list[torch.nn.Module], dev, phases: list[str]) -> tuple[Plan | None, TeacherCache | None]:
    """(the run's Plan, its cache); the cache is None on the fly, both are None without teachers.
    Prints one line saying which mode and why."""
    if not teachers:
        return None, None
    distill, seq_len, seed = cfg.distill, cfg.data.seq_len, cfg.train.seed
    epochs = [e for e, phase in enumerate(phases) if phase != "mlm"]  # MLM epochs have no KD
    vocab = teachers[0].config.vocab_size
    root = files.cache_root(cache_dir(cfg.data.cache_dir))
    chosen = plan(distill, chunks_per_epoch(len(data.train), seq_len, data.chunk_bos), seq_len, vocab, len(teachers), len(epochs), root)
    _say(f"{chosen.mode if chosen.mode != 'topk' else f'topk:{chosen.k}'} ({chosen.reason})")
    if chosen.mode == "none":
        return chosen, None
    filename = Path(getattr(data.train, "filename", "") or "")
    token_id = f"{filename.parent.name}/{filename.name}" if filename.name else hashlib.sha256(np.ascontiguousarray(data.train)).hexdigest()
    return chosen, TeacherCache(chosen, root, teachers, distill.teachers, data.train, token_id, seq_len, seed,
                                distill.ensemble, dev, vocab, cache_budget(distill.cache_budget_gb, root)[0], epochs,
                                bos=data.chunk_bos)
