"""The built-in synthetic corpus: determinism, size, the recogniser, minimal pairs, build()."""

import json
import random
import threading

import pytest

from babysweep.data import builtin
from babysweep.core.errors import UserError

PAIR_KEYS = {"sentence_good", "sentence_bad", "field", "linguistics_term", "UID", "pairID"}


def _utterance(line: str) -> str:
    speaker, sep, rest = line.partition(": ")
    return rest if sep and speaker in builtin.SPEAKERS else line


@pytest.fixture(scope="module")
def text() -> str:
    return builtin.generate_text(5000, 0)


@pytest.fixture(scope="module")
def pairs() -> dict:
    return builtin.generate_pairs(30, 0)


def test_same_seed_same_bytes_other_seed_other_text(text):
    assert builtin.generate_text(5000, 0) == text
    assert builtin.generate_text(5000, 1) != text
    dev = builtin.generate_text(500, 0, "dev")
    assert dev != builtin.generate_text(500, 0)  # dev is its own seed stream, not train's first lines
    assert not text.startswith(dev.splitlines()[0] + "\n" + dev.splitlines()[1])


def test_size_is_near_the_request(text):
    assert text.endswith("\n") and not text.endswith("\n\n")
    longest = max(len(line.split()) for line in text.splitlines())
    assert 5000 <= len(text.split()) < 5000 + longest
    assert 100 <= len(builtin.generate_text(100, 3).split()) < 100 + longest
    with pytest.raises(ValueError):
        builtin.generate_text(0, 0)


def test_every_generated_line_is_grammatical_and_varied(text):
    lines = text.splitlines() + builtin.generate_text(1000, 0, "dev").splitlines()
    rejected = [line for line in lines if not builtin.is_grammatical(line)]
    assert not rejected, rejected[:5]
    utterances = [_utterance(line) for line in lines]
    assert sum(u != line for u, line in zip(utterances, lines)) > len(lines) / 4  # dialogue turns
    assert sum(u == line for u, line in zip(utterances, lines)) > len(lines) / 4  # plain story lines
    words = set(text.replace(".", " ").replace("?", " ").replace("!", " ").replace(",", " ").split())
    for expected in ("MOTHER:", "CHILD:", "that", "themselves", "any", "children", "Is", "What", "Yes"):
        assert expected in words, expected
    assert sum(line.endswith("?") for line in lines) > len(lines) / 10


def test_recogniser_accepts_the_grammar_and_rejects_errors():
    for good in ("The dogs that see the cat are happy.", "MOTHER: Is the puppy hungry?", "CHILD: No, I'm not.",
                 "Anna thinks that the boys hurt themselves.", "Mommy knows what the dog found.",
                 "The mice that the cat chased were scared.", "The girl isn't holding any balls.",
                 "The boy has eaten an apple.", "Where is the ball?", "Give the ball to Daddy.",
                 "The dogs aren't happy.", "A big apple fell.", "An apple fell.", "Does the cat like you?"):
        assert builtin.is_grammatical(good), good
    for bad in ("The dogs that see the cat is happy.", "These dog is happy.", "The girls saw herself.",
                "The boy eated the apple.", "The boy has ate an apple.", "Is the dogs happy?",
                "What did the boy find the ball?", "Mommy knows that the dog found.", "The boy slept the ball.",
                "The girl is holding any balls.", "Anna thinks that the boys hurt herself.", "The ball is hungry.",
                "Yes, it are.", "The the dog runs.", "The dogs isn't happy.", "Do the cat like you?",
                "The cat like you.", "I is happy.", "He are happy.", "They was happy.", "We likes you.",
                # spelling: capitals, a/an, punctuation, spaces, unknown speakers
                "the dog runs.", "The dog runs", "A old owl sleeps.", "An dog sleeps.",
                "A apple fell.", "An big apple fell.", "The dog runs .",
                "The  dog runs.", "TEACHER: Is the puppy hungry?", ""):
        assert not builtin.is_grammatical(bad), bad


def test_recogniser_rejects_shuffled_lines(text):
    # a recogniser that accepted everything would pass the tests above only by luck of their lists
    r = random.Random(0)
    shuffled = []
    for line in text.splitlines()[:400]:
        tokens = builtin._tokens(_utterance(line))
        body = tokens[:-1]
        if len(set(body)) > 3:
            r.shuffle(body)
            shuffled.append(builtin.realise(body + tokens[-1:]))
    accepted = [s for s in shuffled if builtin.is_grammatical(s)]
    assert len(shuffled) > 200 and len(accepted) < len(shuffled) / 20, accepted[:5]


def test_pairs_are_valid_minimal_pairs(pairs, text):
    assert len(pairs) >= 8 and pairs == builtin.generate_pairs(30, 0)
    assert pairs != builtin.generate_pairs(30, 1)
    assert {"morphology", "syntax", "semantics", "syntax_semantics"} <= {r[0]["field"] for r in pairs.values()}
    seen_lines = {_utterance(line) for line in text.splitlines() + builtin.generate_text(20_000, 0).splitlines()}
    for uid, rows in pairs.items():
        assert len(rows) == 30
        assert len({(r["sentence_good"], r["sentence_bad"]) for r in rows}) == 30  # no duplicates
        assert [r["pairID"] for r in rows] == [str(i) for i in range(30)]
        for row in rows:
            assert set(row) == PAIR_KEYS and row["UID"] == uid, row
            good, bad = row["sentence_good"].split(), row["sentence_bad"].split()
            # a minimal pair: same length, exactly one word changed
            assert len(good) == len(bad) and sum(g != b for g, b in zip(good, bad)) == 1, row
            assert builtin.is_grammatical(row["sentence_good"]), row
            assert not builtin.is_grammatical(row["sentence_bad"]), row
            assert row["sentence_bad"] not in seen_lines, row


def test_pairs_are_not_trivially_one_sided(pairs):
    # the changed word must not give the answer away by itself: in each agreement paradigm both
    # numbers occur as the good form
    for uid in ("subject_verb_agreement_simple", "agreement_across_relative_clause", "auxiliary_agreement_question"):
        changed = {next(g for g, b in zip(r["sentence_good"].split(), r["sentence_bad"].split()) if g != b)
                   for r in pairs[uid]}
        assert len(changed) >= 3, (uid, changed)


def test_build_layout_is_idempotent(tmp_path):
    folder = builtin.build(tmp_path, words=2000, seed=1, pairs_per_paradigm=5)
    assert folder.name == f"builtin-v{builtin.GRAMMAR_VERSION}-w2000-s1-p5"
    train = (folder / "train" / "builtin.train").read_text()
    assert train == builtin.generate_text(2000, 1)
    assert (folder / "dev" / "builtin.dev").read_text() == builtin.held_out_text(200, 1, "dev", train)
    readme = (folder / "README.txt").read_text()
    assert "SYNTHETIC" in readme and "not real child-directed" in readme
    assert f"GRAMMAR_VERSION: {builtin.GRAMMAR_VERSION}" in readme and "seed: 1" in readme
    files = sorted((folder / "blimp").glob("*.jsonl"))
    assert [f.stem for f in files] == sorted(builtin.PARADIGMS)
    rows = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert len(rows) == 5 and set(rows[0]) == PAIR_KEYS and rows[0]["UID"] == files[0].stem
    stamp = (folder / "train" / "builtin.train").stat().st_mtime_ns
    assert builtin.build(tmp_path, words=2000, seed=1, pairs_per_paradigm=5) == folder
    assert (folder / "train" / "builtin.train").stat().st_mtime_ns == stamp
    assert builtin.build(tmp_path, words=2000, seed=1).name == f"builtin-v{builtin.GRAMMAR_VERSION}-w2000-s1"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp folder left


def test_concurrent_builds_agree(tmp_path):
    results = []
    threads = [threading.Thread(target=lambda: results.append(builtin.build(tmp_path, 3000, 2, 5))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len(set(results)) == 1
    assert (results[0] / "train" / "builtin.train").read_text() == builtin.generate_text(3000, 2)
    assert [p.name for p in tmp_path.iterdir()] == [results[0].name]


def test_incomplete_folder_is_a_user_error(tmp_path):
    (tmp_path / builtin.folder_name(2000, 0) / "train").mkdir(parents=True)
    with pytest.raises(UserError, match="not a complete built-in corpus"):
        builtin.build(tmp_path, words=2000, seed=0)


def test_dev_shares_no_line_with_train(tmp_path):
    folder = builtin.build(tmp_path, words=20000, seed=0, pairs_per_paradigm=2)
    train = set((folder / "train" / "builtin.train").read_text().splitlines())
    dev = (folder / "dev" / "builtin.dev").read_text().splitlines()
    assert len(" ".join(dev).split()) >= 2000 and not train & set(dev)
    fresh = builtin.generate_text(2000, 0, "dev").splitlines()  # a fresh seed stream alone is not enough
    assert train & set(fresh)
