"""BLiMP scoring throughput under both rules: our batched scorer vs a one-sentence-at-a-time loop,
lm-eval's HFLM when it is importable, and the BabyLM 2025 pipeline when a copy of it is given, all on
the same model, the same pairs, in the same run.

    python bench/blimp.py [--pairs-per-paradigm 45] [--batch-size 64] [--repeats 3] [--threads N] [--breakdown]
                          [--babylm-pipeline DIR]

Model: LLaMA, 4 layers, hidden 256, 4 heads, FFN 1024, vocab 8,000, untied embeddings (8.3M
parameters), random weights. Tokenizer: trained on the first 100k lines of
../shared/data/storybooks/train if present, else on generated sentences. Pairs: the first N per
paradigm of ../shared/data/blimp (45 x 67 = 3,015), else 3,000 synthesised pairs. Threads: all cores
(torch.set_num_threads; --threads to change). Each contender is timed --repeats times, interleaved,
and its best run is shown, because the machine may be shared (the BabyLM pipeline once: it is slow).
lm-eval (installed outside babysweep's dependencies: pip install lm_eval): HFLM.loglikelihood with
the requests its blimp task makes (context "", continuation " " + sentence); its decisions
(argmax, a tie right) must equal ours under --rule lm-eval on every pair.
The BabyLM pipeline is not a package: --babylm-pipeline names a checkout of evaluation-pipeline-2025
(fetched outside this repository, never vendored); its sentence_zero_shot causal backend is imported
from there and run on this model (saved to a temporary folder) and these pairs (written as jsonl),
and its decisions must equal ours under --rule babylm.
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

from babysweep.eval import blimp, logprobs  # noqa: E402
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


def one_at_a_time(model, tok, pairs, rule: str) -> list[bool]:
    """The unbatched reference: one forward pass per sentence (the rule's tokens), no padding."""
    out = []
    with torch.inference_mode():
        for pair in pairs:
            scores = []
            for seq, scored in logprobs.encode(model, tok, [pair.good, pair.bad], rule):
                ids = torch.tensor([seq])
                logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
                per_token = logp.gather(1, ids[0, 1:, None])[:, 0]
                scores.append(per_token[torch.tensor(scored, dtype=torch.bool)].sum().item() if scored else 0.0)
            out.append(scores[0] >= scores[1])
    return out


def timed(fn, repeats: int = 1):
    """(result, best seconds of `repeats` runs): the machine is shared, the best run is the least disturbed."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def positions(model, tok, pairs, rule: str) -> tuple[int, int]:
    """(positions our tries read, positions a one-row-per-sentence scorer reads: all but the last token)."""
    encoded = logprobs.encode(model, tok, [p.good for p in pairs] + [p.bad for p in pairs], rule)
    distinct = list(dict.fromkeys(encoded))
    trie = sum(len(r.tokens) for r in logprobs._trie_rows([list(s) for s, _ in distinct], logprobs.TRIE_ROW, [m for _, m in distinct]))
    return trie, sum(len(s) - 1 for s, _ in encoded if len(s) > 1)


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


def breakdown(model, tok, pairs, batch_size: int, rule: str) -> None:
    """Where one scoring run's time goes, by torch.profiler's self CPU time per operator (the profiler
    slows small operators down, so shares are indicative)."""
    from torch.profiler import ProfilerActivity, profile

    groups = {"matmuls": ("aten::mm", "aten::addmm", "aten::bmm"), "attention": ("aten::_scaled_dot_product",),
              "log_softmax": ("aten::_log_softmax",)}
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        blimp.score_pairs(model, tok, pairs, batch_size, rule=rule)
        wall = time.perf_counter() - start
    spent = dict.fromkeys([*groups, "other operators"], 0.0)
    for event in prof.key_averages():
        group = next((g for g, prefixes in groups.items() if event.key.startswith(prefixes)), "other operators")
        spent[group] += event.self_cpu_time_total / 1e6
    parts = ", ".join(f"{g} {t:.2f} s" for g, t in spent.items())
    print(f"breakdown of one run ({rule} rule) under torch.profiler ({wall:.2f} s): {parts}, "
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


def babylm_pipeline_scorer(checkout: Path, model, tok, pairs, batch_size: int, work: Path):
    """A function returning the BabyLM pipeline's decisions on `pairs` (its causal backend, imported from
    `checkout`, run on this model saved under `work` and on the pairs written there as jsonl files).
    Its predictions name the chosen sentence; a pair whose two sentences are identical counts as
    right, as its torch.max does on a tie."""
    import json
    from types import SimpleNamespace

    sys.path.insert(0, str(checkout))
    from evaluation_pipeline.sentence_zero_shot.compute_results import compute_results
    from evaluation_pipeline.sentence_zero_shot.dataset import get_dataloader
    from babysweep.lm.models import save_model

    save_model(model, tok, work / "model")
    data = work / "blimp"
    data.mkdir()
    by_paradigm: dict[str, list[blimp.Pair]] = {}
    for p in pairs:
        by_paradigm.setdefault(p.paradigm, []).append(p)
    for name, group in by_paradigm.items():
        rows = [{"sentence_good": p.good, "sentence_bad": p.bad, "field": p.field, "UID": name,
                 "linguistics_term": p.term} for p in group]
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = SimpleNamespace(data_path=data, task="blimp", model_path_or_name=str(work / "model"), backend="causal",
                           batch_size=batch_size, non_causal_batch_size=batch_size, images_path=None, image_split=None,
                           image_template=None, revision_name=None, full_sentence_scores=False, save_predictions=True)
    from transformers import AutoModelForCausalLM

    their_model = AutoModelForCausalLM.from_pretrained(args.model_path_or_name).eval()
    loader = get_dataloader(args)  # reads the files; it tokenizes item by item while iterating, inside the timed part

    def run() -> list[bool]:
        _, predictions = compute_results(args, their_model, loader, [1.0])
        chosen = {uid: [d["pred"] for d in v["predictions"]] for uid, v in predictions[1.0].items()}
        return [chosen[p.paradigm][i] == p.good for name, group in by_paradigm.items() for i, p in enumerate(group)]
    return run, [p for group in by_paradigm.values() for p in group]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs-per-paradigm", type=int, default=45)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--loop-pairs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed rounds; the best of each is shown")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--breakdown", action="store_true", help="also profile one run: matmuls, attention, other operators")
    parser.add_argument("--babylm-pipeline", type=Path, default=os.environ.get("BABYLM_PIPELINE"),
                        help="a checkout of evaluation-pipeline-2025 (default $BABYLM_PIPELINE) to time and compare")
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

    contenders = {}
    for rule in logprobs.RULES:
        contenders[f"ours {rule}"] = lambda rule=rule: blimp.score_pairs(model, tok, pairs, args.batch_size, rule=rule)
        contenders[f"loop {rule}"] = lambda rule=rule: one_at_a_time(model, tok, sample, rule)
    lm_eval_fn = lm_eval_scorer(model, tok, pairs, args.batch_size, prefix=" ")  # the blimp task's requests
    if lm_eval_fn is not None:
        contenders["lm-eval"] = lm_eval_fn
    work = None
    if args.babylm_pipeline:
        import tempfile

        work = tempfile.TemporaryDirectory()
        contenders["babylm pipeline"], pipe_pairs = babylm_pipeline_scorer(
            args.babylm_pipeline.expanduser().resolve(), model, tok, pairs, args.batch_size, Path(work.name))
    blimp.score_pairs(model, tok, pairs[:200], args.batch_size)  # warm-up (allocator, kernels)
    best, out = {}, {}
    for round_ in range(args.repeats):  # interleaved, so a busy spell on a shared machine hits every contender
        for name, fn in contenders.items():
            if name == "babylm pipeline" and round_:
                continue  # one run: it is many times slower than the rest
            out[name], seconds = timed(fn)
            best[name] = min(best.get(name, float("inf")), seconds)

    rate = {name: (len(sample) if name.startswith("loop") else len(pairs)) / seconds for name, seconds in best.items()}
    for rule in logprobs.RULES:
        ours, loop = f"ours {rule}", f"loop {rule}"
        agree = sum(out[ours][pairs.index(p)] == d for p, d in zip(sample, out[loop]))
        print(f"--rule {rule}: ours, batched (batch {args.batch_size}, best of {args.repeats}): {len(pairs):,} pairs in "
              f"{best[ours]:.2f} s = {rate[ours]:,.0f} pairs/s; one sentence at a time {rate[loop]:,.0f} pairs/s "
              f"({rate[ours] / rate[loop]:.1f}x), decisions agree on {agree}/{len(sample)} sampled pairs; "
              f"full BLiMP ({FULL_BLIMP:,} pairs) an estimated {FULL_BLIMP / rate[ours]:.0f} s")
        read, one_per_token = positions(model, tok, pairs, rule)
        floor = matmul_seconds(model, read)
        print(f"  positions through the model: ours {read:,} (prefix tries), a row per sentence {one_per_token:,}: "
              f"{read / one_per_token:.3f} of them; their matmuls alone take {floor:.2f} s here = a ceiling of "
              f"{len(pairs) / floor:,.0f} pairs/s for exact fp32 scoring, ours reaches {floor / best[ours]:.0%} of it")
        if args.breakdown:
            breakdown(model, tok, pairs, args.batch_size, rule)
    for bs in (16, 256):
        _, seconds = timed(lambda: blimp.score_pairs(model, tok, pairs, bs))
        print(f"  ours (babylm) at batch {bs} (one run): {len(pairs) / seconds:,.0f} pairs/s")

    if lm_eval_fn is None:
        print("lm-eval: not installed (pip install lm_eval, outside babysweep's dependencies, to compare in the same run)")
    else:
        import lm_eval

        theirs = lm_eval_decisions(out["lm-eval"])
        agree = sum(a == b for a, b in zip(out["ours lm-eval"], theirs))
        ours_lp = logprobs.sentence_logprobs(model, tok, [p.good for p in pairs] + [p.bad for p in pairs], args.batch_size,
                                          rule="lm-eval")
        diff = max(abs(a - b) for a, b in zip(ours_lp, out["lm-eval"]))
        print(f"lm-eval {getattr(lm_eval, '__version__', '')} HFLM.loglikelihood, its blimp task's requests (batch "
              f"{args.batch_size}, best of {args.repeats}): {rate['lm-eval']:,.0f} pairs/s; ours (--rule lm-eval) / lm-eval: "
              f"{rate['ours lm-eval'] / rate['lm-eval']:.2f}x; decisions agree on {agree}/{len(pairs)}"
              f"{' (every one)' if agree == len(pairs) else ''}; max |log-prob difference| {diff:.1e}")
    if work is None:
        print("BabyLM pipeline: not timed (--babylm-pipeline DIR names a checkout of evaluation-pipeline-2025)")
    else:
        ours = dict(zip(pairs, out["ours babylm"]))
        agree = sum(ours[p] == d for p, d in zip(pipe_pairs, out["babylm pipeline"]))
        print(f"BabyLM pipeline (sentence_zero_shot, causal backend, batch {args.batch_size}, one run): "
              f"{rate['babylm pipeline']:,.0f} pairs/s; ours (--rule babylm) / pipeline: "
              f"{rate['ours babylm'] / rate['babylm pipeline']:.2f}x; decisions agree on {agree}/{len(pairs)}"
              f"{' (every one)' if agree == len(pairs) else ''}")
        work.cleanup()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
