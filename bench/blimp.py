"""BLiMP scoring throughput: our batched scorer vs a one-sentence-at-a-time loop (and lm-eval's
HFLM when it is importable), all on the same model, the same pairs, in the same run.

    python bench/blimp.py [--pairs-per-paradigm 45] [--batch-size 64] [--repeats 3] [--threads N] [--breakdown]

Model: LLaMA, 4 layers, hidden 256, 4 heads, FFN 1024, vocab 8,000, untied embeddings (8.3M
parameters), random weights. Tokenizer: trained on the first 100k lines of
../shared/data/storybooks/train if present, else on generated sentences. Pairs: the first N per
paradigm of ../shared/data/blimp (45 x 67 = 3,015), else 3,000 synthesised pairs. Threads: all cores
(torch.set_num_threads; --threads to change). Ours and lm-eval are each timed --repeats times and
the best run is shown, because the machine may be shared.
The lm-eval comparison calls HFLM.loglikelihood with (context "", continuation) requests, once with
the sentence as it is (our rule) and once with lm-eval's BLiMP task form (" " + sentence, the
task's default target_delimiter), and reports how many decisions agree with ours.
It also prints the positions our prefix tries read against one per token, and the time this machine
needs for the model's matmuls alone on our positions: a ceiling for any exact fp32 scorer of them.
"""

from __future__ import annotations

import sys

# bench/ holds tokenize.py, which would shadow the standard library's tokenize (imported by torch)
# when this script's folder is first on sys.path; `python -P bench/blimp.py` does the same.
if sys.path and sys.path[0] and __import__("os").path.samefile(sys.path[0], __import__("os").path.dirname(__file__)):
    sys.path.pop(0)

import argparse
import itertools
import os
import random
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from babysweep import blimp
from babysweep.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, train_tokenizer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FULL_BLIMP = 67_000


def tokenizer_lines() -> tuple[list[str], str]:
    train = SHARED / "storybooks" / "train"
    if train.is_dir():
        lines = (line.strip() for f in sorted(train.glob("*.train")) for line in f.read_text().splitlines())
        return list(itertools.islice((l for l in lines if l), 100_000)), f"{train} (first 100k lines)"
    rng = random.Random(0)
    words = [f"w{i}" for i in range(3000)] + "the a cat dog who what saw likes himself herself".split()
    return [" ".join(rng.choice(words) for _ in range(12)) for _ in range(50_000)], "generated text"


def load_bench_pairs(per_paradigm: int) -> tuple[list[blimp.Pair], str]:
    folder = SHARED / "blimp"
    if folder.is_dir():
        seen: dict[str, int] = {}
        pairs = []
        for p in blimp.load_pairs(folder):
            if seen.setdefault(p.paradigm, 0) < per_paradigm:
                seen[p.paradigm] += 1
                pairs.append(p)
        return pairs, f"{folder} (first {per_paradigm} per paradigm, {len(seen)} paradigms)"
    rng = random.Random(1)
    nouns, verbs = "cat dog girl boy teacher".split(), "sees likes helps finds".split()
    pairs = []
    for i in range(3000):
        n1, n2, v = rng.choice(nouns), rng.choice(nouns), rng.choice(verbs)
        pairs.append(blimp.Pair(f"The {n1} {v} the {n2}.", f"The {n1}s {v} the {n2}.", f"syn{i % 60}", "syntax", "", str(i)))
    return pairs, "3,000 synthesised pairs"


def one_at_a_time(model, tok, pairs) -> list[bool]:
    """The unbatched reference: one forward pass per sentence, no padding."""
    out = []
    with torch.inference_mode():
        for pair in pairs:
            scores = []
            for sentence in (pair.good, pair.bad):
                ids = torch.tensor([[tok.bos_token_id] + tok.encode(sentence, add_special_tokens=False)])
                logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
                scores.append(logp.gather(1, ids[0, 1:, None]).sum().item())
            out.append(scores[0] > scores[1])
    return out


def timed(fn, repeats: int = 1):
    """(result, best seconds of `repeats` runs): the machine is shared, the best run is the least disturbed."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def positions(model, tok, pairs) -> tuple[int, int]:
    """(positions our tries read, positions a one-row-per-sentence scorer reads: <s> + all but the last token)."""
    seqs = blimp._encode(model, tok, [p.good for p in pairs] + [p.bad for p in pairs], extra=1)
    trie = sum(len(r.tokens) for r in blimp._trie_rows(seqs, blimp.TRIE_ROW))
    return trie, sum(len(s) - 1 for s in seqs if len(s) > 1)


def matmul_seconds(model, n_positions: int, rows: int = 576, repeats: int = 5) -> float:
    """Seconds for this machine to run every Linear of the model (the output head included) on
    `n_positions` positions, and nothing else: no attention, norms, masks or Python. No exact fp32
    scorer that reads these positions can be faster."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    inputs = {m.in_features: torch.randn(rows, m.in_features) for m in linears}
    with torch.inference_mode():
        for m in linears:
            m(inputs[m.in_features])  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for m in linears:
                m(inputs[m.in_features])
            best = min(best, time.perf_counter() - start)
    return best * n_positions / rows


def breakdown(model, tok, pairs, batch_size: int) -> None:
    """Where one scoring run's time goes, by torch.profiler's self CPU time per operator (the profiler
    slows small operators down, so shares are indicative)."""
    from torch.profiler import ProfilerActivity, profile

    groups = {"matmuls": ("aten::mm", "aten::addmm", "aten::bmm"), "attention": ("aten::_scaled_dot_product",),
              "log_softmax": ("aten::_log_softmax",)}
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        blimp.score_pairs(model, tok, pairs, batch_size)
        wall = time.perf_counter() - start
    spent = dict.fromkeys([*groups, "other operators"], 0.0)
    for event in prof.key_averages():
        group = next((g for g, prefixes in groups.items() if event.key.startswith(prefixes)), "other operators")
        spent[group] += event.self_cpu_time_total / 1e6
    parts = ", ".join(f"{g} {t:.2f} s" for g, t in spent.items())
    print(f"breakdown of one run under torch.profiler ({wall:.2f} s): {parts}, "
          f"outside operators (Python, tokenizer, tries) {wall - sum(spent.values()):.2f} s")


def lm_eval_scorer(model, tok, pairs, batch_size: int, prefix: str):
    """A function returning lm-eval's log-likelihoods of every good then bad sentence (None without lm-eval)."""
    try:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        return None
    import logging

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size, max_length=model.config.max_position_embeddings)
    sentences = [p.good for p in pairs] + [p.bad for p in pairs]
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=("", prefix + s), idx=i) for i, s in enumerate(sentences)]
    return lambda: [ll for ll, _ in lm.loglikelihood(requests, disable_tqdm=True)]


def lm_eval_decisions(lls: list[float]) -> list[bool]:
    # lm-eval's acc: argmax over (good, bad); numpy's argmax picks the first on a tie, so a tie counts as right.
    n = len(lls) // 2
    return [lls[i] >= lls[n + i] for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs-per-paradigm", type=int, default=45)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--loop-pairs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed rounds; the best of each is shown")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--breakdown", action="store_true", help="also profile one run: matmuls, attention, other operators")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    lines, tok_source = tokenizer_lines()
    tok, tok_s = timed(lambda: train_tokenizer(lines, vocab_size=8000, min_frequency=2))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
        max_position_embeddings=128, tie_word_embeddings=False, pad_token_id=PAD_ID, bos_token_id=BOS_ID,
        eos_token_id=EOS_ID)).eval()
    pairs, pair_source = load_bench_pairs(args.pairs_per_paradigm)
    sample = pairs[:: max(1, len(pairs) // args.loop_pairs)][: args.loop_pairs]
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, {args.threads} threads (of {os.cpu_count()} cores); "
          f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"model LLaMA {n_params / 1e6:.1f}M params, vocab {len(tok):,}; tokenizer trained on {tok_source} in {tok_s:.1f} s")
    print(f"pairs: {len(pairs):,} from {pair_source}; one-at-a-time loop on {len(sample)} of them, spread over the set")

    contenders = {
        "ours": lambda: blimp.score_pairs(model, tok, pairs, args.batch_size),
        "one-at-a-time": lambda: one_at_a_time(model, tok, sample),
    }
    lm_eval_fn = lm_eval_scorer(model, tok, pairs, args.batch_size, prefix="")
    if lm_eval_fn is not None:
        contenders["lm-eval"] = lm_eval_fn
    blimp.score_pairs(model, tok, pairs[:200], args.batch_size)  # warm-up (allocator, kernels)
    best, out = {}, {}
    for _ in range(args.repeats):  # interleaved, so a busy spell on a shared machine hits every contender
        for name, fn in contenders.items():
            out[name], seconds = timed(fn)
            best[name] = min(best.get(name, float("inf")), seconds)

    ours_rate = len(pairs) / best["ours"]
    loop_rate = len(sample) / best["one-at-a-time"]
    print(f"ours, batched (batch {args.batch_size} sentences per forward pass, best of {args.repeats}): "
          f"{len(pairs):,} pairs in {best['ours']:.2f} s = {ours_rate:,.0f} pairs/s")
    print(f"one sentence at a time (best of {args.repeats} on {len(sample)} pairs; rate extrapolated): {loop_rate:,.0f} pairs/s "
          f"-> an estimated {len(pairs) / loop_rate:.0f} s for the {len(pairs):,} pairs")
    agree = sum(out["ours"][pairs.index(p)] == d for p, d in zip(sample, out["one-at-a-time"]))
    print(f"batched / one-at-a-time: {ours_rate / loop_rate:.1f}x; decisions agree on {agree}/{len(sample)} sampled pairs")
    print(f"full BLiMP ({FULL_BLIMP:,} pairs), estimated from the batched rate: {FULL_BLIMP / ours_rate:.0f} s "
          f"(one at a time: {FULL_BLIMP / loop_rate:.0f} s)")
    for bs in (16, 256):
        _, seconds = timed(lambda: blimp.score_pairs(model, tok, pairs, bs))
        print(f"  ours at batch {bs} (one run): {len(pairs) / seconds:,.0f} pairs/s")
    read, one_per_token = positions(model, tok, pairs)
    floor = matmul_seconds(model, read)
    print(f"positions through the model: ours {read:,} (prefix tries), a row per sentence {one_per_token:,} "
          f"(lm-eval, one-at-a-time): {read / one_per_token:.3f} of them")
    print(f"matmuls alone of our {read:,} positions on this machine: {floor:.2f} s = a ceiling of "
          f"{len(pairs) / floor:,.0f} pairs/s for exact fp32 scoring of these positions; ours reaches "
          f"{floor / best['ours']:.0%} of it")
    if args.breakdown:
        breakdown(model, tok, pairs, args.batch_size)

    if lm_eval_fn is None:
        print("lm-eval: not installed (pip install lm_eval to compare with its HFLM in the same run)")
    else:
        import lm_eval

        theirs_rate = len(pairs) / best["lm-eval"]
        theirs = lm_eval_decisions(out["lm-eval"])
        agree = sum(a == b for a, b in zip(out["ours"], theirs))
        ours_lp = blimp.sentence_logprobs(model, tok, [p.good for p in pairs] + [p.bad for p in pairs], args.batch_size)
        diff = max(abs(a - b) for a, b in zip(ours_lp, out["lm-eval"]))
        print(f"lm-eval {getattr(lm_eval, '__version__', '')} HFLM.loglikelihood (batch {args.batch_size}, best of "
              f"{args.repeats}), sentences as given: {theirs_rate:,.0f} pairs/s; ours / lm-eval: {ours_rate / theirs_rate:.2f}x; "
              f"decisions agree on {agree}/{len(pairs)}{' (every one)' if agree == len(pairs) else ''}; "
              f"max |log-prob difference| {diff:.1e}")
        print(f"ceiling / lm-eval: {len(pairs) / floor / theirs_rate:.2f}x (exact scoring of our positions with zero "
              f"cost besides the matmuls)")
        task_form = lm_eval_decisions(lm_eval_scorer(model, tok, pairs, args.batch_size, prefix=" ")())
        agree = sum(a == b for a, b in zip(out["ours"], task_form))
        print(f"lm-eval's BLiMP task form (continuation ' ' + sentence, its default target_delimiter): decisions agree "
              f"with ours on {agree}/{len(pairs)} (the leading space changes the tokens scored)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
