"""BLiMP reader, scorers (against plain one-sentence loops written here from each rule), aggregation, outputs.

Two tokenizers: `plain_tok` is babysweep's own (tokenizer(s) adds nothing), `tok` the same vocabulary
with a template that puts <s> first, as LLaMA's does; with `tok` the babylm rule reads <s> + sentence."""

from __future__ import annotations

import json
import random

import pytest
import torch
from rich.console import Console
from tokenizers import Tokenizer, processors
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from babysweep.eval import blimp, logprobs
from babysweep.eval.blimp import Pair
from babysweep.data.tokenizer import BOS_ID, EOS_ID, MASK_ID, PAD_ID, train_tokenizer, wrap
from babysweep.core.errors import UserError
from babysweep.core.metrics import BLIMP_OVERALL, blimp_field, blimp_paradigm

from conftest import needs_shared

WORDS = "the a cat dogs sees saw likes run runs big small red who what did Mary John himself herself".split()


def _sentence(rng: random.Random, lo: int = 2, hi: int = 14) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))).capitalize() + "."


@pytest.fixture(scope="module")
def plain_tok():
    rng = random.Random(0)
    lines = [_sentence(rng) for _ in range(400)] + ["The cat saw Mary."] * 20  # "Mary" and " Mary": one token each
    return train_tokenizer(lines, vocab_size=400, min_frequency=1)


def _template(tok, single: str):
    core = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    core.post_processor = processors.TemplateProcessing(single=single, special_tokens=[("<s>", BOS_ID), ("</s>", EOS_ID)])
    return wrap(core)


@pytest.fixture(scope="module")
def tok(plain_tok):
    return _template(plain_tok, "<s> $A")


def _llama(tok, positions: int = 64):
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=positions, pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID)).eval()


def _gpt2(tok, dropout: float = 0.0):
    torch.manual_seed(1)
    return GPT2LMHeadModel(GPT2Config(
        vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=64, resid_pdrop=dropout,
        embd_pdrop=dropout, attn_pdrop=dropout, pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID)).eval()


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def model(request, tok):
    return _llama(tok) if request.param == "llama" else _gpt2(tok)


def _ids(tok, sentence: str, limit: int = 64) -> list[int]:
    return ([BOS_ID] + tok.encode(sentence, add_special_tokens=False))[:limit]


def reference_logprob(model, tok, sentence: str, limit: int = 65) -> float:
    """The plain rule, one sentence at a time, no padding: sum of log p(t_i | <s> t_<i).
    `limit` tokens of <s> + sentence; the model reads all but the last."""
    ids = _ids(tok, sentence, limit)
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([ids[:-1]])).logits[0].float().log_softmax(-1)
    return sum(logp[i, ids[i + 1]].item() for i in range(len(ids) - 1))


def reference_pll(model, tok, sentence: str) -> float:
    """Mask each token after <s> in turn; read it at its own position with full attention."""
    ids = _ids(tok, sentence)
    total = 0.0
    for i in range(1, len(ids)):
        masked = torch.tensor([ids[:i] + [MASK_ID] + ids[i + 1:]])
        full = torch.zeros(1, 1, len(ids), len(ids))
        with torch.no_grad():
            logits = model(input_ids=masked, attention_mask=full).logits[0, i].float()
        total += logits.log_softmax(-1)[ids[i]].item()
    return total


def _pairs(n: int, seed: int = 3) -> list[Pair]:
    rng = random.Random(seed)
    return [Pair(_sentence(rng), _sentence(rng), f"p{i % 3}", "syntax", "", f"p{i % 3}/{i}") for i in range(n)]


# ---------------------------------------------------------------------------------------- scoring


def test_batched_scores_and_decisions_match_one_at_a_time(model, tok):
    pairs = _pairs(23)
    sentences = [p.good for p in pairs] + [p.bad for p in pairs]
    want = [reference_logprob(model, tok, s) for s in sentences]
    got = logprobs.sentence_logprobs(model, tok, sentences, batch_size=8)
    assert got == pytest.approx(want, abs=1e-4)
    assert len({round(v, 3) for v in want}) > 10  # the check is not vacuous: scores differ
    decisions = blimp.score_pairs(model, tok, pairs, batch_size=8)
    assert decisions == [want[i] >= want[len(pairs) + i] for i in range(len(pairs))]


def test_padding_does_not_change_scores(model, tok):
    short = "The cat runs."
    long = ["The big red cat who saw the small dogs likes Mary and John and himself a lot ." * 2] * 5
    alone = logprobs.sentence_logprobs(model, tok, [short], batch_size=1)[0]
    padded = logprobs.sentence_logprobs(model, tok, long + [short], batch_size=64)[-1]  # one batch, mostly padding
    assert padded == pytest.approx(alone, abs=1e-4)
    assert alone == pytest.approx(reference_logprob(model, tok, short), abs=1e-4)


def test_full_logits_path_for_other_architectures(model, tok, monkeypatch):
    sentences = ["The cat runs.", "Who did Mary see himself?", "A big red dog saw the small cats."]
    fast = logprobs.sentence_logprobs(model, tok, sentences, batch_size=2)
    fast_pll = logprobs.pll_logprobs(model, tok, sentences, batch_size=3)
    monkeypatch.setattr(logprobs, "_head_split", lambda model: None)  # as for a model we do not know
    assert logprobs.sentence_logprobs(model, tok, sentences, batch_size=2) == pytest.approx(fast, abs=1e-4)
    assert logprobs.pll_logprobs(model, tok, sentences, batch_size=3) == pytest.approx(fast_pll, abs=1e-4)
    assert fast == pytest.approx([reference_logprob(model, tok, s) for s in sentences], abs=1e-4)
    assert logprobs.sentence_logprobs(model, tok, ["", "A."])[0] == 0.0  # nothing to score




def test_truncation_keeps_the_first_positions(tok):
    model = _llama(tok, positions=8)
    sentence = "The big red cat who saw the small dogs likes Mary."
    assert len(_ids(tok, sentence, 100)) > 10
    got = logprobs.sentence_logprobs(model, tok, [sentence, "A cat."], batch_size=2)
    # 8 positions read (<s> + 7 tokens), 8 tokens scored.
    assert got[0] == pytest.approx(reference_logprob(model, tok, sentence, limit=9), abs=1e-4)
    assert got[0] != pytest.approx(reference_logprob(model, tok, sentence, limit=8), abs=1e-3)
    pll = logprobs.pll_logprobs(model, tok, [sentence], batch_size=4)  # reads <s> + 7 tokens
    assert pll[0] == pytest.approx(reference_pll(model, tok, tok.decode(_ids(tok, sentence, 8)[1:])), abs=1e-4)


def test_eval_mode_during_scoring_and_mode_restored(tok):
    model = _gpt2(tok, dropout=0.5).train()
    sentences = ["The cat runs.", "Who did Mary see?"]
    got = logprobs.sentence_logprobs(model, tok, sentences)
    assert model.training  # restored
    model.eval()
    assert got == pytest.approx([reference_logprob(model, tok, s) for s in sentences], abs=1e-4)  # no dropout
    logprobs.sentence_logprobs(model, tok, sentences)
    assert not model.training


def test_pll_matches_hand_loop(model, tok):
    sentences = ["The cat runs.", "Who did Mary see himself?", "A big red dog."]
    want = [reference_pll(model, tok, s) for s in sentences]
    got = logprobs.pll_logprobs(model, tok, sentences, batch_size=5)  # copies of different sentences share batches
    assert got == pytest.approx(want, abs=1e-4)
    assert got != pytest.approx(logprobs.sentence_logprobs(model, tok, sentences), abs=1e-2)
    pairs = [Pair(sentences[0], sentences[1], "p", "f", "", "p/0"), Pair(sentences[2], sentences[0], "p", "f", "", "p/1")]
    assert blimp.score_pairs(model, tok, pairs, scorer="pll") == [want[0] >= want[1], want[2] >= want[0]]
    same = Pair(sentences[1], sentences[1], "p", "f", "", "p/2")
    assert blimp.score_pairs(model, tok, [same], scorer="pll") == [True]  # a tie is right, as the pipeline's torch.max


def test_evaluate_end_to_end(tok):
    model = _llama(tok)
    pairs = _pairs(12)
    results = blimp.evaluate(model, tok, pairs, batch_size=4)
    assert results["pairs"] == 12 and set(results["paradigms"]) == {"p0", "p1", "p2"}
    with pytest.raises(ValueError, match="scorer"):
        blimp.score_pairs(model, tok, pairs, scorer="mlm")


# ---------------------------------------------------------------------------------------- the two rules


def rule_reference(model, tok, sentence: str, rule: str) -> float:
    """One sentence, one forward pass, no batching, written from the rules as the issue and the two
    references' code state them (not from eval/blimp.py)."""
    if rule == "lm-eval":  # empty context: the prefix token (BOS, else EOS), then " " + sentence, all scored
        prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        cont = tok.encode(" " + sentence, add_special_tokens=False)
        ids, scored = [prefix] + cont, range(1, len(cont) + 1)
    else:  # the tokenizer's own special tokens; after the first token, those ending after its start
        enc = tok(sentence, return_offsets_mapping=True)
        ids, spans = enc["input_ids"], enc["offset_mapping"]
        scored = [i for i in range(1, len(ids)) if spans[i][1] > spans[0][0]]
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([ids[:-1]])).logits[0].float().log_softmax(-1)
    return sum(logp[i - 1, ids[i]].item() for i in scored)


def _rule_pairs() -> list[Pair]:
    return [
        Pair("Mary saw the cat.", "Mary saw the cat.", "tie", "f", "", "tie/0"),  # identical sentences: a tie
        Pair("John likes\nthe dogs.\nMary runs.", "John likes the dogs. Mary runs.", "lines", "f", "", "lines/0"),
        Pair("Mary sees the dog.", "Mary see the dog.", "first", "f", "", "first/0"),  # "Mary" vs " Mary"
    ] + _pairs(20)


@pytest.mark.parametrize("template", ["none", "<s> $A", "<s> $A </s>"])
@pytest.mark.parametrize("rule", logprobs.RULES)
def test_rules_match_a_plain_loop_pair_for_pair(model, plain_tok, rule, template, monkeypatch):
    t = plain_tok if template == "none" else _template(plain_tok, template)
    pairs = _rule_pairs()
    want = [(rule_reference(model, t, p.good, rule), rule_reference(model, t, p.bad, rule)) for p in pairs]
    assert blimp.score_pairs(model, t, pairs, batch_size=8, rule=rule) == [g >= b for g, b in want]
    assert logprobs.sentence_logprobs(model, t, [p.good for p in pairs], 8, rule=rule) == pytest.approx([g for g, _ in want], abs=1e-4)
    assert want[0][0] == want[0][1] and sum(g != b for g, b in want) > 15  # a tie, and real decisions
    monkeypatch.setattr(logprobs, "_trie_ok", lambda model: False)  # the padded path follows the rule too
    assert blimp.score_pairs(model, t, pairs, batch_size=8, rule=rule) == [g >= b for g, b in want]


def test_what_each_rule_reads_and_scores(plain_tok, tok):
    model = _llama(tok)
    enc = lambda t, s: plain_tok.encode(s, add_special_tokens=False)
    mary, space_mary = enc(plain_tok, "Mary runs."), enc(plain_tok, " Mary runs.")
    assert space_mary[0] != mary[0] and len(space_mary) == len(mary)  # the first word's token changes with a space
    every = lambda ids: (tuple(ids), (True,) * (len(ids) - 1))
    assert logprobs.encode(model, tok, ["Mary runs."], "lm-eval") == [every([BOS_ID] + space_mary)]
    assert logprobs.encode(model, plain_tok, ["Mary runs."], "lm-eval") == [every([BOS_ID] + space_mary)]
    # babylm: the tokenizer's own template; [BOS] + sentence when it adds BOS (the formula) ...
    assert logprobs.encode(model, tok, ["Mary runs."], "babylm") == [every([BOS_ID] + mary)]
    # ... the bare sentence, its first token only context, when it adds none (babysweep's, GPT-2's) ...
    assert logprobs.encode(model, plain_tok, ["Mary runs."], "babylm") == [every(mary)]
    # ... and an appended </s> is read by nothing and scored by nothing
    with_eos = _template(plain_tok, "<s> $A </s>")
    assert logprobs.encode(model, with_eos, ["Mary runs."], "babylm") == [(tuple([BOS_ID] + mary + [EOS_ID]), (True,) * len(mary) + (False,))]
    # line breaks are tokens in both rules
    lines = enc(plain_tok, "Mary runs.\nJohn runs.")
    assert logprobs.encode(model, tok, ["Mary runs.\nJohn runs."], "babylm") == [every([BOS_ID] + lines)]
    assert "Ċ" in plain_tok.convert_ids_to_tokens(lines) and lines != enc(plain_tok, "Mary runs. John runs.")
    # lm-eval without a BOS token reads EOS first, as its prefix_token_id; with neither it cannot score
    eos_only = wrap(Tokenizer.from_str(plain_tok.backend_tokenizer.to_str()))
    eos_only.bos_token = None
    assert eos_only.bos_token_id is None and eos_only.eos_token_id == EOS_ID
    assert logprobs.encode(model, eos_only, ["Mary runs."], "lm-eval")[0][0] == tuple([EOS_ID] + space_mary)
    eos_only.eos_token = None
    with pytest.raises(ValueError, match="bos or eos"):
        logprobs.encode(model, eos_only, ["Mary runs."], "lm-eval")
    with pytest.raises(ValueError, match="rule"):
        logprobs.encode(model, tok, ["Mary runs."], "babylm-2024")


def test_evaluate_records_rule_and_aggregates_fields_as_the_rule_does(tok):
    model = _llama(tok)
    pairs = _rule_pairs()
    by_rule = {rule: blimp.evaluate(model, tok, pairs, batch_size=8, rule=rule) for rule in logprobs.RULES}
    assert {r["rule"] for r in by_rule.values()} == set(logprobs.RULES) and by_rule["babylm"]["scorer"] == "causal"
    assert by_rule["babylm"]["decisions"]["tie"] == "1" and by_rule["lm-eval"]["decisions"]["tie"] == "1"
    assert blimp.method(by_rule["lm-eval"]) == "causal scorer, lm-eval rule"
    assert blimp.method({"scorer": "causal"}) == "causal scorer, rule not recorded"  # a blimp.json from before
    pairs, correct = _hand_made()
    assert blimp.aggregate(pairs, correct, pooled_fields=True)["fields"] == {"f1": 0.5, "f2": 1.0}  # 3 of 6 pairs
    blimp.check_comparable({"a": "causal scorer, babylm rule", "b": "causal scorer, babylm rule"})
    with pytest.raises(UserError, match=r"b: causal scorer, lm-eval rule"):
        blimp.check_comparable({"a": "causal scorer, babylm rule", "b": "causal scorer, lm-eval rule"})


# ---------------------------------------------------------------------------------------- reading


def _row(good="Who ran?", bad="Who ran it?", **extra) -> str:
    return json.dumps({"sentence_good": good, "sentence_bad": bad, **extra})


def test_reader_layout_and_edge_cases(tmp_path):
    folder = tmp_path / "blimp"
    folder.mkdir()
    (folder / "b_file.jsonl").write_text("\n".join([
        _row(UID="anaphor", field="morphology", linguistics_term="anaphor_agreement", pairID="7", extra=[1, 2]),
        "",
        "   ",
        _row(good="The cat\n  sat\ton\r\nthe mat. ", bad="  The cat sat  the mat.", UID="anaphor", field="syntax/semantics"),
    ]) + "\n")
    (folder / "a_no_uid.jsonl").write_text(_row(meta={"nested": True}) + "\n")
    (folder / "notes.txt").write_text("not a pair file\n")
    pairs = blimp.load_pairs(folder)
    assert [p.paradigm for p in pairs] == ["a_no_uid", "anaphor", "anaphor"]  # files by name; UID else stem
    first, second, third = pairs
    assert (first.field, first.term, first.pair_id) == ("unknown", "", "a_no_uid/1")
    assert (second.good, second.field, second.term, second.pair_id) == ("Who ran?", "morphology", "anaphor_agreement", "anaphor/7")
    assert (third.good, third.bad) == ("The cat\n  sat\ton\r\nthe mat. ", "  The cat sat  the mat.")  # as in the file
    assert third.field == "syntax_semantics" and third.pair_id == "anaphor/4"
    assert blimp.load_pairs(folder / "a_no_uid.jsonl") == [first]


@pytest.mark.parametrize("line, message", [
    ('{"sentence_good": "A.", ', "not valid JSON"),
    ('{"sentence_good": "A."}', "has no 'sentence_bad'"),
    ('{"sentence_good": "A.", "sentence_bad": 3}', "'sentence_bad' must be a string"),
    ('{"sentence_good": " \\n", "sentence_bad": "B."}', "'sentence_good' is empty"),
    ('["A.", "B."]', "expected a JSON object"),
])
def test_malformed_row_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad_paradigm.jsonl"
    path.write_text(_row() + "\n\n" + line + "\n")
    with pytest.raises(UserError, match=message) as info:
        blimp.load_pairs(path)
    assert "bad_paradigm.jsonl, line 3" in str(info.value)


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(UserError, match="no such BLiMP file or folder"):
        blimp.load_pairs(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no .jsonl file"):
        blimp.load_pairs(tmp_path / "empty")
    (tmp_path / "blank.jsonl").write_text("\n  \n")
    with pytest.raises(UserError, match="holds no minimal pair"):
        blimp.load_pairs(tmp_path / "blank.jsonl")


def test_subset_is_seeded_per_paradigm_and_ordered():
    pairs = [Pair(f"g{i}", f"b{i}", "big", "f", "", str(i)) for i in range(50)]
    pairs += [Pair(f"g{i}", f"b{i}", "small", "f", "", str(i)) for i in range(3)]
    sample = blimp.subset(pairs, per_paradigm=5, seed=0)
    assert [p.paradigm for p in sample].count("big") == 5 and [p.paradigm for p in sample].count("small") == 3
    assert sample == sorted(sample, key=pairs.index)  # original order kept
    assert sample == blimp.subset(pairs, per_paradigm=5, seed=0)
    assert sample != blimp.subset(pairs, per_paradigm=5, seed=1)
    alone = blimp.subset(pairs[:50], per_paradigm=5, seed=0)  # another paradigm's presence changes nothing
    assert alone == [p for p in sample if p.paradigm == "big"]


# ---------------------------------------------------------------------------------------- results


def _hand_made():
    pairs, correct = [], []
    for paradigm, field, decisions in [("A", "f1", [1, 1, 1, 0]), ("B", "f1", [0, 0]), ("C", "f2", [1])]:
        for i, ok in enumerate(decisions):
            pairs.append(Pair("g", "b", paradigm, field, "", f"{paradigm}/{i}"))
            correct.append(bool(ok))
    return pairs, correct


def test_aggregate_means_of_paradigms():
    results = blimp.aggregate(*_hand_made())
    assert results["paradigms"] == {"A": 0.75, "B": 0.0, "C": 1.0}
    assert results["fields"] == {"f1": pytest.approx(0.375), "f2": 1.0}  # mean of paradigms, not of 6 pairs (0.5)
    assert results["overall"] == pytest.approx(1.75 / 3)  # not 4/7 over pairs
    assert results["pairs"] == 7 and results["counts"] == {"A": 4, "B": 2, "C": 1}
    metrics = blimp.to_metrics(results)
    assert metrics[BLIMP_OVERALL] == pytest.approx(1.75 / 3)
    assert metrics[blimp_field("f1")] == pytest.approx(0.375) and metrics[blimp_paradigm("B")] == 0.0
    assert len(metrics) == 1 + 2 + 3
    with pytest.raises(ValueError):
        blimp.aggregate(*_hand_made()[:1], [True])


def test_save_and_table(tmp_path):
    results = blimp.aggregate(*_hand_made())
    path = blimp.save_results(results, tmp_path / "out" / "blimp.json")
    assert json.loads(path.read_text()) == results
    console = Console(record=True, width=120)
    console.print(blimp.results_table(results))
    text = console.export_text()
    assert "f1 (2 paradigms, mean)" in text and "0.375" in text and "0.583" in text and "  C" in text


# ---------------------------------------------------------------------------------------- real data


def test_real_blimp_loads_all_paradigms(tok):
    pairs = blimp.load_pairs(needs_shared("blimp"))
    paradigms = {p.paradigm for p in pairs}
    assert len(paradigms) == 67 and len(pairs) == 67_000
    assert {p.field for p in pairs} == {"morphology", "semantics", "syntax", "syntax_semantics"}
    sample = blimp.subset(pairs, per_paradigm=1, seed=0)
    results = blimp.evaluate(_llama(tok), tok, sample, batch_size=32)
    assert len(results["paradigms"]) == 67 and results["pairs"] == 67


# ---------------------------------------------------------------------------------------- prefix tries


def test_trie_path_matches_one_at_a_time_with_shared_prefixes(model, tok):
    sentences = [
        "The cat sees the dog.", "The cat sees the dogs.", "The cat saw the dog.",  # shared prefixes
        "The cat sees the dog.",                                                   # identical to the first
        "The cat sees the dog", "The cat sees the",                                 # one a prefix of another
        "A", "The", "",                                                             # one token; nothing to score
        "Who did Mary see himself?", "Who did John see herself?",
    ] + [_sentence(random.Random(i)) for i in range(30)]
    assert any(len(_ids(tok, s)) == 2 for s in sentences)  # a single-token sentence
    assert logprobs._trie_ok(model)  # LLaMA and GPT-2 with sdpa take the trie path
    want = [reference_logprob(model, tok, s) if s else 0.0 for s in sentences]
    for batch_size in (1, 3, 64):
        got = logprobs.sentence_logprobs(model, tok, sentences, batch_size=batch_size)
        assert got == pytest.approx(want, abs=1e-4)
    assert want[0] != want[1] and want[8] == 0.0
    seqs = [_ids(tok, s, 65) for s in sentences]  # as _encode: max positions + 1
    rows = logprobs._trie_rows(seqs, row_size=40)  # several rows, some sentences sharing one
    assert len(rows) > 2 and sum(len(r.ends) for r in rows) == len(sentences) - 1  # "" is not scored
    assert sum(len(r.tokens) for r in rows) < sum(len(s) - 1 for s in seqs if len(s) > 1)  # prefixes read once
    padded = logprobs._padded_logprobs(model, seqs, [(True,) * (len(q) - 1) for q in seqs], PAD_ID, 8, torch.device("cpu"))
    assert padded == pytest.approx(want, abs=1e-4)


def test_trie_rows_are_small_tries(tok):
    seqs = [[1, 5, 6, 7], [1, 5, 6, 8], [1, 5, 9], [1, 5, 6, 7], [1, 4], [1]]
    (row,) = logprobs._trie_rows(seqs, row_size=8)
    # read positions (every prefix but a whole sentence): <s>, <s> 5, <s> 5 6
    assert row.tokens == [1, 5, 6] and row.parent == [0, 0, 1] and row.depth == [0, 1, 2]
    assert row.ends[0] == row.ends[3] and len(row.targets) == 6  # 4|<s>, 5|<s>, 6|5, 9|5, 7|56, 8|56
    assert 5 not in row.ends  # <s> alone
    rows = logprobs._trie_rows(seqs, row_size=2)  # [1, 4] alone; the rest need 3 positions, a row of their own
    assert [len(r.tokens) for r in rows] == [1, 3] and sorted(s for r in rows for s in r.ends) == [0, 1, 2, 3, 4]


def test_trie_scores_do_not_depend_on_row_packing_or_head_chunks(tok, monkeypatch):
    model = _llama(tok)
    sentences = [_sentence(random.Random(i)) for i in range(40)]
    base = logprobs.sentence_logprobs(model, tok, sentences, batch_size=64)
    monkeypatch.setattr(logprobs, "TRIE_ROW", 7)
    assert logprobs.sentence_logprobs(model, tok, sentences, batch_size=5) == pytest.approx(base, abs=1e-4)
    monkeypatch.setattr(logprobs, "HEAD_LOGITS", 1)  # 64 rows per output-head chunk: several per batch
    assert logprobs._head_rows(model) == 64
    assert logprobs.sentence_logprobs(model, tok, sentences, batch_size=64) == pytest.approx(base, abs=1e-4)
